//! What to ask the model (docs/model.md §5.1): the official prompts.

use std::fmt;
use std::str::FromStr;

use crate::EngineError;

/// An OCR task; each maps to one of the official prompts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Task {
    /// Document to markdown with layout boxes: `<image>\n<|grounding|>Convert the document to markdown.`
    #[default]
    Markdown,
    /// Any image with layout boxes: `<image>\n<|grounding|>OCR this image.`
    Ocr,
    /// Text only, no layout: `<image>\nFree OCR.`
    FreeOcr,
    /// Charts and figures: `<image>\nParse the figure.`
    Figure,
    /// A description: `<image>\nDescribe this image in detail.`
    Describe,
    /// Find a text: `<image>\nLocate <|ref|>TEXT<|/ref|> in the image.`
    Locate(String),
    /// Your own prompt; it must contain `<image>` once ([`Task::from_name`] puts it first when the
    /// text has none).
    Custom(String),
}

impl Task {
    /// The prompt text.
    pub fn prompt(&self) -> String {
        match self {
            Task::Markdown => "<image>\n<|grounding|>Convert the document to markdown.".into(),
            Task::Ocr => "<image>\n<|grounding|>OCR this image.".into(),
            Task::FreeOcr => "<image>\nFree OCR.".into(),
            Task::Figure => "<image>\nParse the figure.".into(),
            Task::Describe => "<image>\nDescribe this image in detail.".into(),
            Task::Locate(text) => format!("<image>\nLocate <|ref|>{text}<|/ref|> in the image."),
            Task::Custom(p) => p.clone(),
        }
    }

    /// The names accepted on the command line.
    pub const NAMES: [&'static str; 7] = ["markdown", "ocr", "free", "figure", "describe", "locate", "custom"];

    /// Build from a command-line name and an argument (for `locate` and `custom`).
    pub fn from_name(name: &str, arg: Option<&str>) -> Result<Self, EngineError> {
        let need = |what: &str| arg.map(str::to_string).ok_or_else(|| EngineError::Input(format!("task {name} needs {what}")));
        Ok(match name.to_ascii_lowercase().as_str() {
            "markdown" | "document" => Task::Markdown,
            "ocr" => Task::Ocr,
            "free" | "free-ocr" => Task::FreeOcr,
            "figure" => Task::Figure,
            "describe" => Task::Describe,
            "locate" => Task::Locate(locate_text(need("the text to find (--prompt TEXT)")?)?),
            "custom" => Task::Custom(custom_prompt(need("a prompt (--prompt TEXT)")?)?),
            other => return Err(EngineError::Input(format!("unknown task {other:?}; use one of {}", Task::NAMES.join(", ")))),
        })
    }
}

/// The text to find: the page's own `<image>` comes before it, so the text may not have one.
fn locate_text(text: String) -> Result<String, EngineError> {
    if text.contains("<image>") {
        return Err(EngineError::Input("the text to find has <image>; the page goes before it: give only the text".into()));
    }
    Ok(text)
}

/// A custom prompt as the model needs it: `<image>` exactly once, put first (on a line of its
/// own, as in the official prompts) when the text does not have it.
fn custom_prompt(text: String) -> Result<String, EngineError> {
    match text.matches("<image>").count() {
        0 => Ok(format!("<image>\n{text}")),
        1 => Ok(text),
        n => Err(EngineError::Input(format!(
            "the prompt has <image> {n} times; a page is one image: keep one <image> where the page goes, or none (it is then put first)"
        ))),
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Task::Markdown => "markdown",
            Task::Ocr => "ocr",
            Task::FreeOcr => "free",
            Task::Figure => "figure",
            Task::Describe => "describe",
            Task::Locate(_) => "locate",
            Task::Custom(_) => "custom",
        })
    }
}

impl FromStr for Task {
    type Err = EngineError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Task::from_name(s, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_custom_prompt_gets_its_image_first_unless_it_has_one() {
        assert_eq!(Task::from_name("custom", Some("What is the title?")).unwrap().prompt(), "<image>\nWhat is the title?");
        assert_eq!(Task::from_name("custom", Some("Read <image> aloud.")).unwrap().prompt(), "Read <image> aloud.");
        let two = Task::from_name("custom", Some("<image> and <image>")).unwrap_err().to_string();
        assert!(two.contains("<image> 2 times"), "{two}");
        assert!(Task::from_name("custom", None).unwrap_err().to_string().contains("--prompt"));
        // The text to locate comes after the page's <image>: a second one is refused.
        assert_eq!(Task::from_name("locate", Some("Total")).unwrap().prompt(), "<image>\nLocate <|ref|>Total<|/ref|> in the image.");
        assert!(Task::from_name("locate", Some("<image> Total")).unwrap_err().to_string().contains("the text to find has <image>"));
    }
}
