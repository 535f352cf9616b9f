//! The decoder built from the release configuration expects exactly the release checkpoint's
//! language-model tensors.

use dsocr_core::{DeviceSpec, Weights};
use dsocr_lm::{DeepseekLm, LmConfig};
use dsocr_testdata::release_inventory;

#[test]
fn release_config_expects_exactly_the_release_decoder_tensors() {
    let Some(inventory) = release_inventory("release_config_expects_exactly_the_release_decoder_tensors") else { return };
    let is_lm = |n: &str| {
        n.starts_with("model.layers.") || n.starts_with("model.embed_tokens") || n.starts_with("model.norm") || n.starts_with("lm_head")
    };
    let mut expected: Vec<(String, Vec<usize>)> = inventory.into_iter().filter(|(n, _)| is_lm(n)).collect();
    assert_eq!(expected.len(), 2234, "inventory has 2234 decoder tensors");
    let probe = Weights::shape_probe(&DeviceSpec::Cpu.device().unwrap());
    DeepseekLm::load(&probe, &LmConfig::default()).unwrap();
    let mut requested = probe.requested();
    requested.sort();
    expected.sort();
    assert_eq!(requested, expected);
}
