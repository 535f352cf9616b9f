//! The position-table resizes against PyTorch itself (`tests/data/interp_golden.json`, made by
//! `tools/golden/interp_golden.py` with `F.interpolate`), for every mode: Large (1280: up-sampling
//! 64→80, 16→20, rel-pos 127→159), Gundam tiles (640), Tiny (512). The parity fixtures cover the
//! 512/640/1024 paths end to end; this covers the interpolation itself, including 1280.

use burn::prelude::*;
use burn::tensor::DType;
use dsocr_core::DeviceSpec;
use dsocr_vision::{resize_grid_bicubic_aa, resize_rows_linear};

fn golden() -> serde_json::Value {
    serde_json::from_str(include_str!("data/interp_golden.json")).unwrap()
}

fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

fn max_err(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn bicubic_antialias_matches_pytorch_for_every_mode() {
    let device = DeviceSpec::Cpu.device().unwrap();
    for case in golden()["bicubic_aa"].as_array().unwrap() {
        let (g_in, g_out, c) =
            (case["in"].as_u64().unwrap() as usize, case["out"].as_u64().unwrap() as usize, case["channels"].as_u64().unwrap() as usize);
        // Same formula as the generator: x[i, j, ch] = sin(0.37 i + 0.11 j + ch) + 0.01 i j / g.
        let mut input = Vec::with_capacity(g_in * g_in * c);
        for i in 0..g_in {
            for j in 0..g_in {
                for ch in 0..c {
                    input.push(((0.37 * i as f64 + 0.11 * j as f64 + ch as f64).sin() + 0.01 * (i * j) as f64 / g_in as f64) as f32);
                }
            }
        }
        let grid = Tensor::<3>::from_data(TensorData::new(input, [g_in, g_in, c]), (&device, DType::F32));
        let ours = resize_grid_bicubic_aa(grid, g_out).try_into_vec_as::<f32>().unwrap();
        let err = max_err(&ours, &floats(&case["values"]));
        assert!(err < 1e-5, "bicubic {g_in}->{g_out}: max error {err}");
    }
}

#[test]
fn linear_matches_pytorch_for_every_global_grid() {
    let device = DeviceSpec::Cpu.device().unwrap();
    for case in golden()["linear"].as_array().unwrap() {
        let (n_in, n_out, c) =
            (case["in"].as_u64().unwrap() as usize, case["out"].as_u64().unwrap() as usize, case["channels"].as_u64().unwrap() as usize);
        let input: Vec<f32> =
            (0..n_in).flat_map(|i| (0..c).map(move |ch| ((0.21 * i as f64 + 0.5 * ch as f64).cos() + 0.002 * i as f64) as f32)).collect();
        let table = Tensor::<2>::from_data(TensorData::new(input, [n_in, c]), (&device, DType::F32));
        let ours = resize_rows_linear(table, n_out).try_into_vec_as::<f32>().unwrap();
        let err = max_err(&ours, &floats(&case["values"]));
        assert!(err < 1e-5, "linear {n_in}->{n_out}: max error {err}");
    }
}
