//! Encoder sizes, read from the release `config.json` (docs/model.md §2.2, docs/model-ocr2.md §2), and which
//! architecture a checkpoint is ([`architecture_of`]).
//!
//! The release code hard-codes the encoders; the release `config.json` states most of their sizes
//! under `vision_config.width`. Keys it lacks (`out_chans`, `ffn_hidden_size`, the Qwen2 encoder's
//! `layers`, `heads`, …) default to the release values, as does everything else that is absent, so
//! the released files and the small parity checkpoints load through the same path.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use dsocr_core::CoreError;
use dsocr_core::config_json::{config_error, parse_section};
use dsocr_preprocess::Architecture;

/// The architecture of a checkpoint from its parsed `config.json` (`source` names it in errors):
/// the first class of `architectures` that dsocr knows; without that key, DeepSeek-OCR 2 when
/// `vision_config.model_name` is `deepencoderv2`, else DeepSeek-OCR. A file that names only
/// classes dsocr does not run is refused with their names.
pub fn architecture_of(config: &Value, source: &str) -> Result<Architecture, CoreError> {
    if let Some(names) = config.get("architectures").and_then(Value::as_array).filter(|n| !n.is_empty()) {
        let names: Vec<&str> = names.iter().filter_map(Value::as_str).collect();
        if let Some(arch) = names.iter().find_map(|n| Architecture::from_class_name(n)) {
            return Ok(arch);
        }
        let known: Vec<String> = Architecture::ALL.iter().map(|a| format!("{} ({})", a.class_name(), a.hub_repo())).collect();
        return Err(config_error(
            source,
            format!("architectures: {} is not a checkpoint dsocr runs; it runs {}", names.join(", "), known.join(" and ")),
        ));
    }
    let v2 = config.pointer("/vision_config/model_name").and_then(Value::as_str) == Some("deepencoderv2");
    Ok(if v2 { Architecture::DeepseekOcr2 } else { Architecture::DeepseekOcr })
}

/// SAM ViT-B sizes: `vision_config.width.sam_vit_b` in `config.json`; the fields the file does
/// not state are fixed by the release code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SamConfig {
    /// Token width (768).
    pub width: usize,
    /// Number of transformer blocks (12).
    pub layers: usize,
    /// Attention heads (12).
    pub heads: usize,
    /// Blocks with global attention; the others use 14×14 windows.
    pub global_attn_indexes: Vec<usize>,
    /// Window side of the windowed blocks (14).
    #[serde(skip)]
    pub window_size: usize,
    /// Input side the position table was trained for (1024 → a 64×64 table).
    #[serde(skip)]
    pub image_size: usize,
    /// Patch side (16).
    #[serde(skip)]
    pub patch_size: usize,
    /// MLP width (4 × width).
    #[serde(skip)]
    pub mlp_dim: usize,
    /// Neck channels (256).
    pub out_chans: usize,
    /// Channels of the two stride-2 convs after the neck (512, 1024; DeepSeek-OCR 2: 512, 896, the
    /// Qwen2 encoder's width, whatever its `config.json` says: docs/model-ocr2.md §2).
    pub downsample_channels: [usize; 2],
    /// LayerNorm epsilon (1e-6).
    #[serde(skip)]
    pub eps: f64,
}

/// CLIP-L sizes: `vision_config.width.clip-l-14-224` in `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClipConfig {
    /// Token width (1024); must equal SAM's last downsample channel count.
    pub width: usize,
    /// Transformer layers (24).
    pub layers: usize,
    /// Attention heads (16).
    pub heads: usize,
    /// MLP width (4096).
    pub ffn_hidden_size: usize,
    /// Nominal image side (224).
    pub image_size: usize,
    /// Nominal patch side (14); with `image_size` it sets the 16×16+1 position table.
    pub patch_size: usize,
    /// LayerNorm epsilon (1e-5; fixed by the release code).
    #[serde(skip)]
    pub eps: f64,
}

impl ClipConfig {
    /// Side of the trained position grid (224 / 14 = 16).
    pub fn position_grid(&self) -> usize {
        self.image_size / self.patch_size
    }
}

/// DeepSeek-OCR 2's Qwen2 encoder ("decoder as encoder", docs/model-ocr2.md §5): `vision_config.width.
/// qwen2-0-5b` in `config.json`, where the release states only `dim`; the rest defaults to the
/// release code's values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Qwen2EncoderConfig {
    /// Token width (896).
    pub dim: usize,
    /// Decoder layers (24).
    pub layers: usize,
    /// Query heads (14).
    pub heads: usize,
    /// Key/value heads (2; each serves `heads / kv_heads` query heads).
    pub kv_heads: usize,
    /// MLP width (4864).
    pub intermediate_size: usize,
    /// RoPE base (10⁶; fixed by the release code).
    #[serde(skip)]
    pub rope_theta: f64,
    /// RMSNorm epsilon (1e-6; fixed by the release code).
    #[serde(skip)]
    pub eps: f64,
}

impl Qwen2EncoderConfig {
    /// Width of one head (64).
    pub fn head_dim(&self) -> usize {
        self.dim / self.heads
    }
}

impl Default for Qwen2EncoderConfig {
    /// The release sizes.
    fn default() -> Self {
        Qwen2EncoderConfig { dim: 896, layers: 24, heads: 14, kv_heads: 2, intermediate_size: 4864, rope_theta: 1e6, eps: 1e-6 }
    }
}

/// The encoder after SAM: what tells DeepSeek-OCR and DeepSeek-OCR 2 apart.
#[derive(Debug, Clone, PartialEq)]
pub enum Stage2Config {
    /// DeepSeek-OCR: CLIP-L over SAM's features, fused with them before the projector.
    Clip(ClipConfig),
    /// DeepSeek-OCR 2: a Qwen2 encoder over SAM's tokens and learned queries.
    Qwen2(Qwen2EncoderConfig),
}

/// The whole vision encoder: SAM, the second stage (CLIP or Qwen2) and the linear projector into
/// the language model.
#[derive(Debug, Clone, PartialEq)]
pub struct VisionConfig {
    /// SAM sizes.
    pub sam: SamConfig,
    /// The second stage's sizes.
    pub stage2: Stage2Config,
    /// Projector input width (DeepSeek-OCR: CLIP width + SAM output channels = 2048; DeepSeek-OCR
    /// 2: the Qwen2 width, 896).
    pub projector_input: usize,
    /// Projector output width = language-model hidden size (1280).
    pub n_embed: usize,
}

impl Default for SamConfig {
    /// The release sizes.
    fn default() -> Self {
        SamConfig {
            width: 768,
            layers: 12,
            heads: 12,
            global_attn_indexes: vec![2, 5, 8, 11],
            window_size: 14,
            image_size: 1024,
            patch_size: 16,
            mlp_dim: 3072,
            out_chans: 256,
            downsample_channels: [512, 1024],
            eps: 1e-6,
        }
    }
}

impl Default for ClipConfig {
    /// The release sizes.
    fn default() -> Self {
        ClipConfig { width: 1024, layers: 24, heads: 16, ffn_hidden_size: 4096, image_size: 224, patch_size: 14, eps: 1e-5 }
    }
}

impl Default for VisionConfig {
    /// DeepSeek-OCR's release sizes.
    fn default() -> Self {
        VisionConfig::release(Architecture::DeepseekOcr)
    }
}

/// The parts of `config.json` the encoders read, laid out as in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct VisionFile {
    vision_config: VisionSection,
    projector_config: ProjectorSection,
    /// The language model's width, which the projector must produce:
    /// `language_config.hidden_size`, else this top-level one, else the release's.
    hidden_size: Option<usize>,
    language_config: LmWidth,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct VisionSection {
    /// SAM's input side (1024).
    image_size: Option<usize>,
    width: Encoders,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Encoders {
    #[serde(rename = "sam_vit_b")]
    sam: SamConfig,
    #[serde(rename = "clip-l-14-224")]
    clip: ClipConfig,
    #[serde(rename = "qwen2-0-5b")]
    qwen2: Qwen2EncoderConfig,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ProjectorSection {
    input_dim: Option<usize>,
    n_embed: Option<usize>,
}

/// `language_config.hidden_size`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LmWidth {
    hidden_size: Option<usize>,
}

impl VisionConfig {
    /// The release sizes of `arch`.
    pub fn release(arch: Architecture) -> Self {
        match arch {
            Architecture::DeepseekOcr => VisionConfig {
                sam: SamConfig::default(),
                stage2: Stage2Config::Clip(ClipConfig::default()),
                projector_input: 2048,
                n_embed: 1280,
            },
            Architecture::DeepseekOcr2 => {
                let qwen2 = Qwen2EncoderConfig::default();
                let sam = SamConfig { downsample_channels: [512, qwen2.dim], ..SamConfig::default() };
                VisionConfig { sam, projector_input: qwen2.dim, stage2: Stage2Config::Qwen2(qwen2), n_embed: 1280 }
            }
        }
    }

    /// The architecture these sizes are for.
    pub fn architecture(&self) -> Architecture {
        match self.stage2 {
            Stage2Config::Clip(_) => Architecture::DeepseekOcr,
            Stage2Config::Qwen2(_) => Architecture::DeepseekOcr2,
        }
    }

    /// Read the encoder sizes from a parsed `config.json` (the architecture by
    /// [`architecture_of`]); `source` names it in errors. Absent and `null` keys take the release
    /// values.
    pub fn from_json(config: &Value, source: &str) -> Result<Self, CoreError> {
        let arch = architecture_of(config, source)?;
        let d = VisionConfig::release(arch);
        let file: VisionFile = parse_section(config, "", source)?;
        let hidden = file.language_config.hidden_size.or(file.hidden_size).unwrap_or(d.n_embed);
        let Encoders { mut sam, clip, qwen2 } = file.vision_config.width;
        sam.image_size = file.vision_config.image_size.unwrap_or(d.sam.image_size);
        sam.mlp_dim = 4 * sam.width;
        let (stage2, projector_input) = match arch {
            Architecture::DeepseekOcr => (Stage2Config::Clip(clip), d.projector_input),
            Architecture::DeepseekOcr2 => {
                // The release file's `downsample_channels` is stale ([512, 1024]); `net_3` produces the
                // Qwen2 width (docs/model-ocr2.md §2), which the projector reads.
                sam.downsample_channels[1] = qwen2.dim;
                (Stage2Config::Qwen2(qwen2.clone()), qwen2.dim)
            }
        };
        let cfg = VisionConfig {
            sam,
            stage2,
            projector_input: file.projector_config.input_dim.unwrap_or(projector_input),
            n_embed: file.projector_config.n_embed.unwrap_or(hidden),
        };
        cfg.validate(hidden).map_err(|reason| config_error(source, reason))?;
        Ok(cfg)
    }

    fn validate(&self, lm_hidden: usize) -> Result<(), String> {
        let s = &self.sam;
        if s.width == 0 || s.heads == 0 || !s.width.is_multiple_of(s.heads) {
            return Err(format!("SAM width {} is not divisible by its {} heads", s.width, s.heads));
        }
        if let Some(i) = s.global_attn_indexes.iter().find(|&&i| i >= s.layers) {
            return Err(format!("SAM global attention index {i} is not below the {} layers", s.layers));
        }
        if s.patch_size == 0 || !s.image_size.is_multiple_of(s.patch_size) {
            return Err("SAM's image size must be a multiple of its patch size".into());
        }
        let sam_out = s.downsample_channels[1];
        match &self.stage2 {
            Stage2Config::Clip(c) => {
                if c.width == 0 || c.heads == 0 || !c.width.is_multiple_of(c.heads) {
                    return Err(format!("CLIP width {} is not divisible by its {} heads", c.width, c.heads));
                }
                if c.width != sam_out {
                    return Err(format!("CLIP width {} must equal SAM's last downsample channel count {sam_out}", c.width));
                }
                if self.projector_input != c.width + sam_out {
                    return Err(format!(
                        "projector_config.input_dim {} must equal CLIP width + SAM channels = {}",
                        self.projector_input,
                        c.width + sam_out
                    ));
                }
                if c.patch_size == 0 || !c.image_size.is_multiple_of(c.patch_size) {
                    return Err("CLIP's image size must be a multiple of its patch size".into());
                }
            }
            Stage2Config::Qwen2(q) => {
                if q.heads == 0 || q.kv_heads == 0 || !q.dim.is_multiple_of(q.heads) || !q.heads.is_multiple_of(q.kv_heads) {
                    return Err(format!(
                        "vision_config.width.qwen2-0-5b: width {} with {} query heads and {} key/value heads does not split evenly",
                        q.dim, q.heads, q.kv_heads
                    ));
                }
                if !q.head_dim().is_multiple_of(2) {
                    return Err(format!("vision_config.width.qwen2-0-5b: head width {} must be even for RoPE", q.head_dim()));
                }
                if self.projector_input != q.dim {
                    return Err(format!(
                        "projector_config.input_dim {} must equal the Qwen2 encoder width {}",
                        self.projector_input, q.dim
                    ));
                }
            }
        }
        if self.n_embed != lm_hidden {
            return Err(format!("projector_config.n_embed {} must equal the language model hidden_size {lm_hidden}", self.n_embed));
        }
        Ok(())
    }

    /// Side of SAM's trained position table (1024 / 16 = 64).
    pub fn sam_position_grid(&self) -> usize {
        self.sam.image_size / self.sam.patch_size
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn empty_config_gives_release_sizes() {
        let c = VisionConfig::from_json(&json!({}), "test").unwrap();
        assert_eq!(c, VisionConfig::default());
    }

    #[test]
    fn inconsistent_sizes_are_rejected_with_the_key() {
        let bad = json!({"projector_config": {"input_dim": 1000}});
        let e = VisionConfig::from_json(&bad, "cfg.json").unwrap_err().to_string();
        assert!(e.contains("input_dim") && e.contains("cfg.json"), "{e}");
        let bad = json!({"vision_config": {"width": {"sam_vit_b": {"global_attn_indexes": [2, 20]}}}});
        assert!(VisionConfig::from_json(&bad, "c").is_err());
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let bad = json!({"vision_config": {"width": {"sam_vit_b": {"downsample_channels": [1, 2, 3]}}}});
        let e = VisionConfig::from_json(&bad, "c").unwrap_err().to_string();
        assert!(e.contains("vision_config.width.sam_vit_b.downsample_channels"), "{e}");
        let bad = json!({"vision_config": {"width": {"clip-l-14-224": {"heads": "many"}}}});
        let e = VisionConfig::from_json(&bad, "c").unwrap_err().to_string();
        assert!(e.contains("clip-l-14-224.heads"), "{e}");
    }

    #[test]
    fn the_parity_sizes_are_read_from_the_file() {
        let small = json!({
            "hidden_size": 1280,
            "language_config": {"hidden_size": 64},
            "projector_config": {"input_dim": 256, "n_embed": 64},
            "vision_config": {"image_size": 1024, "width": {
                "clip-l-14-224": {"heads": 4, "layers": 2, "width": 128, "ffn_hidden_size": 512},
                "sam_vit_b": {"downsample_channels": [64, 128], "global_attn_indexes": [1, 3], "heads": 2, "layers": 4, "width": 64, "out_chans": 32}
            }}
        });
        let c = VisionConfig::from_json(&small, "c").unwrap();
        assert_eq!((c.sam.width, c.sam.mlp_dim, c.sam.out_chans, c.sam.window_size), (64, 256, 32, 14));
        let Stage2Config::Clip(clip) = &c.stage2 else { panic!("DeepSeek-OCR has CLIP") };
        assert_eq!((clip.width, clip.ffn_hidden_size, clip.eps), (128, 512, 1e-5));
        assert_eq!((c.projector_input, c.n_embed), (256, 64));
    }

    /// The release DeepSeek-OCR 2 `config.json` (docs/model-ocr2.md §2): only `qwen2-0-5b.dim` is
    /// stated, and `downsample_channels` is stale.
    #[test]
    fn the_release_ocr2_file_gives_the_release_sizes() {
        let release = json!({
            "architectures": ["DeepseekOCR2ForCausalLM"],
            "language_config": {"hidden_size": 1280},
            "projector_config": {"input_dim": 896, "n_embed": 1280, "projector_type": "linear"},
            "vision_config": {"image_size": 1024, "model_name": "deepencoderv2", "width": {
                "qwen2-0-5b": {"dim": 896},
                "sam_vit_b": {"downsample_channels": [512, 1024], "global_attn_indexes": [2, 5, 8, 11], "heads": 12, "layers": 12, "width": 768}
            }}
        });
        let c = VisionConfig::from_json(&release, "c").unwrap();
        assert_eq!(c, VisionConfig::release(Architecture::DeepseekOcr2));
        assert_eq!(c.sam.downsample_channels, [512, 896]);
        assert_eq!(c.architecture(), Architecture::DeepseekOcr2);
        let Stage2Config::Qwen2(q) = &c.stage2 else { panic!("DeepSeek-OCR 2 has a Qwen2 encoder") };
        assert_eq!((q.layers, q.heads, q.kv_heads, q.head_dim(), q.intermediate_size), (24, 14, 2, 64, 4864));
        // Without `architectures`, the vision model's name decides.
        let unnamed = json!({"vision_config": {"model_name": "deepencoderv2"}});
        assert_eq!(architecture_of(&unnamed, "c").unwrap(), Architecture::DeepseekOcr2);
        assert_eq!(architecture_of(&json!({}), "c").unwrap(), Architecture::DeepseekOcr);
    }

    #[test]
    fn an_unknown_architecture_is_refused_by_name() {
        let e = VisionConfig::from_json(&json!({"architectures": ["DeepseekOCR3ForCausalLM"]}), "m/config.json").unwrap_err().to_string();
        assert!(e.contains("DeepseekOCR3ForCausalLM") && e.contains("m/config.json") && e.contains("DeepseekOCR2ForCausalLM"), "{e}");
        let bad = json!({"architectures": ["DeepseekOCR2ForCausalLM"], "vision_config": {"width": {"qwen2-0-5b": {"heads": 5}}}});
        let e = VisionConfig::from_json(&bad, "c").unwrap_err().to_string();
        assert!(e.contains("qwen2-0-5b"), "{e}");
    }
}
