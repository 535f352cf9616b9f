//! Test support: finds the shared parity fixtures (`../shared/parity` beside the repository, or
//! `$DSOCR_PARITY_DIR`) and reads their recorded tensors.
//!
//! Tests that need fixtures call [`parity`]; when the fixtures are absent it writes a line saying
//! that the test was skipped and why (straight to stderr, so `cargo test` shows it even for a
//! passing test) and returns `None`. With `DSOCR_REQUIRE_PARITY=1` (set by CI) a missing fixture
//! directory is a failure instead, so CI can never pass by skipping.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The fixture root: `$DSOCR_PARITY_DIR`, else `shared/parity` next to the repository.
pub fn parity_root() -> PathBuf {
    match std::env::var_os("DSOCR_PARITY_DIR") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/parity"),
    }
}

/// DeepSeek-OCR 2's fixture root: `$DSOCR_PARITY_OCR2_DIR`, else `parity-ocr2` in the shared
/// directory ([`shared_root`]).
pub fn parity_ocr2_root() -> PathBuf {
    match std::env::var_os("DSOCR_PARITY_OCR2_DIR") {
        Some(p) => PathBuf::from(p),
        None => shared_root().join("parity-ocr2"),
    }
}

/// The shared directory: `$DSOCR_SHARED_DIR`, else `shared/` next to the repository.
pub fn shared_root() -> PathBuf {
    match std::env::var_os("DSOCR_SHARED_DIR") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    }
}

/// The release checkpoint's tensor inventory (`docs/release_tensor_inventory.tsv`: name → shape),
/// or `None` (after reporting the skip) when it is absent.
///
/// # Panics
/// When it is absent and `DSOCR_REQUIRE_PARITY` is set.
pub fn release_inventory(test: &str) -> Option<Vec<(String, Vec<usize>)>> {
    inventory(test, "docs/release_tensor_inventory.tsv")
}

/// DeepSeek-OCR 2's release tensor inventory (`docs/release_tensor_inventory_ocr2.tsv`), as
/// [`release_inventory`].
pub fn release_inventory_ocr2(test: &str) -> Option<Vec<(String, Vec<usize>)>> {
    inventory(test, "docs/release_tensor_inventory_ocr2.tsv")
}

fn inventory(test: &str, file: &str) -> Option<Vec<(String, Vec<usize>)>> {
    let path = shared_root().join(file);
    let Ok(text) = std::fs::read_to_string(&path) else {
        let why = format!("release tensor inventory not found at {} (set DSOCR_SHARED_DIR)", path.display());
        if std::env::var_os("DSOCR_REQUIRE_PARITY").is_some() {
            panic!("{test}: {why}, and DSOCR_REQUIRE_PARITY is set");
        }
        skip(test, &why);
        return None;
    };
    let rows = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let mut cols = l.split('\t');
            let name = cols.next().unwrap().to_string();
            let shape = cols.next().expect("shape column").trim_matches(['[', ']']);
            let shape = shape.split(',').map(|d| d.trim().parse().expect("dimension")).collect();
            (name, shape)
        })
        .collect();
    Some(rows)
}

/// Report a skipped test so a person sees it in `cargo test` output.
pub fn skip(test: &str, why: &str) {
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

/// The parity fixtures, or `None` (after reporting the skip) when they are absent.
///
/// # Panics
/// When the fixtures are absent and `DSOCR_REQUIRE_PARITY` is set.
pub fn parity(test: &str) -> Option<Parity> {
    fixtures(test, parity_root(), "DSOCR_PARITY_DIR")
}

/// DeepSeek-OCR 2's parity fixtures (`parity-ocr2`), as [`parity`].
///
/// # Panics
/// When the fixtures are absent and `DSOCR_REQUIRE_PARITY` is set.
pub fn parity_ocr2(test: &str) -> Option<Parity> {
    fixtures(test, parity_ocr2_root(), "DSOCR_PARITY_OCR2_DIR")
}

/// The fixtures of both checkpoints that are present (each absent one reported, or a failure
/// under `DSOCR_REQUIRE_PARITY`).
pub fn parity_all(test: &str) -> Vec<Parity> {
    parity(test).into_iter().chain(parity_ocr2(test)).collect()
}

fn fixtures(test: &str, root: PathBuf, variable: &str) -> Option<Parity> {
    if root.join("model").join("config.json").is_file() && root.join("cases").is_dir() {
        return Some(Parity { root });
    }
    let why = format!("parity fixtures not found at {} (set {variable} to the directory holding model/ and cases/)", root.display());
    if std::env::var_os("DSOCR_REQUIRE_PARITY").is_some() {
        panic!("{test}: {why}, and DSOCR_REQUIRE_PARITY is set");
    }
    skip(test, &why);
    None
}

/// The fixture directory.
pub struct Parity {
    /// Directory holding `model/` and `cases/`.
    pub root: PathBuf,
}

impl Parity {
    /// The small release-format checkpoint directory.
    pub fn model_dir(&self) -> PathBuf {
        self.root.join("model")
    }

    /// The checkpoint's `config.json`.
    pub fn config(&self) -> serde_json::Value {
        let path = self.model_dir().join("config.json");
        serde_json::from_slice(&std::fs::read(&path).expect("read config.json")).expect("parse config.json")
    }

    /// The checkpoint class (`architectures[0]` of `config.json`), e.g. `DeepseekOCR2ForCausalLM`.
    pub fn class_name(&self) -> String {
        self.config()["architectures"][0].as_str().expect("config.json names its architecture").to_string()
    }

    /// Every recorded case, sorted by name.
    pub fn cases(&self) -> Vec<Case> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(self.root.join("cases"))
            .expect("read parity cases")
            .map(|e| e.expect("dir entry").path())
            .filter(|p| p.join("case.json").is_file())
            .collect();
        dirs.sort();
        assert!(!dirs.is_empty(), "no cases under {}", self.root.display());
        dirs.into_iter().map(Case::open).collect()
    }
}

/// One recorded run of the official code.
pub struct Case {
    /// Case name (directory name).
    pub name: String,
    /// Case directory.
    pub dir: PathBuf,
    /// `case.json`.
    pub json: serde_json::Value,
    bytes: Vec<u8>,
}

/// A recorded tensor: shape and values widened to a common type.
#[derive(Debug, Clone)]
pub struct Recorded<T> {
    /// Shape.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<T>,
}

impl Case {
    fn open(dir: PathBuf) -> Case {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let json = serde_json::from_slice(&std::fs::read(dir.join("case.json")).expect("read case.json")).expect("parse case.json");
        let bytes = std::fs::read(dir.join("expected.safetensors")).expect("read expected.safetensors");
        Case { name, dir, json, bytes }
    }

    /// The recorded mode: `(base_size, image_size, crop_mode)`.
    pub fn mode(&self) -> (usize, usize, bool) {
        let m = &self.json["mode"];
        let get = |k: &str| m[k].as_u64().unwrap_or_else(|| panic!("{}: mode.{k}", self.name)) as usize;
        (get("base_size"), get("image_size"), m["crop_mode"].as_bool().unwrap_or_else(|| panic!("{}: mode.crop_mode", self.name)))
    }

    /// The input image path.
    pub fn input_image(&self) -> PathBuf {
        self.dir.join(self.json["image"].as_str().unwrap_or("input.png"))
    }

    fn view(&self, name: &str) -> Option<safetensors::tensor::TensorView<'_>> {
        let st = safetensors::SafeTensors::deserialize(&self.bytes).expect("parse expected.safetensors");
        st.tensor(name).ok()
    }

    /// Whether the recording holds `name`.
    pub fn has(&self, name: &str) -> bool {
        self.view(name).is_some()
    }

    /// A `u8` tensor.
    pub fn u8(&self, name: &str) -> Recorded<u8> {
        let v = self.view(name).unwrap_or_else(|| panic!("{}: no tensor {name}", self.name));
        assert_eq!(v.dtype(), safetensors::Dtype::U8, "{name}");
        Recorded { shape: v.shape().to_vec(), data: v.data().to_vec() }
    }

    /// An `i64` tensor.
    pub fn i64(&self, name: &str) -> Recorded<i64> {
        let v = self.view(name).unwrap_or_else(|| panic!("{}: no tensor {name}", self.name));
        assert_eq!(v.dtype(), safetensors::Dtype::I64, "{name}");
        let data = v.data().chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect();
        Recorded { shape: v.shape().to_vec(), data }
    }

    /// An `f32` tensor.
    pub fn f32(&self, name: &str) -> Recorded<f32> {
        let v = self.view(name).unwrap_or_else(|| panic!("{}: no tensor {name}", self.name));
        assert_eq!(v.dtype(), safetensors::Dtype::F32, "{name}");
        let data = v.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
        Recorded { shape: v.shape().to_vec(), data }
    }
}

/// The fixtures' tolerance rule: max |a − b| ≤ 1e-3 · max(1, max |b|). Returns (max abs error,
/// allowed).
pub fn tolerance_check(actual: &[f32], expected: &[f32]) -> (f32, f32) {
    assert_eq!(actual.len(), expected.len(), "length mismatch");
    let max_ref = expected.iter().fold(0f32, |m, v| m.max(v.abs()));
    let err = actual.iter().zip(expected).fold(0f32, |m, (a, b)| if a.is_nan() { f32::INFINITY } else { m.max((a - b).abs()) });
    (err, 1e-3 * max_ref.max(1.0))
}
