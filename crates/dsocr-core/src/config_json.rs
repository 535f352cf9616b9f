//! Typed sections of `config.json`.
//!
//! Each network declares its options as a `#[derive(Deserialize)]` struct whose `Default` is the
//! release (docs/model.md §2); this module reads one section of the parsed file into such a struct.
//! Two rules of the Python config classes the release was written for carry over: a key set to
//! `null` means the key is absent (the release writes `"kv_lora_rank": null`), and keys this
//! project does not use are ignored. A value of the wrong type is an error that names the key's
//! full path and the file, e.g. `language_config.hidden_size: invalid type: string "x", expected
//! usize`.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::CoreError;

/// Deserialize `section` (found at `path` inside the file, e.g. `"language_config"`, or `""` for
/// the top level) into `T`; `source` names the file in errors.
pub fn parse_section<T: DeserializeOwned>(section: &Value, path: &str, source: &str) -> Result<T, CoreError> {
    let cleaned = without_nulls(section);
    serde_path_to_error::deserialize::<_, T>(&cleaned).map_err(|e| {
        let inner = e.path().to_string();
        let key = match (path.is_empty(), inner.as_str()) {
            (true, _) => inner.clone(),
            (false, ".") => path.to_string(),
            (false, _) => format!("{path}.{inner}"),
        };
        config_error(source, format!("{key}: {}", e.inner()))
    })
}

/// The [`CoreError::Config`] for `source` with `reason`.
pub fn config_error(source: &str, reason: impl Into<String>) -> CoreError {
    CoreError::Config { path: source.to_string(), reason: reason.into() }
}

/// Whether `key` is set (present and not `null`) in the object `section`.
pub fn has_key(section: &Value, key: &str) -> bool {
    section.get(key).is_some_and(|v| !v.is_null())
}

/// A copy of `v` with every `null`-valued object entry removed, at every depth.
fn without_nulls(v: &Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(map.iter().filter(|(_, x)| !x.is_null()).map(|(k, x)| (k.clone(), without_nulls(x))).collect()),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(default)]
    struct Opts {
        width: usize,
        name: String,
        inner: Inner,
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default)]
    struct Inner {
        depth: u32,
    }

    impl Default for Opts {
        fn default() -> Self {
            Opts { width: 7, name: "x".into(), inner: Inner { depth: 3 } }
        }
    }

    #[test]
    fn nulls_and_absent_keys_take_the_defaults_and_unknown_keys_are_ignored() {
        let o: Opts = parse_section(&json!({"width": null, "other": 1, "inner": {}}), "", "c").unwrap();
        assert_eq!(o, Opts { inner: Inner { depth: 0 }, ..Opts::default() });
        let o: Opts = parse_section(&json!({"name": "y"}), "", "c").unwrap();
        assert_eq!(o, Opts { name: "y".into(), ..Opts::default() });
    }

    #[test]
    fn a_wrong_type_names_the_full_key_and_the_file() {
        let e = parse_section::<Opts>(&json!({"inner": {"depth": "deep"}}), "language_config", "m/config.json").unwrap_err();
        let e = e.to_string();
        assert!(e.contains("language_config.inner.depth") && e.contains("m/config.json") && e.contains("deep"), "{e}");
        let e = parse_section::<Opts>(&json!({"width": -1}), "", "c").unwrap_err().to_string();
        assert!(e.contains("width:"), "{e}");
    }
}
