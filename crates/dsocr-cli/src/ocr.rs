//! `dsocr ocr`: images, PDFs and directories to markdown and the official output files.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use dsocr::common::{DeviceSpec, FloatType};
use dsocr::pdf::{DEFAULT_DPI, PdfDocument, parse_page_ranges};
use dsocr::preprocess::{LoadOptions, Mode, RgbImage, load_image_from_memory};
use dsocr::render::{PAGE_SPLIT, PageText, write_document_outputs, write_image_outputs};
use dsocr::{DeepseekOcr, ModelSource, OcrOptions, OcrResult, Task};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Args)]
pub struct OcrArgs {
    /// Images, PDFs or directories (searched recursively); `-` reads one file from stdin.
    #[arg(required = true)]
    inputs: Vec<String>,
    /// Write the output files here (one folder per input); without it, markdown goes to stdout.
    #[arg(long)]
    out: Option<PathBuf>,
    /// markdown, ocr, free, figure, describe, locate, custom.
    #[arg(long, default_value = "markdown")]
    task: String,
    /// The text to find (locate) or the whole prompt with <image> (custom).
    #[arg(long)]
    prompt: Option<String>,
    /// tiny, small, base, large or gundam.
    #[arg(long, default_value = "gundam")]
    mode: String,
    /// Most tiles in gundam mode (9 as the Hugging Face code, 6 as the vLLM scripts).
    #[arg(long, default_value_t = dsocr::preprocess::DEFAULT_MAX_TILES)]
    max_crops: usize,
    /// PDF render resolution.
    #[arg(long, default_value_t = DEFAULT_DPI)]
    dpi: f32,
    /// PDF pages, e.g. 1-3,7 (default all).
    #[arg(long)]
    pages: Option<String>,
    /// Password of encrypted PDFs.
    #[arg(long)]
    password: Option<String>,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// f32, bf16 or f16 (default: f32 on CPU, bf16 on CUDA).
    #[arg(long)]
    dtype: Option<String>,
    /// Model directory or Hugging Face repo id.
    #[arg(long, default_value = dsocr::DEFAULT_REPO)]
    model: String,
    /// Most new tokens per image or page.
    #[arg(long, default_value_t = 8192)]
    max_new_tokens: usize,
    /// Also write the HTML tables of the output as CSV files.
    #[arg(long)]
    csv: bool,
    /// Print the results as JSON on stdout instead of markdown.
    #[arg(long)]
    json: bool,
    /// Print stage timings to stderr.
    #[arg(long)]
    timings: bool,
    /// Leave out PDF pages that did not end on EOS (official SKIP_REPEAT).
    #[arg(long)]
    skip_repeat: bool,
}

enum Input {
    Image { name: String, image: RgbImage },
    Pdf { name: String, doc: PdfDocument },
}

const IMAGE_EXTENSIONS: [&str; 7] = ["png", "jpg", "jpeg", "tif", "tiff", "webp", "bmp"];

fn is_pdf_bytes(b: &[u8]) -> bool {
    b.len() >= 5 && b[..1024.min(b.len())].windows(5).any(|w| w == b"%PDF-")
}

/// Expand directories (recursively, sorted) into image and PDF files.
fn expand(inputs: &[String]) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for i in inputs {
        let p = Path::new(i);
        if i != "-" && p.is_dir() {
            let mut stack = vec![p.to_path_buf()];
            let mut found = Vec::new();
            while let Some(d) = stack.pop() {
                for e in std::fs::read_dir(&d).with_context(|| format!("reading directory {}", d.display()))? {
                    let path = e?.path();
                    if path.is_dir() {
                        stack.push(path);
                    } else if path.extension().and_then(|x| x.to_str()).is_some_and(|x| {
                        let x = x.to_ascii_lowercase();
                        x == "pdf" || IMAGE_EXTENSIONS.contains(&x.as_str())
                    }) {
                        found.push(path.display().to_string());
                    }
                }
            }
            found.sort();
            if found.is_empty() {
                tracing::warn!("{} holds no image or PDF", p.display());
            }
            out.extend(found);
        } else {
            out.push(i.clone());
        }
    }
    Ok(out)
}

fn open_input(arg: &str, password: Option<&str>) -> anyhow::Result<Input> {
    let (name, bytes) = if arg == "-" {
        let mut b = Vec::new();
        std::io::stdin().read_to_end(&mut b).context("reading standard input")?;
        anyhow::ensure!(!b.is_empty(), "standard input is empty; pipe an image or a PDF into `dsocr ocr -`");
        ("stdin".to_string(), b)
    } else {
        let b = std::fs::read(arg).with_context(|| format!("cannot read {arg}"))?;
        (Path::new(arg).file_stem().map_or("input".into(), |s| s.to_string_lossy().into_owned()), b)
    };
    let shown = if arg == "-" { "<stdin>" } else { arg };
    if is_pdf_bytes(&bytes) {
        Ok(Input::Pdf { name, doc: PdfDocument::from_bytes(bytes, shown, password)? })
    } else {
        Ok(Input::Image { name, image: load_image_from_memory(&bytes, shown, &LoadOptions::default())? })
    }
}

fn options(args: &OcrArgs) -> anyhow::Result<OcrOptions> {
    let mode: Mode = args.mode.parse()?;
    let mut spec = mode.spec();
    if spec.crop {
        spec = spec.with_max_tiles(args.max_crops)?;
    }
    let task = Task::from_name(&args.task, args.prompt.as_deref())?;
    anyhow::ensure!(args.max_new_tokens > 0, "--max-new-tokens must be at least 1");
    let generation = dsocr::lm::GenerationConfig { max_new_tokens: args.max_new_tokens, ..Default::default() };
    Ok(OcrOptions { task, mode: spec, generation })
}

fn progress(len: usize, what: &str) -> ProgressBar {
    let bar = if len > 1 { ProgressBar::new(len as u64) } else { ProgressBar::hidden() };
    bar.set_style(ProgressStyle::with_template(&format!("{{bar:30}} {{pos}}/{{len}} {what} {{msg}} [{{elapsed}}]")).unwrap());
    bar
}

fn report_timings(name: &str, r: &OcrResult) {
    let t = &r.timings;
    eprintln!(
        "{name}: preprocess {:.3}s, vision {:.3}s, prefill {:.3}s, decode {:.3}s ({} tokens, {:.1} tok/s), prompt {} tokens",
        t.preprocess_s,
        t.vision_s,
        t.prefill_s,
        t.decode_s,
        t.tokens,
        t.decode_tokens_per_s(),
        r.prompt_tokens
    );
}

pub fn run(args: OcrArgs) -> anyhow::Result<i32> {
    let opts = options(&args)?;
    let device: DeviceSpec = args.device.parse()?;
    let dtype: Option<FloatType> = args.dtype.as_deref().map(str::parse).transpose()?;
    let inputs = expand(&args.inputs)?;
    anyhow::ensure!(!inputs.is_empty(), "no input files found");
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out).with_context(|| format!("cannot create output directory {}", out.display()))?;
    }
    let source = ModelSource::parse(&args.model)?;
    let ocr = DeepseekOcr::load(&source, device, dtype).with_context(|| format!("loading the model from {}", args.model))?;

    let many = inputs.len() > 1;
    let files_bar = progress(inputs.len(), "files");
    let mut failed = Vec::new();
    for input in &inputs {
        files_bar.set_message(input.clone());
        if let Err(e) = process(&ocr, &args, &opts, input, many) {
            files_bar.suspend(|| eprintln!("error: {input}: {e:#}"));
            failed.push(input.clone());
        }
        files_bar.inc(1);
    }
    files_bar.finish_and_clear();
    if many || !failed.is_empty() {
        eprintln!("{} of {} input(s) done, {} failed", inputs.len() - failed.len(), inputs.len(), failed.len());
        for f in &failed {
            eprintln!("  failed: {f}");
        }
    }
    Ok(if failed.is_empty() { 0 } else { 1 })
}

fn process(ocr: &DeepseekOcr, args: &OcrArgs, opts: &OcrOptions, input: &str, many: bool) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    match open_input(input, args.password.as_deref())? {
        Input::Image { name, image } => {
            if args.pages.is_some() {
                tracing::warn!("--pages applies to PDFs; ignored for image {input}");
            }
            let stream = args.out.is_none() && !args.json && !many;
            let result = if stream {
                let mut out = stdout.lock();
                let r = ocr.ocr_stream(&image, opts, |piece| {
                    let _ = out.write_all(piece.as_bytes());
                    let _ = out.flush();
                })?;
                writeln!(out)?;
                r
            } else {
                ocr.ocr(&image, opts)?
            };
            if args.timings {
                report_timings(input, &result);
            }
            if let Some(dir) = &args.out {
                let page = PageText { image: image.into(), raw: result.raw.clone(), stopped_on_eos: result.stopped_on_eos };
                let written = write_image_outputs(
                    &dir.join(&name),
                    &page,
                    args.csv,
                    serde_json::json!({ "source": input, "timings": result.timings }),
                )?;
                tracing::info!("{input}: wrote {} files to {}", written.files.len(), dir.join(&name).display());
            }
            if args.json {
                println!("{}", serde_json::to_string(&serde_json::json!({ "source": input, "result": result }))?);
            } else if args.out.is_none() && !stream {
                println!("<!-- dsocr: {input} -->\n{}", result.markdown);
            }
        }
        Input::Pdf { name, doc } => {
            let pages = parse_page_ranges(args.pages.as_deref().unwrap_or("all"), doc.page_count())?;
            if pages.is_empty() {
                bail!("{input} has no pages");
            }
            let bar = progress(pages.len(), "pages");
            let mut texts = Vec::with_capacity(pages.len());
            let mut results = Vec::with_capacity(pages.len());
            for &p in &pages {
                bar.set_message(format!("page {}", p + 1));
                let img = doc.render_page(p, args.dpi)?;
                let r = ocr.ocr(&img.clone().into(), opts).with_context(|| format!("page {}", p + 1))?;
                if args.timings {
                    bar.suspend(|| report_timings(&format!("{input} page {}", p + 1), &r));
                }
                if !r.stopped_on_eos {
                    bar.suspend(|| eprintln!("warning: {input} page {} did not end on EOS (token budget reached)", p + 1));
                }
                texts.push(PageText { image: img, raw: r.raw.clone(), stopped_on_eos: r.stopped_on_eos });
                results.push(r);
                bar.inc(1);
            }
            bar.finish_and_clear();
            let missing = doc.font_report().pages_missing_cjk_font;
            if !missing.is_empty() {
                eprintln!(
                    "warning: {input}: pages {missing:?} need a CJK font that is not installed; their text may be missing (install fonts-noto-cjk)"
                );
            }
            if let Some(dir) = &args.out {
                let info = serde_json::json!({ "source": input, "pages_rendered": pages.iter().map(|p| p + 1).collect::<Vec<_>>(), "dpi": args.dpi, "timings": results.iter().map(|r| r.timings).collect::<Vec<_>>() });
                let written = write_document_outputs(&dir.join(&name), &name, &texts, args.skip_repeat, args.csv, args.dpi, info)?;
                tracing::info!("{input}: wrote {} files to {}", written.files.len(), dir.join(&name).display());
            }
            if args.json {
                println!("{}", serde_json::to_string(&serde_json::json!({ "source": input, "pages": results }))?);
            } else if args.out.is_none() {
                let mut out = stdout.lock();
                if many {
                    writeln!(out, "<!-- dsocr: {input} -->")?;
                }
                for (r, t) in results.iter().zip(&texts) {
                    if args.skip_repeat && !t.stopped_on_eos {
                        continue;
                    }
                    write!(out, "{}{PAGE_SPLIT}", r.markdown)?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pdf_magic() {
        assert!(is_pdf_bytes(b"%PDF-1.7\n"));
        assert!(!is_pdf_bytes(b"\x89PNG\r\n"));
    }
}
