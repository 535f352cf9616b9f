//! Output folder names for `dsocr ocr`'s inputs: each input's file stem, made unique over the
//! whole input set. Two inputs with the same stem (`a/page.png` and `b/page.png`, or `scan.png`
//! beside `scan.pdf`) would otherwise write the same `OUT/page/` folder, the second overwriting
//! the first. The names are given over the full, sorted set before `--shard` picks a share, so
//! every shard of a job names an input the same way (their outputs can share one `--out`).

use std::collections::{HashMap, HashSet};
use std::path::Path;

/// The stem an input's outputs are named after (`-`: `stdin`).
pub fn stem(input: &str) -> String {
    if input == "-" {
        return "stdin".to_string();
    }
    Path::new(input).file_stem().map_or("input".into(), |s| s.to_string_lossy().into_owned())
}

/// Each input's output name: its stem, or for the second, third, … input of one stem in path
/// order, `STEM_2`, `STEM_3`, … (skipping names another input already has).
pub fn output_names(inputs: &[String]) -> HashMap<String, String> {
    let mut sorted: Vec<&String> = inputs.iter().collect();
    sorted.sort();
    sorted.dedup();
    let mut used: HashSet<String> = HashSet::new();
    let mut names = HashMap::new();
    // Stems first claimed in path order; inputs whose stem is taken get a numbered name after.
    let mut later = Vec::new();
    for input in sorted {
        let name = stem(input);
        if used.insert(name.clone()) {
            names.insert(input.clone(), name);
        } else {
            later.push((input, name));
        }
    }
    for (input, name) in later {
        let unique = (2..).map(|k| format!("{name}_{k}")).find(|n| !used.contains(n)).expect("an unused number");
        used.insert(unique.clone());
        names.insert(input.clone(), unique);
    }
    names
}

#[cfg(test)]
mod tests {
    use super::output_names;

    fn names(inputs: &[&str]) -> Vec<String> {
        let inputs: Vec<String> = inputs.iter().map(|s| s.to_string()).collect();
        let names = output_names(&inputs);
        inputs.iter().map(|i| names[i].clone()).collect()
    }

    #[test]
    fn distinct_stems_keep_their_names() {
        assert_eq!(names(&["a/paper.pdf", "b/scan.png", "-"]), ["paper", "scan", "stdin"]);
    }

    #[test]
    fn a_shared_stem_is_numbered_in_path_order_whatever_the_argument_order() {
        assert_eq!(names(&["b/page.png", "a/page.png", "c/page.pdf"]), ["page_2", "page", "page_3"]);
        assert_eq!(names(&["scan.png", "scan.pdf"]), ["scan_2", "scan"]);
    }

    #[test]
    fn a_numbered_name_never_takes_another_inputs_stem() {
        // `page_2` is a real file's stem: the second `page` becomes `page_3`.
        assert_eq!(names(&["a/page.png", "b/page.png", "z/page_2.png"]), ["page", "page_3", "page_2"]);
    }
}
