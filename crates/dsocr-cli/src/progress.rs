//! The progress bar of `dsocr ocr`, drawn by a thread of its own: the engine's thread only sends
//! it what happened. indicatif holds the bar's lock for as long as output is printed under
//! `suspend` (the writer thread writing inputs that print), and `inc`/`set_message` take that
//! lock: on the engine's thread they made it wait for the writer (docs/perf.md, session 24).

use std::collections::HashSet;
use std::sync::mpsc::Receiver;
use std::time::Instant;

use indicatif::ProgressBar;

/// What the progress thread is told.
pub(crate) enum Progress {
    /// Page `tag` started decoding.
    Started(u64),
    /// Page `tag` finished (or failed) after `tokens` tokens.
    Finished { tag: u64, tokens: usize },
    /// A line for stderr, printed with the bar out of the way.
    Say(String),
}

/// Draw `bar` from `events` until the sender hangs up: pages done, tokens per second since `t0`,
/// pages in flight.
pub(crate) fn show_progress(events: Receiver<Progress>, bar: &ProgressBar, t0: Instant) {
    let mut in_flight = HashSet::new();
    let mut tokens = 0usize;
    while let Ok(first) = events.recv() {
        // Everything queued is taken at once: one redraw for a burst of pages.
        for event in std::iter::once(first).chain(events.try_iter()) {
            match event {
                Progress::Started(tag) => {
                    in_flight.insert(tag);
                }
                Progress::Finished { tag, tokens: n } => {
                    in_flight.remove(&tag);
                    tokens += n;
                    bar.inc(1);
                }
                Progress::Say(line) => bar.suspend(|| eprintln!("{line}")),
            }
        }
        bar.set_message(format!("{:.0} tok/s, {} in flight", tokens as f64 / t0.elapsed().as_secs_f64().max(1e-9), in_flight.len()));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    #[test]
    fn pages_are_counted_once_each_and_failed_ones_leave_no_page_in_flight() {
        let bar = ProgressBar::hidden();
        bar.set_length(3);
        let (tx, rx) = mpsc::channel();
        for event in [
            Progress::Started(0),
            Progress::Started(1),
            Progress::Finished { tag: 0, tokens: 10 },
            // Page 2 failed before it started.
            Progress::Finished { tag: 2, tokens: 0 },
            Progress::Say("a line".into()),
        ] {
            tx.send(event).unwrap();
        }
        drop(tx);
        show_progress(rx, &bar, Instant::now());
        assert_eq!(bar.position(), 2);
        assert!(bar.message().ends_with(", 1 in flight"), "{}", bar.message());
    }
}
