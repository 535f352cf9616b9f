//! One request's pages through the shared engine: each page prepared on a blocking thread and
//! submitted to the [`OcrService`]; their events come back on a channel and are handed out in
//! page order (a later page's text waits until the pages before it are done). Dropping a
//! [`PageJob`] (the client went away) cancels its unfinished pages, freeing their KV rows.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use dsocr::OcrService;
use dsocr::engine::{EngineError, Event, OcrOptions, OcrResult, OcrTokenizer};
use dsocr::preprocess::RgbImage;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use crate::Metrics;

/// What a job hands out, in page order.
#[derive(Debug)]
pub enum JobEvent {
    /// New text of the page being handed out.
    Text {
        /// The text.
        text: String,
    },
    /// Page `page` is done.
    Done {
        /// Page index within the request.
        page: usize,
        /// Its result.
        result: Box<Result<OcrResult, EngineError>>,
    },
}

/// A request's pages in the engine.
pub struct PageJob {
    service: Arc<OcrService>,
    events: UnboundedReceiver<(usize, Event)>,
    /// Tags of the pages not yet finished (cancelled on drop).
    open: Arc<Mutex<HashSet<u64>>>,
    pages: usize,
    next: usize,
    /// Events of pages after `next`, held back.
    held: BTreeMap<usize, Vec<Event>>,
    /// When the job started (for time to first token).
    started: Instant,
    /// When the first text or result came out.
    first_output: Option<Instant>,
}

impl PageJob {
    /// Prepare (on blocking threads) and submit every page with `options`; text is always
    /// streamed from the engine, so a vanished client is noticed at its next token.
    pub async fn start(service: Arc<OcrService>, images: Vec<RgbImage>, options: OcrOptions) -> PageJob {
        let started = Instant::now();
        let pages = images.len();
        let (tx, events) = unbounded_channel::<(usize, Event)>();
        let open = Arc::new(Mutex::new(HashSet::new()));
        let prepared: Vec<_> = images
            .into_iter()
            .map(|image| {
                let (service, options) = (service.clone(), options.clone());
                tokio::task::spawn_blocking(move || service.prepare(&image, &options))
            })
            .collect();
        for (page, handle) in prepared.into_iter().enumerate() {
            let prepared = handle.await.unwrap_or_else(|e| Err(EngineError::Input(format!("page {}: preparation failed: {e}", page + 1))));
            let tx = tx.clone();
            let finished = open.clone();
            let sink = Box::new(move |event: Event| {
                match &event {
                    // The job reports text and results only.
                    Event::Started { .. } => return true,
                    Event::Finished { tag, .. } => {
                        finished.lock().expect("open pages").remove(tag);
                    }
                    Event::Text { .. } => {}
                }
                tx.send((page, event)).is_ok()
            });
            // A page that finishes before its tag is recorded leaves a stale tag behind, whose
            // cancellation on drop is a no-op.
            let tag = service.submit(prepared, options.clone(), true, sink);
            open.lock().expect("open pages").insert(tag);
        }
        PageJob { service, events, open, pages, next: 0, held: BTreeMap::new(), started, first_output: None }
    }

    /// Pages in the job.
    pub fn pages(&self) -> usize {
        self.pages
    }

    /// The tokenizer of the service the pages run on.
    pub fn tokenizer(&self) -> Arc<dyn OcrTokenizer> {
        self.service.tokenizer()
    }

    /// Count the finished job in `metrics`: its tokens, pages, time to first output and latency.
    pub fn record(&self, metrics: &Metrics, prompt_tokens: usize, completion_tokens: usize) {
        let ttft = self.first_output.map(|t| t.duration_since(self.started).as_secs_f64());
        metrics.completed(prompt_tokens, completion_tokens, self.pages, ttft, self.started.elapsed().as_secs_f64());
    }

    /// The next event in page order; `None` once every page is done.
    pub async fn next(&mut self) -> Option<JobEvent> {
        loop {
            if self.next >= self.pages {
                return None;
            }
            if let Some(queue) = self.held.get_mut(&self.next)
                && !queue.is_empty()
            {
                let event = queue.remove(0);
                return Some(self.hand_out(event));
            }
            let (page, event) = self.events.recv().await?;
            if page == self.next {
                return Some(self.hand_out(event));
            }
            self.held.entry(page).or_default().push(event);
        }
    }

    fn hand_out(&mut self, event: Event) -> JobEvent {
        self.first_output.get_or_insert_with(Instant::now);
        let page = self.next;
        match event {
            Event::Started { .. } => unreachable!("the job's sink does not pass Started on"),
            Event::Text { text, .. } => JobEvent::Text { text },
            Event::Finished { result, .. } => {
                self.held.remove(&page);
                self.next += 1;
                JobEvent::Done { page, result }
            }
        }
    }

    /// Cancel every unfinished page (a stop sequence was met, or the client is gone).
    pub fn cancel_all(&self) {
        let open: Vec<u64> = self.open.lock().expect("open pages").drain().collect();
        for tag in open {
            self.service.cancel(tag);
        }
    }
}

impl Drop for PageJob {
    fn drop(&mut self) {
        self.cancel_all();
    }
}
