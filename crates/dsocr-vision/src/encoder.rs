//! The DeepEncoder: SAM → CLIP → feature fusion → linear projector (docs/model.md §4.3-4.4),
//! and the 2-D arrangement of the projected tokens into the image sequence the decoder reads
//! (docs/model.md §4.5).

use burn::prelude::*;

use dsocr_core::layers::Linear;
use dsocr_core::{CoreError, Weights};

use crate::clip::ClipEncoder;
use crate::config::VisionConfig;
use crate::sam::SamEncoder;

/// What one batch of views produces at each stage (kept for parity checks and benchmarks).
#[derive(Debug, Clone)]
pub struct ViewFeatures {
    /// SAM output `[B, C_sam, g, g]`.
    pub sam: Tensor<4>,
    /// CLIP output `[B, 1 + g², C_clip]` (class token first).
    pub clip: Tensor<3>,
    /// Projected tokens `[B, g², H]`.
    pub projected: Tensor<3>,
}

/// The vision encoder of DeepSeek-OCR.
#[derive(Debug, Clone)]
pub struct DeepEncoder {
    /// SAM ViT-B.
    pub sam: SamEncoder,
    /// CLIP-L.
    pub clip: ClipEncoder,
    projector: Linear,
    image_newline: Tensor<1>,
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
    /// Load from the release names under `model.` (`w` is the checkpoint root).
    pub fn load(w: &Weights, config: &VisionConfig) -> Result<Self, CoreError> {
        let m = w.pp("model");
        let h = config.n_embed;
        Ok(DeepEncoder {
            sam: SamEncoder::load(&m.pp("sam_model"), &config.sam)?,
            clip: ClipEncoder::load(&m.pp("vision_model"), &config.clip)?,
            projector: Linear::load(&m.pp("projector.layers"), config.projector_input, h, true)?,
            image_newline: m.tensor("image_newline", [h])?,
            view_separator: m.tensor("view_seperator", [h])?,
            config: config.clone(),
        })
    }

    /// The sizes this encoder was built with.
    pub fn config(&self) -> &VisionConfig {
        &self.config
    }

    /// Encode a batch of square views `[B, 3, S, S]` (normalised pixels) through every stage.
    pub fn encode_views(&self, pixels: Tensor<4>) -> ViewFeatures {
        let sam = self.sam.forward(pixels);
        let clip = self.clip.forward(sam.clone());
        let projected = self.project(&sam, &clip);
        ViewFeatures { sam, clip, projected }
    }

    /// Fuse CLIP (class token dropped) and SAM features per token, CLIP channels first, and
    /// project them to the decoder width: `[B, g², H]`.
    pub fn project(&self, sam: &Tensor<4>, clip: &Tensor<3>) -> Tensor<3> {
        let [b, c_sam, g, _] = sam.dims();
        let tokens = clip.dims()[1];
        let clip_patches = clip.clone().narrow(1, 1, tokens - 1);
        let sam_flat = sam.clone().reshape([b, c_sam, g * g]).swap_dims(1, 2);
        self.projector.forward(Tensor::cat(vec![clip_patches, sam_flat], 2))
    }

    /// Append the newline vector to every row of a `[rows, cols, H]` token grid and flatten.
    fn with_newlines(&self, grid: Tensor<3>) -> Tensor<2> {
        let [rows, cols, h] = grid.dims();
        let newline = self.image_newline.clone().reshape([1, 1, h]).expand([rows, 1, h]);
        Tensor::cat(vec![grid, newline], 1).reshape([rows * (cols + 1), h])
    }

    /// Arrange projected tokens into the image sequence: `[stitched tiles + newlines] ++ [global
    /// grid + newlines] ++ [view separator]`. `global` is `[1, n², H]`; `tiles` is `[P, m², H]`
    /// with P = cols·rows in row-major order.
    pub fn arrange(&self, global: Tensor<3>, tiles: Option<(Tensor<3>, Tiling)>) -> Tensor<2> {
        let [_, n2, h] = global.dims();
        let n = (n2 as f64).sqrt() as usize;
        let mut parts = Vec::with_capacity(3);
        if let Some((tiles, Tiling { cols, rows })) = tiles {
            let m = ((tiles.dims()[1]) as f64).sqrt() as usize;
            let stitched = tiles.reshape([rows, cols, m, m, h]).permute([0, 2, 1, 3, 4]).reshape([rows * m, cols * m, h]);
            parts.push(self.with_newlines(stitched));
        }
        parts.push(self.with_newlines(global.reshape([n, n, h])));
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
