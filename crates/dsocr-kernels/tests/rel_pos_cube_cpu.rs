//! SAM's relative-position kernel (`dsocr_kernels::rel_pos_terms_kernel`) on CubeCL's CPU runtime
//! (`cargo test --release -p dsocr-kernels --features cube-cpu`): the kernel's arithmetic and
//! indexing in f32, against the batched products of the reference, with queries that are views of
//! a fused projection as SAM makes them. Not what CUDA adds: its runtime pads each row of a new
//! tensor to a power of two bytes and this one does not, so a kernel that writes its output as
//! if unpadded passes here and fails there (the kernel's first version did: docs/perf.md,
//! session 26); `dsocr kernels-check` on a GPU covers that.
#![cfg(feature = "cube-cpu")]

use burn::prelude::*;
use burn::tensor::{DType, Distribution};

fn host(t: Tensor<4>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

#[test]
fn relative_terms_on_the_kernel_equal_the_reference() {
    let device = burn::tensor::Device::cpu();
    assert!(dsocr_kernels::runs_cube_kernels(&device), "the CubeCL CPU device must take the GPU's code path");
    // A non-square grid (windows and tiles are square, a check of the two axes is not), two
    // views; then SAM's windowed blocks (nine 14×14 windows, 12 heads of 64).
    for (b, heads, h, w, d) in [(2, 3, 5, 7, 16), (9, 12, 14, 14, 64)] {
        check(&device, (b, heads, h, w, d));
    }
}

fn check(device: &burn::tensor::Device, (b, heads, h, w, d): (usize, usize, usize, usize, usize)) {
    let n = h * w;
    let normal = |dims: [usize; 4]| Tensor::<4>::random(dims, Distribution::Normal(0.0, 1.0), (device, DType::F32));
    let qkv = normal([b, n, 3 * heads, d]);
    let q = qkv.narrow(2, heads, heads).swap_dims(1, 2);
    let rh: Tensor<3> = normal([1, h, h, d]).squeeze_dim(0);
    let rw: Tensor<3> = normal([1, w, w, d]).squeeze_dim(0);
    let got = dsocr_kernels::rel_pos_terms_kernel(q.clone(), &rh, &rw);
    let want = dsocr_kernels::rel_pos_terms_reference(q, &rh, &rw);
    for (what, got, want) in [("rel_h", got.rel_h, want.rel_h), ("rel_w", got.rel_w, want.rel_w)] {
        assert_eq!(got.dims(), want.dims(), "{what}");
        let (got, want) = (host(got), host(want));
        let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(worst < 1e-4, "{what}: largest difference {worst}");
    }
}
