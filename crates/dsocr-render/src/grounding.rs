//! Parsing the model's grounding output (docs/model.md §8.1-8.2) without `eval`:
//! `<|ref|>LABEL<|/ref|><|det|>[[x1, y1, x2, y2], …]<|/det|>`, coordinates on a 0–999 grid.

use std::ops::Range;

const REF_OPEN: &str = "<|ref|>";
const REF_CLOSE_DET_OPEN: &str = "<|/ref|><|det|>";
const DET_CLOSE: &str = "<|/det|>";

/// One `<|ref|>…<|/det|>` block as the official regex finds it.
#[derive(Debug, Clone, PartialEq)]
pub struct GroundingMatch {
    /// Byte range of the whole block in the text.
    pub span: Range<usize>,
    /// The label between `<|ref|>` and `<|/ref|>` (e.g. `title`, `text`, `image`, `table`).
    pub label: String,
    /// The raw text between `<|det|>` and `<|/det|>`.
    pub coords_text: String,
    /// Boxes on the 0–999 grid, `None` when the coordinate text is malformed.
    pub boxes: Option<Vec<[f64; 4]>>,
}

impl GroundingMatch {
    /// The block's text.
    pub fn full<'a>(&self, text: &'a str) -> &'a str {
        &text[self.span.clone()]
    }

    /// Whether this is a figure block (`<|ref|>image<|/ref|>`), whose region is cropped.
    pub fn is_image(&self) -> bool {
        self.label == "image"
    }
}

/// Every grounding block, in order, as Python's `re.findall` with the official pattern
/// `(<\|ref\|>(.*?)<\|/ref\|><\|det\|>(.*?)<\|/det\|>)` and DOTALL.
pub fn find_grounding(text: &str) -> Vec<GroundingMatch> {
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(open) = text[pos..].find(REF_OPEN).map(|i| i + pos) {
        let label_start = open + REF_OPEN.len();
        let Some(mid) = text[label_start..].find(REF_CLOSE_DET_OPEN).map(|i| i + label_start) else { break };
        let coords_start = mid + REF_CLOSE_DET_OPEN.len();
        let Some(close) = text[coords_start..].find(DET_CLOSE).map(|i| i + coords_start) else { break };
        let end = close + DET_CLOSE.len();
        let coords_text = text[coords_start..close].to_string();
        let boxes = parse_boxes(&coords_text);
        if boxes.is_none() {
            tracing::warn!("skipping grounding block with malformed coordinates: {coords_text:?}");
        }
        out.push(GroundingMatch { span: open..end, label: text[label_start..mid].to_string(), coords_text, boxes });
        pos = end;
    }
    out
}

/// Parse `[[x1, y1, x2, y2], …]` (or a single `[x1, y1, x2, y2]`) into boxes. `None` unless the
/// text is a bracketed list of numbers whose count is a positive multiple of four.
pub fn parse_boxes(coords: &str) -> Option<Vec<[f64; 4]>> {
    let s = coords.trim();
    if !s.starts_with('[') || !s.ends_with(']') {
        return None;
    }
    let mut depth = 0i32;
    let mut numbers = Vec::new();
    let mut current = String::new();
    let flush = |current: &mut String, numbers: &mut Vec<f64>| -> Option<()> {
        let t = current.trim();
        if !t.is_empty() {
            numbers.push(t.parse::<f64>().ok().filter(|v| v.is_finite())?);
        }
        current.clear();
        Some(())
    };
    for ch in s.chars() {
        match ch {
            '[' => {
                flush(&mut current, &mut numbers)?;
                depth += 1;
            }
            ']' => {
                flush(&mut current, &mut numbers)?;
                depth -= 1;
                if depth < 0 {
                    return None;
                }
            }
            ',' => flush(&mut current, &mut numbers)?,
            c if c.is_ascii_digit() || c == '.' || c == '-' || c == '+' || c == 'e' || c.is_whitespace() => current.push(c),
            _ => return None,
        }
    }
    if depth != 0 || numbers.is_empty() || numbers.len() % 4 != 0 {
        return None;
    }
    Some(numbers.chunks_exact(4).map(|c| [c[0], c[1], c[2], c[3]]).collect())
}

/// A 0–999 box in pixels of a `width × height` image: `int(v / 999 · W)`, truncated (official).
pub fn to_pixels(b: [f64; 4], width: u32, height: u32) -> [u32; 4] {
    let sx = |v: f64| ((v / 999.0 * f64::from(width)) as i64).clamp(0, i64::from(width)) as u32;
    let sy = |v: f64| ((v / 999.0 * f64::from(height)) as i64).clamp(0, i64::from(height)) as u32;
    [sx(b[0]), sy(b[1]), sx(b[2]), sy(b[3])]
}

/// A labelled region in pixels of the original image.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Region {
    /// The label (`title`, `text`, `table`, `image`, …).
    pub label: String,
    /// `[x1, y1, x2, y2]` in pixels.
    pub bbox: [u32; 4],
    /// The same box on the model's 0–999 grid.
    pub grid_box: [f64; 4],
}

/// Every well-formed box of `text` as pixel regions of a `width × height` image.
pub fn regions(text: &str, width: u32, height: u32) -> Vec<Region> {
    find_grounding(text)
        .into_iter()
        .filter_map(|m| m.boxes.map(|bs| (m.label, bs)))
        .flat_map(|(label, bs)| {
            bs.into_iter().map(move |b| Region { label: label.clone(), bbox: to_pixels(b, width, height), grid_box: b })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_blocks_like_the_official_regex() {
        let t = "<|ref|>title<|/ref|><|det|>[[10, 20, 500, 60]]<|/det|>\n# Hello\n\n<|ref|>image<|/ref|><|det|>[[0,0,999,999],[1,2,3,4]]<|/det|>";
        let m = find_grounding(t);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].label, "title");
        assert_eq!(m[0].boxes, Some(vec![[10.0, 20.0, 500.0, 60.0]]));
        assert!(m[1].is_image());
        assert_eq!(m[1].boxes.as_ref().unwrap().len(), 2);
        assert_eq!(m[0].full(t), "<|ref|>title<|/ref|><|det|>[[10, 20, 500, 60]]<|/det|>");
    }

    #[test]
    fn non_greedy_label_spans_a_stray_close_tag() {
        // The regex's first group runs to the first "<|/ref|><|det|>", past a lone "<|/ref|>".
        let t = "<|ref|>a<|/ref|>b<|/ref|><|det|>[[1,2,3,4]]<|/det|>";
        assert_eq!(find_grounding(t)[0].label, "a<|/ref|>b");
        assert!(find_grounding("<|ref|>x<|/ref|><|det|>[[1,2,3,4]]").is_empty());
    }

    #[test]
    fn malformed_coordinates_are_rejected() {
        assert_eq!(parse_boxes("[[1, 2, 3]]"), None);
        assert_eq!(parse_boxes("__import__('os')"), None);
        assert_eq!(parse_boxes("[[1, 2, 3, 4]"), None);
        assert_eq!(parse_boxes("[1, 2, 3, 4]"), Some(vec![[1.0, 2.0, 3.0, 4.0]]));
        let t = "<|ref|>text<|/ref|><|det|>[[oops]]<|/det|>";
        assert_eq!(find_grounding(t)[0].boxes, None);
        assert!(regions(t, 100, 100).is_empty());
    }

    #[test]
    fn pixels_truncate_like_python_int() {
        assert_eq!(to_pixels([0.0, 0.0, 999.0, 999.0], 1190, 1684), [0, 0, 1190, 1684]);
        // 500/999·1190 = 595.59… → 595
        assert_eq!(to_pixels([500.0, 500.0, 500.0, 500.0], 1190, 1684)[0], 595);
    }
}
