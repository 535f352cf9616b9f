//! The encoder built from the release configuration expects exactly the release checkpoint's
//! vision tensors, and a damaged checkpoint gives errors that name the tensor.

use dsocr_core::{Checkpoint, CoreError, DeviceSpec, FloatType, Weights};
use dsocr_preprocess::Architecture;
use dsocr_testdata::{parity, release_inventory, release_inventory_ocr2};
use dsocr_vision::{DeepEncoder, VisionConfig};

fn is_vision(name: &str) -> bool {
    ["model.sam_model.", "model.vision_model.", "model.qwen2_model.", "model.projector.", "model.image_newline", "model.view_seperator"]
        .iter()
        .any(|p| name.starts_with(p))
}

#[test]
fn release_config_expects_exactly_the_release_vision_tensors() {
    let Some(inventory) = release_inventory("release_config_expects_exactly_the_release_vision_tensors") else { return };
    let expected: Vec<(String, Vec<usize>)> = inventory.into_iter().filter(|(n, _)| is_vision(n)).collect();
    assert_eq!(expected.len(), 476, "inventory has 476 vision tensors");
    let device = DeviceSpec::Cpu.device().unwrap();
    let probe = Weights::shape_probe(&device);
    DeepEncoder::load(&probe, &VisionConfig::default()).unwrap();
    let mut requested = probe.requested();
    let mut expected = expected;
    requested.sort();
    expected.sort();
    assert_eq!(requested, expected);
}

/// DeepSeek-OCR 2 (docs/model-ocr2.md §2): SAM with `net_3` 512 → 896, the Qwen2 encoder's 291
/// tensors, the projector 896 → 1280 and the separator; no CLIP and no newline.
#[test]
fn release_ocr2_config_expects_exactly_the_release_vision_tensors() {
    let Some(inventory) = release_inventory_ocr2("release_ocr2_config_expects_exactly_the_release_vision_tensors") else { return };
    let mut expected: Vec<(String, Vec<usize>)> = inventory.into_iter().filter(|(n, _)| is_vision(n)).collect();
    assert_eq!(expected.len(), 179 + 291 + 3, "inventory has 473 vision tensors");
    let probe = Weights::shape_probe(&DeviceSpec::Cpu.device().unwrap());
    DeepEncoder::load(&probe, &VisionConfig::release(Architecture::DeepseekOcr2)).unwrap();
    let mut requested = probe.requested();
    requested.sort();
    expected.sort();
    assert_eq!(requested, expected);
}

/// Write a copy of the parity checkpoint with `edit` applied to its tensor list.
fn edited_checkpoint(src: &std::path::Path, edit: impl Fn(&mut Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)>)) -> tempdir::Dir {
    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<_> = st.tensors().into_iter().map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec())).collect();
    edit(&mut tensors);
    let views: Vec<(String, safetensors::tensor::TensorView)> =
        tensors.iter().map(|(n, d, s, b)| (n.clone(), safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap())).collect();
    let dir = tempdir::Dir::new();
    safetensors::serialize_to_file(views, None, &dir.path.join("model.safetensors")).unwrap();
    dir
}

mod tempdir {
    /// A directory removed on drop.
    pub struct Dir {
        pub path: std::path::PathBuf,
    }
    impl Dir {
        pub fn new() -> Self {
            static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!("dsocr-vision-test-{}-{n}", std::process::id()));
            std::fs::create_dir_all(&path).unwrap();
            Dir { path }
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn load(dir: &std::path::Path) -> Result<(), CoreError> {
    let device = DeviceSpec::Cpu.device().unwrap();
    let w = Weights::new(Checkpoint::open_dir(dir)?, &device, FloatType::F32)?;
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dsocr_testdata::parity_root().join("model/config.json")).unwrap()).unwrap();
    DeepEncoder::load(&w, &VisionConfig::from_json(&json, "config.json")?)?;
    w.check_all_used(&["model.sam_model.", "model.vision_model.", "model.projector."])
}

#[test]
fn damaged_checkpoints_are_reported_by_tensor_name() {
    let Some(fixtures) = parity("damaged_checkpoints_are_reported_by_tensor_name") else { return };
    let model = fixtures.model_dir();
    let missing = edited_checkpoint(&model, |t| t.retain(|(n, ..)| n != "model.sam_model.blocks.1.attn.rel_pos_h"));
    let e = load(&missing.path).unwrap_err();
    assert!(matches!(&e, CoreError::MissingTensor { name } if name == "model.sam_model.blocks.1.attn.rel_pos_h"), "{e}");

    let reshaped = edited_checkpoint(&model, |t| {
        let entry = t.iter_mut().find(|(n, ..)| n == "model.projector.layers.bias").unwrap();
        entry.2 = vec![entry.2[0] / 2, 2];
    });
    let e = load(&reshaped.path).unwrap_err();
    assert!(matches!(&e, CoreError::ShapeMismatch { name, .. } if name == "model.projector.layers.bias"), "{e}");
    assert!(e.to_string().contains("model.projector.layers.bias"));

    let extra = edited_checkpoint(&model, |t| {
        let copy = t.iter().find(|(n, ..)| n == "model.sam_model.neck.1.bias").unwrap().clone();
        t.push(("model.sam_model.blocks.99.norm1.bias".into(), copy.1, copy.2, copy.3));
    });
    let e = load(&extra.path).unwrap_err();
    assert!(e.to_string().contains("model.sam_model.blocks.99.norm1.bias"), "{e}");

    let empty = tempdir::Dir::new();
    std::fs::write(empty.path.join("model.safetensors"), b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}      ").unwrap();
    let e = load(&empty.path).unwrap_err();
    assert!(matches!(e, CoreError::BadCheckpoint { .. }), "{e}");
}
