//! Stop sequences over streamed text: the output ends before the first occurrence of any of
//! them. Text that could be the start of a stop sequence is held back until the next piece
//! shows whether it is one.

/// Filters a stream of text pieces.
#[derive(Debug, Default)]
pub struct StopFilter {
    stops: Vec<String>,
    held: String,
    stopped: bool,
}

impl StopFilter {
    /// A filter for `stops` (none: everything passes).
    pub fn new(stops: Vec<String>) -> Self {
        StopFilter { stops, held: String::new(), stopped: false }
    }

    /// Whether a stop sequence has been met.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// Add a piece; returns the text that can be sent now.
    pub fn push(&mut self, text: &str) -> String {
        if self.stopped {
            return String::new();
        }
        if self.stops.is_empty() {
            return text.to_string();
        }
        self.held.push_str(text);
        if let Some(at) = self.stops.iter().filter_map(|s| self.held.find(s.as_str())).min() {
            self.stopped = true;
            let out = self.held[..at].to_string();
            self.held.clear();
            return out;
        }
        // Keep the longest tail that is a proper prefix of some stop sequence.
        let keep = self
            .held
            .char_indices()
            .map(|(i, _)| i)
            .find(|&i| self.stops.iter().any(|s| s.starts_with(&self.held[i..])))
            .unwrap_or(self.held.len());
        let out = self.held[..keep].to_string();
        self.held.drain(..keep);
        out
    }

    /// The end of the stream: whatever was held back.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

#[cfg(test)]
mod tests {
    use super::StopFilter;

    #[test]
    fn ends_before_the_stop_sequence_even_across_pieces() {
        let mut f = StopFilter::new(vec!["END".into()]);
        let mut out = String::new();
        for piece in ["abc E", "N", "x E", "ND tail"] {
            out += &f.push(piece);
        }
        assert_eq!(out, "abc ENx ");
        assert!(f.stopped());
        assert_eq!(f.push("more"), "");
    }

    #[test]
    fn held_text_comes_out_at_the_end_and_no_stops_pass_everything() {
        let mut f = StopFilter::new(vec!["</table>".into()]);
        assert_eq!(f.push("cell </ta"), "cell ");
        assert_eq!(f.finish(), "</ta");
        let mut all = StopFilter::new(vec![]);
        assert_eq!(all.push("é</"), "é</");
    }
}
