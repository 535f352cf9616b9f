//! ALTO XML v4 (schema 4.2, `http://www.loc.gov/standards/alto/ns-v4#`; docs/formats.md): pixel
//! units, one `Page` per page with a `PrintSpace`, a `TextBlock` per text region (`TextLine`s of
//! `String`s with their boxes) or an `Illustration` per figure, each region's label a `LayoutTag`
//! referenced by `TAGREFS`.

use std::fmt::Write;

use crate::layout::{BlockKind, PageLayout};
use crate::xml::escape;

fn position([x1, y1, x2, y2]: [u32; 4]) -> String {
    format!("HPOS=\"{x1}\" VPOS=\"{y1}\" WIDTH=\"{}\" HEIGHT=\"{}\"", x2 - x1, y2 - y1)
}

/// The ALTO document of `pages` (numbered from 1 in their order) read from `source` (a file name).
pub fn to_alto(pages: &[&PageLayout], source: &str) -> String {
    to_alto_numbered(pages, 1, source)
}

/// [`to_alto`] with the pages' `PHYSICAL_IMG_NR` counted from `first` (a file per page carries
/// the page's number in its input); the element IDs still count from 1 within the file.
pub fn to_alto_numbered(pages: &[&PageLayout], first: usize, source: &str) -> String {
    // One tag per distinct label, in order of first use; IDs are indices (labels are free text).
    let mut labels: Vec<&str> = Vec::new();
    for block in pages.iter().flat_map(|p| &p.blocks) {
        if !labels.contains(&block.label.as_str()) {
            labels.push(&block.label);
        }
    }
    let tag_of = |label: &str| labels.iter().position(|l| *l == label).map_or(0, |i| i + 1);
    let mut out = String::new();
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(
        "<alto xmlns=\"http://www.loc.gov/standards/alto/ns-v4#\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
         xsi:schemaLocation=\"http://www.loc.gov/standards/alto/ns-v4# http://www.loc.gov/standards/alto/v4/alto-4-2.xsd\">\n",
    );
    out.push_str("  <Description>\n    <MeasurementUnit>pixel</MeasurementUnit>\n");
    let _ = writeln!(out, "    <sourceImageInformation>\n      <fileName>{}</fileName>\n    </sourceImageInformation>", escape(source));
    out.push_str("    <Processing ID=\"dsocr\">\n      <processingCategory>contentGeneration</processingCategory>\n");
    let _ = writeln!(
        out,
        "      <processingSoftware>\n        <softwareName>dsocr</softwareName>\n        <softwareVersion>{}</softwareVersion>\n      </processingSoftware>",
        env!("CARGO_PKG_VERSION")
    );
    out.push_str("    </Processing>\n  </Description>\n");
    if !labels.is_empty() {
        out.push_str("  <Tags>\n");
        for (i, label) in labels.iter().enumerate() {
            let _ = writeln!(out, "    <LayoutTag ID=\"tag_{}\" LABEL=\"{}\"/>", i + 1, escape(label));
        }
        out.push_str("  </Tags>\n");
    }
    out.push_str("  <Layout>\n");
    for (p, page) in pages.iter().enumerate() {
        let (n, number) = (p + 1, first + p);
        let _ =
            writeln!(out, "    <Page ID=\"page_{n}\" PHYSICAL_IMG_NR=\"{number}\" WIDTH=\"{}\" HEIGHT=\"{}\">", page.width, page.height);
        let _ = writeln!(out, "      <PrintSpace {}>", position([0, 0, page.width, page.height]));
        for (b, block) in page.blocks.iter().enumerate() {
            let id = format!("block_{n}_{}", b + 1);
            let tag = tag_of(&block.label);
            match block.kind {
                BlockKind::Figure => {
                    let _ = writeln!(out, "        <Illustration ID=\"{id}\" TAGREFS=\"tag_{tag}\" {}/>", position(block.bbox));
                }
                BlockKind::Text => {
                    let _ = write!(out, "        <TextBlock ID=\"{id}\" TAGREFS=\"tag_{tag}\" {}", position(block.bbox));
                    if block.lines.is_empty() {
                        out.push_str("/>\n");
                        continue;
                    }
                    out.push_str(">\n");
                    for (l, line) in block.lines.iter().enumerate() {
                        let _ = writeln!(out, "          <TextLine ID=\"{id}_{}\" {}>", l + 1, position(line.bbox));
                        for (w, word) in line.words.iter().enumerate() {
                            if w > 0 {
                                // The space between the previous word and this one.
                                let after = line.words[w - 1].bbox[2];
                                let _ = writeln!(
                                    out,
                                    "            <SP HPOS=\"{after}\" VPOS=\"{}\" WIDTH=\"{}\"/>",
                                    word.bbox[1],
                                    word.bbox[0].saturating_sub(after)
                                );
                            }
                            let _ = writeln!(out, "            <String CONTENT=\"{}\" {}/>", escape(&word.text), position(word.bbox));
                        }
                        out.push_str("          </TextLine>\n");
                    }
                    out.push_str("        </TextBlock>\n");
                }
            }
        }
        out.push_str("      </PrintSpace>\n    </Page>\n");
    }
    out.push_str("  </Layout>\n</alto>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::page_layout;

    #[test]
    fn blocks_lines_strings_and_tags() {
        let a = page_layout(
            "<|ref|>title<|/ref|><|det|>[[0, 0, 999, 99]]<|/det|>\nHello world\n<|ref|>image<|/ref|><|det|>[[0, 100, 500, 500]]<|/det|>",
            999,
            999,
        );
        let b = page_layout("", 10, 20);
        let alto = to_alto(&[&a, &b], "in & out.pdf");
        assert!(alto.contains("<fileName>in &amp; out.pdf</fileName>"), "{alto}");
        assert!(alto.contains("<LayoutTag ID=\"tag_1\" LABEL=\"title\"/>") && alto.contains("<LayoutTag ID=\"tag_2\" LABEL=\"image\"/>"));
        assert!(
            alto.contains("<TextBlock ID=\"block_1_1\" TAGREFS=\"tag_1\" HPOS=\"0\" VPOS=\"0\" WIDTH=\"999\" HEIGHT=\"99\">"),
            "{alto}"
        );
        assert!(alto.contains("<String CONTENT=\"Hello\" HPOS=\"0\" VPOS=\"0\""), "{alto}");
        assert!(alto.contains("<SP HPOS="), "{alto}");
        assert!(alto.contains("<Illustration ID=\"block_1_2\" TAGREFS=\"tag_2\""), "{alto}");
        assert!(alto.contains("<Page ID=\"page_2\" PHYSICAL_IMG_NR=\"2\" WIDTH=\"10\" HEIGHT=\"20\">"), "{alto}");
    }
}
