//! Which DeepSeek-OCR checkpoint the views are for (docs/model.md §3, docs/model-ocr2.md): the two releases cut
//! pages into views and lay out their image tokens differently.

use std::fmt;

/// A released DeepSeek-OCR architecture. It decides the view sizes a mode may use, when a view is
/// squashed instead of letterboxed, and how many `<image>` tokens an image takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Architecture {
    /// `deepseek-ai/DeepSeek-OCR` (October 2025, `DeepseekOCRForCausalLM`): SAM + CLIP-L, 640-pixel
    /// tiles, a newline token after every row of image tokens.
    #[default]
    DeepseekOcr,
    /// `deepseek-ai/DeepSeek-OCR-2` (January 2026, `DeepseekOCR2ForCausalLM`): SAM + a Qwen2
    /// encoder with learned queries, 768-pixel crops, no newline tokens (docs/model-ocr2.md).
    DeepseekOcr2,
}

impl Architecture {
    /// Both, in release order.
    pub const ALL: [Architecture; 2] = [Architecture::DeepseekOcr, Architecture::DeepseekOcr2];

    /// The class name in `config.json`'s `architectures`.
    pub fn class_name(self) -> &'static str {
        match self {
            Architecture::DeepseekOcr => "DeepseekOCRForCausalLM",
            Architecture::DeepseekOcr2 => "DeepseekOCR2ForCausalLM",
        }
    }

    /// The official Hugging Face repository.
    pub fn hub_repo(self) -> &'static str {
        match self {
            Architecture::DeepseekOcr => "deepseek-ai/DeepSeek-OCR",
            Architecture::DeepseekOcr2 => "deepseek-ai/DeepSeek-OCR-2",
        }
    }

    /// The short name used on the command line (`ocr`, `ocr2`).
    pub fn name(self) -> &'static str {
        match self {
            Architecture::DeepseekOcr => "ocr",
            Architecture::DeepseekOcr2 => "ocr2",
        }
    }

    /// The architecture of a `config.json` class name, if dsocr knows it.
    pub fn from_class_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.class_name() == name)
    }

    /// Parse a command-line name (`ocr`, `ocr2`, or a class name).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name().eq_ignore_ascii_case(name) || a.class_name() == name)
    }

    /// Side of a crop (tile) in the cropping mode.
    pub fn crop_size(self) -> usize {
        match self {
            Architecture::DeepseekOcr => 640,
            Architecture::DeepseekOcr2 => 768,
        }
    }

    /// A non-cropping view of at most this side is resized to a square without keeping the aspect
    /// (official: `image_size <= 640` in DeepSeek-OCR, `<= 768` in DeepSeek-OCR 2).
    pub fn squash_limit(self) -> usize {
        self.crop_size()
    }

    /// Whether every row of image tokens ends with the newline embedding.
    pub fn row_newlines(self) -> bool {
        self == Architecture::DeepseekOcr
    }

    /// The view sides the vision encoder can take, or `None` for any multiple of 64. DeepSeek-OCR
    /// 2's encoder has learned queries only for 768- and 1024-pixel views (144 and 256 tokens).
    pub fn view_sizes(self) -> Option<&'static [usize]> {
        match self {
            Architecture::DeepseekOcr => None,
            Architecture::DeepseekOcr2 => Some(&[768, 1024]),
        }
    }
}

impl fmt::Display for Architecture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Architecture::DeepseekOcr => "DeepSeek-OCR",
            Architecture::DeepseekOcr2 => "DeepSeek-OCR 2",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for a in Architecture::ALL {
            assert_eq!(Architecture::from_class_name(a.class_name()), Some(a));
            assert_eq!(Architecture::parse(a.name()), Some(a));
        }
        assert_eq!(Architecture::parse("OCR2"), Some(Architecture::DeepseekOcr2));
        assert_eq!(Architecture::from_class_name("LlamaForCausalLM"), None);
    }
}
