//! Vision parity with the official code on every recorded case (CPU, f32) of DeepSeek-OCR
//! (`shared/parity`) and DeepSeek-OCR 2 (`shared/parity-ocr2`): SAM, CLIP or the Qwen2 encoder,
//! projector and the arranged image sequence, from the reference pixels and end to end from
//! `input.png`.

use burn::prelude::*;
use burn::tensor::DType;
use dsocr_core::{Checkpoint, DeviceSpec, FloatType, Weights};
use dsocr_preprocess::{LoadOptions, ModeSpec, normalize_pixel, prepare_image};
use dsocr_testdata::{Case, parity, parity_all, parity_ocr2, tolerance_check};
use dsocr_vision::{DeepEncoder, RelPosAttention, Stage2, Tiling, VisionConfig};

fn load_encoder(model_dir: &std::path::Path) -> (DeepEncoder, Device) {
    let device = DeviceSpec::Cpu.device().unwrap();
    let cfg_path = model_dir.join("config.json");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg_path).unwrap()).unwrap();
    let config = VisionConfig::from_json(&json, &cfg_path.display().to_string()).unwrap();
    let weights = Weights::new(Checkpoint::open_dir(model_dir).unwrap(), &device, FloatType::F32).unwrap();
    let encoder = DeepEncoder::load(&weights, &config).unwrap();
    weights
        .check_all_used(&[
            "model.sam_model.",
            "model.vision_model.",
            "model.qwen2_model.",
            "model.projector.",
            "model.image_newline",
            "model.view_seperator",
        ])
        .unwrap();
    (encoder, device)
}

fn pixels(u8s: &[u8], shape: [usize; 4], device: &Device) -> Tensor<4> {
    let data: Vec<f32> = u8s.iter().map(|&v| normalize_pixel(v)).collect();
    Tensor::from_data(TensorData::new(data, shape), (device, DType::F32))
}

fn values<const D: usize>(t: Tensor<D>) -> (Vec<usize>, Vec<f32>) {
    let dims = t.dims().to_vec();
    (dims, t.cast(DType::F32).try_into_vec_as::<f32>().unwrap())
}

fn check<const D: usize>(case: &Case, name: &str, t: Tensor<D>) {
    let expected = case.f32(name);
    let (shape, got) = values(t);
    assert_eq!(shape, expected.shape, "{}: {name} shape", case.name);
    let (err, allowed) = tolerance_check(&got, &expected.data);
    eprintln!("{}: {name} max abs err {err:.3e} (allowed {allowed:.3e})", case.name);
    assert!(err <= allowed, "{}: {name} max abs error {err:e} > {allowed:e}", case.name);
}

fn shape4(s: &[usize]) -> [usize; 4] {
    [s[0], s[1], s[2], s[3]]
}

#[test]
fn encoder_matches_official_code_from_reference_pixels() {
    for fixtures in parity_all("encoder_matches_official_code_from_reference_pixels") {
        let (encoder, device) = load_encoder(&fixtures.model_dir());
        check_views(&fixtures, &encoder, &device);
    }
}

/// DeepSeek-OCR 2's Qwen2 encoder keeps only its query half; the recording also holds the whole
/// final state of the global view, whose image half checks the bidirectional part of the mask,
/// RoPE and the grouped heads on their own (parity-ocr2/README.md).
#[test]
fn ocr2_encoder_image_and_query_halves_match_official_code() {
    let Some(fixtures) = parity_ocr2("ocr2_encoder_image_and_query_halves_match_official_code") else { return };
    let (encoder, device) = load_encoder(&fixtures.model_dir());
    let Stage2::Qwen2(qwen2) = &encoder.stage2 else { panic!("parity-ocr2 is a DeepSeek-OCR 2 checkpoint") };
    for case in fixtures.cases() {
        let g = case.u8("pixel_global_u8");
        let sam = encoder.sam.forward(pixels(&g.data, shape4(&g.shape), &device));
        check(&case, "qwen2_hidden_global", qwen2.forward_hidden(sam));
    }
}

/// The bias folded into the dot product (the GPU's path: attention without a bias) matches the
/// recordings as the materialised bias does.
#[test]
fn folded_relative_positions_match_official_code() {
    let Some(fixtures) = parity("folded_relative_positions_match_official_code") else { return };
    let (mut encoder, device) = load_encoder(&fixtures.model_dir());
    encoder.sam.rel_pos_attention = RelPosAttention::Folded;
    check_views(&fixtures, &encoder, &device);
}

fn check_views(fixtures: &dsocr_testdata::Parity, encoder: &DeepEncoder, device: &Device) {
    let device = device.clone();
    let stage2 = match encoder.stage2 {
        Stage2::Clip(_) => "clip",
        Stage2::Qwen2(_) => "qwen2",
    };
    for case in fixtures.cases() {
        let g = case.u8("pixel_global_u8");
        let global = encoder.encode_views(pixels(&g.data, shape4(&g.shape), &device));
        check(&case, "sam_global", global.sam.clone());
        check(&case, &format!("{stage2}_global"), global.stage2.clone());
        check(&case, "proj_global", global.projected.clone());
        let grid = case.i64("spatial_crop").data;
        let tiles = if case.has("pixel_crops_u8") && (grid[0] > 1 || grid[1] > 1) {
            let c = case.u8("pixel_crops_u8");
            let local = encoder.encode_views(pixels(&c.data, shape4(&c.shape), &device));
            check(&case, "sam_crops", local.sam.clone());
            check(&case, &format!("{stage2}_crops"), local.stage2.clone());
            check(&case, "proj_crops", local.projected.clone());
            Some((local.projected, Tiling { cols: grid[0] as usize, rows: grid[1] as usize }))
        } else {
            None
        };
        check(&case, "vision_embeds", encoder.arrange(global.projected, tiles));
    }
}

#[test]
fn encoder_matches_official_code_end_to_end_from_png() {
    for fixtures in parity_all("encoder_matches_official_code_end_to_end_from_png") {
        let (encoder, device) = load_encoder(&fixtures.model_dir());
        end_to_end(&fixtures, &encoder, &device);
    }
}

fn end_to_end(fixtures: &dsocr_testdata::Parity, encoder: &DeepEncoder, device: &Device) {
    let device = device.clone();
    for case in fixtures.cases() {
        let (base, image, crop) = case.mode();
        let mode = ModeSpec::custom_for(encoder.architecture(), base, image, crop).unwrap();
        let image = dsocr_preprocess::load_image(case.input_image(), &LoadOptions::default()).unwrap();
        let prepared = prepare_image(&image, &mode).unwrap();
        let global = pixels(&prepared.global.data, prepared.global.shape(), &device);
        let tiles = prepared
            .tiles
            .as_ref()
            .map(|t| (pixels(&t.data, t.shape(), &device), Tiling { cols: prepared.grid.cols, rows: prepared.grid.rows }));
        let embeds = encoder.encode_image(global, tiles);
        assert_eq!(embeds.dims()[0], prepared.image_token_count(), "{}: sequence length", case.name);
        check(&case, "vision_embeds", embeds);
    }
}

#[test]
fn large_mode_encodes_to_421_finite_tokens() {
    // No recording covers Large (1280); its interpolation is checked against PyTorch in
    // tests/interpolation.rs. Here the whole path runs: 80×80 SAM grid, 159-row rel-pos tables,
    // 20×20 CLIP grid.
    let Some(fixtures) = parity("large_mode_encodes_to_421_finite_tokens") else { return };
    let (encoder, device) = load_encoder(&fixtures.model_dir());
    let image = dsocr_preprocess::load_image(fixtures.cases()[0].input_image(), &LoadOptions::default()).unwrap();
    let prepared = prepare_image(&image, &dsocr_preprocess::Mode::Large.spec()).unwrap();
    assert_eq!(prepared.global.shape(), [1, 3, 1280, 1280]);
    let embeds = encoder.encode_image(pixels(&prepared.global.data, prepared.global.shape(), &device), None);
    assert_eq!(embeds.dims()[0], 421);
    let (_, v) = values(embeds);
    assert!(v.iter().all(|x| x.is_finite()));
}
