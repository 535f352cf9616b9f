//! Greedy decoding's choice: each row's argmax of the logits, written both into the decode
//! loop's input-token buffer (in place, where a captured graph reads the next step's tokens) and
//! into a fresh tensor for the host to read.

use burn::prelude::*;

/// `(tokens, next)` for `logits` `[B, V]` and the input buffer `tokens` `[B]`: `next[b]` is the
/// index of row `b`'s first maximum (as `torch.argmax`), and `tokens` holds the same values in
/// its own integer type. On a CubeCL device one kernel writes both, `tokens` in place when
/// nothing else holds it; elsewhere `tokens` is a new tensor (equivalent but for graph replay).
pub fn argmax_into(logits: Tensor<2>, tokens: Tensor<1, Int>) -> (Tensor<1, Int>, Tensor<1, Int>) {
    assert_eq!(logits.dims()[0], tokens.dims()[0], "argmax_into: {} rows of logits for {} tokens", logits.dims()[0], tokens.dims()[0]);
    #[cfg(feature = "cuda")]
    if crate::kernels_enabled(&logits.device()) && logits.dims()[1] > 0 {
        return crate::cuda::argmax_into(logits, tokens);
    }
    argmax_into_reference(logits, tokens)
}

/// Each row's argmax of `logits` `[B, V]` as [`argmax_into`] finds it, into a fresh tensor (the
/// prefill's first token, a choice under bans): on a CubeCL device dsocr's kernel, compiled once,
/// where Burn's reduction was autotuned for each new shape on a fresh machine.
pub fn argmax_rows(logits: Tensor<2>) -> Tensor<1, Int> {
    let tokens = Tensor::<1, Int>::zeros([logits.dims()[0]], &logits.device());
    argmax_into(logits, tokens).1
}

/// The Burn definition of [`argmax_into`].
pub fn argmax_into_reference(logits: Tensor<2>, tokens: Tensor<1, Int>) -> (Tensor<1, Int>, Tensor<1, Int>) {
    let b = tokens.dims()[0];
    let next = logits.argmax(1).reshape([b]).cast(tokens.dtype());
    (crate::ints::overwrite_ints_reference(tokens, next.clone()), next)
}
