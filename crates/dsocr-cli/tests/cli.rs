//! The `dsocr` binary end to end on the small parity model: parity on every shared case, OCR of a
//! real PDF and an image writing every output file, stdin, and a clear error (never a panic) for
//! each kind of bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use dsocr_testdata::{parity, parity_all, parity_ocr2, shared_root};

mod common;
use common::TempDir;

fn dsocr(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dsocr")).args(args).env("NO_COLOR", "1").output().expect("run dsocr")
}

/// `dsocr ocr INPUT… --model MODEL EXTRA…`.
fn ocr(inputs: &[&Path], model: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["ocr"];
    args.extend(inputs.iter().map(|i| i.to_str().expect("a UTF-8 path")));
    args.extend(["--model", model.to_str().expect("a UTF-8 path")]);
    args.extend_from_slice(extra);
    dsocr(&args)
}

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

fn assert_clean_failure(o: &Output, expect_in_stderr: &str) {
    let (_, err) = text(o);
    assert!(!o.status.success(), "expected failure, stderr: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    assert!(err.contains(expect_in_stderr), "stderr should mention {expect_in_stderr:?}: {err}");
}

/// `dsocr parity` on every recorded case of both checkpoints: the model is chosen from each
/// checkpoint's `config.json`.
#[test]
fn parity_passes_on_every_shared_case() {
    for p in parity_all("parity_passes_on_every_shared_case") {
        let o = dsocr(&["parity", "--model", p.model_dir().to_str().unwrap(), "--case", p.root.join("cases").to_str().unwrap()]);
        let (out, err) = text(&o);
        assert!(o.status.success(), "parity failed:\n{out}\n{err}");
        let passes = out.lines().filter(|l| l.starts_with("case ") && l.ends_with("PASS")).count();
        assert_eq!(passes, p.cases().len(), "{out}");
        assert!(out.contains("vision_embeds") && out.contains("prefill_logits_last") && out.contains("greedy tokens matched"), "{out}");
    }
}

/// A DeepSeek-OCR 2 checkpoint through `dsocr ocr` with the default options: its dynamic mode
/// (1024 + 768 crops, no newline tokens) and the document prompt give the recorded prompt length.
#[test]
fn ocr2_checkpoint_runs_with_the_default_options() {
    let Some(p) = parity_ocr2("ocr2_checkpoint_runs_with_the_default_options") else { return };
    let case = p.cases().into_iter().find(|c| c.name == "doc_dynamic").expect("the doc_dynamic case");
    let image = case.input_image();
    let model = p.model_dir();
    let o = ocr(&[&image], &model, &["--max-new-tokens", "4", "--json"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "ocr failed: {err}");
    let json: serde_json::Value = serde_json::from_str(out.lines().next().unwrap_or_default()).expect("one JSON line");
    assert_eq!(json["result"]["prompt_tokens"], case.json["prompt_tokens"], "{out}");
    // A mode DeepSeek-OCR 2 does not have is refused by name, without a panic.
    let o = ocr(&[&image], &model, &["--mode", "tiny"]);
    assert_clean_failure(&o, "DeepSeek-OCR 2 has no tiny mode");
}

#[test]
fn ocr_of_a_pdf_writes_every_document_file() {
    let Some(p) = parity("ocr_of_a_pdf_writes_every_document_file") else { return };
    let pdf = shared_root().join("pdfs/ocrmypdf-c03-29.pdf");
    let out = TempDir::new("pdf");
    let o = dsocr(&[
        "ocr",
        pdf.to_str().unwrap(),
        "--model",
        p.model_dir().to_str().unwrap(),
        "--out",
        out.0.to_str().unwrap(),
        "--max-new-tokens",
        "6",
        "--dpi",
        "72",
        "--csv",
        "--timings",
    ]);
    let (_, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let dir = out.0.join("ocrmypdf-c03-29");
    for f in ["ocrmypdf-c03-29.mmd", "ocrmypdf-c03-29_det.mmd", "ocrmypdf-c03-29_layouts.pdf", "ocrmypdf-c03-29.json"] {
        assert!(dir.join(f).is_file(), "missing {f}; stderr: {err}");
    }
    let det = std::fs::read_to_string(dir.join("ocrmypdf-c03-29_det.mmd")).unwrap();
    assert!(det.contains("<--- Page Split --->"));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("ocrmypdf-c03-29.json")).unwrap()).unwrap();
    assert_eq!(json["pages"].as_array().unwrap().len(), 1);
    assert!(err.contains("prefill"), "timings on stderr: {err}");
}

/// `--format-per-page`: one hOCR and one ALTO file per page, named and numbered as the page is in
/// the input (pages 2 and 3 of the PDF), each holding that page alone; no whole-document file.
#[test]
fn formats_per_page_are_named_and_numbered_as_in_the_input() {
    let Some(p) = parity("formats_per_page_are_named_and_numbered_as_in_the_input") else { return };
    let pdf = shared_root().join("pdfs/booktabs.pdf");
    let out = TempDir::new("per-page");
    let (model, dir_arg) = (p.model_dir(), out.0.to_str().unwrap().to_string());
    let mut args = vec!["ocr", pdf.to_str().unwrap(), "--model", model.to_str().unwrap(), "--pages", "2-3", "--dpi", "50"];
    args.extend(["--mode", "tiny", "--max-new-tokens", "3", "--format", "hocr,alto", "--format-per-page"]);
    // Without --out there is nowhere to put the files: clap refuses it, naming the flag.
    let o = dsocr(&args);
    assert!(!o.status.success() && text(&o).1.contains("--out"), "{}", text(&o).1);
    args.extend(["--out", &dir_arg]);
    let o = dsocr(&args);
    assert!(o.status.success(), "{}", text(&o).1);
    let dir = out.0.join("booktabs");
    assert!(!dir.join("booktabs.hocr").exists() && !dir.join("booktabs_alto.xml").exists());
    for page in [2, 3] {
        let hocr = std::fs::read_to_string(dir.join(format!("booktabs_page000{page}.hocr"))).unwrap();
        assert_eq!(hocr.matches("class=\"ocr_page\"").count(), 1, "{hocr}");
        assert!(hocr.contains(&format!("booktabs.pdf, page {page}")) && hocr.contains(&format!("ppageno {}", page - 1)), "{hocr}");
        let alto = std::fs::read_to_string(dir.join(format!("booktabs_page000{page}_alto.xml"))).unwrap();
        assert_eq!(alto.matches("<Page ID=").count(), 1, "{alto}");
        assert!(alto.contains(&format!("PHYSICAL_IMG_NR=\"{page}\"")), "{alto}");
    }
}

/// Four pages of a real PDF through one engine (continuous batching, two in flight): every
/// page's markdown and box files are written, in page order, and the hOCR and ALTO files hold the
/// four pages at their rendered size.
#[test]
fn ocr_of_a_multi_page_pdf_writes_every_page() {
    let Some(p) = parity("ocr_of_a_multi_page_pdf_writes_every_page") else { return };
    let pdf = shared_root().join("pdfs/booktabs.pdf");
    let out = TempDir::new("pages");
    let o = dsocr(&[
        "ocr",
        pdf.to_str().unwrap(),
        "--model",
        p.model_dir().to_str().unwrap(),
        "--out",
        out.0.to_str().unwrap(),
        "--pages",
        "1-4",
        "--dpi",
        "50",
        "--mode",
        "tiny",
        "--max-new-tokens",
        "5",
        "--max-seqs",
        "2",
        "--json",
        "--format",
        "hocr,alto",
    ]);
    let (stdout, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let dir = out.0.join("booktabs");
    let hocr = std::fs::read_to_string(dir.join("booktabs.hocr")).unwrap();
    assert_eq!(hocr.matches("class=\"ocr_page\"").count(), 4, "{hocr}");
    assert!(hocr.contains("booktabs.pdf, page 4"), "{hocr}");
    let alto = std::fs::read_to_string(dir.join("booktabs_alto.xml")).unwrap();
    assert_eq!(alto.matches("<Page ID=").count(), 4, "{alto}");
    assert!(alto.contains("PHYSICAL_IMG_NR=\"4\""), "{alto}");
    let mmd = std::fs::read_to_string(dir.join("booktabs_det.mmd")).unwrap();
    assert_eq!(mmd.matches("<--- Page Split --->").count(), 4, "{mmd}");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("booktabs.json")).unwrap()).unwrap();
    assert_eq!(json["pages"].as_array().unwrap().len(), 4, "{json}");
    assert!(dir.join("booktabs_layouts.pdf").is_file());
    let printed: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let pages = printed["pages"].as_array().unwrap();
    assert_eq!(pages.len(), 4);
    for page in pages {
        let tokens = page["tokens"].as_array().unwrap().len();
        assert!((1..=5).contains(&tokens) || page["stopped_on_eos"] == true, "{page}");
        assert!(page["prompt_tokens"].as_u64().unwrap() > 73, "a tiny-mode prompt: {page}");
    }
}

/// Page images past `--keep-images-mb` are not held while pages run but rendered again when
/// their input is written: the output files are the same as with every image held (whose pages'
/// files are made on the writer thread as each page comes back, the others' after the last page).
#[test]
fn pages_not_kept_in_memory_are_rendered_again_for_their_files() {
    let Some(p) = parity("pages_not_kept_in_memory_are_rendered_again_for_their_files") else { return };
    let pdf = shared_root().join("pdfs/booktabs.pdf");
    let out = TempDir::new("kept");
    let run = |dir: &str, keep_mb: &str| {
        let o = dsocr(&[
            "ocr",
            pdf.to_str().unwrap(),
            "--model",
            p.model_dir().to_str().unwrap(),
            "--out",
            out.0.join(dir).to_str().unwrap(),
            "--pages",
            "1-3",
            "--dpi",
            "40",
            "--mode",
            "tiny",
            "--max-new-tokens",
            "3",
            "--keep-images-mb",
            keep_mb,
        ]);
        assert!(o.status.success(), "{}", text(&o).1);
        let mut files: Vec<(String, Vec<u8>)> = walk(&out.0.join(dir).join("booktabs"))
            .into_iter()
            // The JSON records timings.
            .filter(|(name, _)| !name.ends_with(".json"))
            .collect();
        files.sort();
        files
    };
    let held = run("held", "2048");
    let rendered_again = run("again", "0");
    assert!(
        held.iter().any(|(name, _)| name.ends_with("_layouts.pdf")),
        "the layout PDF draws every page: {:?}",
        held.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    assert_eq!(held.len(), rendered_again.len());
    for ((name_a, a), (name_b, b)) in held.iter().zip(&rendered_again) {
        assert_eq!(name_a, name_b);
        assert!(a == b, "{name_a} differs when its pages are rendered again");
    }
}

/// Every file under `dir` (recursively) with its bytes, named relative to `dir`.
fn walk(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            let sub = path.file_name().unwrap().to_string_lossy().into_owned();
            files.extend(walk(&path).into_iter().map(|(name, bytes)| (format!("{sub}/{name}"), bytes)));
        } else {
            files.push((path.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&path).unwrap()));
        }
    }
    files
}

/// A directory with a link back to itself is read once, not until the system refuses.
#[cfg(unix)]
#[test]
fn a_directory_linked_into_itself_is_read_once() {
    let Some(p) = parity("a_directory_linked_into_itself_is_read_once") else { return };
    let tmp = TempDir::new("loop");
    let scans = tmp.0.join("scans");
    std::fs::create_dir_all(&scans).unwrap();
    std::fs::copy(p.cases()[0].input_image(), scans.join("page.png")).unwrap();
    std::os::unix::fs::symlink(&scans, scans.join("again")).unwrap();
    let o = dsocr(&[
        "ocr",
        scans.to_str().unwrap(),
        "--model",
        p.model_dir().to_str().unwrap(),
        "--mode",
        "tiny",
        "--max-new-tokens",
        "2",
        "--json",
    ]);
    let (stdout, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert_eq!(stdout.matches("\"source\"").count(), 1, "one page, once: {stdout}");
}

/// `--searchable` writes NAME_searchable.pdf: for a PDF, every page of the input kept (its bytes
/// too, the layer appended); for an image, one page of its size at 300 DPI.
#[test]
fn searchable_copies_of_a_pdf_and_an_image() {
    let Some(p) = parity("searchable_copies_of_a_pdf_and_an_image") else { return };
    let pdf = shared_root().join("pdfs/booktabs.pdf");
    let image = p.cases()[0].input_image();
    let out = TempDir::new("searchable");
    let model = p.model_dir();
    let o = dsocr(&[
        "ocr",
        pdf.to_str().unwrap(),
        image.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--out",
        out.0.to_str().unwrap(),
        "--pages",
        "2",
        "--dpi",
        "50",
        "--mode",
        "tiny",
        "--max-new-tokens",
        "3",
        "--searchable",
    ]);
    let (_, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let written = out.0.join("booktabs/booktabs_searchable.pdf");
    let (input, output) = (std::fs::read(&pdf).unwrap(), std::fs::read(&written).unwrap());
    assert!(output.starts_with(&input) && output.len() > input.len(), "the input's bytes, then the layer");
    assert_eq!(dsocr::pdf::PdfDocument::open(&written).unwrap().page_count(), 18, "every page kept");
    let name = image.file_stem().unwrap().to_str().unwrap();
    let page = dsocr::pdf::PdfDocument::open(out.0.join(format!("{name}/{name}_searchable.pdf"))).unwrap();
    let (w, h) = image::image_dimensions(&image).unwrap();
    assert_eq!(page.page_pixels(0, 300.0).unwrap(), (w, h), "the image at 300 DPI");
    let o = ocr(&[&image], &model, &["--searchable"]);
    assert_clean_failure(&o, "--out");
}

/// `--pdf-renderer pdfium`: a missing library is a clear error naming what to install; with the
/// library (`DSOCR_PDFIUM_LIBRARY`, as in CI) the page is read through PDFium.
#[test]
fn the_pdfium_renderer_is_chosen_by_flag() {
    let Some(p) = parity("the_pdfium_renderer_is_chosen_by_flag") else { return };
    let pdf = shared_root().join("pdfs/ocrmypdf-c03-29.pdf");
    let model = p.model_dir();
    let args = [
        "ocr",
        pdf.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--mode",
        "tiny",
        "--max-new-tokens",
        "2",
        "--pdf-renderer",
        "pdfium",
    ];
    let o = Command::new(env!("CARGO_BIN_EXE_dsocr"))
        .args(args)
        .args(["--pdfium-library", "/nonexistent/libpdfium.so"])
        .env_remove("DSOCR_PDFIUM_LIBRARY")
        .output()
        .unwrap();
    assert_clean_failure(&o, "pypdfium2");
    match std::env::var_os("DSOCR_PDFIUM_LIBRARY") {
        Some(_) => {
            let o = dsocr(&args);
            let (_, err) = text(&o);
            assert!(o.status.success(), "{err}");
        }
        None => dsocr_testdata::skip(
            "the_pdfium_renderer_is_chosen_by_flag",
            "DSOCR_PDFIUM_LIBRARY is not set: only the missing-library error was checked",
        ),
    }
}

/// `--format hocr` without `--out` prints hOCR instead of markdown; two formats need `--out`.
#[test]
fn a_format_is_printed_without_out() {
    let Some(p) = parity("a_format_is_printed_without_out") else { return };
    let case = &p.cases()[0];
    let (image, model) = (case.input_image(), p.model_dir());
    let args = ["ocr", image.to_str().unwrap(), "--model", model.to_str().unwrap(), "--max-new-tokens", "3", "--mode", "tiny"];
    let o = dsocr(&[&args[..], &["--format", "hocr"]].concat());
    let (stdout, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let size = image::image_dimensions(&image).unwrap();
    assert!(stdout.starts_with("<?xml") && stdout.contains(&format!("bbox 0 0 {} {}; ppageno 0", size.0, size.1)), "{stdout}");
    let o = dsocr(&[&args[..], &["--format", "hocr,alto"]].concat());
    assert_clean_failure(&o, "--out");
}

#[test]
fn ocr_of_an_image_writes_every_image_file_and_reads_stdin() {
    let Some(p) = parity("ocr_of_an_image_writes_every_image_file_and_reads_stdin") else { return };
    let case = &p.cases()[0];
    let model = p.model_dir();
    let out = TempDir::new("img");
    let o = dsocr(&[
        "ocr",
        case.input_image().to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--out",
        out.0.to_str().unwrap(),
        "--max-new-tokens",
        "4",
        "--mode",
        "tiny",
    ]);
    assert!(o.status.success(), "{}", text(&o).1);
    let dir = out.0.join("input");
    for f in ["result.mmd", "result_ori.mmd", "result_with_boxes.jpg", "result.json"] {
        assert!(dir.join(f).is_file(), "missing {f}");
    }
    let stdin = std::fs::File::open(case.input_image()).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_dsocr"))
        .args(["ocr", "-", "--model", model.to_str().unwrap(), "--max-new-tokens", "4", "--mode", "tiny"])
        .stdin(Stdio::from(stdin))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o).1);
    assert!(!o.stdout.is_empty(), "markdown on stdout");
}

#[test]
fn bad_inputs_give_clear_errors_without_panics() {
    let Some(p) = parity("bad_inputs_give_clear_errors_without_panics") else { return };
    let model = p.model_dir();
    let tmp = TempDir::new("bad");
    let corrupt = tmp.0.join("broken.png");
    std::fs::write(&corrupt, b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR-truncated").unwrap();
    let notes = tmp.0.join("notes.txt");
    std::fs::write(&notes, "just text").unwrap();
    let image = p.cases()[0].input_image();

    assert_clean_failure(&ocr(&[Path::new("/no/such/page.png")], &model, &[]), "/no/such/page.png");
    assert_clean_failure(&ocr(&[&corrupt], &model, &[]), "broken.png");
    assert_clean_failure(&ocr(&[&notes], &model, &[]), "not a supported image");
    let locked = shared_root().join("pdfs/enc-aes256-userpw.pdf");
    assert_clean_failure(&ocr(&[&locked], &model, &[]), "--password");
    let pdf = shared_root().join("pdfs/ocrmypdf-c03-29.pdf");
    assert_clean_failure(&ocr(&[&pdf], &model, &["--pages", "5"]), "out of range");
    let empty = tmp.0.join("empty.pdf");
    std::fs::write(&empty, zero_page_pdf()).unwrap();
    assert_clean_failure(&ocr(&[&empty], &model, &[]), "empty.pdf has no pages");
    assert_clean_failure(&ocr(&[&image], &tmp.0, &[]), "config.json");
    assert_clean_failure(&ocr(&[&image], &model, &["--mode", "huge"]), "huge");
    #[cfg(not(feature = "cuda"))]
    assert_clean_failure(&ocr(&[&image], &model, &["--device", "cuda"]), "--features cuda");
    assert_clean_failure(&ocr(&[&image], &model, &["--dpi", "0"]), "--dpi");
    let notes_path = notes.to_str().unwrap();
    assert_clean_failure(&ocr(&[&pdf], &model, &["--cjk-font", notes_path]), "--cjk-font");
    assert_clean_failure(&ocr(&[&pdf], &model, &["--cjk-font", notes_path]), "not a TrueType/OpenType font");
    assert_clean_failure(&ocr(&[&image], &model, &["--max-seqs", "0"]), "at least 1");
    assert_clean_failure(&ocr(&[&image], &model, &["--gpu-memory", "1.5"]), "at most 1");
    assert_clean_failure(&ocr(&[&image], &model, &["--vision-thread=sometimes"]), "sometimes");
    // A failing file among good ones: the others are still processed, the exit code says so.
    let o = ocr(&[&notes, &image], &model, &["--max-new-tokens", "2", "--mode", "tiny"]);
    assert_clean_failure(&o, "1 failed");
    assert!(text(&o).0.contains("<!-- dsocr:"), "the good file's markdown is printed");
}

/// A well-formed PDF whose page tree is empty (as some generators write for a blank export).
fn zero_page_pdf() -> Vec<u8> {
    let objects = ["<< /Type /Catalog /Pages 2 0 R >>", "<< /Type /Pages /Kids [] /Count 0 >>"];
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend(format!("{} 0 obj\n{object}\nendobj\n", i + 1).bytes());
    }
    let xref = out.len();
    out.extend(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).bytes());
    for offset in offsets {
        out.extend(format!("{offset:010} 00000 n \n").bytes());
    }
    out.extend(format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1).bytes());
    out
}

#[test]
fn describe_prints_json() {
    let o = dsocr(&["describe"]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["name"], "dsocr");
    assert!(v["tasks"].as_array().unwrap().len() >= 6);
}

#[test]
fn the_readme_quick_start_page_is_ocred() {
    let Some(p) = parity("the_readme_quick_start_page_is_ocred") else { return };
    let sample = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../assets/sample-page.jpg");
    let o = dsocr(&[
        "ocr",
        sample.to_str().unwrap(),
        "--model",
        p.model_dir().to_str().unwrap(),
        "--device",
        "cpu",
        "--mode",
        "tiny",
        "--max-new-tokens",
        "3",
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(!out.trim().is_empty(), "no text printed: {err}");
}

/// `dsocr bench --image FILE.pdf --all-pages`: the workloads run the PDF's pages in order (the
/// pages `dsocr ocr FILE.pdf` runs), and the report says so.
#[test]
fn bench_runs_the_pages_of_a_pdf() {
    let Some(p) = parity("bench_runs_the_pages_of_a_pdf") else { return };
    let pdf = shared_root().join("pdfs/booktabs.pdf");
    let o = dsocr(&[
        "bench",
        "--device",
        "cpu",
        "--model",
        p.model_dir().to_str().unwrap(),
        "--image",
        pdf.to_str().unwrap(),
        "--all-pages",
        "--no-stages",
        "--new-tokens",
        "2",
        "--batch",
        "1",
        "--mixed",
        "3",
        "--min-tokens",
        "2",
        "--max-tokens",
        "2",
        "--mixed-once",
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let image = report["image"].as_str().unwrap();
    assert!(image.contains("booktabs.pdf") && image.contains("pages, in order"), "{image}");
    assert_eq!(report["mixed"]["pages"], 3);
    assert_eq!(report["mixed"]["tokens"], 6);
    let o = dsocr(&["bench", "--device", "cpu", "--all-pages"]);
    assert!(!o.status.success() && text(&o).1.contains("--image"), "--all-pages needs --image");
}
