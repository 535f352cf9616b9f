//! `dsocr serve`: the OpenAI-compatible HTTP server and upload page (docs/serve.md).

use std::time::Duration;

use anyhow::Context;
use clap::Args;
use dsocr::common::FloatType;
use dsocr::preprocess::Mode;
use dsocr::{DeepseekOcr, ModelSource, OcrService, ServiceOptions};
use dsocr_serve::{InputOptions, ServeOptions};

use crate::devices::Devices;
use crate::engine_args::EngineArgs;

#[derive(Args)]
pub struct ServeArgs {
    /// Model directory or Hugging Face repo id.
    #[arg(long, default_value = dsocr::DEFAULT_REPO)]
    model: String,
    /// Address to listen on (0.0.0.0: every interface).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port.
    #[arg(long, default_value_t = 8000)]
    port: u16,
    #[command(flatten)]
    devices: crate::devices::DeviceArgs,
    /// f32, bf16 or f16 (default: f32 on CPU, bf16 on CUDA).
    #[arg(long)]
    dtype: Option<String>,
    /// Require `Authorization: Bearer KEY` (also read from DSOCR_API_KEY).
    #[arg(long, env = "DSOCR_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Fetch `http(s)://` image URLs in requests (off: only inline `data:` URIs and uploads).
    #[arg(long)]
    allow_remote_urls: bool,
    /// The model id clients use (`GET /v1/models`).
    #[arg(long, default_value = "deepseek-ocr")]
    served_model_name: String,
    /// Most new tokens per page (requests may ask for fewer).
    #[arg(long, default_value_t = 8192)]
    max_tokens: usize,
    /// Largest request body, in MiB.
    #[arg(long, default_value_t = 64)]
    max_body_mib: usize,
    /// Most pixels per image or rendered PDF page.
    #[arg(long, default_value_t = 50_000_000)]
    max_pixels: u64,
    /// Most pages per request.
    #[arg(long, default_value_t = 200)]
    max_pages: usize,
    /// Pages queued or in flight beyond which requests get 429 (Retry-After).
    #[arg(long, default_value_t = 1024)]
    max_queued_pages: usize,
    /// PDF render resolution.
    #[arg(long, default_value_t = dsocr::pdf::DEFAULT_DPI)]
    dpi: f32,
    /// A font (.ttc/.otf/.ttf, e.g. NotoSansCJK-Regular.ttc) for Chinese, Japanese and Korean
    /// text that an uploaded PDF does not embed (default: an installed Noto CJK).
    #[arg(long, env = "DSOCR_CJK_FONT")]
    cjk_font: Option<std::path::PathBuf>,
    /// Seconds the requests in flight may take to finish after SIGTERM.
    #[arg(long, default_value_t = 60)]
    drain_seconds: u64,
    #[command(flatten)]
    engine: EngineArgs,
    #[command(flatten)]
    gpu: crate::gpu_args::GpuArgs,
}

pub fn run(args: ServeArgs) -> anyhow::Result<i32> {
    args.gpu.apply();
    let devices = args.devices.resolve()?;
    let dtype: Option<FloatType> = args.dtype.as_deref().map(str::parse).transpose()?;
    anyhow::ensure!(args.max_tokens > 0, "--max-tokens must be at least 1");
    crate::inputs::check_dpi(args.dpi)?;
    anyhow::ensure!(args.max_pages > 0, "--max-pages must be at least 1 (pages per request)");
    anyhow::ensure!(args.max_queued_pages > 0, "--max-queued-pages must be at least 1 (pages waiting for the engine)");
    anyhow::ensure!(args.max_pixels > 0, "--max-pixels must be at least 1 (pixels per image or rendered PDF page)");
    let source = ModelSource::parse(&args.model)?;
    let options = ServeOptions {
        model_name: args.served_model_name.clone(),
        api_key: args.api_key.clone(),
        allow_remote_urls: args.allow_remote_urls,
        max_body_bytes: args.max_body_mib << 20,
        input: InputOptions {
            max_pixels: args.max_pixels,
            max_pages: args.max_pages,
            pdf_dpi: args.dpi,
            cjk_font: crate::inputs::load_cjk_font(args.cjk_font.as_deref())?,
        },
        max_tokens: args.max_tokens,
        max_queued_pages: args.max_queued_pages,
        drain_timeout: Duration::from_secs(args.drain_seconds),
    };
    // Rows sized for the largest prompt of any mode (gundam, 9 tiles) plus the token cap.
    let engine = args.engine.options(&Mode::Gundam.spec(), args.max_tokens);
    let addr = format!("{}:{}", args.host, args.port);
    let model = args.model.clone();
    dsocr_serve::run_blocking(&addr, options, move || {
        let service = match devices {
            Devices::One(device) => OcrService::start(move || DeepseekOcr::load(&source, device, dtype), engine),
            // One engine per device; a request's pages spread over them (docs/scale.md).
            Devices::Many(devices) => {
                OcrService::start_on(&devices, move |device| DeepseekOcr::load(&source, device, dtype), engine, ServiceOptions::default())
            }
        };
        service.map_err(|e| dsocr::OcrError::Model(format!("loading the model from {model}: {e}")))
    })
    .context("the server stopped")?;
    Ok(0)
}
