//! What this process has spent building its GPU kernels: JIT compilation (and loading compiled
//! kernels from the on-disk cache) and autotuning, read from the records CubeCL keeps in the
//! cache database (docs/gpu.md, "First run and the on-disk caches"; docs/perf.md, session 25).
//!
//! CubeCL 0.11 writes one record per kernel compiled or loaded (kernel, outcome, duration) and one
//! per autotune decision (table, wall time of its candidates' runs), stamped with the process's
//! session. A first run on a new machine spends most of its time here, so `dsocr bench` reports
//! it beside the weights' load and the graph captures, and `dsocr ocr` says what a run compiled.
//! The tally is plain code, tested everywhere; reading the records is the `cuda` feature's.

use std::fmt;

use serde::Serialize;

/// Kernels compiled, loaded and tuned by this process so far ([`gpu_build_time`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct GpuBuildTime {
    /// Kernels compiled from their definitions.
    pub compiled: usize,
    /// Seconds spent compiling them (and loading them on the device).
    pub compile_s: f64,
    /// Kernels read from the on-disk cache instead (counted once the process has built
    /// something: CubeCL keeps no record of a process that only loaded).
    pub loaded: usize,
    /// Seconds spent loading those.
    pub load_s: f64,
    /// Shapes autotuned (one decision each: a matmul, convolution, attention or reduction shape).
    pub tuned: usize,
    /// Seconds those decisions took: running every candidate, whose compilation is also counted
    /// in `compile_s`.
    pub tune_s: f64,
}

/// How a kernel's compiled form was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelOrigin {
    /// Compiled now.
    Compiled,
    /// Read from the on-disk cache.
    Loaded,
}

impl GpuBuildTime {
    /// The tally of `kernels` (how each was obtained, seconds) and `tunes` (seconds each).
    pub fn tally(kernels: impl IntoIterator<Item = (KernelOrigin, f64)>, tunes: impl IntoIterator<Item = f64>) -> Self {
        let mut time = GpuBuildTime::default();
        for (origin, seconds) in kernels {
            match origin {
                KernelOrigin::Compiled => {
                    time.compiled += 1;
                    time.compile_s += seconds;
                }
                KernelOrigin::Loaded => {
                    time.loaded += 1;
                    time.load_s += seconds;
                }
            }
        }
        for seconds in tunes {
            time.tuned += 1;
            time.tune_s += seconds;
        }
        time
    }

    /// What was built after `earlier` (a tally taken before, by the same process).
    pub fn since(&self, earlier: &GpuBuildTime) -> GpuBuildTime {
        GpuBuildTime {
            compiled: self.compiled.saturating_sub(earlier.compiled),
            compile_s: (self.compile_s - earlier.compile_s).max(0.0),
            loaded: self.loaded.saturating_sub(earlier.loaded),
            load_s: (self.load_s - earlier.load_s).max(0.0),
            tuned: self.tuned.saturating_sub(earlier.tuned),
            tune_s: (self.tune_s - earlier.tune_s).max(0.0),
        }
    }

    /// Whether anything was compiled or tuned (a first run on this GPU, or new shapes).
    pub fn built_anything(&self) -> bool {
        self.compiled > 0 || self.tuned > 0
    }
}

impl fmt::Display for GpuBuildTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} GPU kernels compiled in {:.1} s, {} loaded from the cache in {:.1} s",
            self.compiled, self.compile_s, self.loaded, self.load_s
        )?;
        if self.tuned > 0 {
            write!(f, "; {} shapes autotuned in {:.1} s (their candidates' compiling included)", self.tuned, self.tune_s)?;
        }
        Ok(())
    }
}

/// This process's tally so far, from CubeCL's records in the active cache database; `None`
/// without one (`--no-gpu-disk-cache`, no GPU used, or a database that cannot be read).
#[cfg(feature = "cuda")]
pub fn gpu_build_time() -> Option<GpuBuildTime> {
    records::read()
}

/// Without the CUDA backend nothing is built: `None`.
#[cfg(not(feature = "cuda"))]
pub fn gpu_build_time() -> Option<GpuBuildTime> {
    None
}

#[cfg(feature = "cuda")]
mod records {
    use std::sync::OnceLock;
    use std::time::Duration;

    use cubecl::records::{Record, RecordEffect, Records, SessionId, Stamped};
    use cubecl_environment::persistence::{Access, Database};
    use serde::{Deserialize, Serialize};

    use super::{GpuBuildTime, KernelOrigin};

    /// The parts of CubeCL's compilation record (`cubecl_server::CompilationRecord`) read here.
    #[derive(Deserialize)]
    struct Compilation {
        outcome: Outcome,
        duration: Duration,
    }

    #[derive(Deserialize)]
    enum Outcome {
        Compiled,
        Loaded,
        /// Another key's compiled form, reused: no compiler ran.
        Rekeyed,
        /// An outcome a later CubeCL adds: counted as not compiled rather than dropped.
        #[serde(other)]
        Other,
    }

    impl Record for Compilation {
        const KIND: &'static str = "compilation";
    }

    /// The part of CubeCL's autotune record (`cubecl_runtime::tune::TuneRecord`) read here.
    #[derive(Deserialize)]
    struct Tune {
        wall: Duration,
    }

    impl Record for Tune {
        const KIND: &'static str = "autotune";
    }

    /// Written (as an observation, kept only with a session that builds something) for its
    /// stamp, which names this process's session.
    #[derive(Serialize)]
    struct Asked;

    impl Record for Asked {
        const KIND: &'static str = "dsocr-build-asked";
    }

    pub(super) fn read() -> Option<GpuBuildTime> {
        // Nothing on disk (`--no-gpu-disk-cache`): no records are kept.
        if crate::gpu_cache::disk_cache_off() {
            return None;
        }
        // The database as it is: a process that never used a GPU finds none, and makes none.
        let database = Database::open_at(&cubecl::environment::path(), Access::ReadOnly).ok()?;
        // This process's session, from a stamp of its own (a process id can repeat: containers),
        // taken once (dsocr keeps one environment per process; every stamp would be a row).
        // CubeCL keeps a session only once it changes the cache (a kernel compiled, a shape
        // tuned): no records of it mean nothing was built, and what it loaded is not counted.
        static SESSION: OnceLock<Option<SessionId>> = OnceLock::new();
        let session = (*SESSION.get_or_init(|| cubecl::records::write(RecordEffect::Observed, &Asked).map(|s| s.session)))?;
        let records = Records::new(&database);
        let kernels: Vec<_> = records
            .read::<Compilation>()
            .into_iter()
            .filter(|r: &Stamped<Compilation>| r.stamp.session == session)
            .map(|r| {
                let origin = match r.record.outcome {
                    Outcome::Compiled => KernelOrigin::Compiled,
                    Outcome::Loaded | Outcome::Rekeyed | Outcome::Other => KernelOrigin::Loaded,
                };
                (origin, r.record.duration.as_secs_f64())
            })
            .collect();
        let tunes: Vec<f64> = records
            .read::<Tune>()
            .into_iter()
            .filter(|r: &Stamped<Tune>| r.stamp.session == session)
            .map(|r| r.record.wall.as_secs_f64())
            .collect();
        Some(GpuBuildTime::tally(kernels, tunes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tally_counts_compiled_loaded_and_tuned_apart() {
        let kernels =
            [(KernelOrigin::Compiled, 0.5), (KernelOrigin::Loaded, 0.01), (KernelOrigin::Compiled, 1.25), (KernelOrigin::Loaded, 0.03)];
        let time = GpuBuildTime::tally(kernels, [2.0, 3.5]);
        assert_eq!((time.compiled, time.loaded, time.tuned), (2, 2, 2));
        assert!((time.compile_s - 1.75).abs() < 1e-12 && (time.load_s - 0.04).abs() < 1e-12 && (time.tune_s - 5.5).abs() < 1e-12);
        assert!(time.built_anything());
        assert_eq!(
            time.to_string(),
            "2 GPU kernels compiled in 1.8 s, 2 loaded from the cache in 0.0 s; 2 shapes autotuned in 5.5 s (their candidates' compiling included)"
        );
    }

    #[test]
    fn what_was_built_since_an_earlier_tally() {
        let before = GpuBuildTime::tally([(KernelOrigin::Compiled, 1.0)], [4.0]);
        let after = GpuBuildTime::tally([(KernelOrigin::Compiled, 1.0), (KernelOrigin::Loaded, 0.5), (KernelOrigin::Compiled, 2.0)], [4.0]);
        let since = after.since(&before);
        assert_eq!((since.compiled, since.loaded, since.tuned), (1, 1, 0));
        assert!((since.compile_s - 2.0).abs() < 1e-12 && since.tune_s == 0.0);
        // A warm run loads and tunes nothing new: nothing built, and the line says so plainly.
        let warm = GpuBuildTime::tally([(KernelOrigin::Loaded, 0.2)], []);
        assert!(!warm.built_anything());
        assert_eq!(warm.to_string(), "0 GPU kernels compiled in 0.0 s, 1 loaded from the cache in 0.2 s");
        assert_eq!(GpuBuildTime::default().since(&after), GpuBuildTime::default(), "never negative");
    }
}
