//! Turning raw model output into markdown, as the official scripts (docs/model.md §8.5-8.6).

use crate::grounding::find_grounding;

/// The EOS text that ends a page when stop strings are kept (official PDF script).
pub const EOS_TEXT: &str = "<｜end▁of▁sentence｜>";
/// Separator between pages in the per-PDF markdown files.
pub const PAGE_SPLIT: &str = "\n<--- Page Split --->\n";

/// Remove a trailing EOS text and surrounding whitespace (official `infer()`).
pub fn strip_eos(raw: &str) -> &str {
    let t = raw.trim_end();
    t.strip_suffix(EOS_TEXT).unwrap_or(t).trim()
}

/// How figure links are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageLinks {
    /// `images/{k}.jpg` (single image).
    Image,
    /// `images/{page}_{k}.jpg` (page of a PDF, 0-based as the official script).
    Page(usize),
}

impl ImageLinks {
    /// The file name of figure `k`.
    pub fn file_name(self, k: usize) -> String {
        match self {
            ImageLinks::Image => format!("{k}.jpg"),
            ImageLinks::Page(p) => format!("{p}_{k}.jpg"),
        }
    }
}

/// The official markdown rewrite: each figure block becomes `![](images/…)` (numbered per block),
/// every other block is removed, `\coloneqq`/`\eqqcolon` become `:=`/`=:` (and for PDF pages runs
/// of blank lines collapse), as long as at least one non-figure block exists.
pub fn to_markdown(raw: &str, links: ImageLinks) -> String {
    let mut out = raw.to_string();
    let matches = find_grounding(raw);
    let (images, others): (Vec<_>, Vec<_>) = matches.iter().partition(|m| m.is_image());
    for (idx, m) in images.iter().enumerate() {
        out = out.replace(m.full(raw), &format!("![](images/{})\n", links.file_name(idx)));
    }
    for m in &others {
        out = out.replace(m.full(raw), "").replace("\\coloneqq", ":=").replace("\\eqqcolon", "=:");
        if matches!(links, ImageLinks::Page(_)) {
            out = out.replace("\n\n\n\n", "\n\n").replace("\n\n\n", "\n\n");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_become_links_and_other_tags_vanish() {
        let raw = "<|ref|>title<|/ref|><|det|>[[1,2,3,4]]<|/det|>\n# T\n\n<|ref|>image<|/ref|><|det|>[[5,6,7,8]]<|/det|>\n\n<|ref|>text<|/ref|><|det|>[[1,1,2,2]]<|/det|>\n$a \\coloneqq b$";
        let md = to_markdown(raw, ImageLinks::Image);
        assert_eq!(md, "\n# T\n\n![](images/0.jpg)\n\n\n\n$a := b$");
        let pdf = to_markdown(raw, ImageLinks::Page(3));
        assert!(pdf.contains("![](images/3_0.jpg)"));
        assert!(!pdf.contains("\n\n\n"));
    }

    #[test]
    fn eos_is_stripped() {
        assert_eq!(strip_eos("text <｜end▁of▁sentence｜>\n"), "text");
        assert_eq!(strip_eos("  text "), "text");
    }
}
