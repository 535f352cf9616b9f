//! What dsocr reports of the GPU kernels a process built (`dsocr_core::gpu_build_time`, read from
//! CubeCL's records), on CubeCL's CPU runtime (`cargo test --release -p dsocr-kernels --features
//! cube-cpu`). That runtime records no compilations (CUDA's does), but the autotuner's records
//! are the runtime's own: a process that tunes a matmul shape into an empty cache finds it
//! counted, through the same database, session and record reading as on a GPU.
#![cfg(feature = "cube-cpu")]

use burn::prelude::*;

#[test]
fn a_shape_tuned_into_an_empty_cache_is_reported() {
    let device = burn::tensor::Device::cpu();
    assert!(dsocr_kernels::runs_cube_kernels(&device));
    // The runtime sets up its environment when first used: use it, then move to an environment
    // of its own, empty, so that the product below must be tuned, not looked up.
    let _ = Tensor::<1>::zeros([4], &device).into_data();
    let root = std::env::temp_dir().join(format!("dsocr-build-records-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    cubecl::environment::set_root(&root);
    assert!(dsocr_core::gpu_build_time().is_none_or(|b| !b.built_anything()), "nothing built yet");
    let a = Tensor::<2>::from_data(TensorData::new((0..48).map(|v| v as f32).collect::<Vec<_>>(), [6, 8]), &device);
    let b = Tensor::<2>::from_data(TensorData::new(vec![1.0f32; 8 * 4], [8, 4]), &device);
    let product = a.matmul(b).into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
    assert_eq!(product[0], (0..8).sum::<i32>() as f32);

    let built = dsocr_core::gpu_build_time().expect("the records of this process");
    assert!(built.tuned >= 1 && built.tune_s > 0.0 && built.built_anything(), "{built}");
    let _ = std::fs::remove_dir_all(&root);
}
