//! `dsocr parity`: run recorded cases of the official code and report every stage's error.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use dsocr::common::{DeviceSpec, FloatType};
use dsocr::{DeepseekOcr, ModelFiles};

#[derive(Args)]
pub struct ParityArgs {
    /// Model directory in the release format (e.g. shared/parity/model).
    #[arg(long)]
    model: PathBuf,
    /// A case directory (input.png, case.json, expected.safetensors) or a directory of cases.
    #[arg(long)]
    case: PathBuf,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// f32, bf16 or f16 (default: f32 on CPU, bf16 on CUDA).
    #[arg(long)]
    dtype: Option<String>,
    /// Print the reports as JSON.
    #[arg(long)]
    json: bool,
    /// SAM's relative-position terms on dsocr's kernel (off by default until verified on a GPU:
    /// this is how to verify it).
    #[arg(long)]
    rel_pos_kernel: bool,
    #[command(flatten)]
    gpu: crate::gpu_args::GpuArgs,
}

pub fn run(args: ParityArgs) -> anyhow::Result<i32> {
    args.gpu.apply();
    dsocr::kernels::configure(dsocr::kernels::KernelSettings { rel_pos_kernel: args.rel_pos_kernel, ..Default::default() });
    let device: DeviceSpec = args.device.parse()?;
    let dtype: Option<FloatType> = args.dtype.as_deref().map(str::parse).transpose()?;
    let files = ModelFiles::from_dir(&args.model)?;
    let ocr = DeepseekOcr::from_files(files, device, dtype).with_context(|| format!("loading {}", args.model.display()))?;
    let cases: Vec<PathBuf> = if args.case.join("case.json").is_file() {
        vec![args.case.clone()]
    } else {
        let mut v: Vec<PathBuf> = std::fs::read_dir(&args.case)
            .with_context(|| format!("reading {}", args.case.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("case.json").is_file())
            .collect();
        v.sort();
        anyhow::ensure!(!v.is_empty(), "{} holds no case (no case.json)", args.case.display());
        v
    };
    let mut all_pass = true;
    let mut reports = Vec::new();
    for case in &cases {
        let r = dsocr::parity::run_case(&ocr, case).with_context(|| format!("running case {}", case.display()))?;
        all_pass &= r.pass;
        if !args.json {
            println!("case {} ({} on {device}): {}", r.case, r.dtype, if r.pass { "PASS" } else { "FAIL" });
            for f in &r.exact_failures {
                println!("  {f:<44} differs (must be identical)");
            }
            for s in &r.stages {
                let bound = s.bound.map_or("reported".to_string(), |b| format!("bound {b:.2e}"));
                println!(
                    "  {:<44} max abs {:.3e}  rel {:.3e}  {bound}  {}",
                    s.name,
                    s.max_abs_err,
                    s.rel_err,
                    if s.pass { "ok" } else { "FAIL" }
                );
            }
            println!("  greedy tokens matched: {} (safe steps {})", r.tokens_matched, r.safe_steps);
        }
        reports.push(r);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    }
    Ok(if all_pass { 0 } else { 1 })
}
