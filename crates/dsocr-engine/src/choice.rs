//! Reading a decode step's choices back: the device's argmax for every page, the argmax with a
//! page's banned tokens excluded (greedy pages under a repetition ban), and the logits rows of
//! pages that sample on the host (docs/engine.md, "Repetition control").

use dsocr_core::burn::prelude::*;
use dsocr_core::burn::tensor::IndexingUpdateOp;

use crate::EngineError;

/// The first `n` ids of an integer tensor.
pub(crate) fn host_ids(ids: Tensor<1, Int>, n: usize) -> Result<Vec<u32>, EngineError> {
    let all =
        ids.into_data().convert::<i64>().try_to_vec::<i64>().map_err(|e| EngineError::Device(format!("cannot read tokens back: {e:?}")))?;
    Ok(all.into_iter().take(n).map(|v| v as u32).collect())
}

/// The argmax of rows `rows[k].0` of logits `[B, V]` with the tokens `rows[k].1` of each excluded,
/// computed on the device (one read of `rows.len()` ids).
pub(crate) fn argmax_with_bans(logits: &Tensor<2>, rows: &[(usize, Vec<u32>)]) -> Result<Vec<u32>, EngineError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let [_, v] = logits.dims();
    let device = logits.device();
    let k = rows.len();
    let idx = Tensor::<1, Int>::from_data(TensorData::new(rows.iter().map(|&(r, _)| r as i64).collect::<Vec<i64>>(), [k]), &device);
    // Each banned (row, token) as an index into the selected rows, flattened.
    let flat: Vec<i64> = rows
        .iter()
        .enumerate()
        .flat_map(|(r, (_, bans))| bans.iter().filter(|&&t| (t as usize) < v).map(move |&t| (r * v + t as usize) as i64))
        .collect();
    let selected = logits.clone().select(0, idx).reshape([k * v]);
    let n = flat.len();
    let masked = match n {
        0 => selected,
        _ => {
            let banned = Tensor::<1, Int>::from_data(TensorData::new(flat, [n]), &device);
            let minus_inf = Tensor::<1>::full([n], f32::NEG_INFINITY, (&device, selected.dtype()));
            selected.select_assign(0, banned, minus_inf, IndexingUpdateOp::Add)
        }
    };
    host_ids(dsocr_kernels::argmax_rows(masked.reshape([k, v])), k)
}

/// Rows `rows` of logits `[B, V]` on the host.
pub(crate) fn read_rows(logits: Tensor<2>, rows: &[usize]) -> Result<Vec<Vec<f32>>, EngineError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let [_, v] = logits.dims();
    let device = logits.device();
    let idx = Tensor::<1, Int>::from_data(TensorData::new(rows.iter().map(|&r| r as i64).collect::<Vec<i64>>(), [rows.len()]), &device);
    let host = logits
        .select(0, idx)
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .map_err(|e| EngineError::Device(format!("cannot read logits back: {e:?}")))?;
    Ok(host.chunks(v).map(<[f32]>::to_vec).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampler::{Sampler, Sampling};
    use rand::{Rng, SeedableRng};

    /// The device's choice for greedy pages with bans is the host sampler's choice on the same logits.
    #[test]
    fn banned_tokens_are_excluded_on_the_device_as_on_the_host() {
        let device = dsocr_core::DeviceSpec::Cpu.device().unwrap();
        let (b, v) = (5, 300);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let values: Vec<f32> = (0..b * v).map(|_| rng.random_range(-4.0..4.0)).collect();
        let logits = Tensor::<2>::from_data(TensorData::new(values.clone(), [b, v]), &device);
        let top = |r: usize| {
            let row = &values[r * v..(r + 1) * v];
            let mut order: Vec<u32> = (0..v as u32).collect();
            order.sort_by(|&a, &b| row[b as usize].total_cmp(&row[a as usize]));
            order
        };
        let rows = vec![
            (0, vec![top(0)[0]]),
            (2, vec![top(2)[0], top(2)[1], top(2)[2], 17]),
            (3, vec![]),
            (4, vec![top(4)[0], 100_000]), // past the vocabulary: ignored
        ];
        let device_choice = argmax_with_bans(&logits, &rows).unwrap();
        for ((r, bans), got) in rows.iter().zip(&device_choice) {
            let mut row = values[r * v..(r + 1) * v].to_vec();
            let want = Sampler::new(&Sampling::Greedy).pick(&mut row, bans);
            assert_eq!(*got, want, "row {r}, bans {bans:?}");
        }
        assert_eq!(device_choice[1], top(2)[3], "the best token not banned");
        assert!(argmax_with_bans(&logits, &[]).unwrap().is_empty());
    }
}
