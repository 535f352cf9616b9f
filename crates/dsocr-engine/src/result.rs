//! A finished page's result: its text, markdown and layout regions.

use dsocr_render::{ImageLinks, regions, strip_eos, to_markdown};

use crate::page::OcrResult;
use crate::sequence::Sequence;
use crate::tokenizer::OcrTokenizer;

/// The [`OcrResult`] of a finished sequence.
pub(crate) fn finish_page(seq: Sequence<'_>, tokenizer: &dyn OcrTokenizer) -> OcrResult {
    let raw = tokenizer.decode(&seq.tokens);
    let (w, h) = seq.image_size;
    let text = strip_eos(&raw);
    OcrResult {
        markdown: to_markdown(text, ImageLinks::Image),
        regions: regions(text, w, h),
        raw,
        tokens: seq.tokens,
        stopped_on_eos: seq.stopped_on_eos,
        prompt_tokens: seq.prompt_len,
        image_size: seq.image_size,
        timings: seq.timings,
    }
}
