//! Checking a build against a recorded run of the official code of DeepSeek-OCR or DeepSeek-OCR 2
//! (the `shared/parity` and `shared/parity-ocr2` format:
//! `input.png`, `case.json`, `expected.safetensors`): every stage from the reference pixels and
//! end to end from the image, with the fixtures' tolerance in f32 and relative errors reported
//! for bf16/f16.

use std::path::Path;

use dsocr_core::FloatType;
use dsocr_core::burn::prelude::*;
use dsocr_core::burn::tensor::DType;
use dsocr_engine::{EngineOptions, GenerationConfig, OcrOptions, PreparedPage, RepetitionGuard, Request, Task, pixel_tensor};
use dsocr_preprocess::{LoadOptions, ModeSpec, ViewBatch, build_prompt, load_image, prepare_image};
use dsocr_vision::{Stage2, Tiling};
use serde::Serialize;

use crate::{DeepseekOcr, Event, OcrError};

/// Relative error allowed in bf16/f16 on the vision output and the logits.
pub const HALF_RELATIVE_TOLERANCE: f32 = 3e-2;

/// One compared tensor.
#[derive(Debug, Clone, Serialize)]
pub struct StageReport {
    /// Tensor name in the recording.
    pub name: String,
    /// max |ours − reference|.
    pub max_abs_err: f32,
    /// max |ours − reference| / max |reference|.
    pub rel_err: f32,
    /// The bound this stage is held to, if any (absolute in f32, relative in bf16/f16).
    pub bound: Option<f32>,
    /// Within the bound (true when there is none).
    pub pass: bool,
}

/// Result of one case.
#[derive(Debug, Clone, Serialize)]
pub struct ParityReport {
    /// Case name.
    pub case: String,
    /// The float type run.
    pub dtype: String,
    /// Exact checks (views, ids) that failed.
    pub exact_failures: Vec<String>,
    /// Float stages.
    pub stages: Vec<StageReport>,
    /// Greedy tokens equal to the reference, counted from the start.
    pub tokens_matched: usize,
    /// Tokens the reference guarantees (`safe_steps`).
    pub safe_steps: usize,
    /// Everything within bounds (in bf16/f16 the token count is reported, not required).
    pub pass: bool,
}

struct Recording {
    bytes: Vec<u8>,
}

impl Recording {
    fn view(&self, name: &str) -> Option<safetensors::tensor::TensorView<'_>> {
        safetensors::SafeTensors::deserialize(&self.bytes).ok()?.tensor(name).ok()
    }
    fn f32(&self, name: &str) -> Option<(Vec<usize>, Vec<f32>)> {
        let v = self.view(name)?;
        Some((v.shape().to_vec(), v.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()))
    }
    fn i64(&self, name: &str) -> Option<Vec<i64>> {
        Some(self.view(name)?.data().chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect())
    }
    fn u8(&self, name: &str) -> Option<(Vec<usize>, Vec<u8>)> {
        let v = self.view(name)?;
        Some((v.shape().to_vec(), v.data().to_vec()))
    }
}

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.cast(DType::F32).try_into_vec_as::<f32>().unwrap_or_default()
}

/// Run one recorded case.
pub fn run_case(ocr: &DeepseekOcr, case_dir: &Path) -> Result<ParityReport, OcrError> {
    let read =
        |f: &str| std::fs::read(case_dir.join(f)).map_err(|e| OcrError::Input(format!("cannot read {}: {e}", case_dir.join(f).display())));
    let json: serde_json::Value = serde_json::from_slice(&read("case.json")?).map_err(|e| OcrError::Input(format!("case.json: {e}")))?;
    let rec = Recording { bytes: read("expected.safetensors")? };
    let bad = |what: &str| OcrError::Input(format!("{}: case.json or expected.safetensors lacks {what}", case_dir.display()));
    let mode_json = &json["mode"];
    let num = |v: &serde_json::Value, k: &str| v[k].as_u64().map(|n| n as usize).ok_or_else(|| bad(k));
    let mode = ModeSpec::custom_for(
        ocr.architecture(),
        num(mode_json, "base_size")?,
        num(mode_json, "image_size")?,
        mode_json["crop_mode"].as_bool().ok_or_else(|| bad("crop_mode"))?,
    )?;
    let f32_run = ocr.float() == FloatType::F32;
    let mut report = ParityReport {
        case: case_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        dtype: ocr.float().to_string(),
        exact_failures: Vec::new(),
        stages: Vec::new(),
        tokens_matched: 0,
        safe_steps: num(&json, "safe_steps")?,
        pass: true,
    };
    let mut stages: Vec<StageReport> = Vec::new();
    let mut stage = |name: &str, ours: Vec<f32>, always_bound: bool| {
        if let Some(r) = compare(&rec, name, &ours, always_bound, f32_run) {
            stages.push(r);
        }
    };

    // Preprocessing: exact.
    let image = load_image(case_dir.join(json["image"].as_str().unwrap_or("input.png")), &LoadOptions::default())?;
    let prepared = prepare_image(&image, &mode)?;
    let mut exact = Vec::new();
    if rec.u8("pixel_global_u8").map(|(_, d)| d) != Some(prepared.global.data.clone()) {
        exact.push("pixel_global_u8".to_string());
    }
    if let (Some(t), Some((_, d))) = (&prepared.tiles, rec.u8("pixel_crops_u8"))
        && t.data != d
    {
        exact.push("pixel_crops_u8".to_string());
    }
    let prompt = json["prompt"].as_str().ok_or_else(|| bad("prompt"))?;
    let ids = build_prompt(ocr.tokenizer(), prompt, &[prepared.image_token_count()])?;
    let ref_ids: Vec<u32> = rec.i64("input_ids").ok_or_else(|| bad("input_ids"))?.into_iter().map(|v| v as u32).collect();
    if ids.input_ids != ref_ids {
        exact.push("input_ids".to_string());
    }

    // Encoders from the reference pixels.
    let to_views = |name: &str| rec.u8(name).map(|(s, d)| ViewBatch { count: s[0], size: s[2], data: d });
    let pixels = |v: &ViewBatch| pixel_tensor(v, ocr.device(), ocr.float().dtype());
    let global_views = to_views("pixel_global_u8").ok_or_else(|| bad("pixel_global_u8"))?;
    let g = ocr.encoder().encode_views(pixels(&global_views));
    let stage2 = match &ocr.encoder().stage2 {
        Stage2::Clip(_) => "clip",
        Stage2::Qwen2(qwen2) => {
            // The whole final state, both halves of the mask (parity-ocr2/README.md).
            stage("qwen2_hidden_global", host(qwen2.forward_hidden(g.sam.clone())), false);
            "qwen2"
        }
    };
    stage("sam_global", host(g.sam.clone()), false);
    stage(&format!("{stage2}_global"), host(g.stage2.clone()), false);
    stage("proj_global", host(g.projected.clone()), false);
    let grid = rec.i64("spatial_crop").ok_or_else(|| bad("spatial_crop"))?;
    let tiles = match to_views("pixel_crops_u8") {
        Some(v) if grid[0] > 1 || grid[1] > 1 => {
            let t = ocr.encoder().encode_views(pixels(&v));
            stage("sam_crops", host(t.sam.clone()), false);
            stage(&format!("{stage2}_crops"), host(t.stage2.clone()), false);
            stage("proj_crops", host(t.projected.clone()), false);
            Some((t.projected, Tiling { cols: grid[0] as usize, rows: grid[1] as usize }))
        }
        _ => None,
    };
    let rows = ocr.encoder().arrange(g.projected, tiles);
    stage("vision_embeds", host(rows.clone()), true);

    // Decoder from the reference image rows.
    let (ref_rows_shape, ref_rows) = rec.f32("vision_embeds").ok_or_else(|| bad("vision_embeds"))?;
    let ref_rows = Tensor::<2>::from_data(TensorData::new(ref_rows, [ref_rows_shape[0], ref_rows_shape[1]]), (ocr.device(), DType::F32));
    let mask: Vec<bool> = rec.u8("images_seq_mask").ok_or_else(|| bad("images_seq_mask"))?.1.iter().map(|&m| m != 0).collect();
    let embeds = ocr.lm().embed_prompt(&ref_ids, &mask, Some(ref_rows))?;
    stage("inputs_embeds", host(embeds.clone()), false);
    let (mut pool, blocks) = ocr.lm().new_single_pool(ref_ids.len() + 1);
    let logits = ocr.lm().prefill(embeds.clone(), &blocks, 0, &mut pool)?;
    stage("prefill_logits_last", host(logits), true);
    drop(pool);
    // Greedy tokens through the engine, from the recorded pixels' prompt (the same page as above).
    let n = num(&json, "no_repeat_ngram_size")?;
    let generation = GenerationConfig {
        max_new_tokens: num(&json, "max_new_tokens")?,
        repetition: RepetitionGuard::NoRepeatNgram { n },
        ..Default::default()
    };
    let options = OcrOptions { task: Task::Custom(prompt.to_string()), mode, generation };
    let page = PreparedPage {
        image: prepared.clone(),
        prompt: ids.clone(),
        image_size: (image.width as u32, image.height as u32),
        preprocess: Default::default(),
    };
    // The kernels the caller configured (`dsocr parity --rel-pos-kernel`), not the defaults.
    let mut engine = ocr.engine(&EngineOptions {
        max_seqs: Some(1),
        kernels: dsocr_kernels::settings(),
        ..EngineOptions::for_pages(&mode, options.generation.max_new_tokens)
    })?;
    let mut finished = None;
    let mut on_event = |e: Event| {
        if let Event::Finished { result, .. } = e {
            finished = Some(*result);
        }
    };
    engine.submit(Request { tag: 0, page: Ok(page), options, stream: false }, &mut on_event);
    while !engine.is_idle() {
        engine.step(&mut on_event)?;
    }
    let out = finished.ok_or_else(|| OcrError::Input("the engine returned no result".into()))??;
    let mut ours = out.tokens.clone();
    if out.stopped_on_eos {
        ours.push(ocr.lm().config().eos_token_id);
    }
    let reference = rec.i64("generated_ids").ok_or_else(|| bad("generated_ids"))?;
    report.tokens_matched = ours.iter().zip(&reference).take_while(|(a, b)| i64::from(**a) == **b).count();
    if f32_run && report.tokens_matched < report.safe_steps.min(reference.len()) {
        report.pass = false;
    }

    // End to end from the image.
    let rows_e2e = {
        let tiles = prepared.tiles.as_ref().map(|t| (pixels(t), Tiling { cols: prepared.grid.cols, rows: prepared.grid.rows }));
        host(ocr.encoder().encode_image(pixels(&prepared.global), tiles))
    };
    if let Some(mut s) = compare(&rec, "vision_embeds", &rows_e2e, true, f32_run) {
        s.name = "vision_embeds (end to end from input.png)".into();
        stages.push(s);
    }
    report.pass &= exact.is_empty() && stages.iter().all(|s| s.pass);
    report.exact_failures = exact;
    report.stages = stages;
    Ok(report)
}

/// Compare `ours` with recorded tensor `name`: the fixtures' absolute bound in f32, the relative
/// bound in bf16/f16 where `half_bound` (else reported only).
fn compare(rec: &Recording, name: &str, ours: &[f32], half_bound: bool, f32_run: bool) -> Option<StageReport> {
    let (_, reference) = rec.f32(name)?;
    let max_ref = reference.iter().fold(0f32, |m, v| m.max(v.abs()));
    let max_abs_err = if ours.len() != reference.len() {
        f32::INFINITY
    } else {
        ours.iter().zip(&reference).fold(0f32, |m, (a, b)| if a.is_finite() { m.max((a - b).abs()) } else { f32::INFINITY })
    };
    let rel_err = max_abs_err / max_ref.max(f32::MIN_POSITIVE);
    let bound = if f32_run {
        Some(1e-3 * max_ref.max(1.0))
    } else if half_bound {
        Some(HALF_RELATIVE_TOLERANCE)
    } else {
        None
    };
    let pass = match bound {
        Some(b) if f32_run => max_abs_err <= b,
        Some(b) => rel_err <= b,
        None => true,
    };
    Some(StageReport { name: name.into(), max_abs_err, rel_err, bound, pass })
}
