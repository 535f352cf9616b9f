//! `dsocr ocr`: images, PDFs and directories to markdown and the official output files. Every
//! page of every input goes through one engine (continuous batching, see `pages.rs`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use dsocr::common::FloatType;
use dsocr::pdf::DEFAULT_DPI;
use dsocr::preprocess::Mode;
use dsocr::{DeepseekOcr, EngineOptions, ModelFiles, ModelHeader, ModelSource, OcrOptions, OcrService, ServiceOptions, Task};

use crate::engine_args::EngineArgs;

use crate::devices::Devices;
use crate::inputs::{OpenOptions, open_inputs};
use crate::pages::{Outputs, PREPARED_AHEAD, Runner, prepare_pages, run_pages};
use crate::resume::Resume;

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
    /// The text to find (locate) or the whole prompt with `<image>` (custom).
    #[arg(long)]
    prompt: Option<String>,
    /// tiny, small, base, large or gundam (DeepSeek-OCR 2: gundam, also called dynamic, base or small).
    #[arg(long, default_value = "gundam")]
    mode: String,
    /// Most tiles in gundam mode (9 as the Hugging Face code, 6 as the vLLM scripts; DeepSeek-OCR 2: at most 6).
    #[arg(long, default_value_t = dsocr::preprocess::DEFAULT_MAX_TILES)]
    max_crops: usize,
    /// PDF render resolution.
    #[arg(long, default_value_t = DEFAULT_DPI)]
    dpi: f32,
    /// Most pixels of an input image; larger ones are refused (a decompression bomb can claim
    /// billions). PDF pages are rendered at --dpi up to 100 million pixels whatever this is.
    #[arg(long, default_value_t = dsocr::preprocess::DEFAULT_MAX_PIXELS)]
    max_pixels: u64,
    /// PDF pages, e.g. 1-3,7 (default all).
    #[arg(long)]
    pages: Option<String>,
    /// Password of encrypted PDFs.
    #[arg(long)]
    password: Option<String>,
    /// PDF renderer: hayro (pure Rust, the default) or pdfium (needs a libpdfium, see
    /// --pdfium-library).
    #[arg(long, default_value = "hayro")]
    pdf_renderer: String,
    /// The libpdfium shared library for --pdf-renderer pdfium (default: the system's library
    /// path). The PyPI wheel `pypdfium2` ships one in site-packages/pypdfium2_raw/.
    #[arg(long, env = "DSOCR_PDFIUM_LIBRARY")]
    pdfium_library: Option<PathBuf>,
    /// A font (.ttc/.otf/.ttf, e.g. NotoSansCJK-Regular.ttc) for Chinese, Japanese and Korean
    /// text that a PDF does not embed (default: an installed Noto CJK; hayro renderer only).
    #[arg(long, env = "DSOCR_CJK_FONT")]
    cjk_font: Option<PathBuf>,
    #[command(flatten)]
    devices: crate::devices::DeviceArgs,
    /// Only this task's share of the inputs, INDEX/COUNT (0-based): the inputs sorted by path,
    /// every COUNT-th from INDEX, so COUNT tasks split a document set without coordination.
    #[arg(long)]
    shard: Option<crate::shard::Shard>,
    /// With --out: redo every input, also those whose outputs are complete (by default they are
    /// skipped, so a killed job resumes where it stopped; docs/scale.md).
    #[arg(long)]
    overwrite: bool,
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
    /// Standard OCR formats, comma-separated: hocr (NAME.hocr), alto (ALTO XML v4, NAME_alto.xml).
    /// Written beside the other outputs with --out; without it, printed instead of markdown (one
    /// format at a time).
    #[arg(long, value_enum, value_delimiter = ',')]
    format: Vec<crate::formats::OutputFormat>,
    /// With --format and --out: one file per page (NAME_page0004.hocr, NAME_page0004_alto.xml,
    /// numbered as in the input), as page-by-page pipelines (OCRmyPDF's hocrtransform) read them.
    #[arg(long, requires = "format", requires = "out")]
    format_per_page: bool,
    /// Also write NAME_searchable.pdf (with --out): the input's pages as they were (an image on a
    /// page at 300 DPI) with an invisible text layer, for search and copy.
    #[arg(long)]
    searchable: bool,
    /// With --out: most megabytes of page images held in memory for the output files (boxes drawn,
    /// figures cropped) while pages run; pages past it are loaded (rendered) again when their
    /// input is written.
    #[arg(long, default_value_t = crate::kept::KEPT_IMAGE_BYTES >> 20)]
    keep_images_mb: usize,
    /// Print stage timings to stderr.
    #[arg(long)]
    timings: bool,
    /// Leave out PDF pages that did not end on EOS (official SKIP_REPEAT).
    #[arg(long)]
    skip_repeat: bool,
    #[command(flatten)]
    engine: EngineArgs,
    #[command(flatten)]
    gpu: crate::gpu_args::GpuArgs,
}

pub(crate) const IMAGE_EXTENSIONS: [&str; 7] = ["png", "jpg", "jpeg", "tif", "tiff", "webp", "bmp"];

/// Expand directories (recursively, sorted) into image and PDF files. A directory that cannot be
/// read is reported among the failed inputs and the others go on; a directory reached again
/// through a symbolic link is read once.
fn expand(inputs: &[String]) -> (Vec<String>, Vec<(String, anyhow::Error)>) {
    let mut out = Vec::new();
    let mut failed = Vec::new();
    for i in inputs {
        let p = Path::new(i);
        if i != "-" && p.is_dir() {
            let mut stack = vec![p.to_path_buf()];
            let mut seen = std::collections::HashSet::new();
            let mut found = Vec::new();
            while let Some(d) = stack.pop() {
                if !seen.insert(std::fs::canonicalize(&d).unwrap_or_else(|_| d.clone())) {
                    tracing::warn!("{} is a directory already read (a link back to it): skipped", d.display());
                    continue;
                }
                let entries = match std::fs::read_dir(&d) {
                    Ok(entries) => entries,
                    Err(e) => {
                        failed.push((
                            d.display().to_string(),
                            anyhow::Error::new(e).context("cannot read this directory; check its permissions"),
                        ));
                        continue;
                    }
                };
                for entry in entries {
                    let path = match entry {
                        Ok(entry) => entry.path(),
                        Err(e) => {
                            failed.push((d.display().to_string(), anyhow::Error::new(e).context("cannot list this directory")));
                            continue;
                        }
                    };
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
    (out, failed)
}

fn options(args: &OcrArgs) -> anyhow::Result<OcrOptions> {
    let mode: Mode = args.mode.parse()?;
    let mut spec = mode.spec();
    if spec.crop {
        let min = spec.min_tiles;
        spec = spec.with_max_tiles(args.max_crops).with_context(|| {
            format!("--max-crops {}: gundam mode cuts a page into at least {min} tiles (the official code allows up to 9)", args.max_crops)
        })?;
    }
    let task = Task::from_name(&args.task, args.prompt.as_deref())?;
    anyhow::ensure!(args.max_new_tokens > 0, "--max-new-tokens must be at least 1");
    crate::inputs::check_dpi(args.dpi)?;
    let generation = dsocr::GenerationConfig { max_new_tokens: args.max_new_tokens, ..Default::default() };
    Ok(OcrOptions { task, mode: spec, generation })
}

/// Everything that shapes an input's output files, in words: a completion marker counts only for
/// the same (resume.rs).
fn settings(args: &OcrArgs) -> String {
    format!(
        "model={} task={} prompt={:?} mode={} max_crops={} max_new_tokens={} dpi={} pages={:?} csv={} formats={:?} per_page={} searchable={} skip_repeat={}",
        args.model,
        args.task,
        args.prompt,
        args.mode,
        args.max_crops,
        args.max_new_tokens,
        args.dpi,
        args.pages,
        args.csv,
        args.format,
        args.format_per_page,
        args.searchable,
        args.skip_repeat
    )
}

pub fn run(args: OcrArgs) -> anyhow::Result<i32> {
    let opts = options(&args)?;
    anyhow::ensure!(
        args.out.is_some() || args.format.len() <= 1,
        "--format {:?} without --out: give --out DIR to write several formats, or name one to print it",
        args.format
    );
    anyhow::ensure!(
        args.out.is_some() || args.format.is_empty() || !args.json,
        "--json and --format both print to stdout: give one, or --out"
    );
    anyhow::ensure!(args.out.is_some() || !args.searchable, "--searchable writes a file: give --out DIR");
    args.gpu.apply();
    let devices = args.devices.resolve()?;
    let dtype: Option<FloatType> = args.dtype.as_deref().map(str::parse).transpose()?;
    let (mut files, unread) = expand(&args.inputs);
    if files.is_empty() {
        for (dir, e) in &unread {
            eprintln!("error: {dir}: {e:#}");
        }
        anyhow::bail!("no input files found");
    }
    let unread_dirs = unread.len();
    // Named over the whole set, before a shard is taken: every shard names an input alike.
    let names = crate::names::output_names(&files);
    if let Some(shard) = args.shard {
        anyhow::ensure!(!files.iter().any(|f| f == "-"), "--shard splits files; it cannot take standard input (-)");
        let all = files.len();
        files = shard.select(&files);
        eprintln!("shard {shard}: {} of {all} input(s)", files.len());
        if files.is_empty() {
            return Ok(0);
        }
    }
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out).with_context(|| format!("cannot create output directory {}", out.display()))?;
    }
    // Every input is opened (and a PDF's password checked) before the model is loaded: a
    // mistyped path fails in a moment, not after a download.
    let renderer = dsocr::pdf::Renderer::parse(&args.pdf_renderer, args.pdfium_library.clone()).map_err(anyhow::Error::msg)?;
    let cjk_font = crate::inputs::load_cjk_font(args.cjk_font.as_deref())?;
    if cjk_font.is_some() && matches!(renderer, dsocr::pdf::Renderer::Pdfium { .. }) {
        eprintln!("warning: --cjk-font applies to the hayro renderer; PDFium finds system fonts itself and ignores it");
    }
    let open_options = OpenOptions {
        password: args.password.clone(),
        pages: args.pages.clone(),
        renderer,
        cjk_font,
        load: dsocr::preprocess::LoadOptions { max_pixels: args.max_pixels, ..Default::default() },
    };
    let (mut docs, mut failed) = open_inputs(&files, &open_options);
    // Directories that could not be read count among the failed inputs.
    failed.extend(unread);
    for d in &mut docs {
        if let Some(name) = names.get(&d.input).filter(|n| **n != d.name) {
            eprintln!("warning: {} shares its name with another input: its outputs are named {name}", d.input);
            d.name = name.clone();
        }
    }
    for (input, e) in &failed {
        eprintln!("error: {input}: {e:#}");
    }
    let resume = args.out.as_deref().map(|out| Resume::new(out, settings(&args)));
    let mut skipped = 0;
    if let Some(resume) = &resume {
        if !args.overwrite {
            let before = docs.len();
            docs.retain(|d| d.input == "-" || !resume.is_complete(&d.name, &d.input));
            skipped = before - docs.len();
            if skipped > 0 {
                eprintln!(
                    "skipped {skipped} input(s) whose outputs in {} are complete (--overwrite redoes them)",
                    args.out.as_deref().map(Path::display).expect("with --out")
                );
            }
        }
        for d in &docs {
            resume.clear(&d.name)?;
        }
    }
    if docs.is_empty() && failed.is_empty() {
        return Ok(0);
    }
    anyhow::ensure!(!docs.is_empty(), "none of the {} input(s) could be opened", files.len() - skipped);
    // The model's config and tokenizer first: with them the pages are rendered and prepared on
    // CPU threads while the weights load.
    let model = &args.model;
    let header = ModelFiles::resolve(&ModelSource::parse(model)?, true)
        .and_then(ModelHeader::read)
        .with_context(|| format!("loading the model from {model}"))?;
    let opts = header.options_for_model(&opts).with_context(|| format!("--mode {} with {}", args.mode, header.architecture()))?;
    let outputs = Outputs {
        out: args.out.clone(),
        csv: args.csv,
        json: args.json,
        timings: args.timings,
        skip_repeat: args.skip_repeat,
        dpi: args.dpi,
        many: files.len() > 1,
        formats: args.format.clone(),
        format_per_page: args.format_per_page,
        searchable: args.searchable,
        password: args.password.clone(),
        resume,
        kept_image_bytes: args.keep_images_mb.saturating_mul(1 << 20),
    };
    let done = files.len() + unread_dirs - skipped;
    let pages: usize = docs.iter().map(|d| d.pages.len()).sum();
    let prepared = prepare_pages(&outputs, &opts, header.tokenizer(), docs);
    let engine = args.engine.options(&opts.mode, opts.generation.max_new_tokens);
    failed.extend(match devices {
        Devices::One(device) => {
            let ocr = DeepseekOcr::from_header(&header, device, dtype).with_context(|| format!("loading the model from {model}"))?;
            let engine = EngineOptions { vision_thread: args.engine.vision_thread_on(pages, &[device]), ..engine };
            run_pages(Runner::One(&ocr), &outputs, &engine, prepared)?
        }
        Devices::Many(devices) => {
            let engine = EngineOptions { vision_thread: args.engine.vision_thread_on(pages, &devices), ..engine };
            let service = ServiceOptions { per_engine_pages: engine.max_seqs.unwrap_or(256) + PREPARED_AHEAD };
            let load = move |device| DeepseekOcr::from_header(&header, device, dtype);
            let service =
                OcrService::start_on(&devices, load, engine.clone(), service).with_context(|| format!("loading the model from {model}"))?;
            let failed = run_pages(Runner::Service(&service), &outputs, &engine, prepared)?;
            report_engines(&service);
            failed
        }
    });
    // A first run on a GPU spends most of its time here; say so, and that it was once.
    if let Some(built) = dsocr::common::gpu_build_time().filter(|b| b.built_anything()) {
        tracing::info!("this run built its GPU kernels: {built}; kept in the GPU cache for the next runs");
    }
    if done > 1 || !failed.is_empty() {
        eprintln!("{} of {done} input(s) done, {} failed", done - failed.len(), failed.len());
        for (f, _) in &failed {
            eprintln!("  failed: {f}");
        }
    }
    Ok(if failed.is_empty() { 0 } else { 1 })
}

/// Say which engines failed during the run (their pages went to the others).
fn report_engines(service: &OcrService) {
    for engine in service.engines() {
        match &engine.failure {
            Some(why) => eprintln!("warning: engine {} failed: {why}; its pages were retried on the others", engine.description),
            None => tracing::info!("engine {}: {} page(s)", engine.description, engine.pages),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory with a link back to itself is listed once; a missing input is left for
    /// opening to report.
    #[cfg(unix)]
    #[test]
    fn directories_are_listed_once_through_links_back_to_themselves() {
        let root = std::env::temp_dir().join(format!("dsocr-expand-{}", std::process::id()));
        let scans = root.join("scans");
        std::fs::create_dir_all(scans.join("more")).unwrap();
        std::fs::write(scans.join("a.png"), b"").unwrap();
        std::fs::write(scans.join("more/b.pdf"), b"").unwrap();
        std::fs::write(scans.join("notes.txt"), b"").unwrap();
        std::os::unix::fs::symlink(&scans, scans.join("more/again")).unwrap();
        let (files, failed) = expand(&[scans.display().to_string(), "/no/such/file.png".into()]);
        std::fs::remove_dir_all(&root).unwrap();
        let names: Vec<String> = files.iter().map(|f| f.strip_prefix(&scans.display().to_string()).unwrap_or(f).to_string()).collect();
        assert_eq!(names, ["/a.png", "/more/b.pdf", "/no/such/file.png"]);
        assert!(failed.is_empty(), "{failed:?}");
    }
}
