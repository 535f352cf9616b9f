//! Where the model comes from: a local directory or a Hugging Face repository, downloaded into
//! the standard Hugging Face cache (`$HF_HOME/hub`, default `~/.cache/huggingface/hub`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use dsocr_engine::{OcrOptions, OcrTokenizer};
use dsocr_preprocess::Architecture;

use crate::OcrError;

/// The official repository.
pub const DEFAULT_REPO: &str = "deepseek-ai/DeepSeek-OCR";
/// Files a model directory must hold besides the weights.
pub const REQUIRED_FILES: [&str; 2] = ["config.json", "tokenizer.json"];

/// A model location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// A directory with `config.json`, `tokenizer.json` and `*.safetensors`.
    Dir(PathBuf),
    /// A Hugging Face model repository id such as `deepseek-ai/DeepSeek-OCR`, at a revision.
    Hub {
        /// `owner/name`.
        repo: String,
        /// Branch, tag or commit (default `main`).
        revision: String,
    },
}

impl Default for ModelSource {
    fn default() -> Self {
        ModelSource::Hub { repo: DEFAULT_REPO.into(), revision: "main".into() }
    }
}

impl ModelSource {
    /// A path that exists is a directory; anything else of the form `owner/name[@revision]` is a
    /// Hugging Face repository.
    pub fn parse(s: &str) -> Result<Self, OcrError> {
        let p = Path::new(s);
        if p.exists() {
            return Ok(ModelSource::Dir(p.to_path_buf()));
        }
        let (repo, revision) = s.split_once('@').unwrap_or((s, "main"));
        let valid = repo.split('/').count() == 2 && repo.split('/').all(|part| !part.is_empty() && !part.contains(['\\', ' ']));
        if !valid || s.starts_with('.') || s.starts_with('/') {
            return Err(OcrError::Model(format!("{s:?} is neither an existing model directory nor a Hugging Face repo id (owner/name)")));
        }
        Ok(ModelSource::Hub { repo: repo.into(), revision: revision.into() })
    }
}

impl From<&Path> for ModelSource {
    fn from(p: &Path) -> Self {
        ModelSource::Dir(p.to_path_buf())
    }
}

impl From<PathBuf> for ModelSource {
    fn from(p: PathBuf) -> Self {
        ModelSource::Dir(p)
    }
}

/// The files of a model, all present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelFiles {
    /// `config.json`.
    pub config: PathBuf,
    /// `tokenizer.json`.
    pub tokenizer: PathBuf,
    /// The safetensors files.
    pub weights: Vec<PathBuf>,
}

impl ModelFiles {
    /// Check a local directory and list what is missing.
    pub fn from_dir(dir: &Path) -> Result<Self, OcrError> {
        if !dir.is_dir() {
            return Err(OcrError::Model(format!("model directory {} does not exist", dir.display())));
        }
        let mut weights: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| OcrError::Model(format!("cannot list {}: {e}", dir.display())))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
            .collect();
        weights.sort();
        let mut missing: Vec<String> = REQUIRED_FILES.iter().filter(|f| !dir.join(f).is_file()).map(|f| f.to_string()).collect();
        if weights.is_empty() {
            missing.push("*.safetensors".into());
        }
        if !missing.is_empty() {
            return Err(OcrError::Model(format!(
                "model directory {} lacks {}; it must hold the DeepSeek-OCR release files (config.json, tokenizer.json, model*.safetensors)",
                dir.display(),
                missing.join(", ")
            )));
        }
        Ok(ModelFiles { config: dir.join("config.json"), tokenizer: dir.join("tokenizer.json"), weights })
    }

    /// Resolve a source: a directory is checked; a hub repository is taken from the local cache
    /// when complete (works offline, and with `HF_HUB_OFFLINE=1` never touches the network),
    /// otherwise downloaded with a progress bar.
    pub fn resolve(source: &ModelSource, progress: bool) -> Result<Self, OcrError> {
        match source {
            ModelSource::Dir(dir) => Self::from_dir(dir),
            ModelSource::Hub { repo, revision } => hub::resolve(repo, revision, progress),
        }
    }
}

/// A model's small files, read before its weights: `config.json` (which checkpoint it is) and
/// the tokenizer. That is all preparing a page needs, so pages can be rendered and prepared while
/// the weights load ([`crate::DeepseekOcr::from_header`]).
#[derive(Clone)]
pub struct ModelHeader {
    /// The files it was read from.
    pub files: ModelFiles,
    pub(crate) config: serde_json::Value,
    pub(crate) config_name: String,
    architecture: Architecture,
    pub(crate) tokenizer: Arc<dyn OcrTokenizer>,
}

impl std::fmt::Debug for ModelHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelHeader").field("files", &self.files).field("architecture", &self.architecture).finish()
    }
}

impl ModelHeader {
    /// Read `files`' `config.json` and tokenizer; an unknown architecture is refused by name.
    pub fn read(files: ModelFiles) -> Result<Self, OcrError> {
        let config_name = files.config.display().to_string();
        let bytes = std::fs::read(&files.config).map_err(|e| OcrError::Model(format!("cannot read {config_name}: {e}")))?;
        let config: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| OcrError::Model(format!("{config_name} is not valid JSON: {e}")))?;
        let architecture = dsocr_vision::architecture_of(&config, &config_name)?;
        let tokenizer = tokenizers::Tokenizer::from_file(&files.tokenizer)
            .map_err(|e| OcrError::Model(format!("cannot load tokenizer {}: {e}", files.tokenizer.display())))?;
        Ok(ModelHeader { files, config, config_name, architecture, tokenizer: Arc::new(tokenizer) })
    }

    /// Which checkpoint this is.
    pub fn architecture(&self) -> Architecture {
        self.architecture
    }

    /// The tokenizer, shared (for preparation threads).
    pub fn tokenizer(&self) -> Arc<dyn OcrTokenizer> {
        self.tokenizer.clone()
    }

    /// `options` as this checkpoint runs them (as [`crate::DeepseekOcr::options_for_model`]).
    pub fn options_for_model(&self, options: &OcrOptions) -> Result<OcrOptions, OcrError> {
        Ok(options.for_architecture(self.architecture)?)
    }
}

mod hub {
    use hf_hub::api::sync::ApiBuilder;
    use hf_hub::{Cache, Repo, RepoType};

    use super::{ModelFiles, REQUIRED_FILES};
    use crate::OcrError;

    /// The release's weight file names, tried in the cache before asking the hub.
    const KNOWN_WEIGHTS: [&str; 2] = ["model-00001-of-000001.safetensors", "model.safetensors"];

    /// The model's files from a Hugging Face cache directory (the `hub` folder), if complete.
    pub(super) fn cached(cache_dir: &std::path::Path, repo_id: &str, revision: &str) -> Option<ModelFiles> {
        let repo = Repo::with_revision(repo_id.to_string(), RepoType::Model, revision.to_string());
        let cache = Cache::new(cache_dir.to_path_buf()).repo(repo);
        let config = cache.get(REQUIRED_FILES[0])?;
        let tokenizer = cache.get(REQUIRED_FILES[1])?;
        let weights: Vec<_> = KNOWN_WEIGHTS.iter().filter_map(|f| cache.get(f)).take(1).collect();
        (!weights.is_empty()).then_some(ModelFiles { config, tokenizer, weights })
    }

    pub(super) fn resolve(repo_id: &str, revision: &str, progress: bool) -> Result<ModelFiles, OcrError> {
        let repo = Repo::with_revision(repo_id.to_string(), RepoType::Model, revision.to_string());
        if let Some(files) = cached(Cache::from_env().path(), repo_id, revision) {
            tracing::info!("using cached {repo_id}@{revision}");
            return Ok(files);
        }
        if std::env::var_os("HF_HUB_OFFLINE").is_some_and(|v| v != "0") {
            return Err(OcrError::Model(format!(
                "{repo_id}@{revision} is not complete in the Hugging Face cache and HF_HUB_OFFLINE is set; download it once online or pass --model DIR"
            )));
        }
        let api = ApiBuilder::from_env()
            .with_progress(progress)
            .build()
            .map_err(|e| OcrError::Model(format!("cannot reach the Hugging Face hub: {e}")))?;
        let remote = api.repo(repo);
        let fetch = |f: &str| {
            remote.get(f).map_err(|e| {
                OcrError::Model(format!("cannot download {f} from {repo_id}@{revision}: {e}; check the network or pass --model DIR"))
            })
        };
        let info = remote.info().map_err(|e| OcrError::Model(format!("cannot list {repo_id}@{revision}: {e}")))?;
        let names: Vec<String> =
            info.siblings.into_iter().map(|s| s.rfilename).filter(|n| n.ends_with(".safetensors") && !n.contains('/')).collect();
        if names.is_empty() {
            return Err(OcrError::Model(format!("{repo_id}@{revision} has no .safetensors file")));
        }
        let config = fetch(REQUIRED_FILES[0])?;
        let tokenizer = fetch(REQUIRED_FILES[1])?;
        let weights = names.iter().map(|n| fetch(n)).collect::<Result<Vec<_>, _>>()?;
        Ok(ModelFiles { config, tokenizer, weights })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_sources() {
        assert_eq!(ModelSource::parse("deepseek-ai/DeepSeek-OCR").unwrap(), ModelSource::default());
        assert_eq!(ModelSource::parse("a/b@v2").unwrap(), ModelSource::Hub { repo: "a/b".into(), revision: "v2".into() });
        assert!(matches!(ModelSource::parse(".").unwrap(), ModelSource::Dir(_)));
        assert!(ModelSource::parse("not a repo").is_err());
        assert!(ModelSource::parse("/no/such/dir").is_err());
    }

    #[test]
    fn a_complete_hub_cache_is_used_without_network() {
        // The Hugging Face cache layout: hub/models--OWNER--NAME/{refs/main, snapshots/REV/…}.
        let Some(p) = dsocr_testdata::parity("a_complete_hub_cache_is_used_without_network") else { return };
        let hub = std::env::temp_dir().join(format!("dsocr-hf-cache-{}", std::process::id()));
        let repo = hub.join("models--deepseek-ai--DeepSeek-OCR");
        let snap = repo.join("snapshots/0123abcd");
        std::fs::create_dir_all(&snap).unwrap();
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs/main"), "0123abcd").unwrap();
        for f in ["config.json", "tokenizer.json"] {
            std::fs::copy(p.model_dir().join(f), snap.join(f)).unwrap();
        }
        assert!(hub::cached(&hub, DEFAULT_REPO, "main").is_none(), "no weights yet");
        std::fs::copy(p.model_dir().join("model.safetensors"), snap.join("model-00001-of-000001.safetensors")).unwrap();
        let files = hub::cached(&hub, DEFAULT_REPO, "main").expect("complete cache");
        assert_eq!(files.weights, vec![snap.join("model-00001-of-000001.safetensors")]);
        assert_eq!(files.config, snap.join("config.json"));
        std::fs::remove_dir_all(&hub).unwrap();
    }

    #[test]
    fn missing_files_are_listed() {
        let dir = std::env::temp_dir().join(format!("dsocr-src-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config.json"), "{}").unwrap();
        let e = ModelFiles::from_dir(&dir).unwrap_err().to_string();
        assert!(e.contains("tokenizer.json") && e.contains("*.safetensors"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
