//! Drawing layout boxes on a page (docs/model.md §8.3): an outline per box (4 px for titles, 2 px
//! otherwise), a translucent fill, and the label on a white patch above the box. Colours are
//! derived from the label, so the same label has the same colour on every page and every run
//! (the official code draws random colours).

use image::{Rgb, RgbImage};

use crate::grounding::Region;

/// Opacity of the box fill (the official overlay uses alpha 20 of 255).
const FILL_ALPHA: u32 = 20;
/// Label glyphs are 8×8 bitmaps drawn at this scale.
const LABEL_SCALE: u32 = 2;

/// A stable colour for a label, in the official ranges (R, G < 200; B < 255).
pub fn label_colour(label: &str) -> Rgb<u8> {
    // FNV-1a: stable across platforms and releases.
    let h = label.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    Rgb([(h % 200) as u8, ((h >> 16) % 200) as u8, ((h >> 32) % 255) as u8])
}

fn blend(dst: &mut Rgb<u8>, c: Rgb<u8>, alpha: u32) {
    for i in 0..3 {
        dst.0[i] = ((u32::from(dst.0[i]) * (255 - alpha) + u32::from(c.0[i]) * alpha + 127) / 255) as u8;
    }
}

fn fill_rect(img: &mut RgbImage, x0: u32, y0: u32, x1: u32, y1: u32, c: Rgb<u8>, alpha: u32) {
    let (x1, y1) = (x1.min(img.width()), y1.min(img.height()));
    for y in y0..y1 {
        for x in x0..x1 {
            let p = img.get_pixel_mut(x, y);
            if alpha >= 255 {
                *p = c;
            } else {
                blend(p, c, alpha);
            }
        }
    }
}

fn outline(img: &mut RgbImage, b: [u32; 4], width: u32, c: Rgb<u8>) {
    let [x0, y0, x1, y1] = b;
    let (x1, y1) = (x1.max(x0 + 1), y1.max(y0 + 1));
    fill_rect(img, x0, y0, x1, y0 + width, c, 255);
    fill_rect(img, x0, y1.saturating_sub(width), x1, y1, c, 255);
    fill_rect(img, x0, y0, x0 + width, y1, c, 255);
    fill_rect(img, x1.saturating_sub(width), y0, x1, y1, c, 255);
}

fn text(img: &mut RgbImage, x: u32, y: u32, s: &str, c: Rgb<u8>) {
    use font8x8::UnicodeFonts;
    let mut cx = x;
    for ch in s.chars() {
        let glyph = font8x8::BASIC_FONTS.get(ch).or_else(|| font8x8::BASIC_FONTS.get('?')).unwrap_or([0; 8]);
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8u32 {
                if bits & (1 << col) != 0 {
                    let (px, py) = (cx + col * LABEL_SCALE, y + row as u32 * LABEL_SCALE);
                    fill_rect(img, px, py, px + LABEL_SCALE, py + LABEL_SCALE, c, 255);
                }
            }
        }
        cx += 8 * LABEL_SCALE;
    }
}

/// A copy of `page` with every region drawn on it.
pub fn draw_regions(page: &RgbImage, regions: &[Region]) -> RgbImage {
    let mut out = page.clone();
    for r in regions {
        let c = label_colour(&r.label);
        let [x0, y0, x1, y1] = r.bbox;
        fill_rect(&mut out, x0, y0, x1, y1, c, FILL_ALPHA);
    }
    for r in regions {
        let c = label_colour(&r.label);
        outline(&mut out, r.bbox, if r.label == "title" { 4 } else { 2 }, c);
        let glyph_h = 8 * LABEL_SCALE;
        let (tx, ty) = (r.bbox[0], r.bbox[1].saturating_sub(glyph_h + 2));
        let w = r.label.chars().count() as u32 * 8 * LABEL_SCALE;
        fill_rect(&mut out, tx, ty, tx + w + 2, ty + glyph_h + 2, Rgb([255, 255, 255]), 255);
        text(&mut out, tx + 1, ty + 1, &r.label, c);
    }
    out
}

/// Crop `bbox` out of `page` (empty boxes give `None`).
pub fn crop(page: &RgbImage, bbox: [u32; 4]) -> Option<RgbImage> {
    let [x0, y0, x1, y1] = bbox;
    let (x1, y1) = (x1.min(page.width()), y1.min(page.height()));
    (x1 > x0 && y1 > y0).then(|| image::imageops::crop_imm(page, x0, y0, x1 - x0, y1 - y0).to_image())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes_are_drawn_in_a_stable_colour() {
        let page = RgbImage::from_pixel(100, 80, Rgb([255, 255, 255]));
        let r = Region { label: "title".into(), bbox: [10, 30, 60, 70], grid_box: [0.0; 4] };
        let out = draw_regions(&page, std::slice::from_ref(&r));
        let c = label_colour("title");
        assert_eq!(*out.get_pixel(10, 50), c); // left edge, 4 px wide
        assert_eq!(*out.get_pixel(13, 50), c);
        assert_ne!(*out.get_pixel(30, 50), Rgb([255, 255, 255])); // tinted inside
        assert_ne!(*out.get_pixel(30, 50), c);
        assert_eq!(*out.get_pixel(90, 75), Rgb([255, 255, 255])); // untouched outside
        assert_eq!(label_colour("title"), c);
        assert!(c.0[0] < 200 && c.0[1] < 200);
    }

    #[test]
    fn crops_are_clamped() {
        let page = RgbImage::from_pixel(50, 40, Rgb([1, 2, 3]));
        assert_eq!(crop(&page, [10, 10, 80, 90]).unwrap().dimensions(), (40, 30));
        assert!(crop(&page, [20, 20, 20, 30]).is_none());
    }
}
