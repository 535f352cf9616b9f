//! hayro against PDFium on every page of every shared PDF (`../shared/pdfs`): both render it, at
//! the same size, and the pictures agree up to anti-aliasing. Prints the table in
//! docs/pdf-renderers.md.
//!
//! PDFium is bound at run time from `DSOCR_PDFIUM_LIBRARY` (the PyPI wheel `pypdfium2` ships a
//! `libpdfium.so`; `.ci/run` installs it). Without it the test is skipped with a printed reason,
//! or fails when `DSOCR_REQUIRE_CLIENTS` is set (as in CI).

use dsocr_pdf::{PdfDocument, Renderer};

/// Grey levels averaged over 4×4 blocks: what is on the page, without anti-aliasing and the
/// smoothing of scaled images (where the renderers legitimately differ).
fn blocks(img: &image::RgbImage) -> Vec<f64> {
    let (w, h) = (img.width() / 4, img.height() / 4);
    let mut out = Vec::with_capacity((w * h) as usize);
    for by in 0..h {
        for bx in 0..w {
            let mut sum = 0u32;
            for y in 0..4 {
                for x in 0..4 {
                    sum += img.get_pixel(bx * 4 + x, by * 4 + y).0.iter().map(|&c| u32::from(c)).sum::<u32>();
                }
            }
            out.push(f64::from(sum) / 48.0);
        }
    }
    out
}

/// Per pixel: the mean absolute difference per channel (0-255). Per 4×4 block of grey: the share of
/// blocks differing by more than 48 (content present in one picture only).
fn difference(a: &image::RgbImage, b: &image::RgbImage) -> (f64, f64) {
    let (ga, gb) = (blocks(a), blocks(b));
    let strong = ga.iter().zip(&gb).filter(|(x, y)| (*x - *y).abs() > 48.0).count() as f64 / ga.len().max(1) as f64;
    let mean = difference_per_pixel(a, b);
    (mean, strong)
}

fn difference_per_pixel(a: &image::RgbImage, b: &image::RgbImage) -> f64 {
    let sum: u64 = a.pixels().zip(b.pixels()).flat_map(|(p, q)| p.0.into_iter().zip(q.0).map(|(x, y)| u64::from(x.abs_diff(y)))).sum();
    sum as f64 / (3.0 * f64::from(a.width() * a.height()))
}

#[test]
fn hayro_and_pdfium_agree_on_every_shared_pdf() {
    const TEST: &str = "hayro_and_pdfium_agree_on_every_shared_pdf";
    let dir = dsocr_testdata::shared_root().join("pdfs");
    if !dir.is_dir() {
        assert!(std::env::var_os("DSOCR_REQUIRE_PARITY").is_none(), "{TEST}: no {}", dir.display());
        dsocr_testdata::skip(TEST, "no ../shared/pdfs");
        return;
    }
    let Some(library) = std::env::var_os("DSOCR_PDFIUM_LIBRARY") else {
        let why = "DSOCR_PDFIUM_LIBRARY is not set (a libpdfium, e.g. from the pypdfium2 wheel; .ci/run installs one)";
        assert!(std::env::var_os("DSOCR_REQUIRE_CLIENTS").is_none(), "{TEST}: {why}, and DSOCR_REQUIRE_CLIENTS is set");
        dsocr_testdata::skip(TEST, why);
        return;
    };
    let pdfium = Renderer::Pdfium { library: Some(library.into()) };
    let mut files: Vec<_> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "pdf")).collect();
    files.sort();
    println!(
        "| file | pages | size at 72 DPI (page 1) | mean abs. difference per pixel (0-255), worst page | 4×4 blocks differing > 48 grey levels, worst page |"
    );
    println!("|---|---|---|---|---|");
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let password = name.contains("userpw").then_some("secret");
        let hayro = PdfDocument::open_with_password(&path, password).unwrap();
        let other = PdfDocument::open_with_password(&path, password).unwrap().with_renderer(pdfium.clone()).unwrap();
        let (mut worst_mean, mut worst_strong) = (0f64, 0f64);
        for page in 0..hayro.page_count() {
            let (a, b) = (hayro.render_page(page, 72.0).unwrap(), other.render_page(page, 72.0).unwrap());
            assert_eq!(a.dimensions(), b.dimensions(), "{name} page {}", page + 1);
            let (mean, strong) = difference(&a, &b);
            worst_mean = worst_mean.max(mean);
            worst_strong = worst_strong.max(strong);
            // Same page, same place: anti-aliasing and font hinting differ, content does not.
            assert!(strong < 0.03, "{name} page {}: {:.2} % of 4×4 blocks differ (mean per pixel {mean:.2})", page + 1, 100.0 * strong);
        }
        let (w, h) = hayro.page_pixels(0, 72.0).unwrap();
        println!("| {name} | {} | {w}×{h} | {worst_mean:.2} | {:.2} % |", hayro.page_count(), 100.0 * worst_strong);
    }
}
