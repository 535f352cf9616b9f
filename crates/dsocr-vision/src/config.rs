//! Encoder sizes, read from the release `config.json` (docs/model.md §2.2).
//!
//! The release code hard-codes the encoders; the release `config.json` states most of their sizes
//! under `vision_config.width`. Keys it lacks (`out_chans`, `ffn_hidden_size`) default to the
//! release values, as does everything else that is absent, so the released file and the small
//! parity checkpoint load through the same path.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use dsocr_core::CoreError;
use dsocr_core::config_json::{config_error, parse_section};

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
    /// Channels of the two stride-2 convs after the neck (512, 1024).
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

/// The whole DeepEncoder: SAM, CLIP and the linear projector into the language model.
#[derive(Debug, Clone, PartialEq)]
pub struct VisionConfig {
    /// SAM sizes.
    pub sam: SamConfig,
    /// CLIP sizes.
    pub clip: ClipConfig,
    /// Projector input width (CLIP width + SAM output channels = 2048).
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
    /// The release sizes.
    fn default() -> Self {
        VisionConfig { sam: SamConfig::default(), clip: ClipConfig::default(), projector_input: 2048, n_embed: 1280 }
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
    /// Read the encoder sizes from a parsed `config.json`; `source` names it in errors. Absent and
    /// `null` keys take the release values.
    pub fn from_json(config: &Value, source: &str) -> Result<Self, CoreError> {
        let d = VisionConfig::default();
        let file: VisionFile = parse_section(config, "", source)?;
        let hidden = file.language_config.hidden_size.or(file.hidden_size).unwrap_or(d.n_embed);
        let Encoders { mut sam, clip } = file.vision_config.width;
        sam.image_size = file.vision_config.image_size.unwrap_or(d.sam.image_size);
        sam.mlp_dim = 4 * sam.width;
        let cfg = VisionConfig {
            sam,
            clip,
            projector_input: file.projector_config.input_dim.unwrap_or(d.projector_input),
            n_embed: file.projector_config.n_embed.unwrap_or(hidden),
        };
        cfg.validate(hidden).map_err(|reason| config_error(source, reason))?;
        Ok(cfg)
    }

    fn validate(&self, lm_hidden: usize) -> Result<(), String> {
        let (s, c) = (&self.sam, &self.clip);
        if s.width == 0 || s.heads == 0 || !s.width.is_multiple_of(s.heads) {
            return Err(format!("SAM width {} is not divisible by its {} heads", s.width, s.heads));
        }
        if c.width == 0 || c.heads == 0 || !c.width.is_multiple_of(c.heads) {
            return Err(format!("CLIP width {} is not divisible by its {} heads", c.width, c.heads));
        }
        if let Some(i) = s.global_attn_indexes.iter().find(|&&i| i >= s.layers) {
            return Err(format!("SAM global attention index {i} is not below the {} layers", s.layers));
        }
        if c.width != s.downsample_channels[1] {
            return Err(format!("CLIP width {} must equal SAM's last downsample channel count {}", c.width, s.downsample_channels[1]));
        }
        if self.projector_input != c.width + s.downsample_channels[1] {
            return Err(format!(
                "projector_config.input_dim {} must equal CLIP width + SAM channels = {}",
                self.projector_input,
                c.width + s.downsample_channels[1]
            ));
        }
        if self.n_embed != lm_hidden {
            return Err(format!("projector_config.n_embed {} must equal the language model hidden_size {lm_hidden}", self.n_embed));
        }
        if s.patch_size == 0
            || !s.image_size.is_multiple_of(s.patch_size)
            || c.patch_size == 0
            || !c.image_size.is_multiple_of(c.patch_size)
        {
            return Err("image sizes must be multiples of the patch sizes".into());
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
        assert_eq!((c.clip.width, c.clip.ffn_hidden_size, c.clip.eps), (128, 512, 1e-5));
        assert_eq!((c.projector_input, c.n_embed), (256, 64));
    }
}
