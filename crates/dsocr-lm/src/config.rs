//! Decoder sizes and options from `config.json` (docs/model.md §2.1). Keys absent from the release
//! file take the defaults of the release's `configuration_deepseek_v2.py`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use dsocr_core::CoreError;
use dsocr_core::config_json::{config_error, has_key, parse_section};

/// The DeepSeek-V2-style MoE decoder of DeepSeek-OCR (multi-head attention, no MLA).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LmConfig {
    /// Rows of the embedding and output matrices (129280).
    pub vocab_size: usize,
    /// Model width (1280).
    pub hidden_size: usize,
    /// Decoder layers (12).
    pub num_hidden_layers: usize,
    /// Attention heads (10).
    pub num_attention_heads: usize,
    /// Key/value heads; equal to the attention heads (plain MHA).
    pub num_key_value_heads: usize,
    /// Dense MLP width (6848).
    pub intermediate_size: usize,
    /// Routed-expert MLP width (896).
    pub moe_intermediate_size: usize,
    /// Routed experts per MoE layer (64).
    pub n_routed_experts: usize,
    /// Experts chosen per token (6).
    pub num_experts_per_tok: usize,
    /// Shared experts, merged into one MLP of `n_shared_experts × moe_intermediate_size` (2).
    pub n_shared_experts: usize,
    /// Leading layers with a dense MLP instead of MoE (1).
    pub first_k_dense_replace: usize,
    /// Every `moe_layer_freq`-th layer after those is MoE (1).
    pub moe_layer_freq: usize,
    /// Renormalise the top-k weights to sum to one (false).
    pub norm_topk_prob: bool,
    /// Multiplier on the routed output (1.0).
    pub routed_scaling_factor: f64,
    /// RMSNorm epsilon (1e-6).
    pub rms_norm_eps: f64,
    /// RoPE base (10000).
    pub rope_theta: f64,
    /// Longest sequence, prompt plus output (8192).
    pub max_position_embeddings: usize,
    /// BOS id (0).
    pub bos_token_id: u32,
    /// EOS id (1).
    pub eos_token_id: u32,
}

impl Default for LmConfig {
    /// The release sizes.
    fn default() -> Self {
        LmConfig {
            vocab_size: 129_280,
            hidden_size: 1280,
            num_hidden_layers: 12,
            num_attention_heads: 10,
            num_key_value_heads: 10,
            intermediate_size: 6848,
            moe_intermediate_size: 896,
            n_routed_experts: 64,
            num_experts_per_tok: 6,
            n_shared_experts: 2,
            first_k_dense_replace: 1,
            moe_layer_freq: 1,
            norm_topk_prob: false,
            routed_scaling_factor: 1.0,
            rms_norm_eps: 1e-6,
            rope_theta: 10_000.0,
            max_position_embeddings: 8192,
            bos_token_id: 0,
            eos_token_id: 1,
        }
    }
}

/// Options of the release's `DeepseekV2Config` that select architecture variants this project does
/// not implement; read only to refuse them by name.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Variant {
    use_mla: bool,
    topk_method: Option<String>,
    scoring_func: Option<String>,
    rope_scaling: Option<serde_json::Value>,
}

impl Variant {
    fn check(&self) -> Result<(), String> {
        if self.use_mla {
            return Err(
                "use_mla = true (multi-head latent attention) is not supported; DeepSeek-OCR uses plain multi-head attention".into()
            );
        }
        if let Some(m) = self.topk_method.as_deref().filter(|m| *m != "greedy") {
            return Err(format!("topk_method {m:?} is not supported; DeepSeek-OCR uses \"greedy\""));
        }
        if let Some(f) = self.scoring_func.as_deref().filter(|f| *f != "softmax") {
            return Err(format!("scoring_func {f:?} is not supported; DeepSeek-OCR uses \"softmax\""));
        }
        if self.rope_scaling.is_some() {
            return Err("rope_scaling is not supported; DeepSeek-OCR uses plain RoPE".into());
        }
        Ok(())
    }
}

impl LmConfig {
    /// Read the decoder options from a parsed `config.json` (`language_config` when present, else
    /// the top level); `source` names it in errors. Absent and `null` keys take the release values.
    pub fn from_json(config: &Value, source: &str) -> Result<Self, CoreError> {
        let (section, path) = match config.get("language_config").filter(|v| v.is_object()) {
            Some(s) => (s, "language_config"),
            None => (config, ""),
        };
        let variant: Variant = parse_section(section, path, source)?;
        variant.check().map_err(|reason| config_error(source, reason))?;
        let mut cfg: LmConfig = parse_section(section, path, source)?;
        if !has_key(section, "num_key_value_heads") {
            // The Python class defaults the key/value heads to the attention heads.
            cfg.num_key_value_heads = cfg.num_attention_heads;
        }
        cfg.validate().map_err(|reason| config_error(source, reason))?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), String> {
        if self.hidden_size == 0 || self.num_attention_heads == 0 || !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(format!("hidden_size {} is not divisible by num_attention_heads {}", self.hidden_size, self.num_attention_heads));
        }
        if self.num_key_value_heads != self.num_attention_heads {
            return Err("grouped-query attention (num_key_value_heads != num_attention_heads) is not supported".into());
        }
        if self.num_experts_per_tok > self.n_routed_experts {
            return Err(format!("num_experts_per_tok {} exceeds n_routed_experts {}", self.num_experts_per_tok, self.n_routed_experts));
        }
        if self.moe_layer_freq == 0 {
            return Err("moe_layer_freq must be at least 1".into());
        }
        if !self.head_dim().is_multiple_of(2) {
            return Err("the head dimension (hidden_size / num_attention_heads) must be even for RoPE".into());
        }
        Ok(())
    }

    /// Width of one attention head (hidden / heads = 128).
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// Whether layer `i` uses the mixture of experts (else the dense MLP).
    pub fn is_moe_layer(&self, i: usize) -> bool {
        self.n_routed_experts > 0 && i >= self.first_k_dense_replace && i.is_multiple_of(self.moe_layer_freq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_and_language_section() {
        assert_eq!(LmConfig::from_json(&json!({}), "c").unwrap(), LmConfig::default());
        let c =
            LmConfig::from_json(&json!({"hidden_size": 1, "language_config": {"hidden_size": 64, "num_attention_heads": 4}}), "c").unwrap();
        assert_eq!((c.hidden_size, c.head_dim()), (64, 16));
        assert!(c.is_moe_layer(1) && !c.is_moe_layer(0));
    }

    #[test]
    fn unsupported_variants_are_named() {
        let e = LmConfig::from_json(&json!({"use_mla": true}), "cfg.json").unwrap_err().to_string();
        assert!(e.contains("use_mla") && e.contains("cfg.json"), "{e}");
        assert!(LmConfig::from_json(&json!({"topk_method": "noaux_tc"}), "c").is_err());
        assert!(LmConfig::from_json(&json!({"num_experts_per_tok": 99}), "c").is_err());
        assert!(LmConfig::from_json(&json!({"rope_scaling": null, "kv_lora_rank": null}), "c").is_ok());
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let e = LmConfig::from_json(&json!({"language_config": {"hidden_size": "wide"}}), "m/config.json").unwrap_err().to_string();
        assert!(e.contains("language_config.hidden_size") && e.contains("m/config.json"), "{e}");
        let e = LmConfig::from_json(&json!({"norm_topk_prob": 1}), "c").unwrap_err().to_string();
        assert!(e.contains("norm_topk_prob"), "{e}");
        let c = LmConfig::from_json(&json!({"num_attention_heads": 4, "hidden_size": 64}), "c").unwrap();
        assert_eq!(c.num_key_value_heads, 4, "key/value heads default to the attention heads");
    }
}
