//! Rendering the shared test PDFs (`../shared/pdfs`).

use dsocr_pdf::{CjkFont, DEFAULT_DPI, PdfDocument, PdfError};

fn pdfs(test: &str) -> Option<std::path::PathBuf> {
    let dir = dsocr_testdata::shared_root().join("pdfs");
    if dir.join("booktabs.pdf").is_file() {
        return Some(dir);
    }
    dsocr_testdata::skip(test, &format!("test PDFs not found at {} (set DSOCR_SHARED_DIR)", dir.display()));
    if std::env::var_os("DSOCR_REQUIRE_PARITY").is_some() {
        panic!("{test}: test PDFs missing and DSOCR_REQUIRE_PARITY is set");
    }
    None
}

fn ink(img: &image::RgbImage) -> usize {
    img.pixels().filter(|p| p.0.iter().any(|&c| c < 128)).count()
}

#[test]
fn pages_render_at_144_dpi_with_rounded_sizes() {
    let Some(dir) = pdfs("pages_render_at_144_dpi_with_rounded_sizes") else { return };
    let doc = PdfDocument::open(dir.join("acm-sample-sigconf.pdf")).unwrap();
    assert_eq!(doc.page_count(), 6);
    let page = doc.render_page(0, DEFAULT_DPI).unwrap();
    // US Letter 612×792 pt at 2× → 1224×1584.
    assert_eq!(page.dimensions(), (1224, 1584));
    assert!(ink(&page) > 10_000, "the page has text");
    let all = doc.render_pages(&[0, 1, 2], 72.0);
    assert_eq!(all.len(), 3);
    assert!(all.iter().all(|r| r.as_ref().is_ok_and(|p| p.dimensions() == (612, 792))));
    assert!(matches!(doc.render_page(6, 144.0), Err(PdfError::PageRange(_))));
}

#[test]
fn scanned_and_rotated_pages_render() {
    let Some(dir) = pdfs("scanned_and_rotated_pages_render") else { return };
    for f in ["ocrmypdf-c03-29.pdf", "ocrmypdf-rotated_skew.pdf", "plarray-ja.pdf"] {
        let doc = PdfDocument::open(dir.join(f)).unwrap();
        let page = doc.render_page(0, 72.0).unwrap();
        assert!(ink(&page) > 1000, "{f} renders something");
    }
}

#[test]
fn encrypted_pdfs_need_the_right_password() {
    let Some(dir) = pdfs("encrypted_pdfs_need_the_right_password") else { return };
    let empty = PdfDocument::open(dir.join("enc-aes256-emptyuser.pdf")).unwrap();
    assert_eq!(empty.page_count(), 7);
    let locked = dir.join("enc-aes256-userpw.pdf");
    let e = PdfDocument::open(&locked).unwrap_err();
    assert!(matches!(e, PdfError::PasswordRequired { .. }), "{e}");
    assert!(e.to_string().contains("--password"));
    let e = PdfDocument::open_with_password(&locked, Some("wrong")).unwrap_err();
    assert!(matches!(e, PdfError::WrongPassword { .. }), "{e}");
    let ok = PdfDocument::open_with_password(&locked, Some("secret")).unwrap();
    assert!(ink(&ok.render_page(0, 72.0).unwrap()) > 1000);
}

#[test]
fn broken_input_is_an_error_not_a_panic() {
    let e = PdfDocument::from_bytes(b"%PDF-1.4\ngarbage".to_vec(), "bad.pdf", None).unwrap_err();
    assert!(matches!(e, PdfError::Invalid { .. }), "{e}");
    assert!(e.to_string().contains("bad.pdf"));
    assert!(matches!(PdfDocument::open("/nonexistent.pdf"), Err(PdfError::Io { .. })));
}

/// A one-page PDF of `side` × `side` points, nothing drawn.
fn blank_pdf(side: i64) -> Vec<u8> {
    use lopdf::{Document, Object, Stream, dictionary};
    let mut doc = Document::with_version("1.5");
    let pages = doc.new_object_id();
    let content = doc.add_object(Stream::new(dictionary! {}, Vec::new()));
    let page = doc.add_object(dictionary! {
        "Type" => "Page", "Parent" => pages, "Contents" => content,
        "MediaBox" => vec![0.into(), 0.into(), side.into(), side.into()],
    });
    doc.objects.insert(pages, Object::Dictionary(dictionary! { "Type" => "Pages", "Kids" => vec![page.into()], "Count" => 1 }));
    let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages });
    doc.trailer.set("Root", catalog);
    let mut bytes = Vec::new();
    doc.save_to(&mut bytes).unwrap();
    bytes
}

#[test]
fn a_page_too_large_in_pixels_is_refused_before_rendering() {
    // 6,000 pt (83 inches) a side: 12,000 × 12,000 = 144 million pixels at 144 DPI (432 MB of
    // RGB), each side within the renderer's limit.
    let doc = PdfDocument::from_bytes(blank_pdf(6000), "poster.pdf", None).unwrap();
    let e = doc.render_page(0, DEFAULT_DPI).unwrap_err().to_string();
    assert!(e.contains("12000×12000") && e.contains("100 million") && e.contains("--dpi"), "{e}");
    assert_eq!(doc.render_page(0, 36.0).unwrap().dimensions(), (3000, 3000));
}

#[test]
fn a_cjk_font_that_is_missing_or_not_a_font_is_refused() {
    let dir = std::env::temp_dir().join(format!("dsocr-cjk-font-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = dir.join("notes.txt");
    std::fs::write(&text, "not a font").unwrap();
    let e = CjkFont::load(&text).unwrap_err();
    assert!(matches!(e, PdfError::Font(_)), "{e:?}");
    assert!(e.to_string().contains("notes.txt") && e.to_string().contains("NotoSansCJK"), "{e}");
    let e = CjkFont::load(dir.join("absent.ttc")).unwrap_err();
    assert!(matches!(e, PdfError::Io { .. }), "{e:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A TrueType font on the machine (CI installs fonts-dejavu-core).
fn some_truetype_font(test: &str) -> Option<std::path::PathBuf> {
    let found = [
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
        "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    ]
    .into_iter()
    .map(std::path::PathBuf::from)
    .find(|p| p.is_file());
    if found.is_none() {
        dsocr_testdata::skip(test, "no DejaVuSans.ttf installed (apt install fonts-dejavu-core)");
        if std::env::var_os("DSOCR_REQUIRE_PARITY").is_some() {
            panic!("{test}: no TrueType font and DSOCR_REQUIRE_PARITY is set");
        }
    }
    found
}

#[test]
fn a_given_cjk_font_serves_the_cjk_text_a_pdf_does_not_embed() {
    let test = "a_given_cjk_font_serves_the_cjk_text_a_pdf_does_not_embed";
    let Some(dir) = pdfs(test) else { return };
    let Some(font) = some_truetype_font(test) else { return };
    let font = CjkFont::load(&font).unwrap();
    let path = dir.join("synthetic-table-cjk-nonembedded.pdf");
    if CjkFont::system().is_none() {
        // No Noto CJK here (as on CI): without a font given, the page with CJK text lacks one.
        let bare = PdfDocument::open(&path).unwrap();
        for index in 0..bare.page_count() {
            bare.render_page(index, 72.0).unwrap();
        }
        assert!(bare.font_report().pages_missing_cjk_font.contains(&1), "{:?}", bare.font_report());
    }
    let doc = PdfDocument::open(&path).unwrap().with_cjk_font(font);
    let pages: Vec<_> = (0..doc.page_count()).map(|index| doc.render_page(index, 72.0).unwrap()).collect();
    // The single font's glyphs (or its boxes for characters it lacks) are drawn where the
    // standard-font fallback drew less: 14,047 dark pixels against 10,366 on page 1 (DejaVu Sans).
    let bare = PdfDocument::open(&path).unwrap().render_page(0, 72.0).unwrap();
    assert!(ink(&pages[0]) > ink(&bare) + 2_000, "{} vs {}", ink(&pages[0]), ink(&bare));
    // The given font answered every CJK fallback: no page is reported as missing one (without
    // it, on a machine with no Noto CJK installed, page 1 is: checked above).
    assert!(doc.font_report().pages_missing_cjk_font.is_empty(), "{:?}", doc.font_report());
}
