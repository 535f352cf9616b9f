//! `dsocr`: DeepSeek-OCR from the command line.
//!
//! - `dsocr ocr INPUT…`: images, PDFs, directories, or `-` for stdin;
//! - `dsocr serve`: the OpenAI-compatible HTTP server and upload page;
//! - `dsocr describe`: a JSON description of the tool, for agents;
//! - `dsocr parity --model DIR --case DIR`: check a build against recorded official runs;
//! - `dsocr bench`, `dsocr synth-weights`: release-size performance without the release file.

mod bench;
mod bench_devices;
mod describe;
mod devices;
mod engine_args;
mod formats;
mod gpu_args;
mod inputs;
mod kept;
mod names;
mod ocr;
mod pages;
mod parity;
mod progress;
mod resume;
mod serve;
mod shard;
mod warmup;
mod writer;

use clap::{Parser, Subcommand};

/// DeepSeek-OCR in Rust: images and PDFs to markdown with layout boxes.
#[derive(Parser)]
#[command(name = "dsocr", version, about, long_about = None)]
struct Cli {
    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// OCR images, PDFs or directories of them.
    Ocr(ocr::OcrArgs),
    /// Serve the OpenAI chat API, /v1/ocr and an upload page over HTTP.
    Serve(serve::ServeArgs),
    /// Print a JSON description of the tool (inputs, outputs, tasks, modes, version).
    Describe,
    /// Run recorded cases of the official code and report every stage's error.
    Parity(parity::ParityArgs),
    /// Benchmark one A4 Gundam page (913-token prompt) stage by stage; prints JSON.
    Bench(bench::BenchArgs),
    /// Write a release-size checkpoint with random weights (6.7 GB) for benchmarks.
    SynthWeights(bench::SynthArgs),
    /// Check dsocr's GPU kernels against their Burn references on a device.
    KernelsCheck(bench::KernelsCheckArgs),
    /// Compile and tune the GPU kernels ahead of time (for container images and batch jobs).
    Warmup(warmup::WarmupArgs),
}

fn main() {
    let cli = Cli::parse();
    let default = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let result = match cli.command {
        Command::Ocr(args) => ocr::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Warmup(args) => warmup::run(args),
        Command::Describe => describe::run(),
        Command::Parity(args) => parity::run(args),
        Command::Bench(args) => bench::bench(args),
        Command::SynthWeights(args) => bench::synth(args),
        Command::KernelsCheck(args) => bench::kernels_check(args),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}
