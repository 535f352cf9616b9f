//! The prompt's token layout (docs/model.md §4.5, §5.2): how many `<image>` placeholders each
//! image expands to, and the prompt ids with BOS and the image-position mask.

use crate::PreprocessError;
use crate::mode::{DOWNSAMPLE_RATIO, ModeSpec, PATCH_SIZE};
use crate::tiling::TileGrid;

/// The `<image>` placeholder text in prompts.
pub const IMAGE_PLACEHOLDER: &str = "<image>";
/// Id of the `<image>` token.
pub const IMAGE_TOKEN_ID: u32 = 128_815;
/// Id of the BOS token `<｜begin▁of▁sentence｜>`, added in front of every prompt.
pub const BOS_TOKEN_ID: u32 = 0;
/// Id of the EOS token `<｜end▁of▁sentence｜>`.
pub const EOS_TOKEN_ID: u32 = 1;

/// Vision tokens per side of a square view of `size` pixels: `ceil((size / 16) / 4)`.
pub fn tokens_per_side(size: usize) -> usize {
    (size / PATCH_SIZE).div_ceil(DOWNSAMPLE_RATIO)
}

/// Number of `<image>` tokens an image takes in the prompt: the global grid, the view separator,
/// and (when tiled) the tile grid; in DeepSeek-OCR each row of the global grid and of the stitched
/// tile grid also ends with a newline token, in DeepSeek-OCR 2 there are none (docs/model.md §5,
/// docs/model-ocr2.md §4).
pub fn image_token_count(mode: &ModeSpec, grid: TileGrid) -> usize {
    let newline = usize::from(mode.arch.row_newlines());
    let q_global = tokens_per_side(mode.global_size());
    let mut n = q_global * (q_global + newline) + 1;
    if mode.crop && grid.is_tiled() {
        let q = tokens_per_side(mode.image_size);
        n += (q * grid.rows) * (q * grid.cols + newline);
    }
    n
}

/// Text to token ids without special-token handling (`add_special_tokens=False`).
///
/// Implemented for `tokenizers::Tokenizer` (feature `tokenizers`); implement it yourself to use
/// another tokenizer or fixed ids.
pub trait TextTokenizer {
    /// Encode `text` to ids; added tokens such as `<|grounding|>` must map to their single ids.
    fn encode_text(&self, text: &str) -> Result<Vec<u32>, PreprocessError>;
}

#[cfg(feature = "tokenizers")]
impl TextTokenizer for tokenizers::Tokenizer {
    fn encode_text(&self, text: &str) -> Result<Vec<u32>, PreprocessError> {
        self.encode(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| PreprocessError::Tokenizer(format!("could not encode {text:?}: {e}")))
    }
}

/// Prompt ids and where the image rows go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptIds {
    /// `[BOS] ++ text ++ [<image>] × N ++ text …`
    pub input_ids: Vec<u32>,
    /// True exactly on the image placeholder positions.
    pub images_seq_mask: Vec<bool>,
}

impl PromptIds {
    /// Number of prompt tokens.
    pub fn len(&self) -> usize {
        self.input_ids.len()
    }

    /// Whether the prompt is empty (never, since BOS is always present).
    pub fn is_empty(&self) -> bool {
        self.input_ids.is_empty()
    }

    /// Number of image positions.
    pub fn image_positions(&self) -> usize {
        self.images_seq_mask.iter().filter(|&&m| m).count()
    }
}

/// Build the prompt ids as the official `infer()`: the prompt is stripped (the "plain" template),
/// split at each `<image>`, every text piece encoded without special tokens, the k-th `<image>`
/// replaced by `image_tokens[k]` placeholder ids, and BOS put in front. No EOS.
///
/// The number of `<image>` markers must equal the number of images.
pub fn build_prompt(tokenizer: &dyn TextTokenizer, prompt: &str, image_tokens: &[usize]) -> Result<PromptIds, PreprocessError> {
    let prompt = prompt.trim();
    let pieces: Vec<&str> = prompt.split(IMAGE_PLACEHOLDER).collect();
    let markers = pieces.len() - 1;
    if markers != image_tokens.len() {
        return Err(PreprocessError::PromptImageMismatch { prompt: prompt.to_string(), markers, images: image_tokens.len() });
    }
    let mut input_ids = vec![BOS_TOKEN_ID];
    let mut images_seq_mask = vec![false];
    for (i, piece) in pieces.iter().enumerate() {
        if !piece.is_empty() {
            let ids = tokenizer.encode_text(piece)?;
            images_seq_mask.extend(std::iter::repeat_n(false, ids.len()));
            input_ids.extend(ids);
        }
        if let Some(&n) = image_tokens.get(i) {
            input_ids.extend(std::iter::repeat_n(IMAGE_TOKEN_ID, n));
            images_seq_mask.extend(std::iter::repeat_n(true, n));
        }
    }
    Ok(PromptIds { input_ids, images_seq_mask })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mode::Mode;

    /// Encodes each byte as its value + 1000: enough to check the layout.
    struct ByteTok;
    impl TextTokenizer for ByteTok {
        fn encode_text(&self, text: &str) -> Result<Vec<u32>, PreprocessError> {
            Ok(text.bytes().map(|b| 1000 + u32::from(b)).collect())
        }
    }

    #[test]
    fn token_counts_match_spec_table() {
        let single = TileGrid::SINGLE;
        assert_eq!(image_token_count(&Mode::Tiny.spec(), single), 73);
        assert_eq!(image_token_count(&Mode::Small.spec(), single), 111);
        assert_eq!(image_token_count(&Mode::Base.spec(), single), 273);
        assert_eq!(image_token_count(&Mode::Large.spec(), single), 421);
        let g = Mode::Gundam.spec();
        assert_eq!(image_token_count(&g, single), 273);
        assert_eq!(image_token_count(&g, TileGrid { cols: 2, rows: 3 }), 903);
        assert_eq!(image_token_count(&g, TileGrid { cols: 3, rows: 2 }), 893);
        assert_eq!(image_token_count(&g, TileGrid { cols: 3, rows: 1 }), 583);
        assert_eq!(image_token_count(&g, TileGrid { cols: 6, rows: 1 }), 883);
    }

    #[test]
    fn ocr2_token_counts_have_no_newlines() {
        // docs/model-ocr2.md §4: 257 + 144·k.
        let ocr2 = crate::Architecture::DeepseekOcr2;
        let d = Mode::Gundam.spec_for(ocr2).unwrap();
        assert_eq!(image_token_count(&d, TileGrid::SINGLE), 257);
        assert_eq!(image_token_count(&d, TileGrid { cols: 2, rows: 3 }), 1121);
        assert_eq!(image_token_count(&d, TileGrid { cols: 3, rows: 1 }), 689);
        assert_eq!(image_token_count(&Mode::Base.spec_for(ocr2).unwrap(), TileGrid::SINGLE), 257);
        assert_eq!(image_token_count(&Mode::Small.spec_for(ocr2).unwrap(), TileGrid::SINGLE), 145);
    }

    #[test]
    fn layout_has_bos_placeholders_and_mask() {
        let p = build_prompt(&ByteTok, "  <image>\nHi ", &[3]).unwrap();
        assert_eq!(p.input_ids, vec![0, IMAGE_TOKEN_ID, IMAGE_TOKEN_ID, IMAGE_TOKEN_ID, 1010, 1072, 1105]);
        assert_eq!(p.images_seq_mask, vec![false, true, true, true, false, false, false]);
        assert_eq!(p.image_positions(), 3);
        let two = build_prompt(&ByteTok, "a<image>b<image>", &[1, 2]).unwrap();
        assert_eq!(two.input_ids, vec![0, 1097, IMAGE_TOKEN_ID, 1098, IMAGE_TOKEN_ID, IMAGE_TOKEN_ID]);
    }

    #[test]
    fn marker_count_must_match_images() {
        let e = build_prompt(&ByteTok, "Free OCR.", &[273]).unwrap_err();
        assert!(matches!(e, PreprocessError::PromptImageMismatch { markers: 0, images: 1, .. }));
        assert!(e.to_string().contains("<image>"), "{e}");
        assert!(build_prompt(&ByteTok, "<image><image>", &[5]).is_err());
        assert_eq!(build_prompt(&ByteTok, "text only", &[]).unwrap().input_ids.len(), 10);
    }
}
