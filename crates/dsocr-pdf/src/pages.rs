//! Page selections such as `1-3,7` (1-based, inclusive).

use crate::PdfError;

/// Parse `spec` (`"1-3,7"`, `"5-"`, `"all"`) for a document of `count` pages into 0-based page
/// indexes, in the order given, without duplicates.
pub fn parse_page_ranges(spec: &str, count: usize) -> Result<Vec<usize>, PdfError> {
    let spec = spec.trim();
    if spec.is_empty() || spec.eq_ignore_ascii_case("all") {
        return Ok((0..count).collect());
    }
    let bad = |part: &str| PdfError::PageRange(format!("bad page range {part:?} in {spec:?}; use e.g. 1-3,7"));
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let first: usize = a.parse().map_err(|_| bad(part))?;
        let last: usize = if b.is_empty() { count } else { b.parse().map_err(|_| bad(part))? };
        if first == 0 || last < first {
            return Err(bad(part));
        }
        if last > count {
            return Err(PdfError::PageRange(format!("page {last} is out of range: the document has {count} page(s)")));
        }
        for p in first - 1..last {
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_page_ranges("1-3,7", 10).unwrap(), vec![0, 1, 2, 6]);
        assert_eq!(parse_page_ranges("all", 3).unwrap(), vec![0, 1, 2]);
        assert_eq!(parse_page_ranges("2-", 4).unwrap(), vec![1, 2, 3]);
        assert_eq!(parse_page_ranges("3,1-3", 4).unwrap(), vec![2, 0, 1]);
        assert!(parse_page_ranges("0", 4).is_err());
        assert!(parse_page_ranges("3-1", 4).is_err());
        let e = parse_page_ranges("9", 4).unwrap_err().to_string();
        assert!(e.contains("4 page"), "{e}");
        assert!(parse_page_ranges("x", 4).is_err());
    }
}
