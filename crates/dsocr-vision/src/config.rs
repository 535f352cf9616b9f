//! Encoder sizes, read from the release `config.json` (docs/model.md §2.2).
//!
//! The release code hard-codes the encoders; the release `config.json` states most of their sizes
//! under `vision_config.width`. Keys it lacks (`out_chans`, `ffn_hidden_size`) default to the
//! release values, as does everything else that is absent, so the released file and the small
//! parity checkpoint load through the same path.

use serde_json::Value;

use dsocr_core::CoreError;

/// SAM ViT-B sizes.
#[derive(Debug, Clone, PartialEq)]
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
    pub window_size: usize,
    /// Input side the position table was trained for (1024 → a 64×64 table).
    pub image_size: usize,
    /// Patch side (16).
    pub patch_size: usize,
    /// MLP width (4 × width).
    pub mlp_dim: usize,
    /// Neck channels (256).
    pub out_chans: usize,
    /// Channels of the two stride-2 convs after the neck (512, 1024).
    pub downsample_channels: [usize; 2],
    /// LayerNorm epsilon (1e-6).
    pub eps: f64,
}

/// CLIP-L sizes.
#[derive(Debug, Clone, PartialEq)]
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
    /// LayerNorm epsilon (1e-5).
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

impl Default for VisionConfig {
    /// The release sizes.
    fn default() -> Self {
        VisionConfig {
            sam: SamConfig {
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
            },
            clip: ClipConfig { width: 1024, layers: 24, heads: 16, ffn_hidden_size: 4096, image_size: 224, patch_size: 14, eps: 1e-5 },
            projector_input: 2048,
            n_embed: 1280,
        }
    }
}

fn get_usize(v: &Value, key: &str, default: usize) -> Result<usize, String> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(x) => x.as_u64().map(|n| n as usize).ok_or_else(|| format!("{key} must be a non-negative integer, got {x}")),
    }
}

fn get_list(v: &Value, key: &str, default: &[usize]) -> Result<Vec<usize>, String> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(default.to_vec()),
        Some(Value::Array(a)) => {
            a.iter().map(|x| x.as_u64().map(|n| n as usize).ok_or_else(|| format!("{key} must hold integers"))).collect()
        }
        Some(x) => Err(format!("{key} must be a list, got {x}")),
    }
}

impl VisionConfig {
    /// Read the encoder sizes from a parsed `config.json`; `source` names it in errors.
    pub fn from_json(config: &Value, source: &str) -> Result<Self, CoreError> {
        Self::parse(config).map_err(|reason| CoreError::Config { path: source.to_string(), reason })
    }

    fn parse(config: &Value) -> Result<Self, String> {
        let d = VisionConfig::default();
        let vision = config.get("vision_config").cloned().unwrap_or(Value::Null);
        let width = vision.get("width").cloned().unwrap_or(Value::Null);
        let sam_v = width.get("sam_vit_b").cloned().unwrap_or(Value::Null);
        let clip_v = width.get("clip-l-14-224").cloned().unwrap_or(Value::Null);
        let proj_v = config.get("projector_config").cloned().unwrap_or(Value::Null);

        let sam_width = get_usize(&sam_v, "width", d.sam.width)?;
        let down = get_list(&sam_v, "downsample_channels", &d.sam.downsample_channels)?;
        let downsample_channels: [usize; 2] =
            down.try_into().map_err(|v: Vec<usize>| format!("sam_vit_b.downsample_channels must have 2 entries, got {}", v.len()))?;
        let sam = SamConfig {
            width: sam_width,
            layers: get_usize(&sam_v, "layers", d.sam.layers)?,
            heads: get_usize(&sam_v, "heads", d.sam.heads)?,
            global_attn_indexes: get_list(&sam_v, "global_attn_indexes", &d.sam.global_attn_indexes)?,
            window_size: d.sam.window_size,
            image_size: get_usize(&vision, "image_size", d.sam.image_size)?,
            patch_size: d.sam.patch_size,
            mlp_dim: 4 * sam_width,
            out_chans: get_usize(&sam_v, "out_chans", d.sam.out_chans)?,
            downsample_channels,
            eps: d.sam.eps,
        };
        let clip = ClipConfig {
            width: get_usize(&clip_v, "width", d.clip.width)?,
            layers: get_usize(&clip_v, "layers", d.clip.layers)?,
            heads: get_usize(&clip_v, "heads", d.clip.heads)?,
            ffn_hidden_size: get_usize(&clip_v, "ffn_hidden_size", d.clip.ffn_hidden_size)?,
            image_size: get_usize(&clip_v, "image_size", d.clip.image_size)?,
            patch_size: get_usize(&clip_v, "patch_size", d.clip.patch_size)?,
            eps: d.clip.eps,
        };
        let hidden = get_usize(config, "hidden_size", d.n_embed)?;
        let cfg = VisionConfig {
            sam,
            clip,
            projector_input: get_usize(&proj_v, "input_dim", d.projector_input)?,
            n_embed: get_usize(&proj_v, "n_embed", hidden)?,
        };
        cfg.validate(hidden)?;
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
}
