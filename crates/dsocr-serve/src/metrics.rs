//! Counters and histograms, served as Prometheus text at `GET /metrics` (docs/serve.md).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use dsocr::{OcrService, ServiceLoad};

/// Upper bounds (seconds) of the latency histograms' buckets.
const BUCKETS: [f64; 13] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0];

/// A histogram of seconds.
#[derive(Debug, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (c, &le) in self.counts.iter_mut().zip(&BUCKETS) {
            if seconds <= le {
                *c += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }

    fn write(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (c, le) in self.counts.iter().zip(BUCKETS) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {c}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}\n{name}_sum {}\n{name}_count {}", self.count, self.sum, self.count);
    }
}

/// The server's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    prompt_tokens: AtomicU64,
    completion_tokens: AtomicU64,
    pages: AtomicU64,
    ttft: Mutex<Histogram>,
    latency: Mutex<Histogram>,
}

impl Metrics {
    /// A finished request on `endpoint` with HTTP `status`.
    pub fn request(&self, endpoint: &'static str, status: u16) {
        *self.requests.lock().expect("metrics").entry((endpoint, status)).or_default() += 1;
    }

    /// Tokens and pages of a completed request, its time to first output and its latency.
    pub fn completed(&self, prompt_tokens: usize, completion_tokens: usize, pages: usize, ttft_s: Option<f64>, latency_s: f64) {
        self.prompt_tokens.fetch_add(prompt_tokens as u64, Ordering::Relaxed);
        self.completion_tokens.fetch_add(completion_tokens as u64, Ordering::Relaxed);
        self.pages.fetch_add(pages as u64, Ordering::Relaxed);
        if let Some(t) = ttft_s {
            self.ttft.lock().expect("metrics").observe(t);
        }
        self.latency.lock().expect("metrics").observe(latency_s);
    }

    /// Requests counted so far for `endpoint` and `status`.
    pub fn requests(&self, endpoint: &'static str, status: u16) -> u64 {
        self.requests.lock().expect("metrics").get(&(endpoint, status)).copied().unwrap_or(0)
    }

    /// The Prometheus text exposition.
    pub fn render(&self, service: Option<&OcrService>) -> String {
        let mut out = String::new();
        out.push_str("# HELP dsocr_requests_total Requests answered, by endpoint and HTTP status.\n# TYPE dsocr_requests_total counter\n");
        for ((endpoint, status), n) in self.requests.lock().expect("metrics").iter() {
            let _ = writeln!(out, "dsocr_requests_total{{endpoint=\"{endpoint}\",status=\"{status}\"}} {n}");
        }
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        counter(&mut out, "dsocr_prompt_tokens_total", "Prompt tokens of completed requests.", self.prompt_tokens.load(Ordering::Relaxed));
        counter(
            &mut out,
            "dsocr_completion_tokens_total",
            "Generated tokens of completed requests.",
            self.completion_tokens.load(Ordering::Relaxed),
        );
        counter(&mut out, "dsocr_pages_total", "Pages of completed requests.", self.pages.load(Ordering::Relaxed));
        self.ttft.lock().expect("metrics").write(&mut out, "dsocr_time_to_first_token_seconds", "From request to its first output.");
        self.latency.lock().expect("metrics").write(&mut out, "dsocr_request_latency_seconds", "From request to its last output.");
        let gauge = |out: &mut String, name: &str, help: &str, v: f64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        let ServiceLoad { pages, in_flight, waiting } = service.map(OcrService::load).unwrap_or_default();
        gauge(&mut out, "dsocr_pages_in_service", "Pages submitted and not finished.", pages as f64);
        gauge(&mut out, "dsocr_queue_depth", "Pages the engine holds waiting for admission.", waiting as f64);
        gauge(&mut out, "dsocr_pages_in_flight", "Pages decoding in the engine's last step.", in_flight as f64);
        if let Some(service) = service {
            let stats = service.stats();
            gauge(&mut out, "dsocr_max_pages_in_flight", "Most pages in flight at once (max_seqs).", stats.max_seqs as f64);
            gauge(&mut out, "dsocr_kv_blocks", "KV pool blocks of 64 slots (a page holds its length's worth).", stats.kv_blocks as f64);
            counter(&mut out, "dsocr_engine_steps_total", "Decode steps run.", stats.steps as u64);
            counter(&mut out, "dsocr_engine_tokens_total", "Tokens generated by finished pages.", stats.tokens as u64);
            counter(&mut out, "dsocr_engine_cancelled_total", "Pages cancelled (clients gone, stop sequences).", stats.cancelled as u64);
            if let Some(bytes) = stats.memory_bytes {
                gauge(&mut out, "dsocr_device_memory_bytes", "Device memory the allocator holds.", bytes as f64);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_counters_add_up() {
        let m = Metrics::default();
        m.request("chat", 200);
        m.request("chat", 200);
        m.request("chat", 429);
        m.completed(10, 5, 1, Some(0.07), 0.7);
        m.completed(20, 6, 2, Some(3.0), 4.0);
        let text = m.render(None);
        assert!(text.contains("dsocr_requests_total{endpoint=\"chat\",status=\"200\"} 2"), "{text}");
        assert!(text.contains("dsocr_requests_total{endpoint=\"chat\",status=\"429\"} 1"));
        assert!(text.contains("dsocr_prompt_tokens_total 30"));
        assert!(text.contains("dsocr_completion_tokens_total 11"));
        assert!(text.contains("dsocr_time_to_first_token_seconds_bucket{le=\"0.1\"} 1"));
        assert!(text.contains("dsocr_time_to_first_token_seconds_bucket{le=\"5\"} 2"));
        assert!(text.contains("dsocr_request_latency_seconds_count 2"));
    }
}
