//! The DeepEncoder: SAM → second stage (CLIP, or DeepSeek-OCR 2's Qwen2 encoder) → linear
//! projector (docs/model.md §4.3-4.4, docs/model-ocr2.md §5), and the arrangement of the projected tokens into the
//! image sequence the decoder reads (docs/model.md §4.5, docs/model-ocr2.md §6).

use burn::prelude::*;

use dsocr_core::layers::Linear;
use dsocr_core::{CoreError, StreamCopy, Weights};
use dsocr_kernels::linear_layer;
use dsocr_preprocess::Architecture;

use crate::clip::ClipEncoder;
use crate::config::{Stage2Config, VisionConfig};
use crate::qwen2::Qwen2Encoder;
use crate::sam::SamEncoder;

/// What one batch of views produces at each stage (kept for parity checks and benchmarks).
#[derive(Debug, Clone)]
pub struct ViewFeatures {
    /// SAM output `[B, C_sam, g, g]`.
    pub sam: Tensor<4>,
    /// The second stage's output: CLIP's `[B, 1 + g², C]` (class token first) in DeepSeek-OCR, the
    /// Qwen2 encoder's query outputs `[B, g², C]` in DeepSeek-OCR 2.
    pub stage2: Tensor<3>,
    /// Projected tokens `[B, g², H]`.
    pub projected: Tensor<3>,
}

/// The encoder after SAM.
#[derive(Debug, Clone)]
pub enum Stage2 {
    /// DeepSeek-OCR's CLIP-L.
    Clip(ClipEncoder),
    /// DeepSeek-OCR 2's Qwen2 encoder.
    Qwen2(Qwen2Encoder),
}

/// The vision encoder of DeepSeek-OCR or DeepSeek-OCR 2 (by its [`VisionConfig`]).
#[derive(Debug, Clone)]
pub struct DeepEncoder {
    /// SAM ViT-B.
    pub sam: SamEncoder,
    /// CLIP-L or the Qwen2 encoder.
    pub stage2: Stage2,
    projector: Linear,
    /// DeepSeek-OCR only: ends every row of image tokens.
    image_newline: Option<Tensor<1>>,
    view_separator: Tensor<1>,
    config: VisionConfig,
}

/// Token grid of a tiled image: tiles across and down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tiling {
    /// Tiles across the width.
    pub cols: usize,
    /// Tiles down the height.
    pub rows: usize,
}

impl DeepEncoder {
    /// Load from the release names under `model.` (`w` is the checkpoint root): SAM from
    /// `sam_model`, CLIP from `vision_model` or the Qwen2 encoder from `qwen2_model`.
    pub fn load(w: &Weights, config: &VisionConfig) -> Result<Self, CoreError> {
        let m = w.pp("model");
        let h = config.n_embed;
        let (stage2, image_newline) = match &config.stage2 {
            Stage2Config::Clip(c) => (Stage2::Clip(ClipEncoder::load(&m.pp("vision_model"), c)?), Some(m.tensor("image_newline", [h])?)),
            Stage2Config::Qwen2(q) => (Stage2::Qwen2(Qwen2Encoder::load(&m.pp("qwen2_model"), q)?), None),
        };
        Ok(DeepEncoder {
            sam: SamEncoder::load(&m.pp("sam_model"), &config.sam)?,
            stage2,
            projector: Linear::load(&m.pp("projector.layers"), config.projector_input, h, true)?,
            image_newline,
            view_separator: m.tensor("view_seperator", [h])?,
            config: config.clone(),
        })
    }

    /// The sizes this encoder was built with.
    pub fn config(&self) -> &VisionConfig {
        &self.config
    }

    /// The checkpoint architecture this encoder belongs to.
    pub fn architecture(&self) -> Architecture {
        self.config.architecture()
    }

    /// Encode a batch of square views `[B, 3, S, S]` (normalised pixels) through every stage.
    pub fn encode_views(&self, pixels: Tensor<4>) -> ViewFeatures {
        let sam = self.sam.forward(pixels);
        let stage2 = self.encode_stage2(sam.clone());
        let projected = self.project(&sam, &stage2);
        ViewFeatures { sam, stage2, projected }
    }

    /// The second stage over SAM's features `[B, C, g, g]` (see [`ViewFeatures::stage2`]).
    pub fn encode_stage2(&self, sam: Tensor<4>) -> Tensor<3> {
        match &self.stage2 {
            Stage2::Clip(clip) => clip.forward(sam),
            Stage2::Qwen2(qwen2) => qwen2.forward(sam),
        }
    }

    /// Project to the decoder width: `[B, g², H]`. DeepSeek-OCR fuses CLIP (class token dropped)
    /// and SAM features per token, CLIP channels first; DeepSeek-OCR 2 projects the Qwen2 encoder's
    /// outputs alone.
    pub fn project(&self, sam: &Tensor<4>, stage2: &Tensor<3>) -> Tensor<3> {
        match self.stage2 {
            Stage2::Clip(_) => {
                let [b, c_sam, g, _] = sam.dims();
                let tokens = stage2.dims()[1];
                let clip_patches = stage2.clone().narrow(1, 1, tokens - 1);
                let sam_flat = sam.clone().reshape([b, c_sam, g * g]).swap_dims(1, 2);
                linear_layer(&self.projector, Tensor::cat(vec![clip_patches, sam_flat], 2))
            }
            Stage2::Qwen2(_) => linear_layer(&self.projector, stage2.clone()),
        }
    }

    /// A `[rows, cols, H]` token grid flattened row-major, each row followed by the newline vector
    /// where the architecture has one.
    fn rows_of(&self, grid: Tensor<3>) -> Tensor<2> {
        let [rows, cols, h] = grid.dims();
        match &self.image_newline {
            Some(newline) => {
                let newline = newline.clone().reshape([1, 1, h]).expand([rows, 1, h]);
                Tensor::cat(vec![grid, newline], 1).reshape([rows * (cols + 1), h])
            }
            None => grid.reshape([rows * cols, h]),
        }
    }

    /// Arrange projected tokens into the image sequence. `global` is `[1, n², H]`; `tiles` is
    /// `[P, m², H]` with P = cols·rows in row-major order. DeepSeek-OCR: `[stitched tile grid +
    /// newlines] ++ [global grid + newlines] ++ [view separator]`; DeepSeek-OCR 2: every crop's
    /// tokens one crop after another, then the global view's, then the separator.
    pub fn arrange(&self, global: Tensor<3>, tiles: Option<(Tensor<3>, Tiling)>) -> Tensor<2> {
        let [_, n2, h] = global.dims();
        let n = (n2 as f64).sqrt() as usize;
        let mut parts = Vec::with_capacity(3);
        if let Some((tiles, Tiling { cols, rows })) = tiles {
            let m = ((tiles.dims()[1]) as f64).sqrt() as usize;
            let grid = match self.stage2 {
                Stage2::Clip(_) => tiles.reshape([rows, cols, m, m, h]).permute([0, 2, 1, 3, 4]).reshape([rows * m, cols * m, h]),
                Stage2::Qwen2(_) => tiles.reshape([rows * cols, m * m, h]),
            };
            parts.push(self.rows_of(grid));
        }
        parts.push(self.rows_of(global.reshape([n, n, h])));
        parts.push(self.view_separator.clone().reshape([1, h]));
        Tensor::cat(parts, 0)
    }

    /// Encode one image: its global view `[1, 3, S, S]` and, when tiled, its tiles `[P, 3, T, T]`
    /// with their grid. Returns the image sequence `[N, H]` for the decoder.
    pub fn encode_image(&self, global: Tensor<4>, tiles: Option<(Tensor<4>, Tiling)>) -> Tensor<2> {
        let local = tiles.map(|(px, grid)| (self.encode_views(px).projected, grid));
        let global = self.encode_views(global).projected;
        self.arrange(global, local)
    }
}

impl StreamCopy for Stage2 {
    fn stream_copy(&self) -> Self {
        match self {
            Stage2::Clip(clip) => Stage2::Clip(clip.stream_copy()),
            Stage2::Qwen2(qwen2) => Stage2::Qwen2(qwen2.stream_copy()),
        }
    }
}

/// A copy of the encoder's weights on the calling thread's stream, for a thread that encodes
/// beside the decoder ([`StreamCopy`]'s docs say why).
impl StreamCopy for DeepEncoder {
    fn stream_copy(&self) -> Self {
        DeepEncoder {
            sam: self.sam.stream_copy(),
            stage2: self.stage2.stream_copy(),
            projector: self.projector.stream_copy(),
            image_newline: self.image_newline.stream_copy(),
            view_separator: self.view_separator.stream_copy(),
            config: self.config.clone(),
        }
    }
}
