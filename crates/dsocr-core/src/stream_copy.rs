//! Copies of a module's weights made by the calling thread, for a thread that runs a module
//! beside another one on the same GPU (docs/engine.md, "Vision beside decoding").
//!
//! CubeCL gives every thread its own CUDA stream and tags every buffer with the stream that wrote
//! it. A kernel launched on one stream that binds a buffer of another stream goes through CubeCL's
//! cross-stream bookkeeping on every launch: the buffer is pinned, and its release is ordered
//! through events and a special stream. Weights are bound by every launch, so a thread that runs
//! a module whose weights another thread loaded pays that on each of its kernels. A copy made on
//! the thread itself lives on its own stream.

use burn::prelude::*;

use crate::layers::{LayerNorm, Linear, RmsNorm};

/// A copy of every tensor, written by the calling thread (module docs).
pub trait StreamCopy: Sized {
    /// The copy, on the same device and in the same dtype.
    fn stream_copy(&self) -> Self;
}

impl<const D: usize> StreamCopy for Tensor<D> {
    fn stream_copy(&self) -> Self {
        // Through the host, once per tensor: a device-side copy would be an operation that Burn's
        // fusion may defer or merge; a new upload is certain to be a new buffer on this stream.
        Tensor::from_data(self.to_data(), (&self.device(), self.dtype()))
    }
}

impl<T: StreamCopy> StreamCopy for Option<T> {
    fn stream_copy(&self) -> Self {
        self.as_ref().map(StreamCopy::stream_copy)
    }
}

impl<T: StreamCopy> StreamCopy for Vec<T> {
    fn stream_copy(&self) -> Self {
        self.iter().map(StreamCopy::stream_copy).collect()
    }
}

impl StreamCopy for Linear {
    fn stream_copy(&self) -> Self {
        Linear { weight: self.weight.stream_copy(), bias: self.bias.stream_copy() }
    }
}

impl StreamCopy for LayerNorm {
    fn stream_copy(&self) -> Self {
        LayerNorm { weight: self.weight.stream_copy(), bias: self.bias.stream_copy(), eps: self.eps }
    }
}

impl StreamCopy for RmsNorm {
    fn stream_copy(&self) -> Self {
        RmsNorm { weight: self.weight.stream_copy(), eps: self.eps }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DeviceSpec;
    use burn::tensor::DType;

    #[test]
    fn a_copy_has_the_values_shape_and_dtype_of_the_original() {
        let device = DeviceSpec::Cpu.device().unwrap();
        let weight = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, -2.0, 3.5, 0.25, 8.0, -0.5], [2, 3]), &device);
        let linear = Linear { weight, bias: Some(Tensor::<1>::from_data([0.5f32, 1.5, -1.0], &device)) };
        let copy = linear.stream_copy();
        assert_eq!(copy.weight.dtype(), DType::F32);
        assert_eq!(copy.weight.dims(), [2, 3]);
        assert_eq!(copy.weight.to_data(), linear.weight.to_data());
        assert_eq!(copy.bias.unwrap().to_data(), linear.bias.unwrap().to_data());
        let norm = RmsNorm { weight: Tensor::<1>::from_data([2.0f32, 3.0], &device), eps: 1e-6 };
        let copy = norm.stream_copy();
        assert_eq!((copy.weight.to_data(), copy.eps), (norm.weight.to_data(), 1e-6));
    }
}
