//! The progress bar of `dsocr ocr`, drawn by a thread of its own: the engine's thread only sends
//! it what happened. indicatif holds the bar's lock for as long as output is printed under
//! `suspend` (the writer thread writing inputs that print), and `inc`/`set_message` take that
//! lock: on the engine's thread they made it wait for the writer (docs/perf.md, session 24).

use std::collections::HashSet;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use dsocr::common::GpuBuildTime;
use indicatif::ProgressBar;

/// How often the bar asks what the GPU has built while no page has finished yet.
pub(crate) const BUILD_POLL: Duration = Duration::from_secs(2);

/// What a first run is doing while it compiles, `elapsed` into it: said instead of a minute of a
/// bar at zero.
pub(crate) fn building_message(built: &GpuBuildTime, elapsed: Duration) -> String {
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    format!(
        "compiling GPU kernels (first run, kept for the next): {} compiled, {} tuned, {:.0} s so far",
        plural(built.compiled, "kernel"),
        plural(built.tuned, "shape"),
        elapsed.as_secs_f64()
    )
}

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
/// pages in flight. Until a page has finished, every `poll` it also asks `built` what the GPU has
/// compiled and tuned so far (`dsocr::common::gpu_build_time`; `|| None` for a bar that is not
/// drawn) and says so while that goes on.
pub(crate) fn show_progress(
    events: Receiver<Progress>,
    bar: &ProgressBar,
    t0: Instant,
    poll: Duration,
    built: impl Fn() -> Option<GpuBuildTime>,
) {
    let mut in_flight = HashSet::new();
    let mut tokens = 0usize;
    let mut finished = false;
    loop {
        let first = match events.recv_timeout(poll) {
            Ok(event) => event,
            Err(RecvTimeoutError::Timeout) => {
                if let Some(b) = (!finished).then(&built).flatten().filter(GpuBuildTime::built_anything) {
                    bar.set_message(building_message(&b, t0.elapsed()));
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        // Everything queued is taken at once: one redraw for a burst of pages.
        for event in std::iter::once(first).chain(events.try_iter()) {
            match event {
                Progress::Started(tag) => {
                    in_flight.insert(tag);
                }
                Progress::Finished { tag, tokens: n } => {
                    in_flight.remove(&tag);
                    tokens += n;
                    finished = true;
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
        show_progress(rx, &bar, Instant::now(), BUILD_POLL, || None);
        assert_eq!(bar.position(), 2);
        assert!(bar.message().ends_with(", 1 in flight"), "{}", bar.message());
    }

    #[test]
    fn a_first_run_says_it_is_compiling_until_a_page_finishes() {
        use dsocr::common::KernelOrigin;
        let bar = ProgressBar::hidden();
        bar.set_length(1);
        let (tx, rx) = mpsc::channel();
        let built = || Some(GpuBuildTime::tally([(KernelOrigin::Compiled, 30.0), (KernelOrigin::Compiled, 12.0)], [20.0]));
        std::thread::scope(|s| {
            let drawing = s.spawn(|| show_progress(rx, &bar, Instant::now(), Duration::from_millis(5), built));
            let deadline = Instant::now() + Duration::from_secs(10);
            while !bar.message().starts_with("compiling GPU kernels") && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            let message = bar.message();
            assert!(
                message.starts_with("compiling GPU kernels (first run, kept for the next): 2 kernels compiled, 1 shape tuned, "),
                "{message}"
            );
            assert!(message.ends_with(" s so far"), "{message}");
            tx.send(Progress::Started(0)).unwrap();
            tx.send(Progress::Finished { tag: 0, tokens: 5 }).unwrap();
            // Once a page is done the bar says the pages' rate again, whatever is still built.
            std::thread::sleep(Duration::from_millis(50));
            drop(tx);
            drawing.join().unwrap();
        });
        assert_eq!(bar.position(), 1);
        assert!(bar.message().ends_with("tok/s, 0 in flight"), "{}", bar.message());
    }
}
