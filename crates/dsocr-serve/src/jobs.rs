//! One request's pages through the shared engine: each page prepared on a blocking thread and
//! submitted to the [`OcrService`]; their events come back on a channel and are handed out in
//! page order (a later page's text waits until the pages before it are done). Dropping a
//! [`PageJob`] (the client went away) cancels its unfinished pages, freeing their KV rows.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use dsocr::OcrService;
use dsocr::engine::{EngineError, Event, OcrOptions, OcrResult, OcrTokenizer, PreparedPage};
use dsocr::preprocess::RgbImage;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use crate::{ApiError, Metrics};

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
    /// The unfinished pages' place in the server's queue.
    admission: Admission,
}

/// Pages a request holds in the server's queue ([`crate::AppState::admit`]): given back as they
/// finish, and all of them when it is dropped.
pub struct Admission {
    queued: Arc<AtomicUsize>,
    pages: usize,
}

impl Admission {
    /// Reserve `pages` in `queued` if that stays within `limit`; else the pages queued now.
    pub fn reserve(queued: &Arc<AtomicUsize>, pages: usize, limit: usize) -> Result<Admission, usize> {
        queued.fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| (q + pages <= limit).then_some(q + pages))?;
        Ok(Admission { queued: queued.clone(), pages })
    }

    fn release(&mut self, pages: usize) {
        let pages = pages.min(self.pages);
        self.pages -= pages;
        self.queued.fetch_sub(pages, Ordering::AcqRel);
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.release(self.pages);
    }
}

impl PageJob {
    /// Prepare (on blocking threads) and submit every page with `options`, holding `admission`
    /// (the pages' place in the server's queue) until they are done; text is always streamed
    /// from the engine, so a vanished client is noticed at its next token. A page given as an
    /// error (it could not be rendered) ends with that error; the others run.
    pub async fn start(
        service: Arc<OcrService>,
        images: Vec<Result<Arc<RgbImage>, String>>,
        options: OcrOptions,
        admission: Admission,
    ) -> PageJob {
        let prepared: Vec<_> = images
            .into_iter()
            .enumerate()
            .map(|(page, image)| {
                let (service, options) = (service.clone(), options.clone());
                let handle = image.map(|image| tokio::task::spawn_blocking(move || service.prepare(&image, &options)));
                async move {
                    match handle {
                        Ok(handle) => {
                            handle.await.unwrap_or_else(|e| Err(EngineError::Input(format!("page {}: preparation failed: {e}", page + 1))))
                        }
                        Err(unrendered) => Err(EngineError::Input(unrendered)),
                    }
                }
            })
            .collect();
        PageJob::submit_in_order(service, prepared, options, admission).await
    }

    /// Submit each page as its preparation comes in, in page order. The job exists before the
    /// first page is submitted: if this future is dropped part-way (the client went away while
    /// later pages were still being prepared), dropping the job cancels the pages already in
    /// the engine.
    async fn submit_in_order<F>(service: Arc<OcrService>, prepared: Vec<F>, options: OcrOptions, admission: Admission) -> PageJob
    where
        F: Future<Output = Result<PreparedPage, EngineError>>,
    {
        let (tx, events) = unbounded_channel::<(usize, Event)>();
        let job = PageJob {
            service,
            events,
            open: Arc::new(Mutex::new(HashSet::new())),
            pages: prepared.len(),
            next: 0,
            held: BTreeMap::new(),
            started: Instant::now(),
            first_output: None,
            admission,
        };
        for (page, prepared) in prepared.into_iter().enumerate() {
            let prepared = prepared.await;
            let tx = tx.clone();
            let finished = job.open.clone();
            let sink = Box::new(move |event: Event| {
                match &event {
                    // The job reports text and results only; a page whose job is gone is cancelled
                    // by the engine as soon as it says anything.
                    Event::Started { .. } => return !tx.is_closed(),
                    Event::Finished { tag, .. } => {
                        finished.lock().expect("open pages").remove(tag);
                    }
                    Event::Text { .. } => {}
                }
                tx.send((page, event)).is_ok()
            });
            // A page that finishes before its tag is recorded leaves a stale tag behind, whose
            // cancellation on drop is a no-op.
            let tag = job.service.submit(prepared, options.clone(), true, sink);
            job.open.lock().expect("open pages").insert(tag);
        }
        job
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
                self.admission.release(1);
                JobEvent::Done { page, result }
            }
        }
    }

    /// Cancel every unfinished page (a stop sequence was met, or the client is gone).
    pub fn cancel_all(&mut self) {
        let open: Vec<u64> = self.open.lock().expect("open pages").drain().collect();
        for tag in open {
            self.service.cancel(tag);
        }
        self.admission.release(usize::MAX);
    }
}

impl Drop for PageJob {
    fn drop(&mut self) {
        self.cancel_all();
    }
}

/// Whether a page failed for its input (the client's fault) rather than the server's.
pub fn input_error(e: &EngineError) -> bool {
    matches!(e, EngineError::Input(_) | EngineError::Preprocess(_))
}

/// The answer to a request whose every page failed (`failures`: for its input?, and why): 400
/// when each failed for its input, else 500.
pub fn every_page_failed(failures: &[(bool, String)], param: Option<&str>) -> ApiError {
    let all = failures.iter().map(|(_, m)| m.as_str()).collect::<Vec<_>>().join("; ");
    if failures.iter().all(|(input, _)| *input) { ApiError::invalid(param, all) } else { ApiError::internal(all) }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::time::Duration;

    use dsocr::ServiceOptions;
    use dsocr::preprocess::{Architecture, Mode};
    use dsocr::testing::{ByteTokenizer, HeldPages};

    use super::*;

    /// Lets go of the pages held (so that the service, dropped after it, can stop).
    struct LetGo(Arc<HeldPages>);

    impl Drop for LetGo {
        fn drop(&mut self) {
            self.0.release();
        }
    }

    type Prepared = Pin<Box<dyn Future<Output = Result<PreparedPage, EngineError>> + Send>>;

    #[test]
    fn a_job_dropped_while_it_submits_cancels_the_pages_it_submitted() {
        let keeper = Arc::new(HeldPages::keeping_cancelled());
        let service =
            OcrService::from_replicas(vec![keeper.clone()], Arc::new(ByteTokenizer), Architecture::DeepseekOcr, ServiceOptions::default())
                .map(Arc::new)
                .unwrap();
        let _let_go = LetGo(keeper.clone());
        let options = OcrOptions { mode: Mode::Tiny.spec(), ..OcrOptions::default() };
        let page = service.prepare(&RgbImage { width: 64, height: 64, data: vec![255; 64 * 64 * 3] }, &options).unwrap();
        let queued = Arc::new(AtomicUsize::new(0));
        let admission = Admission::reserve(&queued, 2, 2).unwrap();
        // Page 1 is ready, page 2 never: the client goes away while page 2 is being prepared.
        let prepared: Vec<Prepared> = vec![Box::pin(std::future::ready(Ok(page))), Box::pin(std::future::pending())];
        let start = PageJob::submit_in_order(service.clone(), prepared, options, admission);
        assert!(futures_util::FutureExt::now_or_never(start).is_none(), "page 2 is still being prepared");
        assert_eq!(queued.load(Ordering::Acquire), 0, "the request's place in the queue is given back");

        let t0 = Instant::now();
        while keeper.cancelled().is_empty() {
            assert!(t0.elapsed() < Duration::from_secs(30), "page 1 was submitted but never cancelled");
            std::thread::sleep(Duration::from_millis(10));
        }
        let tag = keeper.cancelled()[0];
        let mut sink = keeper.take_cancelled(tag).expect("page 1 reached the engine");
        assert!(!sink(Event::Started { tag }), "nobody listens to page 1: its sink says so from its first event");
    }
}
