//! Vision encoding of many pages at once (docs/engine.md, "Vision batches").
//!
//! A page is one global view and, when tiled, up to nine tiles (six crops for DeepSeek-OCR 2):
//! encoded alone, the encoders run on batches of one to nine views and the GPU waits on kernel
//! launches. The engine instead encodes every page it admits in a step together: the views of all
//! those pages are grouped by side (views of one side share every shape), cut into batches whose
//! estimated peak memory stays within [`crate::EngineOptions::vision_batch_bytes`], run through SAM,
//! the second stage (CLIP or the Qwen2 encoder) and the projector, and the projected tokens are
//! handed back to each page in order, arranged into its image sequence.
//!
//! The encoders treat every view of a batch independently, so a page's embeddings do not depend
//! on which pages it was batched with (up to the float rounding of differently sized GEMMs).

use std::collections::BTreeMap;

use dsocr_core::burn::prelude::*;
use dsocr_core::burn::tensor::DType;
use dsocr_lm::DeepseekLm;
use dsocr_preprocess::ViewBatch;
use dsocr_vision::{DeepEncoder, RelPosAttention, Tiling};

use crate::EngineError;
use crate::page::PreparedPage;
use crate::pipeline::pixel_tensor;

/// The vision batch on the CPU and on a GPU with the largest activation reserve (16 GiB, of which
/// it is 3/8: [`crate::MemoryPlan`]). For the release encoder in bf16: three 1024-pixel global
/// views or fifteen 640-pixel tiles with the bias materialised, 32 or 81 with it folded or added
/// inside dsocr's fused attention kernel (a CUDA device).
pub const DEFAULT_VISION_BATCH_BYTES: u64 = 6 << 30;

/// Estimated peak activation bytes of one view of side `side` through `encoder`, in elements of
/// `elem_bytes`.
///
/// With the relative-position bias materialised ([`RelPosAttention::Materialized`]), SAM's
/// global-attention blocks dominate: for `n = (side / patch)²` tokens they hold the bias, the
/// scores and their softmax, each `heads × n²`, and the fused kernels one more such buffer; the
/// rest (the `n × 4·width` MLP activations, CLIP on `n / 16` tokens) is covered by
/// `64 × n × width`. With the bias folded ([`RelPosAttention::Folded`], flash attention), or when
/// `fused_attention` (dsocr's encoder-attention kernel runs: [`dsocr_kernels::encoder_attention_fused`])
/// nothing is `n²`: a block's activations (input, norm, qkv, the extended queries and keys or the
/// bias tables, MLP) add up to about 25 values per token and channel, counted as `32 × n × width`.
pub fn view_activation_bytes(encoder: &DeepEncoder, side: usize, elem_bytes: usize, fused_attention: bool) -> u64 {
    let config = encoder.config();
    let n = (side / config.sam.patch_size).pow(2) as u64;
    let width = config.sam.width as u64;
    let elements = match encoder.sam.rel_pos_attention {
        RelPosAttention::Materialized if !fused_attention => 4 * config.sam.heads as u64 * n * n + 64 * n * width,
        RelPosAttention::Materialized | RelPosAttention::Folded => 32 * n * width,
    };
    elements * elem_bytes as u64
}

/// Where a page's views sit in the batched outputs: `(side, first view)` of its global view and
/// of its tiles.
struct Placement {
    global: (usize, usize),
    tiles: Option<(usize, usize, Tiling)>,
}

/// The decoder inputs `[T, H]` of `pages`, one result per page in order: every view of every page
/// through the encoder in batches of at most `max_bytes` (estimated by [`view_activation_bytes`];
/// at least one view a batch), each page's tokens then placed at its prompt's image positions. A
/// page prepared for the other architecture (its views would not fit this encoder) is that page's
/// error.
pub fn encode_pages(
    encoder: &DeepEncoder,
    lm: &DeepseekLm,
    pages: &[&PreparedPage],
    max_bytes: u64,
) -> Vec<Result<Tensor<2>, EngineError>> {
    encode_images(encoder, &lm.device(), lm.dtype(), pages, max_bytes)
        .into_iter()
        .zip(pages)
        .map(|(rows, page)| Ok(lm.embed_prompt(&page.prompt.input_ids, &page.prompt.images_seq_mask, Some(rows?))?))
        .collect()
}

/// The image rows `[N, H]` of `pages` (the projected tokens of each page's views, arranged as its
/// prompt's image positions take them), one result per page in order: [`encode_pages`] without
/// the decoder's embedding of the prompt, so that it needs only the encoder (the engine's vision
/// thread runs it).
pub fn encode_images<'a>(
    encoder: &DeepEncoder,
    device: &Device,
    dtype: DType,
    pages: &[&'a PreparedPage],
    max_bytes: u64,
) -> Vec<Result<Tensor<2>, EngineError>> {
    // Views grouped by side, in page order: per side, the view batches and their views so far.
    let mut groups: BTreeMap<usize, (usize, Vec<&ViewBatch>)> = BTreeMap::new();
    let mut place = |views: &'a ViewBatch| -> (usize, usize) {
        let (count, batches) = groups.entry(views.size).or_default();
        let first = *count;
        *count += views.count;
        batches.push(views);
        (views.size, first)
    };
    let arch = encoder.architecture();
    let placements: Vec<Result<Placement, EngineError>> = pages
        .iter()
        .map(|page| {
            let image = &page.image;
            if image.mode.arch != arch {
                return Err(EngineError::wrong_architecture(image.mode.arch, arch));
            }
            let global = place(&image.global);
            let tiles = image.tiles.as_ref().map(|t| {
                let (side, first) = place(t);
                (side, first, Tiling { cols: image.grid.cols, rows: image.grid.rows })
            });
            Ok(Placement { global, tiles })
        })
        .collect();

    let elem = dtype.size();
    let head_dim = encoder.config().sam.width / encoder.config().sam.heads;
    let fused = dsocr_kernels::encoder_attention_fused(device, dtype, head_dim);
    let projected: BTreeMap<usize, Tensor<3>> = groups
        .into_iter()
        .map(|(side, (_, batches))| {
            let per_view = view_activation_bytes(encoder, side, elem, fused).max(1);
            let max_views = ((max_bytes / per_view) as usize).max(1);
            let outputs: Vec<Tensor<3>> =
                view_chunks(&batches, max_views).map(|chunk| encoder.encode_views(pixel_tensor(&chunk, device, dtype)).projected).collect();
            (side, Tensor::cat(outputs, 0))
        })
        .collect();

    placements
        .into_iter()
        .map(|p| {
            let p = p?;
            let (side, first) = p.global;
            let global = projected[&side].clone().narrow(0, first, 1);
            let tiles = p.tiles.map(|(side, first, grid)| (projected[&side].clone().narrow(0, first, grid.cols * grid.rows), grid));
            Ok(encoder.arrange(global, tiles))
        })
        .collect()
}

/// The views of `batches` (all of one side), in order, regrouped into batches of at most
/// `max_views` views.
fn view_chunks<'a>(batches: &'a [&'a ViewBatch], max_views: usize) -> impl Iterator<Item = ViewBatch> + 'a {
    let size = batches.first().map_or(0, |b| b.size);
    let view_bytes = 3 * size * size;
    let mut views = batches.iter().flat_map(move |b| b.data.chunks_exact(view_bytes));
    std::iter::from_fn(move || {
        let mut data = Vec::new();
        let mut count = 0;
        for view in views.by_ref() {
            data.extend_from_slice(view);
            count += 1;
            if count == max_views {
                break;
            }
        }
        (count > 0).then_some(ViewBatch { count, size, data })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(count: usize, size: usize, first: u8) -> ViewBatch {
        let data = (0..count).flat_map(|v| std::iter::repeat_n(first + v as u8, 3 * size * size)).collect();
        ViewBatch { count, size, data }
    }

    #[test]
    fn views_are_regrouped_in_order_within_the_limit() {
        let (a, b) = (batch(1, 2, 10), batch(6, 2, 20));
        let chunks: Vec<ViewBatch> = view_chunks(&[&a, &b], 3).collect();
        assert_eq!(chunks.iter().map(|c| c.count).collect::<Vec<_>>(), vec![3, 3, 1]);
        let firsts: Vec<u8> = chunks.iter().flat_map(|c| c.data.chunks_exact(12).map(|v| v[0])).collect();
        assert_eq!(firsts, vec![10, 20, 21, 22, 23, 24, 25]);
        assert!(chunks.iter().all(|c| c.data.len() == c.count * 12 && c.size == 2));
    }

    #[test]
    fn the_release_budget_in_views() {
        let device = dsocr_core::DeviceSpec::Cpu.device().unwrap();
        let probe = dsocr_core::Weights::shape_probe(&device);
        let mut encoder = DeepEncoder::load(&probe, &dsocr_vision::VisionConfig::default()).unwrap();
        let views = |encoder: &DeepEncoder, side, fused| DEFAULT_VISION_BATCH_BYTES / view_activation_bytes(encoder, side, 2, fused);
        assert_eq!((views(&encoder, 1024, false), views(&encoder, 640, false)), (3, 15));
        // dsocr's fused attention kernel (a CUDA device in bf16) stores nothing n × n either.
        assert_eq!((views(&encoder, 1024, true), views(&encoder, 640, true)), (32, 81));
        encoder.sam.rel_pos_attention = RelPosAttention::Folded;
        assert_eq!((views(&encoder, 1024, false), views(&encoder, 640, false)), (32, 81));
    }
}
