//! Several devices named at once (`--devices all`, `0,1,3`, `cuda:0,cuda:2`, `cpu,cpu`): the
//! engines an [`crate::OcrService`] runs, one per entry, each with its own weights, KV pool and
//! decode graphs.
//!
//! Why a list type of its own and not a `Vec<DeviceSpec>`: `all` is only known once the machine is
//! probed, and it must fall back (to the CPU, said in the log) on a build without CUDA or a machine
//! without a GPU, where a list of indices must instead fail with a clear error when used.
//! `cpu` may be repeated: several CPU engines in one process are what the dispatcher is tested
//! with (they share the cores, so they are no faster than one).

use std::fmt;
use std::str::FromStr;

use crate::common::DeviceSpec;

/// Most GPUs `all` probes for.
const MOST_GPUS: usize = 64;

/// A device list as written on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceList {
    /// Every CUDA GPU that answers (the CPU when none does, or the build has no CUDA).
    All,
    /// These devices, in this order (an entry may repeat only for `cpu`).
    Listed(Vec<DeviceSpec>),
}

/// A device list that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DeviceListError {
    /// An entry is neither `cpu`, `cuda`, `cuda:N` nor a GPU index.
    #[error(
        "--devices {list:?}: bad entry {entry:?}; use `all`, GPU indices such as `0,1,3`, `cuda:0,cuda:1`, or `cpu,cpu` for several CPU engines"
    )]
    BadEntry {
        /// The whole list as given.
        list: String,
        /// The entry at fault.
        entry: String,
    },
    /// The list names nothing.
    #[error("--devices is empty; give `all`, GPU indices such as `0,1`, or `cpu`")]
    Empty,
    /// A GPU named twice: two engines on one GPU would split its memory and gain nothing.
    #[error("--devices {list:?} names {device} twice; name each GPU once (only `cpu` may repeat)")]
    Repeated {
        /// The whole list as given.
        list: String,
        /// The repeated device.
        device: DeviceSpec,
    },
}

impl FromStr for DeviceList {
    type Err = DeviceListError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let list = s.trim();
        if list.eq_ignore_ascii_case("all") {
            return Ok(DeviceList::All);
        }
        let mut devices = Vec::new();
        for entry in list.split(',').map(str::trim) {
            if entry.is_empty() {
                if list.is_empty() {
                    return Err(DeviceListError::Empty);
                }
                return Err(DeviceListError::BadEntry { list: list.into(), entry: entry.into() });
            }
            let bad = || DeviceListError::BadEntry { list: list.into(), entry: entry.into() };
            let device = if let Ok(i) = entry.parse::<usize>() {
                DeviceSpec::Cuda(i)
            } else if entry.eq_ignore_ascii_case("auto") || entry.eq_ignore_ascii_case("all") {
                // `auto` resolves to one device; in a list it would hide which.
                return Err(bad());
            } else {
                entry.parse::<DeviceSpec>().map_err(|_| bad())?
            };
            if device != DeviceSpec::Cpu && devices.contains(&device) {
                return Err(DeviceListError::Repeated { list: list.into(), device });
            }
            devices.push(device);
        }
        Ok(DeviceList::Listed(devices))
    }
}

impl fmt::Display for DeviceList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceList::All => f.write_str("all"),
            DeviceList::Listed(d) => f.write_str(&d.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")),
        }
    }
}

impl DeviceList {
    /// One device (what `--device` names).
    pub fn one(device: DeviceSpec) -> Self {
        DeviceList::Listed(vec![device])
    }

    /// The devices to start engines on. `All` probes the CUDA GPUs (a build without CUDA, or a
    /// machine where none answers, gets the CPU alone, and the log says why); a listed GPU is
    /// not probed here (its engine fails to load with the device's own error).
    pub fn resolve(&self) -> Vec<DeviceSpec> {
        match self {
            DeviceList::Listed(d) => d.clone(),
            DeviceList::All => {
                let gpus = cuda_gpus();
                if gpus == 0 {
                    tracing::warn!(
                        "--devices all: {}; running one engine on the CPU",
                        if cfg!(feature = "cuda") { "no CUDA GPU answers" } else { "this build has no CUDA support (`--features cuda`)" }
                    );
                    return vec![DeviceSpec::Cpu];
                }
                tracing::info!("--devices all: {gpus} CUDA GPU(s)");
                (0..gpus).map(DeviceSpec::Cuda).collect()
            }
        }
    }
}

/// How many CUDA GPUs answer, counted from index 0 up to the first that does not.
fn cuda_gpus() -> usize {
    if !cfg!(feature = "cuda") {
        return 0;
    }
    // The first index past the last GPU may panic inside CubeCL (caught by the probe); its
    // message would only alarm, so panics are silent while probing.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let n = (0..MOST_GPUS).take_while(|&i| DeviceSpec::probe_cuda(i)).count();
    std::panic::set_hook(hook);
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_and_print() {
        assert_eq!("all".parse::<DeviceList>().unwrap(), DeviceList::All);
        assert_eq!(
            "0,1,3".parse::<DeviceList>().unwrap(),
            DeviceList::Listed(vec![DeviceSpec::Cuda(0), DeviceSpec::Cuda(1), DeviceSpec::Cuda(3)])
        );
        assert_eq!("cuda:0, cuda:2".parse::<DeviceList>().unwrap().to_string(), "cuda:0,cuda:2");
        assert_eq!("cpu,cpu".parse::<DeviceList>().unwrap(), DeviceList::Listed(vec![DeviceSpec::Cpu; 2]));
        assert_eq!(DeviceList::one(DeviceSpec::Cpu).resolve(), vec![DeviceSpec::Cpu]);
    }

    #[test]
    fn bad_lists_say_what_is_wrong() {
        for (list, says) in
            [("", "empty"), ("0,,1", "bad entry \"\""), ("0,x", "bad entry \"x\""), ("auto,cpu", "\"auto\""), ("0,cuda:0", "twice")]
        {
            let e = list.parse::<DeviceList>().unwrap_err().to_string();
            assert!(e.contains(says), "{list:?}: {e}");
        }
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn all_without_cuda_is_the_cpu() {
        assert_eq!(DeviceList::All.resolve(), vec![DeviceSpec::Cpu]);
    }
}
