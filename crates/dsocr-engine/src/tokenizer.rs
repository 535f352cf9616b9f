//! What the engine needs of a tokenizer: prompt text to ids (for the prompt builder) and ids back
//! to text (results and streaming).

use dsocr_preprocess::TextTokenizer;

/// A tokenizer the engine can use from its own thread and from preparation threads.
pub trait OcrTokenizer: TextTokenizer + Send + Sync {
    /// Ids to text, special tokens kept (`<|ref|>…`).
    fn decode(&self, ids: &[u32]) -> String;
}

impl OcrTokenizer for tokenizers::Tokenizer {
    fn decode(&self, ids: &[u32]) -> String {
        // The inherent `decode` (on the tokenizer the wrapper dereferences to), not this trait's.
        std::ops::Deref::deref(self).decode(ids, false).unwrap_or_default()
    }
}
