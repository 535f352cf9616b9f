//! UTF-8-safe streaming of generated text.
//!
//! A token can end in the middle of a multi-byte character (byte-level BPE), so decoding each
//! token alone would print broken characters. [`TextStream`] decodes the tokens not yet shown and
//! holds them back while their text ends in an incomplete character (U+FFFD).

/// Turns a stream of token ids into a stream of complete text pieces.
pub struct TextStream<F: Fn(&[u32]) -> String> {
    decode: F,
    ids: Vec<u32>,
    /// Start of the ids whose text has not been emitted.
    pending_from: usize,
}

impl<F: Fn(&[u32]) -> String> TextStream<F> {
    /// `decode` turns ids into text (e.g. `tokenizer.decode(ids, false)`).
    pub fn new(decode: F) -> Self {
        TextStream { decode, ids: Vec::new(), pending_from: 0 }
    }

    /// Add a token; returns newly completed text, if any.
    pub fn push(&mut self, id: u32) -> Option<String> {
        self.ids.push(id);
        let text = (self.decode)(&self.ids[self.pending_from..]);
        if text.is_empty() || text.ends_with('\u{FFFD}') {
            return None;
        }
        self.pending_from = self.ids.len();
        Some(text)
    }

    /// Whatever is still held back (an incomplete character at the very end).
    pub fn finish(&mut self) -> Option<String> {
        let text = (self.decode)(&self.ids[self.pending_from..]);
        self.pending_from = self.ids.len();
        (!text.is_empty()).then_some(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_back_split_characters() {
        // Ids are bytes; "é" is two bytes.
        let decode = |ids: &[u32]| String::from_utf8_lossy(&ids.iter().map(|&i| i as u8).collect::<Vec<_>>()).into_owned();
        let mut s = TextStream::new(decode);
        let out: Vec<Option<String>> = "aé!".bytes().map(|b| s.push(u32::from(b))).collect();
        assert_eq!(out, vec![Some("a".into()), None, Some("é".into()), Some("!".into())]);
        assert_eq!(s.finish(), None);
        s.push(0xC3);
        assert_eq!(s.finish(), Some("\u{FFFD}".into()));
    }
}
