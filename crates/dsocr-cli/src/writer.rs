//! The writer thread of `dsocr ocr`: makes and writes the output files beside the engine. A
//! PDF's pages get their share of the document's files (boxes drawn and JPEG-encoded, figure
//! crops, markdown) made as they come back; an input is written once its last page is back
//! (inputs that are complete together are written in parallel unless they print to stdout, which
//! keeps the inputs' order). The engine's thread only sends it work: a page image it holds anyway
//! (kept.rs counts it) or an input's results (text).

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use dsocr::preprocess::RgbImage;
use dsocr::render::{PAGE_SPLIT, PageOutputs, PageText, write_document_files, write_image_outputs};
use dsocr::{EngineError, OcrResult};
use indicatif::ProgressBar;
use rayon::prelude::*;

use crate::formats;
use crate::inputs::{Document, Source};
use crate::kept::KeptImages;
use crate::pages::Outputs;

/// Work queued for the writer thread before the engine's thread waits for it: more than the pages
/// in flight, so that a burst of pages ending together never waits (docs/perf.md, session 24).
pub(crate) const WRITES_AHEAD: usize = 1024;

/// Work for the writer thread, in the order it is sent (an input's pages before the input).
pub(crate) enum Write {
    /// A page of a PDF written under `--out`, back from the engine with its image kept: its share
    /// of the document's files is made now, beside the engine, instead of after the document's
    /// last page.
    Page(PageWork),
    /// Every page of input `d` is back: its files are written (or it is printed).
    Input { d: usize, results: Vec<Result<OcrResult, EngineError>> },
}

/// A PDF page back from the engine (page `k` of its input, tag `tag`), to make its files from.
pub(crate) struct PageWork {
    pub tag: usize,
    pub k: usize,
    pub image: Arc<RgbImage>,
    pub raw: String,
    pub stopped_on_eos: bool,
}

impl PageWork {
    /// The page's share of its document's files, by tag (`None` if making them failed: the
    /// error is met again, and reported, when the input is written).
    fn make(self) -> (usize, Option<PageOutputs>) {
        // The copy is made here, off the engine's thread; the kept image stays for the
        // document's assembly (its size) and for the rare page made again.
        let text = PageText { image: (*self.image).clone().into(), raw: self.raw, stopped_on_eos: self.stopped_on_eos };
        (self.tag, PageOutputs::make(self.k, &text).ok())
    }
}

/// What the writer thread did.
pub(crate) struct Written {
    /// Inputs that failed in writing, or had failed pages.
    pub failed: Vec<(String, anyhow::Error)>,
    /// Seconds writing inputs once their last page was back.
    pub after_s: f64,
    /// Pages whose files were made as they came back, and the seconds that took.
    pub pages: usize,
    pub pages_s: f64,
}

/// What the writer thread reads besides its work.
pub(crate) struct WriterContext<'a> {
    pub docs: &'a [Document],
    /// The tag of each input's first page (an input's pages have consecutive tags).
    pub first_tag: &'a [usize],
    pub images: &'a Mutex<KeptImages>,
    pub outputs: &'a Outputs,
    /// The one page's text was streamed to stdout as it came.
    pub stream: bool,
    /// Inputs must be printed in their order (stdout); otherwise those queued together are
    /// written in parallel.
    pub in_order: bool,
    pub bar: &'a ProgressBar,
}

/// The writer thread: until the engine's side hangs up, takes everything queued and makes its
/// pages' files together, on every core when several are queued, then writes the inputs that
/// are complete. Pages finish in bursts (a PDF's pages admitted together end together): made one
/// at a time on this thread (≈ 50 ms each) they held the engine back (docs/perf.md, session 24).
/// A lone page is made here, off the rayon pool, so that it does not queue behind (or hold back)
/// the pages being rendered for the engine (docs/perf.md, session 16).
pub(crate) fn write_inputs(work: Receiver<Write>, cx: &WriterContext<'_>) -> Written {
    let mut written = Written { failed: Vec::new(), after_s: 0.0, pages: 0, pages_s: 0.0 };
    // Pages' files made ahead, by tag, until their input is written.
    let mut made: HashMap<usize, PageOutputs> = HashMap::new();
    while let Ok(first) = work.recv() {
        let mut pages = Vec::new();
        let mut inputs = Vec::new();
        for w in std::iter::once(first).chain(work.try_iter()) {
            match w {
                Write::Page(page) => pages.push(page),
                Write::Input { d, results } => inputs.push((d, results)),
            }
        }
        let t = Instant::now();
        let outputs: Vec<_> = if pages.len() > 1 {
            pages.into_par_iter().map(PageWork::make).collect()
        } else {
            pages.into_iter().map(PageWork::make).collect()
        };
        if !outputs.is_empty() {
            written.pages_s += t.elapsed().as_secs_f64();
        }
        for (tag, page) in outputs {
            if let Some(page) = page {
                made.insert(tag, page);
                written.pages += 1;
            }
        }
        // Each input's pages made ahead, taken out before the inputs are written (in parallel).
        let inputs: Vec<_> = inputs
            .into_iter()
            .map(|(d, results)| {
                let tags = cx.first_tag[d]..cx.first_tag[d] + cx.docs[d].pages.len();
                let ahead: Vec<Option<PageOutputs>> = tags.map(|t| made.remove(&t)).collect();
                (d, results, ahead)
            })
            .collect();
        let t = Instant::now();
        // The bar is kept out of the way once for the whole batch: inputs print (warnings, and
        // markdown without --out), and each hiding it would make parallel writes take turns.
        let failed: Vec<_> = cx.bar.suspend(|| {
            if cx.in_order || inputs.len() < 2 {
                inputs.into_iter().filter_map(|(d, results, ahead)| write_input(cx, d, results, ahead)).collect()
            } else {
                inputs.into_par_iter().filter_map(|(d, results, ahead)| write_input(cx, d, results, ahead)).collect()
            }
        });
        written.after_s += t.elapsed().as_secs_f64();
        written.failed.extend(failed);
    }
    written
}

/// Write input `d` (its pages all back, `ahead` those whose files were made already) and mark it
/// complete (with the progress bar out of the way); the input and its error if it failed.
fn write_input(
    cx: &WriterContext<'_>,
    d: usize,
    results: Vec<Result<OcrResult, EngineError>>,
    ahead: Vec<Option<PageOutputs>>,
) -> Option<(String, anyhow::Error)> {
    let doc = &cx.docs[d];
    let outputs = cx.outputs;
    let tags = cx.first_tag[d]..cx.first_tag[d] + doc.pages.len();
    let kept: Vec<Option<RgbImage>> = tags.map(|t| cx.images.lock().expect("image store").take(t)).collect();
    let (pages, results) = if outputs.out.is_some() { reload_missing(doc, kept, results, outputs.dpi) } else { (kept, results) };
    let result = finish_document(doc, results, pages, ahead, outputs, cx.stream);
    // Complete only once every output is written and no page failed (resume.rs).
    let marked = result.and_then(|()| match &outputs.resume {
        Some(resume) => resume.mark_complete(&doc.name, &doc.input),
        None => Ok(()),
    });
    let e = marked.err()?;
    eprintln!("error: {}: {e:#}", doc.input);
    Some((doc.input.clone(), e))
}

/// The page images of `doc` that were not kept (past the budget: kept.rs), loaded again on every
/// core, for the pages that have a result to draw. A page that cannot be loaded again becomes a
/// failed page (its files would be drawn on nothing), so its input is not marked complete.
fn reload_missing(
    doc: &Document,
    kept: Vec<Option<RgbImage>>,
    results: Vec<Result<OcrResult, EngineError>>,
    dpi: f32,
) -> (Vec<Option<RgbImage>>, Vec<Result<OcrResult, EngineError>>) {
    kept.into_par_iter()
        .zip(results)
        .enumerate()
        .map(|(k, (image, result))| match (image, result) {
            (None, Ok(r)) => match doc.page_source(k, dpi)() {
                Ok(image) => (Some(image), Ok(r)),
                Err(e) => {
                    let e = EngineError::Input(format!(
                        "OCR'd, but could not be loaded again for its output files ({e}); run this input again"
                    ));
                    (None, Err(e))
                }
            },
            other => other,
        })
        .unzip()
}

pub(crate) fn page_name(doc: &Document, k: usize) -> String {
    if doc.is_pdf() { format!("{} page {}", doc.input, doc.pages[k] + 1) } else { doc.input.clone() }
}

/// Write (or print) one input whose pages are all done. A failed page is reported and left
/// empty; the input then counts as failed, its other pages written. The main outputs (markdown,
/// JSON, the official files) are written before the optional formats (searchable PDF, hOCR, ALTO,
/// …), and an optional format that cannot be written fails the input without taking the others
/// with it.
fn finish_document(
    doc: &Document,
    results: Vec<Result<OcrResult, EngineError>>,
    images: Vec<Option<RgbImage>>,
    ahead: Vec<Option<PageOutputs>>,
    outputs: &Outputs,
    streamed: bool,
) -> anyhow::Result<()> {
    let mut page_errors = Vec::new();
    let mut texts = Vec::with_capacity(results.len());
    let mut ok = Vec::with_capacity(results.len());
    for (k, (result, image)) in results.into_iter().zip(images).enumerate() {
        let image: image::RgbImage = image.map_or_else(|| image::RgbImage::from_pixel(1, 1, image::Rgb([255, 255, 255])), Into::into);
        match result {
            Ok(r) => {
                if doc.is_pdf() && !r.stopped_on_eos {
                    eprintln!("warning: {} did not end on EOS (token budget reached)", page_name(doc, k));
                }
                texts.push(PageText { image, raw: r.raw.clone(), stopped_on_eos: r.stopped_on_eos });
                ok.push(Some(r));
            }
            Err(e) => {
                eprintln!("error: {}: {e}", page_name(doc, k));
                page_errors.push(format!("{}: {e}", page_name(doc, k)));
                texts.push(PageText { image, raw: String::new(), stopped_on_eos: false });
                ok.push(None);
            }
        }
    }
    let sizes: Vec<(u32, u32)> = texts.iter().map(|t| t.image.dimensions()).collect();
    let results: Vec<Option<&OcrResult>> = ok.iter().map(Option::as_ref).collect();
    if let (None, Some(&format)) = (&outputs.out, outputs.formats.first()) {
        // The format replaces markdown on stdout.
        print!("{}", formats::render(format, doc, &results, &sizes));
        return pages_failed(doc, &page_errors);
    }
    let main = write_main_outputs(doc, &ok, &texts, ahead, &page_errors, outputs, streamed);
    let mut optional = Vec::new();
    if let Some(dir) = &outputs.out {
        let stem = if doc.is_pdf() { doc.name.as_str() } else { "result" };
        if outputs.searchable {
            let image = (!doc.is_pdf()).then(|| &texts[0].image);
            let written = formats::write_searchable(&dir.join(&doc.name), doc, &results, image, outputs.dpi, outputs.password.as_deref());
            optional.extend(written.err());
        }
        if !outputs.formats.is_empty() {
            let written = formats::write(&outputs.formats, &dir.join(&doc.name), stem, doc, &results, &sizes, outputs.format_per_page);
            optional.extend(written.err());
        }
    }
    // The caller reports the error returned (the main outputs' first); the others are said here.
    let mut errors = main.err().into_iter().chain(optional);
    if let Some(first) = errors.next() {
        for e in errors {
            eprintln!("error: {}: {e:#}", doc.input);
        }
        return Err(first);
    }
    pages_failed(doc, &page_errors)
}

/// `Err` naming the pages of `doc` that failed, if any did.
fn pages_failed(doc: &Document, page_errors: &[String]) -> anyhow::Result<()> {
    anyhow::ensure!(page_errors.is_empty(), "{} of {} page(s) failed: {}", page_errors.len(), doc.pages.len(), page_errors.join("; "));
    Ok(())
}

/// The main outputs of one input: the official files under `--out`, JSON or markdown on stdout.
fn write_main_outputs(
    doc: &Document,
    ok: &[Option<OcrResult>],
    texts: &[PageText],
    ahead: Vec<Option<PageOutputs>>,
    page_errors: &[String],
    outputs: &Outputs,
    streamed: bool,
) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    if !doc.is_pdf() {
        let Some(result) = ok.first().and_then(Option::as_ref) else {
            anyhow::bail!("{}", page_errors.join("; "));
        };
        if let Some(dir) = &outputs.out {
            let extra = serde_json::json!({ "source": doc.input, "timings": result.timings });
            let written = write_image_outputs(&dir.join(&doc.name), &texts[0], outputs.csv, extra)?;
            tracing::info!("{}: wrote {} files to {}", doc.input, written.files.len(), dir.join(&doc.name).display());
        }
        if outputs.json {
            println!("{}", serde_json::to_string(&serde_json::json!({ "source": doc.input, "result": result }))?);
        } else if streamed {
            println!();
        } else if outputs.out.is_none() {
            println!("<!-- dsocr: {} -->\n{}", doc.input, result.markdown);
        }
        return Ok(());
    }
    if let Some(dir) = &outputs.out {
        let info = serde_json::json!({
            "source": doc.input,
            "pages_rendered": doc.pages.iter().map(|p| p + 1).collect::<Vec<_>>(),
            "dpi": outputs.dpi,
            "failed_pages": page_errors,
            "timings": ok.iter().map(|r| r.as_ref().map(|r| r.timings)).collect::<Vec<_>>(),
        });
        // Pages whose files were not made as they came back (failed pages, images not kept, or
        // a make that failed and is tried again to report its error) are made there.
        let written =
            write_document_files(&dir.join(&doc.name), &doc.name, texts, ahead, outputs.skip_repeat, outputs.csv, outputs.dpi, info)?;
        tracing::info!("{}: wrote {} files to {}", doc.input, written.files.len(), dir.join(&doc.name).display());
    }
    if outputs.json {
        println!("{}", serde_json::to_string(&serde_json::json!({ "source": doc.input, "pages": ok, "failed_pages": page_errors }))?);
    } else if outputs.out.is_none() {
        let mut out = stdout.lock();
        if outputs.many {
            writeln!(out, "<!-- dsocr: {} -->", doc.input)?;
        }
        for (r, t) in ok.iter().zip(texts) {
            if outputs.skip_repeat && !t.stopped_on_eos {
                continue;
            }
            write!(out, "{}{PAGE_SPLIT}", r.as_ref().map_or("", |r| r.markdown.as_str()))?;
        }
    }
    if let Source::Pdf(doc_pdf) = &doc.source {
        let missing = doc_pdf.font_report().pages_missing_cjk_font;
        if !missing.is_empty() {
            eprintln!(
                "warning: {}: pages {missing:?} need a CJK font that is not installed; their text may be missing (install fonts-noto-cjk or give a font with --cjk-font)",
                doc.input
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::mpsc;

    use dsocr::preprocess::LoadOptions;

    use super::*;
    use crate::resume::Resume;

    fn image_input(name: &str) -> Document {
        let input = format!("in/{name}.png");
        Document {
            input,
            name: name.into(),
            source: Source::ImageBytes(Arc::new(Vec::new())),
            pages: vec![0],
            load: LoadOptions::default(),
        }
    }

    fn result(word: &str) -> OcrResult {
        OcrResult {
            raw: format!("<|ref|>text<|/ref|><|det|>[[100, 100, 600, 400]]<|/det|>\n{word}"),
            markdown: word.into(),
            regions: Vec::new(),
            tokens: vec![1, 2, 3],
            stopped_on_eos: true,
            prompt_tokens: 10,
            image_size: (64, 48),
            timings: Default::default(),
        }
    }

    /// Every file under `dir`, by path relative to it, with its bytes.
    fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let mut all = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    all.push((p.strip_prefix(dir).unwrap().display().to_string(), std::fs::read(&p).unwrap()));
                }
            }
        }
        all.sort();
        all
    }

    fn outputs_to(dir: &Path) -> Outputs {
        Outputs {
            out: Some(dir.to_path_buf()),
            csv: false,
            json: false,
            timings: false,
            skip_repeat: false,
            dpi: 72.0,
            many: true,
            formats: Vec::new(),
            format_per_page: false,
            searchable: false,
            password: None,
            resume: Some(Resume::new(dir, "test".into())),
            kept_image_bytes: 64 << 20,
        }
    }

    /// Four image inputs queued at once (one with a failed page), written by the writer thread
    /// in parallel and in order: the same files, the good inputs marked complete, the bad one
    /// failed and unmarked.
    fn write_four(dir: &Path, in_order: bool) -> Written {
        let docs: Vec<Document> = ["a", "b", "c", "d"].map(image_input).into();
        let first_tag = [0, 1, 2, 3];
        let images = Mutex::new(KeptImages::with_budget(1 << 20));
        let page = RgbImage { width: 64, height: 48, data: vec![200; 64 * 48 * 3] };
        for tag in 0..4 {
            assert!(images.lock().unwrap().keep(tag, &page));
        }
        let outputs = outputs_to(dir);
        let bar = ProgressBar::hidden();
        let cx =
            WriterContext { docs: &docs, first_tag: &first_tag, images: &images, outputs: &outputs, stream: false, in_order, bar: &bar };
        let (tx, rx) = mpsc::channel();
        for (d, word) in ["alpha", "beta", "", "delta"].into_iter().enumerate() {
            let r = if word.is_empty() { Err(EngineError::Input("a broken page".into())) } else { Ok(result(word)) };
            tx.send(Write::Input { d, results: vec![r] }).unwrap();
        }
        drop(tx);
        write_inputs(rx, &cx)
    }

    #[test]
    fn inputs_queued_together_are_written_in_parallel_as_in_order() {
        let root = std::env::temp_dir().join(format!("dsocr-writer-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let (parallel, ordered) = (root.join("parallel"), root.join("ordered"));
        for (dir, in_order) in [(&parallel, false), (&ordered, true)] {
            let written = write_four(dir, in_order);
            let failed: Vec<&str> = written.failed.iter().map(|(input, _)| input.as_str()).collect();
            assert_eq!(failed, ["in/c.png"], "in order: {in_order}");
            let resume = Resume::new(dir, "test".into());
            for name in ["a", "b", "d"] {
                assert!(resume.is_complete(name, &format!("in/{name}.png")), "{name} (in order: {in_order})");
                assert!(dir.join(name).join("result_with_boxes.jpg").is_file());
            }
            assert!(!resume.is_complete("c", "in/c.png"));
        }
        let markdown = std::fs::read_to_string(parallel.join("b").join("result.mmd")).unwrap();
        assert_eq!(markdown.trim(), "beta");
        let (p, o) = (files(&parallel), files(&ordered));
        assert!(p.len() >= 12, "{} files", p.len());
        assert_eq!(p.iter().map(|f| &f.0).collect::<Vec<_>>(), o.iter().map(|f| &f.0).collect::<Vec<_>>());
        for (a, b) in p.iter().zip(&o) {
            // The completion markers name their directory; everything else is byte for byte.
            if !a.0.ends_with(".dsocr-done.json") {
                assert_eq!(a.1, b.1, "{}", a.0);
            }
        }
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// Pages of a PDF whose files are made as they come back (two queued together: made in
    /// parallel) give the same files as pages made when the document is written.
    #[test]
    fn pdf_pages_made_ahead_give_the_files_made_at_the_end() {
        let pdf = dsocr_testdata::shared_root().join("pdfs/acm-sample-sigconf.pdf");
        if !pdf.is_file() {
            assert!(std::env::var_os("DSOCR_REQUIRE_PARITY").is_none(), "{} is missing", pdf.display());
            eprintln!("SKIPPED: {} is missing", pdf.display());
            return;
        }
        let options = crate::inputs::OpenOptions {
            password: None,
            pages: Some("1-3".into()),
            renderer: Default::default(),
            cjk_font: None,
            load: LoadOptions::default(),
        };
        let (docs, failed) = crate::inputs::open_inputs(&[pdf.display().to_string()], &options);
        assert!(failed.is_empty() && docs[0].pages.len() == 3);
        let root = std::env::temp_dir().join(format!("dsocr-writer-pdf-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let raw = |k: usize| {
            format!(
                "<|ref|>title<|/ref|><|det|>[[50, 40, 900, 120]]<|/det|>\n# Page {k}\n\n<|ref|>image<|/ref|><|det|>[[100, 300, 600, 700]]<|/det|>\n"
            )
        };
        let run = |dir: &Path, ahead: &[usize]| -> Written {
            let images = Mutex::new(KeptImages::with_budget(64 << 20));
            for k in 0..3 {
                assert!(images.lock().unwrap().keep(k, &docs[0].page_source(k, 72.0)().unwrap()));
            }
            let outputs = Outputs { resume: None, ..outputs_to(dir) };
            let bar = ProgressBar::hidden();
            let cx = WriterContext {
                docs: &docs,
                first_tag: &[0],
                images: &images,
                outputs: &outputs,
                stream: false,
                in_order: false,
                bar: &bar,
            };
            let (tx, rx) = mpsc::channel();
            for &k in ahead {
                let image = images.lock().unwrap().get(k).unwrap();
                tx.send(Write::Page(PageWork { tag: k, k, image, raw: raw(k), stopped_on_eos: true })).unwrap();
            }
            let results = (0..3).map(|k| Ok(OcrResult { raw: raw(k), ..result("") })).collect();
            tx.send(Write::Input { d: 0, results }).unwrap();
            drop(tx);
            write_inputs(rx, &cx)
        };
        let (made, late) = (root.join("made"), root.join("late"));
        let written = run(&made, &[0, 2]);
        assert!(written.failed.is_empty(), "{:?}", written.failed.iter().map(|f| f.1.to_string()).collect::<Vec<_>>());
        assert_eq!(written.pages, 2, "pages 0 and 2 made as they came back");
        assert_eq!(run(&late, &[]).pages, 0);
        let (a, b) = (files(&made), files(&late));
        assert!(a.iter().any(|(name, _)| name.ends_with("_layouts.pdf")), "{:?}", a.iter().map(|f| &f.0).collect::<Vec<_>>());
        assert!(a.iter().filter(|(name, _)| name.ends_with(".jpg")).count() >= 3, "a figure crop a page");
        assert_eq!(a, b);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
