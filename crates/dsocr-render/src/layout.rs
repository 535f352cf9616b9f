//! A page's text placed in its layout regions, for the formats that put words at positions
//! (hOCR, ALTO, the text layer of a searchable PDF; docs/formats.md).
//!
//! The model gives one box per region (`<|ref|>label<|/ref|><|det|>[[…]]<|/det|>`) followed by the
//! region's text, not the position of each line or word. The text that follows a region's tag, up
//! to the next tag, is that region's; its lines are spread evenly over the box's height and each
//! line's words over the box's width in proportion to their length in characters (a space counts
//! as one), so every word lies inside its region and a line spans the region's width.

use crate::grounding::find_grounding;
use crate::markdown::strip_eos;

/// What a region holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    /// Text (titles, paragraphs, tables, captions, formulas, …).
    Text,
    /// A figure (`image` label): a box without text.
    Figure,
}

/// A word and its box `[x1, y1, x2, y2]` in pixels (x2, y2 exclusive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    /// The word's text (no whitespace inside).
    pub text: String,
    /// Its estimated box.
    pub bbox: [u32; 4],
}

/// A line of a region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The line's share of the region: the region's width, `1 / lines` of its height.
    pub bbox: [u32; 4],
    /// Its words, left to right (at least one).
    pub words: Vec<Word>,
}

impl Line {
    /// The line's text, words joined by single spaces.
    pub fn text(&self) -> String {
        self.words.iter().map(|w| w.text.as_str()).collect::<Vec<_>>().join(" ")
    }
}

/// A layout region with its lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The model's label (`title`, `text`, `table`, `image`, …).
    pub label: String,
    /// Text or figure.
    pub kind: BlockKind,
    /// The region in pixels, inside the page, at least one pixel each way.
    pub bbox: [u32; 4],
    /// Its lines, top to bottom (none for figures and empty regions).
    pub lines: Vec<Line>,
}

/// One page: its size and regions in the model's order (its reading order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageLayout {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The regions.
    pub blocks: Vec<Block>,
}

impl PageLayout {
    /// The page's text: regions in order, lines separated by newlines, regions by blank lines.
    pub fn text(&self) -> String {
        let blocks: Vec<String> = self
            .blocks
            .iter()
            .filter(|b| !b.lines.is_empty())
            .map(|b| b.lines.iter().map(Line::text).collect::<Vec<_>>().join("\n"))
            .collect();
        blocks.join("\n\n")
    }
}

/// The layout of a page of `width × height` pixels from the model's raw output (with grounding
/// tags). Text outside any region (before the first tag, or output without tags) is not placed.
/// A region of several boxes puts its text in the first; the others become empty regions.
pub fn page_layout(raw: &str, width: u32, height: u32) -> PageLayout {
    let raw = strip_eos(raw);
    let matches = find_grounding(raw);
    let mut blocks = Vec::new();
    for (i, m) in matches.iter().enumerate() {
        let Some(boxes) = &m.boxes else { continue };
        let end = matches.get(i + 1).map_or(raw.len(), |next| next.span.start);
        let kind = if m.is_image() { BlockKind::Figure } else { BlockKind::Text };
        for (k, grid_box) in boxes.iter().enumerate() {
            let Some(bbox) = inside(crate::grounding::to_pixels(*grid_box, width, height), width, height) else { continue };
            let lines = match kind {
                BlockKind::Text if k == 0 => place_lines(&plain_lines(&raw[m.span.end..end]), bbox),
                _ => Vec::new(),
            };
            blocks.push(Block { label: m.label.clone(), kind, bbox, lines });
        }
    }
    PageLayout { width, height, blocks }
}

/// The box made at least one pixel wide and high, within the page; `None` on an empty page.
fn inside([x1, y1, x2, y2]: [u32; 4], width: u32, height: u32) -> Option<[u32; 4]> {
    if width == 0 || height == 0 {
        return None;
    }
    let (x1, y1) = (x1.min(width - 1), y1.min(height - 1));
    Some([x1, y1, x2.clamp(x1 + 1, width), y2.clamp(y1 + 1, height)])
}

/// HTML elements the model writes (tables, emphasis, line breaks): their tags are markup, not
/// words. Anything else between `<` and `>` is kept as text (`a < b > c` in a formula).
const HTML_TAGS: [&str; 20] = [
    "table", "thead", "tbody", "tr", "td", "th", "br", "p", "div", "span", "b", "i", "u", "em", "strong", "sup", "sub", "center", "ul",
    "li",
];

/// A region's text as plain lines: HTML table markup turned into spaces (cells) and line breaks
/// (rows), the other HTML tags the model writes removed, the common entities decoded, heading
/// marks dropped, blank lines skipped.
pub fn plain_lines(text: &str) -> Vec<String> {
    let mut plain = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('<') {
        plain.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after.find(['>', '<', '\n']).filter(|&c| after[c..].starts_with('>'));
        let name = close.map(|c| {
            let tag = after[..c].trim_start_matches('/');
            tag.split(|ch: char| ch.is_whitespace() || ch == '/').next().unwrap_or("").to_ascii_lowercase()
        });
        match (close, name) {
            (Some(c), Some(name)) if HTML_TAGS.contains(&name.as_str()) => {
                plain.push_str(if matches!(name.as_str(), "tr" | "br" | "p" | "div" | "table" | "li") { "\n" } else { " " });
                rest = &after[c + 1..];
            }
            _ => {
                plain.push('<');
                rest = after;
            }
        }
    }
    plain.push_str(rest);
    let decoded = plain
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    decoded
        .lines()
        .map(|l| l.trim().trim_start_matches('#').trim())
        .filter(|l| !l.is_empty())
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// Spread `lines` over `bbox`: equal heights, each line's words across the full width.
fn place_lines(lines: &[String], [x1, y1, x2, y2]: [u32; 4]) -> Vec<Line> {
    let n = lines.len() as u64;
    let (w, h) = (u64::from(x2 - x1), u64::from(y2 - y1));
    let at = |start: u32, span: u64, part: u64, whole: u64| start + (span * part / whole.max(1)) as u32;
    lines
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let i = i as u64;
            let (ly1, ly2) = (at(y1, h, i, n), at(y1, h, i + 1, n).max(at(y1, h, i, n) + 1).min(y2.max(y1 + 1)));
            let words: Vec<&str> = text.split(' ').collect();
            let units: u64 = words.iter().map(|w| w.chars().count() as u64).sum::<u64>() + words.len() as u64 - 1;
            let mut before = 0u64;
            let words = words
                .iter()
                .map(|word| {
                    let len = word.chars().count() as u64;
                    let (wx1, wx2) = (at(x1, w, before, units), at(x1, w, before + len, units));
                    before += len + 1;
                    Word { text: (*word).to_string(), bbox: [wx1, ly1, wx2.max(wx1 + 1).min(x2.max(x1 + 1)), ly2] }
                })
                .collect();
            Line { bbox: [x1, ly1, x2, ly2], words }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAW: &str = "<|ref|>title<|/ref|><|det|>[[100, 100, 899, 199]]<|/det|>\n# A Title\n\n\
        <|ref|>text<|/ref|><|det|>[[100, 300, 899, 499]]<|/det|>\nfirst line here\nsecond\n\n\
        <|ref|>image<|/ref|><|det|>[[0, 600, 499, 899]]<|/det|>\n\n\
        <|ref|>table<|/ref|><|det|>[[500, 600, 999, 999]]<|/det|>\n<table><tr><td>a &amp; b</td><td>c</td></tr><tr><td>d</td></tr></table><｜end▁of▁sentence｜>";

    #[test]
    fn regions_get_their_text_lines_and_words_inside_their_boxes() {
        // A 999-pixel page: grid coordinates are pixels.
        let page = page_layout(RAW, 999, 999);
        let labels: Vec<&str> = page.blocks.iter().map(|b| b.label.as_str()).collect();
        assert_eq!(labels, ["title", "text", "image", "table"]);
        assert_eq!(page.blocks[0].lines[0].text(), "A Title");
        assert_eq!(page.blocks[1].lines.iter().map(Line::text).collect::<Vec<_>>(), ["first line here", "second"]);
        assert_eq!(page.blocks[2].kind, BlockKind::Figure);
        assert!(page.blocks[2].lines.is_empty());
        assert_eq!(page.blocks[3].lines.iter().map(Line::text).collect::<Vec<_>>(), ["a & b c", "d"]);
        for b in &page.blocks {
            let [bx1, by1, bx2, by2] = b.bbox;
            for l in &b.lines {
                assert_eq!((l.bbox[0], l.bbox[2]), (bx1, bx2), "a line spans its region");
                for w in &l.words {
                    assert!(w.bbox[0] >= bx1 && w.bbox[2] <= bx2 && w.bbox[1] >= by1 && w.bbox[3] <= by2, "{w:?} in {b:?}");
                    assert!(w.bbox[0] < w.bbox[2] && w.bbox[1] < w.bbox[3]);
                }
            }
        }
        // Two lines share the text region's 199 pixels; words in proportion to their length.
        let text = &page.blocks[1];
        assert_eq!((text.lines[0].bbox[1], text.lines[0].bbox[3], text.lines[1].bbox[3]), (300, 399, 499));
        let first = &text.lines[0].words;
        assert_eq!(first.iter().map(|w| w.text.as_str()).collect::<Vec<_>>(), ["first", "line", "here"]);
        assert_eq!(first[0].bbox[0], 100);
        assert_eq!(first[2].bbox[2], 899);
        assert_eq!(page.text(), "A Title\n\nfirst line here\nsecond\n\na & b c\nd");
    }

    #[test]
    fn only_html_tags_are_markup() {
        assert_eq!(plain_lines("x < y and y > z"), ["x < y and y > z"]);
        assert_eq!(plain_lines("<b>bold</b> <unknown> a<br/>b"), ["bold <unknown> a", "b"]);
        assert_eq!(plain_lines("<td colspan=\"2\">c</td>"), ["c"]);
    }

    #[test]
    fn odd_boxes_and_text_outside_regions() {
        // No tags: nothing is placed. An empty box becomes one pixel; a box past the page is
        // clipped to it.
        assert!(page_layout("plain text only", 100, 100).blocks.is_empty());
        let page = page_layout("<|ref|>text<|/ref|><|det|>[[500, 500, 500, 500], [900, 900, 5000, 5000]]<|/det|>\n中文 text", 100, 100);
        assert_eq!(page.blocks[0].bbox, [50, 50, 51, 51]);
        assert_eq!(page.blocks[0].lines[0].text(), "中文 text");
        assert_eq!(page.blocks[1].bbox, [90, 90, 100, 100]);
        assert!(page.blocks[1].lines.is_empty());
        assert!(page_layout("<|ref|>text<|/ref|><|det|>[[1, 2, 3, 4]]<|/det|>x", 0, 0).blocks.is_empty());
    }
}
