//! What the XML writers (hOCR, ALTO) share: escaping and safe names.

/// `text` with the five XML special characters escaped, usable in content and in quoted
/// attributes; characters XML 1.0 forbids (most control characters) are dropped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// A label as a name token (a class name or part of an ID): ASCII letters, digits, `_` and `-`
/// kept, anything else `_`; never empty.
pub fn name_token(label: &str) -> String {
    let t: String = label.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect();
    if t.is_empty() { "_".into() } else { t }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_tokens() {
        assert_eq!(escape("a<b & \"c\" 'd'\u{1}"), "a&lt;b &amp; &quot;c&quot; &apos;d&apos;");
        assert_eq!(name_token("image caption/é"), "image_caption__");
        assert_eq!(name_token(""), "_");
    }
}
