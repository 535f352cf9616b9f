//! Decoder sizes and options from `config.json` (docs/model.md §2.1). Keys absent from the release
//! file take the defaults of the release's `configuration_deepseek_v2.py`.

use serde_json::Value;

use dsocr_core::CoreError;

/// The DeepSeek-V2-style MoE decoder of DeepSeek-OCR (multi-head attention, no MLA).
#[derive(Debug, Clone, PartialEq)]
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

impl LmConfig {
    /// Read the decoder options from a parsed `config.json` (`language_config` when present, else
    /// the top level); `source` names it in errors.
    pub fn from_json(config: &Value, source: &str) -> Result<Self, CoreError> {
        let section = config.get("language_config").filter(|v| v.is_object()).unwrap_or(config);
        Self::parse(section).map_err(|reason| CoreError::Config { path: source.to_string(), reason })
    }

    fn parse(v: &Value) -> Result<Self, String> {
        let d = LmConfig::default();
        let uint = |k: &str, def: usize| -> Result<usize, String> {
            match v.get(k) {
                None | Some(Value::Null) => Ok(def),
                Some(x) => x.as_u64().map(|n| n as usize).ok_or_else(|| format!("{k} must be a non-negative integer, got {x}")),
            }
        };
        let float = |k: &str, def: f64| -> Result<f64, String> {
            match v.get(k) {
                None | Some(Value::Null) => Ok(def),
                Some(x) => x.as_f64().ok_or_else(|| format!("{k} must be a number, got {x}")),
            }
        };
        let boolean = |k: &str, def: bool| -> Result<bool, String> {
            match v.get(k) {
                None | Some(Value::Null) => Ok(def),
                Some(x) => x.as_bool().ok_or_else(|| format!("{k} must be true or false, got {x}")),
            }
        };
        if boolean("use_mla", false)? {
            return Err(
                "use_mla = true (multi-head latent attention) is not supported; DeepSeek-OCR uses plain multi-head attention".into()
            );
        }
        if let Some(m) = v.get("topk_method").and_then(Value::as_str).filter(|m| *m != "greedy") {
            return Err(format!("topk_method {m:?} is not supported; DeepSeek-OCR uses \"greedy\""));
        }
        if let Some(f) = v.get("scoring_func").and_then(Value::as_str).filter(|f| *f != "softmax") {
            return Err(format!("scoring_func {f:?} is not supported; DeepSeek-OCR uses \"softmax\""));
        }
        if v.get("rope_scaling").is_some_and(|r| !r.is_null()) {
            return Err("rope_scaling is not supported; DeepSeek-OCR uses plain RoPE".into());
        }
        let cfg = LmConfig {
            vocab_size: uint("vocab_size", d.vocab_size)?,
            hidden_size: uint("hidden_size", d.hidden_size)?,
            num_hidden_layers: uint("num_hidden_layers", d.num_hidden_layers)?,
            num_attention_heads: uint("num_attention_heads", d.num_attention_heads)?,
            num_key_value_heads: uint("num_key_value_heads", uint("num_attention_heads", d.num_attention_heads)?)?,
            intermediate_size: uint("intermediate_size", d.intermediate_size)?,
            moe_intermediate_size: uint("moe_intermediate_size", d.moe_intermediate_size)?,
            n_routed_experts: uint("n_routed_experts", d.n_routed_experts)?,
            num_experts_per_tok: uint("num_experts_per_tok", d.num_experts_per_tok)?,
            n_shared_experts: uint("n_shared_experts", d.n_shared_experts)?,
            first_k_dense_replace: uint("first_k_dense_replace", d.first_k_dense_replace)?,
            moe_layer_freq: uint("moe_layer_freq", d.moe_layer_freq)?.max(1),
            norm_topk_prob: boolean("norm_topk_prob", d.norm_topk_prob)?,
            routed_scaling_factor: float("routed_scaling_factor", d.routed_scaling_factor)?,
            rms_norm_eps: float("rms_norm_eps", d.rms_norm_eps)?,
            rope_theta: float("rope_theta", d.rope_theta)?,
            max_position_embeddings: uint("max_position_embeddings", d.max_position_embeddings)?,
            bos_token_id: uint("bos_token_id", d.bos_token_id as usize)? as u32,
            eos_token_id: uint("eos_token_id", d.eos_token_id as usize)? as u32,
        };
        if cfg.hidden_size == 0 || cfg.num_attention_heads == 0 || !cfg.hidden_size.is_multiple_of(cfg.num_attention_heads) {
            return Err(format!("hidden_size {} is not divisible by num_attention_heads {}", cfg.hidden_size, cfg.num_attention_heads));
        }
        if cfg.num_key_value_heads != cfg.num_attention_heads {
            return Err("grouped-query attention (num_key_value_heads != num_attention_heads) is not supported".into());
        }
        if cfg.num_experts_per_tok > cfg.n_routed_experts {
            return Err(format!("num_experts_per_tok {} exceeds n_routed_experts {}", cfg.num_experts_per_tok, cfg.n_routed_experts));
        }
        if !cfg.head_dim().is_multiple_of(2) {
            return Err("the head dimension must be even for RoPE".into());
        }
        Ok(cfg)
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
    }
}
