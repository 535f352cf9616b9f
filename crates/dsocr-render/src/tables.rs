//! HTML tables in the model output (`<table><tr><td>…</td></tr></table>`) to CSV.

/// Every `<table>` of `text` as rows of cell texts. Tags inside cells are dropped; `colspan`
/// cells are repeated so rows keep their columns aligned.
pub fn html_tables(text: &str) -> Vec<Vec<Vec<String>>> {
    let mut tables = Vec::new();
    let lower = text.to_ascii_lowercase();
    let mut pos = 0;
    while let Some(start) = lower[pos..].find("<table").map(|i| i + pos) {
        let end = lower[start..].find("</table>").map(|i| i + start).unwrap_or(text.len());
        tables.push(parse_rows(&text[start..end], &lower[start..end]));
        pos = (end + "</table>".len()).min(text.len());
    }
    tables
}

fn parse_rows(html: &str, lower: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for (row_start, _) in lower.match_indices("<tr") {
        let row_end = lower[row_start + 3..].find("<tr").map(|i| i + row_start + 3).unwrap_or(lower.len());
        let mut cells = Vec::new();
        let mut p = row_start;
        while let Some(open) = lower[p..row_end].find("<td").or_else(|| lower[p..row_end].find("<th")).map(|i| i + p) {
            let Some(tag_end) = lower[open..row_end].find('>').map(|i| i + open + 1) else { break };
            let close = lower[tag_end..row_end].find("</t").map(|i| i + tag_end).unwrap_or(row_end);
            let span = attr_number(&lower[open..tag_end], "colspan").unwrap_or(1).clamp(1, 64);
            let content = strip_tags(&html[tag_end..close]);
            cells.extend(std::iter::repeat_n(content, span));
            p = close.max(tag_end);
            if p >= row_end {
                break;
            }
            p += 1;
        }
        if !cells.is_empty() {
            rows.push(cells);
        }
    }
    rows
}

fn attr_number(tag: &str, name: &str) -> Option<usize> {
    let i = tag.find(name)? + name.len();
    let rest = tag[i..].trim_start().strip_prefix('=')?.trim_start().trim_start_matches(['"', '\'']);
    rest.chars().take_while(char::is_ascii_digit).collect::<String>().parse().ok()
}

fn strip_tags(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">").replace("&nbsp;", " ").trim().to_string()
}

/// One table as CSV (RFC 4180 quoting).
pub fn to_csv(rows: &[Vec<String>]) -> String {
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .map(|c| if c.contains([',', '"', '\n', '\r']) { format!("\"{}\"", c.replace('"', "\"\"")) } else { c.clone() })
            .collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_become_csv() {
        let t = "x<table><tr><td>a</td><td colspan=\"2\">b, c</td></tr><tr><td><b>1</b></td><td>2</td><td>\"3\"</td></tr></table>y<table><tr><td>z</td></tr></table>";
        let tables = html_tables(t);
        assert_eq!(tables.len(), 2);
        assert_eq!(tables[0], vec![vec!["a", "b, c", "b, c"], vec!["1", "2", "\"3\""]]);
        assert_eq!(to_csv(&tables[0]), "a,\"b, c\",\"b, c\"\n1,2,\"\"\"3\"\"\"\n");
        assert_eq!(tables[1], vec![vec!["z"]]);
        assert!(html_tables("no tables").is_empty());
    }
}
