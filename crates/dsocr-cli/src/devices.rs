//! `--device` (one device) and `--devices` (one engine per device, in one process), shared by
//! `dsocr ocr` and `dsocr serve`. The two exclude each other: `--device` keeps its meaning and
//! its default (`auto`); `--devices` is the multi form.

use clap::Args;
use dsocr::DeviceList;
use dsocr::common::DeviceSpec;

#[derive(Args, Debug, Clone)]
pub struct DeviceArgs {
    /// auto (a CUDA GPU when the build has CUDA and one is present, else the CPU), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto", conflicts_with = "devices")]
    device: String,
    /// One engine per device, each with its own weights and KV pool, pages dispatched to the
    /// least-loaded: `all` (every GPU; the CPU when none), GPU indices `0,1,3`, `cuda:0,cuda:2`, or
    /// `cpu,cpu` (several CPU engines, for tests). Excludes --device.
    #[arg(long)]
    devices: Option<DeviceList>,
}

/// Where the engines run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Devices {
    /// One engine, driven on the calling thread (the path of a single device).
    One(DeviceSpec),
    /// One engine per device behind an `OcrService` (two or more).
    Many(Vec<DeviceSpec>),
}

impl DeviceArgs {
    pub fn resolve(&self) -> anyhow::Result<Devices> {
        let Some(list) = &self.devices else { return Ok(Devices::One(self.device.parse()?)) };
        let devices = list.resolve();
        Ok(match devices.as_slice() {
            [one] => Devices::One(*one),
            _ => Devices::Many(devices),
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        devices: DeviceArgs,
    }

    fn devices(args: &[&str]) -> anyhow::Result<Devices> {
        Cli::try_parse_from(std::iter::once("dsocr").chain(args.iter().copied()))?.devices.resolve()
    }

    #[test]
    fn device_and_devices() {
        assert_eq!(devices(&["--device", "cpu"]).unwrap(), Devices::One(DeviceSpec::Cpu));
        assert_eq!(devices(&["--devices", "cpu,cpu"]).unwrap(), Devices::Many(vec![DeviceSpec::Cpu; 2]));
        assert_eq!(
            devices(&["--devices", "0,1,3"]).unwrap(),
            Devices::Many(vec![DeviceSpec::Cuda(0), DeviceSpec::Cuda(1), DeviceSpec::Cuda(3)])
        );
        assert_eq!(devices(&["--devices", "cuda:1"]).unwrap(), Devices::One(DeviceSpec::Cuda(1)));
        let both = devices(&["--device", "cpu", "--devices", "cpu,cpu"]).unwrap_err().to_string();
        assert!(both.contains("cannot be used with"), "{both}");
        let bad = devices(&["--devices", "0,gpu7"]).unwrap_err().to_string();
        assert!(bad.contains("bad entry \"gpu7\""), "{bad}");
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn all_without_cuda_runs_on_the_cpu() {
        assert_eq!(devices(&["--devices", "all"]).unwrap(), Devices::One(DeviceSpec::Cpu));
    }
}
