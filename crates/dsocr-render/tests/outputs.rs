//! Output files from a grounding answer: boxes, crops, markdown, CSV, JSON and the layouts PDF.

use dsocr_render::{
    JPEG_MAX_SIDE, PageOutputs, PageText, write_document_files, write_document_outputs, write_image_outputs, write_layouts_pdf,
};
use image::{Rgb, RgbImage};

const ANSWER: &str = "<|ref|>title<|/ref|><|det|>[[100, 50, 900, 120]]<|/det|>\n# Report\n\n\
<|ref|>image<|/ref|><|det|>[[100, 200, 500, 600]]<|/det|>\n\n\
<|ref|>table<|/ref|><|det|>[[100, 650, 900, 900]]<|/det|>\n<table><tr><td>a</td><td>b</td></tr><tr><td>1</td><td>2</td></tr></table>\n\n\
<|ref|>text<|/ref|><|det|>[[oops]]<|/det|>\nbroken box";

fn page() -> RgbImage {
    RgbImage::from_fn(400, 500, |x, y| Rgb([(x % 256) as u8, (y % 256) as u8, 200]))
}

fn tmp(tag: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("dsocr-render-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    p
}

#[test]
fn image_outputs_match_the_official_layout() {
    let dir = tmp("image");
    let p = PageText { image: page(), raw: format!("{ANSWER}<｜end▁of▁sentence｜>"), stopped_on_eos: true };
    let written = write_image_outputs(&dir, &p, true, serde_json::json!({"k": 1})).unwrap();
    for f in ["result_ori.mmd", "result.mmd", "result_with_boxes.jpg", "images/0.jpg", "result-t1.csv", "result.json"] {
        assert!(dir.join(f).is_file(), "missing {f}: {:?}", written.files);
    }
    let md = std::fs::read_to_string(dir.join("result.mmd")).unwrap();
    assert!(md.contains("![](images/0.jpg)") && md.contains("# Report") && !md.contains("<|ref|>title"), "{md}");
    assert!(!std::fs::read_to_string(dir.join("result_ori.mmd")).unwrap().contains("end▁of▁sentence"));
    // The crop is the figure box in pixels: x 100/999·400 → 40 .. 200, y 200/999·500 → 100 .. 300.
    let crop = image::open(dir.join("images/0.jpg")).unwrap();
    assert_eq!((crop.width(), crop.height()), (160, 200));
    assert_eq!(std::fs::read_to_string(dir.join("result-t1.csv")).unwrap(), "a,b\n1,2\n");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("result.json")).unwrap()).unwrap();
    let regions = json["pages"][0]["regions"].as_array().unwrap();
    assert_eq!(regions.len(), 3, "the malformed box is skipped");
    assert_eq!(regions[0]["bbox"], serde_json::json!([40, 25, 360, 60]));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn document_outputs_split_pages_and_skip_repeats() {
    let dir = tmp("doc");
    let pages = vec![
        PageText { image: page(), raw: ANSWER.to_string(), stopped_on_eos: true },
        PageText { image: page(), raw: "loop loop loop".into(), stopped_on_eos: false },
        PageText { image: page(), raw: "<|ref|>image<|/ref|><|det|>[[0,0,999,999]]<|/det|>".into(), stopped_on_eos: true },
    ];
    let written = write_document_outputs(&dir, "paper", &pages, true, true, 144.0, serde_json::Value::Null).unwrap();
    assert_eq!(written.skipped_pages, vec![1]);
    for f in ["paper.mmd", "paper_det.mmd", "paper_layouts.pdf", "paper.json", "images/0_0.jpg", "images/2_0.jpg", "paper-p1-t1.csv"] {
        assert!(dir.join(f).is_file(), "missing {f}");
    }
    let mmd = std::fs::read_to_string(dir.join("paper.mmd")).unwrap();
    assert_eq!(mmd.matches("<--- Page Split --->").count(), 2);
    assert!(!mmd.contains("loop"));
    assert!(mmd.contains("![](images/2_0.jpg)"));
    let pdf = lopdf::Document::load(dir.join("paper_layouts.pdf")).unwrap();
    assert_eq!(pdf.get_pages().len(), 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Page outputs made one at a time (as `dsocr ocr` makes them while other pages are still being
/// read) give the same files, byte for byte, as the whole document written at once.
#[test]
fn page_outputs_made_ahead_give_the_same_files() {
    let pages: Vec<PageText> = ["", "loop loop", ANSWER]
        .iter()
        .enumerate()
        .map(|(i, raw)| PageText { image: page(), raw: raw.to_string(), stopped_on_eos: i != 1 })
        .collect();
    let (at_once, ahead) = (tmp("doc-at-once"), tmp("doc-ahead"));
    let a = write_document_outputs(&at_once, "paper", &pages, true, true, 144.0, serde_json::Value::Null).unwrap();
    // Pages 0 and 2 made ahead, page 1 left to the writer.
    let done: Vec<Option<PageOutputs>> =
        pages.iter().enumerate().map(|(i, p)| (i != 1).then(|| PageOutputs::make(i, p).unwrap())).collect();
    let b = write_document_files(&ahead, "paper", &pages, done, true, true, 144.0, serde_json::Value::Null).unwrap();
    assert_eq!(a.skipped_pages, b.skipped_pages);
    assert_eq!(a.files.len(), b.files.len());
    for (fa, fb) in a.files.iter().zip(&b.files) {
        assert_eq!(fa.strip_prefix(&at_once).unwrap(), fb.strip_prefix(&ahead).unwrap());
        assert_eq!(std::fs::read(fa).unwrap(), std::fs::read(fb).unwrap(), "{}", fa.display());
    }
    std::fs::remove_dir_all(&at_once).unwrap();
    std::fs::remove_dir_all(&ahead).unwrap();
}

#[test]
fn an_image_longer_than_a_jpeg_can_hold_still_gets_every_output() {
    // 70,000 × 6 pixels: within the preprocessor's pixel limit, past JPEG's 65,535 a side.
    let long = RgbImage::from_fn(70_000, 6, |x, _| Rgb([(x % 256) as u8, 0, 0]));
    let dir = tmp("long");
    let p = PageText { image: long.clone(), raw: ANSWER.to_string(), stopped_on_eos: false };
    write_image_outputs(&dir, &p, false, serde_json::json!({})).unwrap();
    let boxes = image::open(dir.join("result_with_boxes.jpg")).unwrap();
    assert_eq!((boxes.width(), boxes.height()), (JPEG_MAX_SIDE, 6), "scaled down to fit, aspect kept");
    assert!(dir.join("result.json").is_file() && dir.join("images/0.jpg").is_file());
    // The layouts PDF keeps the page's size and holds the smaller JPEG.
    let pdf = dir.join("long_layouts.pdf");
    write_layouts_pdf(&pdf, &[long], 72.0).unwrap();
    let doc = lopdf::Document::load(&pdf).unwrap();
    let page = doc.get_pages().into_values().next().unwrap();
    let media_box = doc.get_dictionary(page).unwrap().get(b"MediaBox").unwrap().as_array().unwrap();
    assert_eq!(media_box[2].as_float().unwrap(), 70_000.0);
    let _ = std::fs::remove_dir_all(&dir);
}
