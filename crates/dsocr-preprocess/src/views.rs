//! From a decoded image to the encoder views: the global view (letterboxed or squashed) and the
//! local tiles, as 8-bit pixels and as normalised floats (docs/model.md §3.3-3.8).

use half::bf16;
use rayon::prelude::*;

use crate::mode::ModeSpec;
use crate::tiling::{TileGrid, select_grid};
use crate::tokens::image_token_count;
use crate::{PreprocessError, RgbImage, resize_bicubic};

/// Grey used to letterbox the global view: `int(0.5 * 255)`.
pub const PAD_GREY: u8 = 127;

/// A batch of square views, channel-first: `[count, 3, size, size]` bytes, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewBatch {
    /// Number of views.
    pub count: usize,
    /// Side of each (square) view in pixels.
    pub size: usize,
    /// `count · 3 · size · size` bytes in `[view][channel][y][x]` order.
    pub data: Vec<u8>,
}

impl ViewBatch {
    /// Tensor shape `[count, 3, size, size]`.
    pub fn shape(&self) -> [usize; 4] {
        [self.count, 3, self.size, self.size]
    }

    /// The encoder input: `bf16((x / 255 − 0.5) / 0.5)` widened to f32, same layout as `data`.
    ///
    /// The arithmetic is the reference's (ToTensor in f32, Normalize in f32, cast to bf16), so the
    /// values are exactly those the official encoders consume.
    pub fn normalized(&self) -> Vec<f32> {
        let table: Vec<f32> = (0..=255u8).map(normalize_pixel).collect();
        self.data.par_iter().with_min_len(1 << 16).map(|&v| table[v as usize]).collect()
    }

    fn from_hwc(images: &[RgbImage], size: usize) -> ViewBatch {
        let plane = size * size;
        let mut data = vec![0u8; images.len() * 3 * plane];
        // One task per view (a page has up to 7).
        data.par_chunks_mut(3 * plane).zip(images).for_each(|(out, img)| {
            debug_assert_eq!((img.width, img.height), (size, size));
            for (i, px) in img.data.chunks_exact(3).enumerate() {
                out[i] = px[0];
                out[plane + i] = px[1];
                out[2 * plane + i] = px[2];
            }
        });
        ViewBatch { count: images.len(), size, data }
    }
}

/// One pixel's encoder value, computed as the reference does (f32 arithmetic, then bf16).
pub fn normalize_pixel(v: u8) -> f32 {
    let x = f32::from(v) / 255.0;
    bf16::from_f32((x - 0.5) / 0.5).to_f32()
}

/// An image turned into encoder views.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedImage {
    /// Size of the decoded image, `(width, height)`; boxes in the output refer to it.
    pub original_size: (usize, usize),
    /// The mode used.
    pub mode: ModeSpec,
    /// The tile grid; [`TileGrid::SINGLE`] when the image is not cut.
    pub grid: TileGrid,
    /// The global view: one `[1, 3, S, S]` view.
    pub global: ViewBatch,
    /// The local tiles `[P, 3, T, T]` in row-major grid order; `None` when not tiled.
    pub tiles: Option<ViewBatch>,
}

impl PreparedImage {
    /// Number of `<image>` placeholder tokens this image expands to in the prompt.
    pub fn image_token_count(&self) -> usize {
        image_token_count(&self.mode, self.grid)
    }
}

/// Turn a decoded RGB image into encoder views for `mode`.
pub fn prepare_image(image: &RgbImage, mode: &ModeSpec) -> Result<PreparedImage, PreprocessError> {
    mode.validate()?;
    if image.width == 0 || image.height == 0 || image.data.len() != image.width * image.height * 3 {
        return Err(PreprocessError::BadImage {
            source_name: "<pixels>".into(),
            reason: format!("{}×{} image with {} bytes of RGB data", image.width, image.height, image.data.len()),
        });
    }
    let (w, h) = (image.width, image.height);
    let grid = if mode.crop { select_grid(w, h, mode.image_size, mode.min_tiles, mode.max_tiles) } else { TileGrid::SINGLE };
    let global_size = mode.global_size();
    let global = if mode.squashes() { resize_bicubic(image, global_size, global_size) } else { letterbox(image, global_size, PAD_GREY) };
    let tiles = grid.is_tiled().then(|| cut_tiles(image, grid, mode.image_size));
    Ok(PreparedImage {
        original_size: (w, h),
        mode: *mode,
        grid,
        global: ViewBatch::from_hwc(std::slice::from_ref(&global), global_size),
        tiles: tiles.map(|t| ViewBatch::from_hwc(&t, mode.image_size)),
    })
}

/// Python's `round()` on a float: half to even.
fn py_round(x: f64) -> usize {
    x.round_ties_even().max(0.0) as usize
}

/// Pillow's `ImageOps.pad(image, (size, size), BICUBIC, color)`: fit inside the square keeping the
/// aspect ratio (`ImageOps.contain`), then centre on a canvas of `grey`.
pub fn letterbox(image: &RgbImage, size: usize, grey: u8) -> RgbImage {
    let (w, h) = (image.width, image.height);
    if w == h {
        return resize_bicubic(image, size, size);
    }
    let (rw, rh) =
        if w > h { (size, py_round(h as f64 / w as f64 * size as f64)) } else { (py_round(w as f64 / h as f64 * size as f64), size) };
    let (rw, rh) = (rw.max(1), rh.max(1));
    let resized = resize_bicubic(image, rw, rh);
    if (rw, rh) == (size, size) {
        return resized;
    }
    let (x0, y0) = if rw != size { (py_round((size - rw) as f64 * 0.5), 0) } else { (0, py_round((size - rh) as f64 * 0.5)) };
    let mut canvas = RgbImage { width: size, height: size, data: vec![grey; size * size * 3] };
    for y in 0..rh {
        let src = &resized.data[y * rw * 3..(y + 1) * rw * 3];
        let dst = ((y0 + y) * size + x0) * 3;
        canvas.data[dst..dst + rw * 3].copy_from_slice(src);
    }
    canvas
}

/// `dynamic_preprocess`: resize to the grid's full size and cut row-major square tiles.
fn cut_tiles(image: &RgbImage, grid: TileGrid, tile: usize) -> Vec<RgbImage> {
    let resized = resize_bicubic(image, tile * grid.cols, tile * grid.rows);
    let stride = resized.width * 3;
    let mut tiles = Vec::with_capacity(grid.count());
    for t in 0..grid.count() {
        let (x0, y0) = ((t % grid.cols) * tile, (t / grid.cols) * tile);
        let mut data = Vec::with_capacity(tile * tile * 3);
        for y in y0..y0 + tile {
            data.extend_from_slice(&resized.data[y * stride + x0 * 3..y * stride + (x0 + tile) * 3]);
        }
        tiles.push(RgbImage { width: tile, height: tile, data });
    }
    tiles
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mode::Mode;

    fn solid(w: usize, h: usize, v: u8) -> RgbImage {
        RgbImage { width: w, height: h, data: vec![v; w * h * 3] }
    }

    #[test]
    fn normalisation_matches_reference_values() {
        assert_eq!(normalize_pixel(0), -1.0);
        assert_eq!(normalize_pixel(255), 1.0);
        // pad grey: (127/255 - 0.5)/0.5 = -0.00392.. rounded to bf16
        assert_eq!(normalize_pixel(127), bf16::from_f32(-0.003_921_628).to_f32());
    }

    #[test]
    fn letterbox_uses_half_to_even_sizes_and_offsets() {
        // 2048×1001 → short side round(1001/2048·1024) = round(500.5) = 500, offset round(262) = 262
        let out = letterbox(&solid(2048, 1001, 200), 1024, PAD_GREY);
        let row = |y: usize| out.data[y * 1024 * 3];
        assert_eq!(row(261), PAD_GREY);
        assert_eq!(row(262), 200);
        assert_eq!(row(761), 200);
        assert_eq!(row(762), PAD_GREY);
    }

    #[test]
    fn modes_produce_official_view_shapes() {
        let page = solid(1190, 1684, 255);
        let p = prepare_image(&page, &Mode::Gundam.spec()).unwrap();
        assert_eq!(p.grid, TileGrid { cols: 2, rows: 3 });
        assert_eq!(p.global.shape(), [1, 3, 1024, 1024]);
        assert_eq!(p.tiles.as_ref().unwrap().shape(), [6, 3, 640, 640]);
        assert_eq!(p.image_token_count(), 903);
        let tiny = prepare_image(&page, &Mode::Tiny.spec()).unwrap();
        assert_eq!(tiny.global.shape(), [1, 3, 512, 512]);
        assert!(tiny.tiles.is_none());
        // Tiny squashes: no grey bars on a white page.
        assert!(tiny.global.data.iter().all(|&v| v == 255));
        let base = prepare_image(&page, &Mode::Base.spec()).unwrap();
        assert!(base.global.data.contains(&PAD_GREY));
    }

    #[test]
    fn inconsistent_pixel_buffer_is_an_error() {
        let img = RgbImage { width: 10, height: 10, data: vec![0; 5] };
        assert!(prepare_image(&img, &Mode::Base.spec()).is_err());
    }
}
