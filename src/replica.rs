//! What an [`crate::OcrService`] needs of one engine: the seam between the dispatcher (which
//! page goes where, and again elsewhere when an engine fails) and the engines themselves.
//!
//! The service's own engines are [`crate::EngineThread`]s, one per device. The trait is public so
//! that an application can put other engines behind the same dispatcher, and so that the
//! dispatcher's failure handling is tested with engines that fail on purpose (a GPU that runs out
//! of memory or disappears cannot be summoned in a test).

use dsocr_engine::{EngineStats, Event, OcrOptions, PreparedPage};

/// Where a page's events go. Returns `false` when nobody listens any more: the page is cancelled.
pub type EventSink = Box<dyn FnMut(Event) -> bool + Send>;

/// What a service (or one of its engines) is doing now.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct ServiceLoad {
    /// Pages submitted and not yet finished (queued in the service, waiting in an engine, or
    /// in flight).
    pub pages: usize,
    /// Pages decoding in the engines' last steps.
    pub in_flight: usize,
    /// Pages the engines hold that wait for admission.
    pub waiting: usize,
}

/// One engine that takes prepared pages from any thread.
///
/// The contract the dispatcher relies on:
/// - every submitted page gets exactly one [`Event::Finished`] through its sink, unless it is
///   cancelled or its sink returned `false`;
/// - when the engine itself fails (not one page), [`Replica::failure`] says so *before* the
///   pages it held are finished with an [`dsocr_engine::EngineError::Device`] error;
/// - an engine that dies without a word (its thread panicked) drops the sinks it held: the
///   dispatcher notices a sink dropped before its page finished.
pub trait Replica: Send + Sync {
    /// Queue a page under `tag` (chosen by the caller, unique among its pages).
    fn submit(&self, tag: u64, page: PreparedPage, options: OcrOptions, stream: bool, sink: EventSink);
    /// Drop a page (waiting or running); its sink gets nothing more.
    fn cancel(&self, tag: u64);
    /// Pages in this engine now.
    fn load(&self) -> ServiceLoad;
    /// The engine's counters.
    fn stats(&self) -> EngineStats;
    /// Why the engine stopped, if it did: it then takes no more pages.
    fn failure(&self) -> Option<String>;
    /// The model and device, in words.
    fn description(&self) -> &str;
}
