//! Choosing where the model runs and in which float type.

use std::fmt;
use std::str::FromStr;

use burn::prelude::Device;
use burn::tensor::DType;

use crate::CoreError;

/// A compute device as named on the command line: `auto`, `cpu`, `cuda` or `cuda:N` (`auto`
/// resolves at once, see [`DeviceSpec::auto`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    /// The CPU backend (burn-ndarray, f32 only).
    #[default]
    Cpu,
    /// An NVIDIA GPU through CubeCL's CUDA backend, by index.
    Cuda(usize),
}

impl FromStr for DeviceSpec {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase();
        if s == "auto" {
            return Ok(DeviceSpec::auto());
        }
        if s == "cpu" {
            return Ok(DeviceSpec::Cpu);
        }
        if s == "cuda" || s == "gpu" {
            return Ok(DeviceSpec::Cuda(0));
        }
        if let Some(n) = s.strip_prefix("cuda:") {
            return n
                .parse()
                .map(DeviceSpec::Cuda)
                .map_err(|_| CoreError::Device(format!("bad CUDA device index {n:?} in {s:?}; use cuda:0, cuda:1, …")));
        }
        Err(CoreError::Device(format!("unknown device {s:?}; use auto, cpu, cuda or cuda:N")))
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl DeviceSpec {
    /// The first CUDA GPU when this build has CUDA support and a GPU answers, else the CPU; the
    /// log says which and why.
    pub fn auto() -> DeviceSpec {
        #[cfg(feature = "cuda")]
        {
            if DeviceSpec::probe_cuda(0) {
                let memory = DeviceSpec::Cuda(0).device().ok().and_then(|device| device_memory_bytes(&device));
                if auto_takes_gpu(memory) {
                    tracing::info!("device auto: cuda:0");
                    return DeviceSpec::Cuda(0);
                }
                tracing::warn!(
                    "device auto: cuda:0 has {:.1} GB, less than the {:.0} GB the release model needs (6.7 GB of weights, then activations and pages): running on the CPU; --device cuda uses the GPU anyway",
                    memory.unwrap_or(0) as f64 / 1e9,
                    AUTO_MIN_GPU_BYTES as f64 / 1e9
                );
                return DeviceSpec::Cpu;
            }
            tracing::info!("device auto: no usable CUDA GPU (driver or GPU missing), running on the CPU");
        }
        #[cfg(not(feature = "cuda"))]
        tracing::info!("device auto: this build has no CUDA support (`--features cuda`), running on the CPU");
        DeviceSpec::Cpu
    }

    /// Whether CUDA GPU `index` answers (always false on a build without CUDA). A missing GPU
    /// or driver may panic inside CubeCL; that is caught and counts as no.
    pub fn probe_cuda(index: usize) -> bool {
        #[cfg(feature = "cuda")]
        {
            std::panic::catch_unwind(|| {
                crate::gpu_cache::ensure_gpu_configured();
                Device::cuda(index).sync().is_ok()
            })
            .unwrap_or(false)
        }
        #[cfg(not(feature = "cuda"))]
        {
            let _ = index;
            false
        }
    }

    /// The Burn device, or an error saying which build feature is missing.
    pub fn device(self) -> Result<Device, CoreError> {
        match self {
            #[cfg(feature = "cpu")]
            #[allow(deprecated)] // burn-ndarray is the CPU backend this project is specified and tested on
            DeviceSpec::Cpu => Ok(Device::ndarray()),
            #[cfg(not(feature = "cpu"))]
            DeviceSpec::Cpu => Err(CoreError::Device("this build has no CPU backend; rebuild with the `cpu` feature (on by default)".into())),
            #[cfg(feature = "cuda")]
            DeviceSpec::Cuda(i) => {
                crate::gpu_cache::ensure_gpu_configured();
                crate::gpu_cache::announce_gpu_cache();
                Ok(Device::cuda(i))
            }
            #[cfg(not(feature = "cuda"))]
            DeviceSpec::Cuda(_) => Err(CoreError::Device(
                "this build has no CUDA support; rebuild with `--features cuda` (needs an NVIDIA driver with libcuda and libnvrtc at run time)".into(),
            )),
        }
    }

    /// The float type used when none is asked for: bf16 on the GPU (the checkpoint's type), f32 on
    /// the CPU (the only float type burn-ndarray computes in).
    pub fn default_dtype(self) -> FloatType {
        match self {
            DeviceSpec::Cpu => FloatType::F32,
            DeviceSpec::Cuda(_) => FloatType::Bf16,
        }
    }
}

/// The float type weights and activations are held in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FloatType {
    /// 32-bit float.
    F32,
    /// bfloat16 (the checkpoint's type).
    Bf16,
    /// IEEE half.
    F16,
}

impl FloatType {
    /// The Burn element type.
    pub fn dtype(self) -> DType {
        match self {
            FloatType::F32 => DType::F32,
            FloatType::Bf16 => DType::BF16,
            FloatType::F16 => DType::F16,
        }
    }

    /// Check that `device` computes in this type.
    pub fn check_supported(self, device: &Device) -> Result<(), CoreError> {
        if device.supports_dtype(self.dtype()) {
            Ok(())
        } else {
            Err(CoreError::Device(format!(
                "the device {device:?} does not compute in {self}; use --dtype f32 (the CPU backend is f32 only)"
            )))
        }
    }
}

impl FromStr for FloatType {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "f32" | "float32" | "fp32" => Ok(FloatType::F32),
            "bf16" | "bfloat16" => Ok(FloatType::Bf16),
            "f16" | "float16" | "fp16" | "half" => Ok(FloatType::F16),
            other => Err(CoreError::Device(format!("unknown dtype {other:?}; use f32, bf16 or f16"))),
        }
    }
}

impl fmt::Display for FloatType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FloatType::F32 => "f32",
            FloatType::Bf16 => "bf16",
            FloatType::F16 => "f16",
        })
    }
}

/// Least device memory `auto` takes a GPU with: at the default `--gpu-memory` 0.90, the release
/// weights (6.7-6.8 GB in bf16), the smallest activation reserve (2 GiB: docs/engine.md, "KV pool")
/// and a few pages in flight. An 8 GB card would run out of memory at its first page; 10 GB cards
/// (RTX 3080) take about five pages at once.
pub const AUTO_MIN_GPU_BYTES: u64 = 10_000_000_000;

/// Whether `auto` runs on a GPU that reports `memory` bytes (`None`: not reported, taken).
#[cfg_attr(not(feature = "cuda"), allow(dead_code))] // only `auto` of a CUDA build asks
fn auto_takes_gpu(memory: Option<u64>) -> bool {
    memory.is_none_or(|bytes| bytes >= AUTO_MIN_GPU_BYTES)
}

/// The device's total memory in bytes, where the backend reports it (a CUDA GPU); `None` on the CPU.
pub fn device_memory_bytes(device: &Device) -> Option<u64> {
    #[cfg(feature = "cuda")]
    if let burn::backend::DispatchDevice::Cube(cube) = device.as_dispatch() {
        return cube.client().properties().memory.max_memory();
    }
    let _ = device;
    None
}

/// The host's memory in bytes, RAM and swap together (Linux: `MemTotal` + `SwapTotal` of
/// `/proc/meminfo`): an allocation larger than this cannot succeed; `None` where the system
/// does not say.
pub fn host_memory_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_host_memory(&info)
}

fn parse_host_memory(meminfo: &str) -> Option<u64> {
    let field = |name: &str| -> Option<u64> {
        let line = meminfo.lines().find(|l| l.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse::<u64>().ok()?.checked_mul(1024)
    };
    field("MemTotal:")?.checked_add(field("SwapTotal:").unwrap_or(0))
}

#[cfg(test)]
mod tests {
    #[test]
    fn host_memory_is_ram_and_swap_in_bytes() {
        let info = "MemTotal:       24568868 kB\nMemFree:         1000000 kB\nSwapTotal:       2097152 kB\n";
        assert_eq!(super::parse_host_memory(info), Some((24_568_868 + 2_097_152) * 1024));
        assert_eq!(super::parse_host_memory("MemTotal: 1000 kB\n"), Some(1_024_000), "no swap line: RAM alone");
        assert_eq!(super::parse_host_memory("SwapTotal: 1 kB\n"), None);
    }

    #[test]
    fn auto_leaves_cards_too_small_for_the_model_to_the_cpu() {
        // An RTX 4060 (8 GB) and a 6 GB laptop GPU: the CPU; an RTX 3080 (10,240 MiB) and up: the GPU.
        assert!(!auto_takes_gpu(Some(8_585_000_000)) && !auto_takes_gpu(Some(6_442_000_000)));
        assert!(auto_takes_gpu(Some(10_737_000_000)) && auto_takes_gpu(Some(150_754_000_000)));
        assert!(auto_takes_gpu(None), "a GPU that does not say keeps the GPU");
    }
    use super::*;

    #[test]
    fn parse_devices_and_dtypes() {
        assert_eq!("cpu".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cpu);
        assert_eq!("cuda".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(0));
        assert_eq!("CUDA:3".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(3));
        assert!("cuda:x".parse::<DeviceSpec>().is_err());
        assert!("tpu".parse::<DeviceSpec>().unwrap_err().to_string().contains("tpu"));
        assert_eq!("bf16".parse::<FloatType>().unwrap(), FloatType::Bf16);
        assert!("int8".parse::<FloatType>().is_err());
        assert_eq!(DeviceSpec::Cuda(1).to_string(), "cuda:1");
    }

    #[cfg(feature = "cpu")]
    #[test]
    fn cpu_device_is_f32_only() {
        let d = DeviceSpec::Cpu.device().unwrap();
        assert!(FloatType::F32.check_supported(&d).is_ok());
        assert!(FloatType::Bf16.check_supported(&d).is_err());
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_feature_says_how_to_get_it() {
        let e = DeviceSpec::Cuda(0).device().unwrap_err().to_string();
        assert!(e.contains("--features cuda"), "{e}");
    }
}
