//! hOCR 1.2 (the XHTML microformat Tesseract writes and OCRmyPDF reads; docs/formats.md): one
//! `ocr_page` per page with its `bbox`, an `ocr_carea` per region carrying the region's label as a
//! `dsocr-LABEL` class (figures are `ocr_photo`), and inside it one `ocr_par` of `ocr_line`s of
//! `ocrx_word`s, each with its box ([`crate::page_layout`]).

use std::fmt::Write;

use crate::layout::{BlockKind, PageLayout};
use crate::xml::{escape, name_token};

/// One page for [`to_hocr`]: its layout and the name of the image it was read from.
#[derive(Debug, Clone, Copy)]
pub struct HocrPage<'a> {
    /// The page's regions and size.
    pub layout: &'a PageLayout,
    /// The image (or `document.pdf, page 3`) the page came from, for the `image` property.
    pub image: &'a str,
}

fn bbox([x1, y1, x2, y2]: [u32; 4]) -> String {
    format!("bbox {x1} {y1} {x2} {y2}")
}

/// The hOCR document of `pages` (`ppageno` 0, 1, … in their order), titled `title`.
pub fn to_hocr(pages: &[HocrPage<'_>], title: &str) -> String {
    to_hocr_numbered(pages, 0, title)
}

/// [`to_hocr`] with the pages' `ppageno` counted from `first` (a file per page carries the page's
/// 0-based number in its input); the element IDs still count from 1 within the file.
pub fn to_hocr_numbered(pages: &[HocrPage<'_>], first: usize, title: &str) -> String {
    let mut out = String::new();
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(
        "<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Transitional//EN\" \"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd\">\n",
    );
    out.push_str("<html xmlns=\"http://www.w3.org/1999/xhtml\" xml:lang=\"en\" lang=\"en\">\n <head>\n");
    let _ = writeln!(out, "  <title>{}</title>", escape(title));
    out.push_str("  <meta http-equiv=\"Content-Type\" content=\"text/html;charset=utf-8\"/>\n");
    let _ = writeln!(out, "  <meta name=\"ocr-system\" content=\"dsocr {}\"/>", env!("CARGO_PKG_VERSION"));
    out.push_str("  <meta name=\"ocr-capabilities\" content=\"ocr_page ocr_carea ocr_par ocr_line ocrx_word ocr_photo\"/>\n");
    out.push_str(" </head>\n <body>\n");
    for (p, page) in pages.iter().enumerate() {
        let (n, number) = (p + 1, first + p);
        let layout = page.layout;
        let image = escape(&page.image.replace('"', "'"));
        let _ = writeln!(
            out,
            "  <div class=\"ocr_page\" id=\"page_{n}\" title=\"image &quot;{image}&quot;; {}; ppageno {number}\">",
            bbox([0, 0, layout.width, layout.height])
        );
        for (b, block) in layout.blocks.iter().enumerate() {
            let b = b + 1;
            let class = match block.kind {
                BlockKind::Figure => "ocr_photo",
                BlockKind::Text => "ocr_carea",
            };
            let _ = write!(
                out,
                "   <div class=\"{class} dsocr-{}\" id=\"block_{n}_{b}\" title=\"{}\">",
                name_token(&block.label),
                bbox(block.bbox)
            );
            if block.lines.is_empty() {
                out.push_str("</div>\n");
                continue;
            }
            let _ = writeln!(out, "\n    <p class=\"ocr_par\" id=\"par_{n}_{b}\" title=\"{}\">", bbox(block.bbox));
            for (l, line) in block.lines.iter().enumerate() {
                let l = l + 1;
                let _ = write!(out, "     <span class=\"ocr_line\" id=\"line_{n}_{b}_{l}\" title=\"{}; baseline 0 0\">", bbox(line.bbox));
                for (w, word) in line.words.iter().enumerate() {
                    if w > 0 {
                        out.push(' ');
                    }
                    let _ = write!(
                        out,
                        "<span class=\"ocrx_word\" id=\"word_{n}_{b}_{l}_{}\" title=\"{}\">{}</span>",
                        w + 1,
                        bbox(word.bbox),
                        escape(&word.text)
                    );
                }
                out.push_str("</span>\n");
            }
            out.push_str("    </p>\n   </div>\n");
        }
        out.push_str("  </div>\n");
    }
    out.push_str(" </body>\n</html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::page_layout;

    #[test]
    fn pages_regions_lines_and_words_with_boxes() {
        let layout = page_layout("<|ref|>sub_title<|/ref|><|det|>[[0, 0, 999, 99]]<|/det|>\n## R&D <b>now</b> x<y\n", 999, 999);
        let hocr = to_hocr(&[HocrPage { layout: &layout, image: "a \"b\".png" }], "doc");
        assert!(
            hocr.contains("class=\"ocr_page\" id=\"page_1\" title=\"image &quot;a &apos;b&apos;.png&quot;; bbox 0 0 999 999; ppageno 0\""),
            "{hocr}"
        );
        assert!(hocr.contains("class=\"ocr_carea dsocr-sub_title\" id=\"block_1_1\" title=\"bbox 0 0 999 99\""), "{hocr}");
        assert!(hocr.contains(">R&amp;D</span>"), "{hocr}");
        // HTML emphasis is markup; a bare `<` is text.
        assert!(hocr.contains(">now</span>") && !hocr.contains("<b>") && hocr.contains(">x&lt;y</span>"), "{hocr}");
    }
}
