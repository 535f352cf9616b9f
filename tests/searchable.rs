//! Searchable PDFs from real PDFs (`../shared/pdfs`) and fixed regions (no model needed), checked
//! with the tools people use: `qpdf --check` accepts the file, poppler's `pdftotext` finds the
//! text (Chinese included) and `pdftotext -bbox` puts the words inside their regions, the pages
//! render exactly as before (the layer is invisible) and PDFium opens and renders them too
//! (with `DSOCR_PDFIUM_LIBRARY`), and an unencrypted input's bytes are kept with the layer
//! appended as an incremental update.
//!
//! Needs `qpdf` and poppler-utils (`.ci/run` installs them); without them the test is skipped with
//! a printed reason, or fails when `DSOCR_REQUIRE_CLIENTS` is set (as in CI).

use std::path::Path;
use std::process::Command;

use dsocr::pdf::PdfDocument;
use dsocr::render::{TextLayer, page_layout, searchable_pdf};
use dsocr_testdata::{shared_root, skip};

/// Two regions on the 0-999 grid: a line of Latin text and a line of Chinese.
const RAW: &str = "<|ref|>text<|/ref|><|det|>[[100, 100, 900, 160]]<|/det|>\ndsocr searchable layer check\n\n\
<|ref|>text<|/ref|><|det|>[[100, 200, 500, 260]]<|/det|>\n中文检索测试";

fn tools_present(test: &str) -> bool {
    let have = |tool: &str| Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success() || !o.stderr.is_empty());
    let missing: Vec<&str> = ["qpdf", "pdftotext"].into_iter().filter(|t| !have(t)).collect();
    if missing.is_empty() {
        return true;
    }
    let why = format!("{missing:?} not installed (Debian: qpdf, poppler-utils)");
    assert!(std::env::var_os("DSOCR_REQUIRE_CLIENTS").is_none(), "{test}: {why}, and DSOCR_REQUIRE_CLIENTS is set");
    skip(test, &why);
    false
}

/// Whether `test` can run: `../shared/pdfs` and the tools are there (else skipped with the
/// reason, or failed where CI requires them).
fn ready(test: &str) -> bool {
    if !shared_root().join("pdfs").is_dir() {
        assert!(std::env::var_os("DSOCR_REQUIRE_PARITY").is_none(), "{test}: no ../shared/pdfs");
        skip(test, "no ../shared/pdfs");
        return false;
    }
    tools_present(test)
}

fn run(tool: &str, args: &[&str]) -> String {
    let out = Command::new(tool).args(args).output().unwrap_or_else(|e| panic!("{tool}: {e}"));
    assert!(out.status.success(), "{tool} {args:?}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `file` with the layer on its first page; returns the written path and the input's bytes.
fn layered(file: &str, password: Option<&str>, dir: &Path) -> (std::path::PathBuf, Vec<u8>, bool) {
    let path = shared_root().join("pdfs").join(file);
    let pdf = PdfDocument::open_with_password(&path, password).unwrap();
    let image = pdf.render_page(0, 72.0).unwrap();
    let layout = page_layout(RAW, image.width(), image.height());
    let layer = TextLayer { layout: &layout, pixel_to_user: pdf.pixel_to_user(0, 72.0).unwrap() };
    let out = searchable_pdf(pdf.bytes(), password, &[(0, layer)]).unwrap();
    let written = dir.join(file.replace(".pdf", "_searchable.pdf"));
    std::fs::write(&written, &out.bytes).unwrap();
    // Invisible: the page renders as before.
    let again = PdfDocument::open(&written).unwrap().render_page(0, 72.0).unwrap();
    assert!(again == image, "{file}: the searchable page renders differently");
    if let Some(library) = std::env::var_os("DSOCR_PDFIUM_LIBRARY").filter(|_| cfg!(feature = "pdfium")) {
        let pdfium = dsocr::pdf::Renderer::Pdfium { library: Some(library.into()) };
        let doc = PdfDocument::open(&written).unwrap().with_renderer(pdfium).unwrap();
        assert_eq!(doc.render_page(0, 72.0).unwrap().dimensions(), image.dimensions(), "{file}: PDFium reads the searchable copy");
    }
    (written, pdf.bytes().to_vec(), out.decrypted)
}

#[test]
fn pdf_inputs_keep_their_pages_and_gain_a_findable_text_layer() {
    if !ready("pdf_inputs_keep_their_pages_and_gain_a_findable_text_layer") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("dsocr-searchable-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // A scan without text, a typeset paper, a rotated page, Japanese with embedded fonts.
    for file in ["ocrmypdf-c03-29.pdf", "acm-sample-sigconf.pdf", "ocrmypdf-rotated_skew.pdf", "plarray-ja.pdf"] {
        let (written, input, decrypted) = layered(file, None, &dir);
        let w = written.to_str().unwrap();
        assert!(!decrypted);
        let output = std::fs::read(&written).unwrap();
        assert!(output.starts_with(&input), "{file}: the input's bytes are kept (incremental update)");
        assert!(output.len() - input.len() < 64 << 10, "{file}: the layer adds {} bytes", output.len() - input.len());
        run("qpdf", &["--check", w]);
        let text = run("pdftotext", &["-f", "1", "-l", "1", w, "-"]);
        let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(flat.contains("dsocr searchable layer check"), "{file}: {flat:?}");
        assert!(flat.contains("中文检索测试"), "{file}: {flat:?}");
        if file != "ocrmypdf-rotated_skew.pdf" {
            // pdftotext -bbox: each word inside its region (points = pixels at 72 DPI), unrotated pages.
            let bbox = run("pdftotext", &["-bbox", "-f", "1", "-l", "1", w, "-"]);
            let page = PdfDocument::open(&written).unwrap().page_pixels(0, 72.0).unwrap();
            let region = [
                100.0 / 999.0 * f64::from(page.0),
                100.0 / 999.0 * f64::from(page.1),
                900.0 / 999.0 * f64::from(page.0),
                160.0 / 999.0 * f64::from(page.1),
            ];
            let word = bbox.lines().find(|l| l.contains(">searchable<")).unwrap_or_else(|| panic!("{file}: no word box in {bbox}"));
            let coord = |k: &str| -> f64 {
                let at = word.find(&format!("{k}=\"")).unwrap() + k.len() + 2;
                word[at..].split('"').next().unwrap().parse().unwrap()
            };
            let (cx, cy) = ((coord("xMin") + coord("xMax")) / 2.0, (coord("yMin") + coord("yMax")) / 2.0);
            assert!(cx > region[0] && cx < region[2] && cy > region[1] - 2.0 && cy < region[3] + 2.0, "{file}: {word} outside {region:?}");
        }
    }
    // An encrypted input (with its password) comes out decrypted, and says so.
    let (written, _, decrypted) = layered("enc-aes256-userpw.pdf", Some("secret"), &dir);
    assert!(decrypted);
    run("qpdf", &["--check", written.to_str().unwrap()]);
    let text = run("pdftotext", &["-f", "1", "-l", "1", written.to_str().unwrap(), "-"]);
    assert!(text.split_whitespace().collect::<Vec<_>>().join(" ").contains("dsocr searchable layer check"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The layers of a many-page document: each page's text is found on that page and in page order,
/// and a page given no layer (as `dsocr ocr --searchable` leaves a page whose OCR failed) keeps
/// exactly its own text and rendering.
#[test]
fn each_layer_lands_on_its_own_page_and_a_page_without_one_is_kept() {
    if !ready("each_layer_lands_on_its_own_page_and_a_page_without_one_is_kept") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("dsocr-searchable-pages-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = shared_root().join("pdfs").join("acm-sample-sigconf.pdf");
    let pdf = PdfDocument::open(&input).unwrap();
    let pages = pdf.page_count();
    assert!(pages >= 4, "the sample has {pages} pages");
    // Pages 1, 3 and 4 (from 1) get a layer naming them; page 2 failed.
    let layered = [(0usize, "dsocrmarkerpageone"), (2, "dsocrmarkerpagethree"), (3, "dsocrmarkerpagefour")];
    let images: Vec<_> = (0..pages).map(|p| pdf.render_page(p, 72.0).unwrap()).collect();
    let layouts: Vec<_> = layered
        .iter()
        .map(|&(p, marker)| {
            page_layout(
                &format!("<|ref|>text<|/ref|><|det|>[[100, 100, 900, 160]]<|/det|>\n{marker}"),
                images[p].width(),
                images[p].height(),
            )
        })
        .collect();
    let layers: Vec<_> = layered
        .iter()
        .zip(&layouts)
        .map(|(&(p, _), layout)| (p, TextLayer { layout, pixel_to_user: pdf.pixel_to_user(p, 72.0).unwrap() }))
        .collect();
    let out = searchable_pdf(pdf.bytes(), None, &layers).unwrap();
    let written = dir.join("acm_searchable.pdf");
    std::fs::write(&written, &out.bytes).unwrap();
    let (w, original) = (written.to_str().unwrap(), input.to_str().unwrap());
    run("qpdf", &["--check", w]);
    let page_text = |file: &str, page: usize| {
        let p = (page + 1).to_string();
        run("pdftotext", &["-f", &p, "-l", &p, file, "-"]).split_whitespace().collect::<Vec<_>>().join(" ")
    };
    let again = PdfDocument::open(&written).unwrap();
    assert_eq!(again.page_count(), pages);
    for (page, image) in images.iter().enumerate() {
        let text = page_text(w, page);
        for &(p, marker) in &layered {
            assert_eq!(text.contains(marker), p == page, "page {}: {marker} {}", page + 1, if p == page { "missing" } else { "misplaced" });
        }
        if !layered.iter().any(|&(p, _)| p == page) {
            assert_eq!(text, page_text(original, page), "page {} (no layer) changed its text", page + 1);
        }
        assert!(again.render_page(page, 72.0).unwrap() == *image, "page {} renders differently", page + 1);
    }
    // In reading order: the whole document's text meets the markers page by page.
    let all = run("pdftotext", &[w, "-"]);
    let at: Vec<usize> = layered.iter().map(|&(_, m)| all.find(m).unwrap_or_else(|| panic!("{m} not in the document text"))).collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "markers out of page order: {at:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
