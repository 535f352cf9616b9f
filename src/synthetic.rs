//! Release-size checkpoints with random weights, for benchmarks without the 6.7 GB release file:
//! exactly the release tensor names, shapes and dtype (bf16), and the release `config.json`.
//! The file is generated where it is used (it is too large to copy between machines).

use std::io::{BufWriter, Write};
use std::path::Path;

use dsocr_core::{DeviceSpec, RandomInit, Weights, random_init};
use dsocr_lm::{DeepseekLm, LmConfig};
use dsocr_preprocess::Architecture;
use dsocr_vision::{DeepEncoder, Stage2Config, VisionConfig};

use crate::OcrError;

/// DeepSeek-OCR's release `config.json` (docs/model.md §2.1-2.2).
pub fn release_config() -> serde_json::Value {
    release_config_for(Architecture::DeepseekOcr)
}

/// The release `config.json` of `arch` (docs/model.md §2.1-2.2, docs/model-ocr2.md §2): the sizes are the configs'
/// defaults (the one place the release values are written), the other keys as the release file
/// has them. DeepSeek-OCR 2's file also states the Qwen2 encoder's sizes that the release file
/// leaves to the code, and SAM's true `downsample_channels`.
pub fn release_config_for(arch: Architecture) -> serde_json::Value {
    let vision = VisionConfig::release(arch);
    let mut lm = serde_json::to_value(LmConfig::default()).expect("LmConfig serializes");
    let variant = serde_json::json!({
        "architectures": ["DeepseekV2ForCausalLM"], "kv_lora_rank": null, "lm_head": true, "n_group": 1, "q_lora_rank": null,
        "qk_nope_head_dim": 0, "qk_rope_head_dim": 0, "rm_head": false, "topk_group": 1, "topk_method": "greedy",
        "torch_dtype": "bfloat16", "use_mla": false, "v_head_dim": 0
    });
    merge_missing(&mut lm, &variant);
    let (model_name, width) = match &vision.stage2 {
        Stage2Config::Clip(clip) => ("deeplip_b_l", serde_json::json!({"clip-l-14-224": clip, "sam_vit_b": vision.sam})),
        Stage2Config::Qwen2(qwen2) => ("deepencoderv2", serde_json::json!({"qwen2-0-5b": qwen2, "sam_vit_b": vision.sam})),
    };
    let mut top = serde_json::json!({
        "_name_or_path": "dsocr-synthetic-release-size",
        "architectures": [arch.class_name()], "model_type": "deepseek_vl_v2", "tile_tag": "2D", "global_view_pos": "head",
        "candidate_resolutions": [[1024, 1024]], "torch_dtype": "bfloat16", "transformers_version": "4.46.3",
        "projector_config": {
            "input_dim": vision.projector_input, "model_type": "mlp_projector", "n_embed": vision.n_embed, "projector_type": "linear"
        },
        "vision_config": {
            "image_size": vision.sam.image_size, "mlp_ratio": 3.7362, "model_name": model_name, "model_type": "vision",
            "width": width
        },
        "language_config": lm.clone(),
    });
    // The release file repeats the language model's keys at the top level.
    merge_missing(&mut top, &lm);
    top
}

/// Copy the entries of the object `from` that `into` lacks.
fn merge_missing(into: &mut serde_json::Value, from: &serde_json::Value) {
    if let (Some(t), Some(f)) = (into.as_object_mut(), from.as_object()) {
        for (k, v) in f {
            t.entry(k.clone()).or_insert(v.clone());
        }
    }
}

/// Every tensor (name, PyTorch shape) the models built from `config` expect, sorted by name.
pub fn expected_tensors(config: &serde_json::Value) -> Result<Vec<(String, Vec<usize>)>, OcrError> {
    let probe = Weights::shape_probe(&DeviceSpec::Cpu.device()?);
    DeepEncoder::load(&probe, &VisionConfig::from_json(config, "config")?)?;
    DeepseekLm::load(&probe, &LmConfig::from_json(config, "config")?)?;
    Ok(probe.requested())
}

/// A fast seeded generator (SplitMix64) with a Box-Muller normal.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn uniform(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 + 0.5) / (1u64 << 24) as f32
    }
    /// Two N(0, 1) samples.
    fn normal_pair(&mut self) -> (f32, f32) {
        let (u1, u2) = (self.uniform(), self.uniform());
        let r = (-2.0 * u1.ln()).sqrt();
        let t = std::f32::consts::TAU * u2;
        (r * t.cos(), r * t.sin())
    }
}

fn bf16_bytes(v: f32) -> [u8; 2] {
    half::bf16::from_f32(v).to_le_bytes()
}

/// Write `model.safetensors` (bf16, streamed: memory stays small) and `config.json` for
/// `config` into `dir`, with weights initialised as [`random_init`] says. Returns the tensor count
/// and the bytes of tensor data.
pub fn write_synthetic_checkpoint(
    dir: &Path,
    config: &serde_json::Value,
    seed: u64,
    mut progress: impl FnMut(u64, u64),
) -> Result<(usize, u64), OcrError> {
    let io = |e: std::io::Error| OcrError::Input(format!("cannot write to {}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(io)?;
    let tensors = expected_tensors(config)?;
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), serde_json::json!({"format": "pt", "generator": "dsocr synth-weights"}));
    let mut offset = 0u64;
    for (name, shape) in &tensors {
        let bytes = shape.iter().product::<usize>() as u64 * 2;
        header.insert(name.clone(), serde_json::json!({"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + bytes]}));
        offset += bytes;
    }
    let mut header_bytes = serde_json::to_vec(&serde_json::Value::Object(header)).map_err(|e| OcrError::Input(e.to_string()))?;
    while header_bytes.len() % 8 != 0 {
        header_bytes.push(b' ');
    }
    let file = std::fs::File::create(dir.join("model.safetensors")).map_err(io)?;
    let mut w = BufWriter::with_capacity(8 << 20, file);
    w.write_all(&(header_bytes.len() as u64).to_le_bytes()).map_err(io)?;
    w.write_all(&header_bytes).map_err(io)?;
    let mut rng = Rng(seed);
    let mut done = 0u64;
    let mut buf = Vec::with_capacity(1 << 20);
    for (name, shape) in &tensors {
        let n: usize = shape.iter().product();
        let init = random_init(name, shape);
        let mut written = 0;
        while written < n {
            buf.clear();
            let chunk = (n - written).min(1 << 19);
            match init {
                RandomInit::Ones => (0..chunk).for_each(|_| buf.extend_from_slice(&bf16_bytes(1.0))),
                RandomInit::Zeros => buf.resize(chunk * 2, 0),
                RandomInit::Normal(std) => {
                    for i in (0..chunk).step_by(2) {
                        let (a, b) = rng.normal_pair();
                        buf.extend_from_slice(&bf16_bytes(a * std as f32));
                        if i + 1 < chunk {
                            buf.extend_from_slice(&bf16_bytes(b * std as f32));
                        }
                    }
                }
            }
            w.write_all(&buf).map_err(io)?;
            written += chunk;
            done += chunk as u64 * 2;
            progress(done, offset);
        }
    }
    w.flush().map_err(io)?;
    let cfg = serde_json::to_vec_pretty(config).map_err(|e| OcrError::Input(e.to_string()))?;
    std::fs::write(dir.join("config.json"), cfg).map_err(io)?;
    Ok((tensors.len(), offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_config_reads_back_as_the_release_defaults() {
        let c = release_config();
        assert_eq!(LmConfig::from_json(&c, "c").unwrap(), LmConfig::default());
        assert_eq!(VisionConfig::from_json(&c, "c").unwrap(), VisionConfig::default());
        assert_eq!(c["vision_config"]["width"]["sam_vit_b"]["global_attn_indexes"], serde_json::json!([2, 5, 8, 11]));
        assert_eq!(c["hidden_size"], 1280);
    }

    #[test]
    fn release_config_implies_the_release_inventory_size() {
        let t = expected_tensors(&release_config()).unwrap();
        assert_eq!(t.len(), 2710);
        let elements: usize = t.iter().map(|(_, s)| s.iter().product::<usize>()).sum();
        assert_eq!(elements, 3_336_106_240);
    }

    /// docs/model-ocr2.md §2: 2,707 tensors, 3,389,119,360 parameters, the names and shapes of the
    /// DeepSeek-OCR 2 release inventory.
    #[test]
    fn release_ocr2_config_implies_the_release_ocr2_inventory() {
        let c = release_config_for(Architecture::DeepseekOcr2);
        assert_eq!(VisionConfig::from_json(&c, "c").unwrap(), VisionConfig::release(Architecture::DeepseekOcr2));
        assert_eq!(LmConfig::from_json(&c, "c").unwrap(), LmConfig::default());
        let t = expected_tensors(&c).unwrap();
        assert_eq!(t.len(), 2707);
        assert_eq!(t.iter().map(|(_, s)| s.iter().product::<usize>()).sum::<usize>(), 3_389_119_360);
        let Some(mut inventory) = dsocr_testdata::release_inventory_ocr2("release_ocr2_config_implies_the_release_ocr2_inventory") else {
            return;
        };
        inventory.sort();
        assert_eq!(t, inventory);
    }

    #[test]
    fn small_synthetic_checkpoint_loads() {
        // The parity model's config with the synthetic writer: the file loads with every check.
        let Some(p) = dsocr_testdata::parity("small_synthetic_checkpoint_loads") else { return };
        let cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(p.model_dir().join("config.json")).unwrap()).unwrap();
        let dir = std::env::temp_dir().join(format!("dsocr-synth-{}", std::process::id()));
        let (n, bytes) = write_synthetic_checkpoint(&dir, &cfg, 1, |_, _| {}).unwrap();
        assert_eq!(n, 180);
        assert!(bytes > 0);
        let device = DeviceSpec::Cpu.device().unwrap();
        let w = Weights::new(dsocr_core::Checkpoint::open_dir(&dir).unwrap(), &device, dsocr_core::FloatType::F32).unwrap();
        DeepEncoder::load(&w, &VisionConfig::from_json(&cfg, "c").unwrap()).unwrap();
        DeepseekLm::load(&w, &LmConfig::from_json(&cfg, "c").unwrap()).unwrap();
        w.check_all_used(&[]).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
