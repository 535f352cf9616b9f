//! Stand-ins for testing code built on an [`OcrService`](crate::OcrService) without a model: a
//! [`Replica`] that holds the pages it is given until the test finishes them ([`HeldPages`]), and
//! a tokenizer of one id per byte ([`ByteTokenizer`]). `dsocr serve`'s tests run its queue,
//! admission and cancellation on them.

use std::collections::HashMap;
use std::sync::Mutex;

use dsocr_engine::{EngineStats, OcrOptions, OcrTokenizer, PreparedPage};
use dsocr_preprocess::{PreprocessError, TextTokenizer};

use crate::replica::{EventSink, Replica, ServiceLoad};

/// An engine that runs nothing: each page submitted is held (with its sink) until the test
/// takes it and sends it events. A cancelled page's sink is dropped, as [`Replica::cancel`]
/// asks (the service then counts the page as gone), unless made with
/// [`HeldPages::keeping_cancelled`]: its sink is then set aside, so that a test can see what it
/// answers afterwards (and the service counts the page until [`HeldPages::release`]).
#[derive(Default)]
pub struct HeldPages {
    held: Mutex<HashMap<u64, EventSink>>,
    cancelled: Mutex<Vec<(u64, Option<EventSink>)>>,
    keep_cancelled: bool,
}

impl HeldPages {
    /// Cancelled pages keep their sinks ([`HeldPages::take_cancelled`]).
    pub fn keeping_cancelled() -> Self {
        HeldPages { keep_cancelled: true, ..HeldPages::default() }
    }

    /// Pages held now (submitted, neither taken nor cancelled).
    pub fn count(&self) -> usize {
        self.held.lock().map_or(0, |held| held.len())
    }

    /// The sink of a held page, which is no longer held.
    pub fn take(&self, tag: u64) -> Option<EventSink> {
        self.held.lock().ok()?.remove(&tag)
    }

    /// Some held page with its sink, which is no longer held.
    pub fn take_any(&self) -> Option<(u64, EventSink)> {
        let mut held = self.held.lock().ok()?;
        let tag = *held.keys().next()?;
        held.remove(&tag).map(|sink| (tag, sink))
    }

    /// The tags of the pages cancelled so far, in order.
    pub fn cancelled(&self) -> Vec<u64> {
        self.cancelled.lock().map_or_else(|_| Vec::new(), |c| c.iter().map(|(tag, _)| *tag).collect())
    }

    /// The sink of a cancelled page, when cancelled pages keep theirs
    /// ([`HeldPages::keeping_cancelled`]).
    pub fn take_cancelled(&self, tag: u64) -> Option<EventSink> {
        let mut cancelled = self.cancelled.lock().ok()?;
        cancelled.iter_mut().find(|(t, _)| *t == tag)?.1.take()
    }

    /// Drop every sink held or set aside. A service waits for its pages' sinks when it stops:
    /// call this before dropping it (in a guard's `Drop`, so that a failed assertion does too).
    pub fn release(&self) {
        if let Ok(mut held) = self.held.lock() {
            held.clear();
        }
        if let Ok(mut cancelled) = self.cancelled.lock() {
            cancelled.clear();
        }
    }
}

impl Replica for HeldPages {
    fn submit(&self, tag: u64, _page: PreparedPage, _options: OcrOptions, _stream: bool, sink: EventSink) {
        if let Ok(mut held) = self.held.lock() {
            held.insert(tag, sink);
        }
    }
    fn cancel(&self, tag: u64) {
        if let Some(sink) = self.take(tag)
            && let Ok(mut cancelled) = self.cancelled.lock()
        {
            cancelled.push((tag, self.keep_cancelled.then_some(sink)));
        }
    }
    fn load(&self) -> ServiceLoad {
        ServiceLoad { pages: self.count(), ..ServiceLoad::default() }
    }
    fn stats(&self) -> EngineStats {
        EngineStats::default()
    }
    fn failure(&self) -> Option<String> {
        None
    }
    fn description(&self) -> &str {
        "pages held for a test"
    }
}

/// One token id per byte of text, decoded back byte by byte (as Latin-1).
#[derive(Debug, Clone, Copy, Default)]
pub struct ByteTokenizer;

impl TextTokenizer for ByteTokenizer {
    fn encode_text(&self, text: &str) -> Result<Vec<u32>, PreprocessError> {
        Ok(text.bytes().map(u32::from).collect())
    }
}

impl OcrTokenizer for ByteTokenizer {
    fn decode(&self, ids: &[u32]) -> String {
        ids.iter().map(|&i| char::from(i as u8)).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use dsocr_engine::{EngineError, Event};

    use super::*;

    fn page() -> PreparedPage {
        let options = OcrOptions { mode: dsocr_preprocess::Mode::Tiny.spec(), ..OcrOptions::default() };
        let white = dsocr_preprocess::RgbImage { width: 64, height: 64, data: vec![255; 64 * 64 * 3] };
        dsocr_engine::prepare_page(&white, &options, &ByteTokenizer).unwrap()
    }

    fn counting_sink(events: &Arc<AtomicUsize>) -> EventSink {
        let events = events.clone();
        Box::new(move |_| {
            events.fetch_add(1, Ordering::Relaxed);
            true
        })
    }

    #[test]
    fn a_cancelled_page_loses_its_sink_unless_asked() {
        let pages = HeldPages::default();
        let events = Arc::new(AtomicUsize::new(0));
        pages.submit(1, page(), OcrOptions::default(), false, counting_sink(&events));
        pages.cancel(1);
        assert_eq!((pages.count(), pages.cancelled()), (0, vec![1]));
        assert!(pages.take_cancelled(1).is_none(), "dropped, as Replica::cancel asks");
    }

    #[test]
    fn pages_are_held_until_taken_and_cancelled_ones_are_set_aside() {
        let pages = HeldPages::keeping_cancelled();
        let events = Arc::new(AtomicUsize::new(0));
        for tag in [3, 5, 8] {
            pages.submit(tag, page(), OcrOptions::default(), false, counting_sink(&events));
        }
        assert_eq!((pages.count(), pages.load().pages), (3, 3));
        pages.cancel(5);
        pages.cancel(42); // not held: nothing happens
        assert_eq!((pages.count(), pages.cancelled()), (2, vec![5]));
        let mut sink = pages.take(3).expect("page 3 is held");
        assert!(sink(Event::Finished { tag: 3, result: Box::new(Err(EngineError::Input("held".into()))) }));
        assert_eq!(events.load(Ordering::Relaxed), 1);
        assert!(pages.take(3).is_none(), "taken once");
        assert!(pages.take_cancelled(5).is_some() && pages.take_cancelled(5).is_none());
        let (tag, _) = pages.take_any().expect("page 8 is still held");
        assert_eq!((tag, pages.count()), (8, 0));
        pages.submit(9, page(), OcrOptions::default(), false, counting_sink(&events));
        pages.release();
        assert_eq!(pages.count(), 0);
    }

    #[test]
    fn bytes_are_tokens() {
        let ids = ByteTokenizer.encode_text("<image>é").unwrap();
        assert_eq!(ids.len(), "<image>é".len());
        assert_eq!(ByteTokenizer.decode(&ids[..7]), "<image>");
    }
}
