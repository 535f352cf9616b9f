//! hOCR and ALTO from fixed model output (no model needed), read back by the tools archive
//! pipelines run: OCRmyPDF's hOCR parser and its renderer (a text-only PDF whose text pdfminer
//! extracts), and lxml for ALTO (`tests/formats/check_formats.py`).
//!
//! Needs a Python with `ocrmypdf` (which brings lxml and pdfminer), named by `DSOCR_CLIENT_PYTHON`
//! (`.ci/run` installs it). With `DSOCR_ALTO_XSD` naming a local copy of the ALTO v4 schema, the
//! ALTO output is also validated against it (docs/formats.md says how). Without it the test is skipped with a printed reason, or fails when
//! `DSOCR_REQUIRE_CLIENTS` is set (as in CI).

use std::path::PathBuf;
use std::process::Command;

use dsocr_render::{HocrPage, page_layout, to_alto, to_hocr};

/// A page as the model writes it: a title, a paragraph of two lines, a Chinese line, a figure and
/// a table; 1,000 × 800 pixels.
const RAW: &str = "<|ref|>title<|/ref|><|det|>[[100, 50, 900, 120]]<|/det|>\n# Annual Report & Accounts\n\n\
<|ref|>text<|/ref|><|det|>[[100, 150, 900, 300]]<|/det|>\nRevenue grew strongly\nacross every region\n\n\
<|ref|>text<|/ref|><|det|>[[100, 320, 900, 380]]<|/det|>\n年度报告\n\n\
<|ref|>image<|/ref|><|det|>[[100, 400, 500, 700]]<|/det|>\n\n\
<|ref|>table<|/ref|><|det|>[[520, 400, 900, 700]]<|/det|>\n<table><tr><td>Q1</td><td>10</td></tr><tr><td>Q2</td><td>12</td></tr></table>";

#[test]
fn ocrmypdf_reads_the_hocr_and_lxml_the_alto() {
    const TEST: &str = "ocrmypdf_reads_the_hocr_and_lxml_the_alto";
    let python = match std::env::var_os("DSOCR_CLIENT_PYTHON") {
        Some(py) => PathBuf::from(py),
        None => {
            let why = "DSOCR_CLIENT_PYTHON is not set (a python with `ocrmypdf`; .ci/run makes one)";
            assert!(std::env::var_os("DSOCR_REQUIRE_CLIENTS").is_none(), "{TEST}: {why}, and DSOCR_REQUIRE_CLIENTS is set");
            dsocr_testdata::skip(TEST, why);
            return;
        }
    };
    let layout = page_layout(RAW, 1000, 800);
    let dir = std::env::temp_dir().join(format!("dsocr-formats-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (hocr, alto, pdf) = (dir.join("page.hocr"), dir.join("page_alto.xml"), dir.join("page.pdf"));
    std::fs::write(&hocr, to_hocr(&[HocrPage { layout: &layout, image: "page.png" }], "page")).unwrap();
    std::fs::write(&alto, to_alto(&[&layout], "page.png")).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/formats/check_formats.py");
    let out = Command::new(&python).arg(script).arg(&hocr).arg(&alto).arg(&pdf).output().expect("run python");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "check_formats.py failed: {stderr}");
    let found: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON from check_formats.py");
    let _ = std::fs::remove_dir_all(&dir);

    // OCRmyPDF sees the page and every word, in order, inside the page.
    assert_eq!(found["page_bbox"], serde_json::json!([0.0, 0.0, 1000.0, 800.0]));
    let words: Vec<&str> = found["words"].as_array().unwrap().iter().map(|w| w["text"].as_str().unwrap()).collect();
    assert_eq!(
        words,
        [
            "Annual",
            "Report",
            "&",
            "Accounts",
            "Revenue",
            "grew",
            "strongly",
            "across",
            "every",
            "region",
            "年度报告",
            "Q1",
            "10",
            "Q2",
            "12"
        ]
    );
    for w in found["words"].as_array().unwrap() {
        let b: Vec<f64> = w["bbox"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        assert!(b[0] < b[2] && b[1] < b[3] && b[2] <= 1000.0 && b[3] <= 800.0, "{w}");
    }
    // Its renderer writes a text layer whose text comes back, the Chinese line included.
    // (pdfminer puts a space around every placed word: compare with runs of whitespace as one.)
    let text = found["pdf_text"].as_str().unwrap().split_whitespace().collect::<Vec<_>>().join(" ");
    for phrase in ["Annual Report & Accounts", "Revenue grew strongly", "across every region", "年度报告", "Q1"] {
        assert!(text.contains(phrase), "{phrase:?} not in the rendered PDF's text: {text:?}");
    }
    // ALTO: one page, four text blocks with their labels, the figure as an Illustration.
    assert_eq!(found["alto_pages"], 1);
    assert_eq!(found["illustrations"], 1);
    let blocks = found["alto_blocks"].as_array().unwrap();
    let tags = &found["alto_tags"];
    let labels: Vec<&str> = blocks.iter().map(|b| tags[b["tag"].as_str().unwrap()].as_str().unwrap()).collect();
    assert_eq!(labels, ["title", "text", "text", "table"]);
    assert_eq!(blocks[1]["strings"], serde_json::json!(["Revenue", "grew", "strongly", "across", "every", "region"]));
    match found["alto_xsd"].as_str().unwrap() {
        "" => dsocr_testdata::skip(TEST, "ALTO schema validation: DSOCR_ALTO_XSD is not set (the rest was checked)"),
        xsd => eprintln!("{TEST}: the ALTO output is valid against {xsd}"),
    }
}
