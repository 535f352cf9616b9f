//! Running every page of every input through one engine, and writing each input's outputs in
//! input and page order as its pages complete (pages finish in any order; `InOrder` restores it).
//! Pages are loaded (decoded or rendered) and preprocessed on CPU threads just ahead of the engine;
//! output files are made and written by a writer thread beside it (writer.rs).

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dsocr::engine::{OcrTokenizer, PageSource, Request, prepare_ahead};
use dsocr::{DeepseekOcr, EngineError, EngineOptions, EngineStats, Event, InOrder, OcrOptions, OcrResult, OcrService};
use indicatif::{ProgressBar, ProgressStyle};

use crate::formats::OutputFormat;
use crate::inputs::Document;
use crate::kept::KeptImages;
use crate::progress::{BUILD_POLL, Progress, show_progress};
use crate::resume::Resume;
use crate::writer::{PageWork, WRITES_AHEAD, Write, WriterContext, Written, page_name, write_inputs};

/// Pages loaded and preprocessed ahead of the engine (in parallel, in chunks of this many).
pub const PREPARED_AHEAD: usize = 16;

/// Where and how results are written.
pub struct Outputs {
    pub out: Option<PathBuf>,
    pub csv: bool,
    pub json: bool,
    pub timings: bool,
    pub skip_repeat: bool,
    pub dpi: f32,
    /// More than one input was named: each input's markdown gets a header line.
    pub many: bool,
    /// Standard formats to write too (with `out`), or to print instead of markdown (without).
    pub formats: Vec<OutputFormat>,
    /// Write the formats as one file per page (with `out`).
    pub format_per_page: bool,
    /// Write a searchable PDF too (with `out`).
    pub searchable: bool,
    /// The PDF password given (the searchable copy of an encrypted PDF needs it).
    pub password: Option<String>,
    /// With `out`: completion markers, written once an input's outputs are all written.
    pub resume: Option<Resume>,
    /// With `out`: most bytes of page images held until their input is written (kept.rs).
    pub kept_image_bytes: usize,
}

/// What runs the pages: one engine on this thread, or a service of one engine per device.
pub enum Runner<'a> {
    One(&'a DeepseekOcr),
    Service(&'a OcrService),
}

impl Runner<'_> {
    /// Run `requests` to the end, handing every event to `on_event` on this thread.
    fn run(&self, engine: &EngineOptions, requests: &Receiver<Request>, on_event: &mut dyn FnMut(Event)) -> anyhow::Result<EngineStats> {
        match self {
            Runner::One(ocr) => Ok(ocr.engine(engine)?.run(requests, on_event)?),
            Runner::Service(service) => {
                // The service's queue holds prepared pages: keep it to what its engines take, plus
                // a chunk ready, so a large input set is not all prepared (and held) at once.
                let limit = service.engines().len() * engine.max_seqs.unwrap_or(256) + PREPARED_AHEAD;
                drive_service(service, requests, limit, on_event);
                Ok(service.stats())
            }
        }
    }
}

/// Submit `requests` to `service` as room allows and hand their events to `on_event`, under
/// the requests' own tags.
fn drive_service(service: &OcrService, requests: &Receiver<Request>, limit: usize, on_event: &mut dyn FnMut(Event)) {
    let (tx, events) = mpsc::channel::<Event>();
    let mut outstanding = 0usize;
    let mut open = true;
    while open || outstanding > 0 {
        while open && outstanding < limit {
            let next = if outstanding == 0 { requests.recv().map_err(|_| TryRecvError::Disconnected) } else { requests.try_recv() };
            match next {
                Ok(Request { tag, page, options, stream }) => {
                    let tx = tx.clone();
                    outstanding += 1;
                    service.submit(
                        page,
                        options,
                        stream,
                        Box::new(move |event| {
                            let event = match event {
                                Event::Started { .. } => Event::Started { tag },
                                Event::Text { text, .. } => Event::Text { tag, text },
                                Event::Finished { result, .. } => Event::Finished { tag, result },
                            };
                            tx.send(event).is_ok()
                        }),
                    );
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => open = false,
            }
        }
        if outstanding == 0 {
            continue;
        }
        let event = if open {
            match events.recv_timeout(Duration::from_millis(10)) {
                Ok(e) => e,
                Err(_) => continue,
            }
        } else {
            events.recv().expect("the service finishes every page it took")
        };
        if matches!(event, Event::Finished { .. }) {
            outstanding -= 1;
        }
        on_event(event);
    }
}

/// One input's pages as they complete.
struct Collected {
    /// By page of the input.
    results: Vec<Option<Result<OcrResult, EngineError>>>,
    /// Pages back so far.
    received: usize,
    /// Every page came back and the input was written (or failed in writing).
    done: bool,
}

/// Every page of the inputs, loaded (decoded or rendered) and prepared on CPU threads a few at a
/// time ahead of the engine that [`run_pages`] will run them on. Started before the model is
/// loaded, so that the first pages are ready when it is (docs/perf.md, session 24).
pub struct PagesAhead {
    docs: Vec<Document>,
    /// Global page number (the page's tag) → (document, page of the document).
    jobs: Vec<(usize, usize)>,
    /// The tag of each input's first page (an input's pages have consecutive tags).
    first_tag: Vec<usize>,
    /// Text streamed to stdout as it comes (one image written nowhere else).
    stream: bool,
    /// Page images kept for the output files (boxes drawn, figures cropped) until their input
    /// is written, within a budget (kept.rs).
    images: Arc<Mutex<KeptImages>>,
    requests: Receiver<Request>,
}

/// Start loading and preparing every page of `docs` for `opts` (as the model to be loaded runs
/// them) with `tokenizer`.
pub fn prepare_pages(outputs: &Outputs, opts: &OcrOptions, tokenizer: Arc<dyn OcrTokenizer>, docs: Vec<Document>) -> PagesAhead {
    let jobs: Vec<(usize, usize)> = docs.iter().enumerate().flat_map(|(d, doc)| (0..doc.pages.len()).map(move |k| (d, k))).collect();
    let first_tag: Vec<usize> = docs.iter().scan(0, |next, doc| Some(std::mem::replace(next, *next + doc.pages.len()))).collect();
    let stream =
        !outputs.many && jobs.len() == 1 && !docs[0].is_pdf() && outputs.out.is_none() && !outputs.json && outputs.formats.is_empty();
    let keep = outputs.out.is_some();
    let images = Arc::new(Mutex::new(KeptImages::with_budget(outputs.kept_image_bytes)));
    let sources: Vec<(PageSource, OcrOptions)> = jobs
        .iter()
        .enumerate()
        .map(|(tag, &(d, k))| {
            let load = docs[d].page_source(k, outputs.dpi);
            let images = images.clone();
            let source: PageSource = Box::new(move || {
                let image = load()?;
                if keep {
                    images.lock().expect("image store").keep(tag, &image);
                }
                Ok(image)
            });
            (source, opts.clone())
        })
        .collect();
    let requests = prepare_ahead(sources, tokenizer, PREPARED_AHEAD, stream);
    PagesAhead { docs, jobs, first_tag, stream, images, requests }
}

/// OCR every page of `pages` on `runner`; returns the inputs that failed (whole, or some of their
/// pages).
pub fn run_pages(
    runner: Runner<'_>,
    outputs: &Outputs,
    engine: &EngineOptions,
    pages: PagesAhead,
) -> anyhow::Result<Vec<(String, anyhow::Error)>> {
    let PagesAhead { docs, jobs, first_tag, stream, images, requests } = pages;
    let total = jobs.len();
    // What goes to stdout follows the inputs' order; files under --out need not.
    let in_order = outputs.out.is_none() || outputs.json;
    let keep = outputs.out.is_some();

    let bar = if total > 1 { ProgressBar::new(total as u64) } else { ProgressBar::hidden() };
    bar.set_style(ProgressStyle::with_template("{bar:30} {pos}/{len} pages {msg} [{elapsed}]").expect("valid template"));
    let mut collected: Vec<Collected> =
        docs.iter().map(|d| Collected { results: (0..d.pages.len()).map(|_| None).collect(), received: 0, done: false }).collect();
    let mut order = InOrder::new();
    let t0 = Instant::now();
    let stdout = std::io::stdout();
    // Output files are made and written by a writer thread (writer.rs) while the engine goes on:
    // on the engine's thread they stopped the GPU. What goes through the channel is a page image
    // already held (and counted) by the kept images, or an input's results; its bound is past
    // any burst of pages ending together (up to the pages in flight), so the engine waits only
    // for a writer far behind (a slow disk) rather than let the kept images run out.
    let (write_tx, write_rx) = mpsc::sync_channel::<Write>(WRITES_AHEAD);
    // The progress bar is drawn on a thread of its own (progress.rs).
    let (progress, progress_rx) = mpsc::channel::<Progress>();
    let (stats, written) = std::thread::scope(|scope| -> anyhow::Result<_> {
        let cx = WriterContext { docs: &docs, first_tag: &first_tag, images: &images, outputs, stream, in_order, bar: &bar };
        let writer = scope.spawn(move || write_inputs(write_rx, &cx));
        // What a first run compiles is asked only where the bar is drawn (a terminal, several pages).
        let (drawn, shown) = (!bar.is_hidden(), &bar);
        let built = move || drawn.then(dsocr::common::gpu_build_time).flatten();
        let bar_thread = scope.spawn(move || show_progress(progress_rx, shown, t0, BUILD_POLL, built));
        let stats = runner.run(engine, &requests, &mut |event| match event {
            Event::Started { tag } => {
                let _ = progress.send(Progress::Started(tag));
            }
            Event::Text { text, .. } => {
                let mut out = stdout.lock();
                let _ = out.write_all(text.as_bytes());
                let _ = out.flush();
            }
            Event::Finished { tag, result } => {
                let tokens = result.as_ref().as_ref().map_or(0, |r| r.tokens.len());
                let _ = progress.send(Progress::Finished { tag, tokens });
                // Inputs are written as soon as their own pages are in; only what goes to stdout
                // keeps the inputs' order (a slow page then holds back no other input's files).
                let ready = if in_order { order.push(tag, *result) } else { vec![(tag, *result)] };
                for (tag, result) in ready {
                    let (d, k) = jobs[tag as usize];
                    if outputs.timings
                        && let Ok(r) = &result
                    {
                        let _ = progress.send(Progress::Say(timings_line(&page_name(&docs[d], k), r)));
                    }
                    // A PDF's pages get their share of its files made as they come back.
                    if keep
                        && docs[d].is_pdf()
                        && let Ok(r) = &result
                    {
                        let image = images.lock().expect("image store").get(tag as usize);
                        if let Some(image) = image {
                            let page =
                                Write::Page(PageWork { tag: tag as usize, k, image, raw: r.raw.clone(), stopped_on_eos: r.stopped_on_eos });
                            // Fails only once the writer is gone; its error is reported at the join.
                            let _ = write_tx.send(page);
                        }
                    }
                    collected[d].results[k] = Some(result);
                    collected[d].received += 1;
                    if collected[d].received == docs[d].pages.len() {
                        let results: Vec<_> =
                            std::mem::take(&mut collected[d].results).into_iter().map(|r| r.expect("every page received")).collect();
                        collected[d].done = true;
                        let _ = write_tx.send(Write::Input { d, results });
                    }
                }
            }
        });
        drop(progress);
        let _ = bar_thread.join();
        bar.set_message("writing the output files");
        drop(write_tx);
        let written = writer.join().map_err(|_| anyhow::anyhow!("the thread writing the output files panicked"))?;
        Ok((stats?, written))
    })?;
    let Written { mut failed, after_s: writing_s, pages: made_ahead, pages_s: making_s } = written;
    bar.finish_and_clear();
    // Every page comes back as a result or an error; one that did not (a preparation thread
    // that died, an engine that stopped early) fails its input rather than vanishing from the
    // summary.
    for (d, doc) in docs.iter().enumerate() {
        let finished = collected[d].done;
        if !finished {
            let missing = doc.pages.len() - collected[d].received;
            let e = anyhow::anyhow!(
                "{missing} of {} page(s) never came back from the engine (an internal error: see the messages above); run this input again",
                doc.pages.len()
            );
            eprintln!("error: {}: {e}", doc.input);
            failed.push((doc.input.clone(), e));
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    tracing::info!(
        "{total} page(s), {} tokens in {wall:.1} s ({:.0} tok/s, {:.1} pages/min); {} decode steps, mean batch {:.1}, at most {} in flight (allowed {}, KV blocks {}); \
         the engine waited {:.2} s for pages from the CPU ({:.3} s per page); vision {:.1} s ({} batches; waited for {:.1} s), prefill {:.1} s, \
         decode {:.1} s ({} graph captures, {:.1} s; {} choices under a repetition ban); writing outputs {:.1} s after inputs' last pages \
         ({} pages' files made as they came back, beside the engine: {:.1} s)",
        stats.tokens,
        stats.tokens as f64 / wall.max(1e-9),
        total as f64 * 60.0 / wall.max(1e-9),
        stats.steps,
        stats.batch_sum as f64 / stats.steps.max(1) as f64,
        stats.peak_in_flight,
        stats.max_seqs,
        stats.kv_blocks,
        stats.input_wait_s,
        stats.input_wait_s / total.max(1) as f64,
        stats.vision_s,
        stats.vision_batches,
        stats.vision_wait_s,
        stats.prefill_s,
        stats.decode_s,
        stats.graph_captures,
        stats.capture_s,
        stats.banned_choices,
        writing_s,
        made_ahead,
        making_s,
    );
    Ok(failed)
}

/// `--timings`: one page's stage timings.
fn timings_line(name: &str, r: &OcrResult) -> String {
    let t = &r.timings;
    format!(
        "{name}: preprocess {:.3}s, queue {:.3}s, vision {:.3}s, prefill {:.3}s, decode {:.3}s ({} tokens, {:.1} tok/s), prompt {} tokens",
        t.preprocess_s,
        t.queue_s,
        t.vision_s,
        t.prefill_s,
        t.decode_s,
        t.tokens,
        t.decode_tokens_per_s(),
        r.prompt_tokens
    )
}
