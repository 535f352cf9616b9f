//! Output files like the official scripts (docs/model.md §8.6), plus a JSON record and optional
//! CSV files for tables.
//!
//! - image: `result_ori.mmd` (raw text), `result.mmd` (markdown), `result_with_boxes.jpg`,
//!   `images/{k}.jpg`, `result.json`;
//! - document (PDF): `NAME_det.mmd` (raw pages), `NAME.mmd` (markdown pages), both with
//!   `<--- Page Split --->` after each page, `NAME_layouts.pdf`, `images/{page}_{k}.jpg`,
//!   `NAME.json`, and with CSV enabled `NAME-p{page}-t{k}.csv`.

use std::fs;
use std::path::{Path, PathBuf};

use image::RgbImage;
use rayon::prelude::*;
use serde::Serialize;

use crate::RenderError;
use crate::draw::{crop, draw_regions};
use crate::grounding::{Region, find_grounding, regions, to_pixels};
use crate::layouts_pdf::{JpegPage, jpeg_bytes, write_jpeg_pages_pdf};
use crate::markdown::{ImageLinks, PAGE_SPLIT, strip_eos, to_markdown};
use crate::tables::{html_tables, to_csv};

/// One page (or image) and what the model wrote for it.
#[derive(Debug, Clone)]
pub struct PageText {
    /// The page image the boxes refer to.
    pub image: RgbImage,
    /// The model's raw output (special tokens kept).
    pub raw: String,
    /// Whether generation ended on EOS; pages that did not usually ended in a repetition loop.
    pub stopped_on_eos: bool,
}

/// What was written.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WrittenFiles {
    /// Every file written, in order.
    pub files: Vec<PathBuf>,
    /// Pages left out because they did not end on EOS (with `skip_repeat`), 0-based.
    pub skipped_pages: Vec<usize>,
}

impl WrittenFiles {
    fn write(&mut self, path: PathBuf, bytes: &[u8]) -> Result<(), RenderError> {
        fs::write(&path, bytes).map_err(|error| RenderError::Io { path: path.clone(), error })?;
        self.files.push(path);
        Ok(())
    }
}

#[derive(Serialize)]
struct PageRecord<'a> {
    page: usize,
    width: u32,
    height: u32,
    stopped_on_eos: bool,
    regions: Vec<Region>,
    markdown: &'a str,
    raw: &'a str,
}

fn mkdir(path: &Path) -> Result<(), RenderError> {
    fs::create_dir_all(path).map_err(|error| RenderError::Io { path: path.to_path_buf(), error })
}

/// Crop every box of every figure block of `raw`, naming crops by `links` and box counter.
fn save_crops(out: &mut WrittenFiles, images_dir: &Path, image: &RgbImage, raw: &str, links: ImageLinks) -> Result<(), RenderError> {
    for (k, jpeg) in crop_jpegs(image, raw)? {
        mkdir(images_dir)?;
        out.write(images_dir.join(links.file_name(k)), &jpeg)?;
    }
    Ok(())
}

/// The JPEG of every box of every figure block of `raw` in `image`, with its box counter (boxes
/// outside the image have none but count).
fn crop_jpegs(image: &RgbImage, raw: &str) -> Result<Vec<(usize, Vec<u8>)>, RenderError> {
    let (w, h) = image.dimensions();
    let boxes = find_grounding(raw).into_iter().filter(|m| m.is_image()).flat_map(|m| m.boxes.into_iter().flatten());
    let mut crops = Vec::new();
    for (k, b) in boxes.enumerate() {
        if let Some(c) = crop(image, to_pixels(b, w, h)) {
            crops.push((k, jpeg_bytes(&c, 95)?));
        }
    }
    Ok(crops)
}

/// Write the outputs of one image into `dir`; `extra` (e.g. timings) is stored in the JSON.
pub fn write_image_outputs(dir: &Path, page: &PageText, csv: bool, extra: serde_json::Value) -> Result<WrittenFiles, RenderError> {
    mkdir(dir)?;
    let mut out = WrittenFiles::default();
    let raw = strip_eos(&page.raw);
    let markdown = to_markdown(raw, ImageLinks::Image);
    let (w, h) = page.image.dimensions();
    let regs = regions(raw, w, h);
    out.write(dir.join("result_ori.mmd"), raw.as_bytes())?;
    out.write(dir.join("result.mmd"), markdown.as_bytes())?;
    out.write(dir.join("result_with_boxes.jpg"), &jpeg_bytes(&draw_regions(&page.image, &regs), 95)?)?;
    save_crops(&mut out, &dir.join("images"), &page.image, raw, ImageLinks::Image)?;
    if csv {
        for (k, table) in html_tables(raw).iter().enumerate() {
            out.write(dir.join(format!("result-t{}.csv", k + 1)), to_csv(table).as_bytes())?;
        }
    }
    let record = serde_json::json!({
        "pages": [PageRecord { page: 0, width: w, height: h, stopped_on_eos: page.stopped_on_eos, regions: regs, markdown: &markdown, raw }],
        "info": extra,
    });
    out.write(dir.join("result.json"), serde_json::to_string_pretty(&record).unwrap().as_bytes())?;
    Ok(out)
}

/// Write the outputs of a multi-page document `name` into `dir`. With `skip_repeat`, pages that
/// did not end on EOS are left out of every file (official `SKIP_REPEAT`). `dpi` is the render
/// resolution of the pages (sizes the layout PDF).
pub fn write_document_outputs(
    dir: &Path,
    name: &str,
    pages: &[PageText],
    skip_repeat: bool,
    csv: bool,
    dpi: f32,
    extra: serde_json::Value,
) -> Result<WrittenFiles, RenderError> {
    write_document_files(dir, name, pages, pages.iter().map(|_| None).collect(), skip_repeat, csv, dpi, extra)
}

/// [`write_document_outputs`] with some pages' [`PageOutputs`] made already (`ahead[i]` of
/// `pages[i]`; e.g. as pages completed, while others were still being read); the others are
/// made here.
#[allow(clippy::too_many_arguments)]
pub fn write_document_files(
    dir: &Path,
    name: &str,
    pages: &[PageText],
    ahead: Vec<Option<PageOutputs>>,
    skip_repeat: bool,
    csv: bool,
    dpi: f32,
    extra: serde_json::Value,
) -> Result<WrittenFiles, RenderError> {
    assert_eq!(pages.len(), ahead.len(), "one entry of `ahead` per page");
    // The per-page work (markdown, boxes drawn and JPEG-encoded, figure crops) is most of the
    // time of a long document: what was not made ahead is made on every core.
    let done: Vec<PageOutputs> = pages
        .par_iter()
        .zip(ahead)
        .enumerate()
        .map(|(i, (page, ahead))| ahead.map_or_else(|| PageOutputs::make(i, page), Ok))
        .collect::<Result<_, _>>()?;
    mkdir(dir)?;
    let mut out = WrittenFiles::default();
    let (mut det, mut mmd) = (String::new(), String::new());
    let mut layouts = Vec::with_capacity(pages.len());
    let mut records = Vec::new();
    for (i, (page, done)) in pages.iter().zip(&done).enumerate() {
        if skip_repeat && !page.stopped_on_eos {
            tracing::warn!("page {} of {name} did not end on EOS (likely a repetition loop); skipped", i + 1);
            out.skipped_pages.push(i);
            continue;
        }
        let raw = strip_eos(&page.raw);
        det.push_str(raw);
        det.push_str(PAGE_SPLIT);
        mmd.push_str(&done.markdown);
        mmd.push_str(PAGE_SPLIT);
        layouts.push(&done.layout);
        for (k, jpeg) in &done.crops {
            mkdir(&dir.join("images"))?;
            out.write(dir.join("images").join(ImageLinks::Page(i).file_name(*k)), jpeg)?;
        }
        if csv {
            for (k, table) in html_tables(raw).iter().enumerate() {
                out.write(dir.join(format!("{name}-p{}-t{}.csv", i + 1, k + 1)), to_csv(table).as_bytes())?;
            }
        }
        let (width, height) = page.image.dimensions();
        records.push(PageRecord {
            page: i + 1,
            width,
            height,
            stopped_on_eos: page.stopped_on_eos,
            regions: done.regions.clone(),
            markdown: &done.markdown,
            raw,
        });
    }
    out.write(dir.join(format!("{name}_det.mmd")), det.as_bytes())?;
    out.write(dir.join(format!("{name}.mmd")), mmd.as_bytes())?;
    let layouts_path = dir.join(format!("{name}_layouts.pdf"));
    write_jpeg_pages_pdf(&layouts_path, &layouts, dpi)?;
    out.files.push(layouts_path);
    let record = serde_json::json!({ "source": name, "pages": records, "skipped_pages": out.skipped_pages.iter().map(|p| p + 1).collect::<Vec<_>>(), "info": extra });
    out.write(dir.join(format!("{name}.json")), serde_json::to_string_pretty(&record).unwrap().as_bytes())?;
    Ok(out)
}

/// What one page of a document contributes to its files, made from the page alone (so pages can
/// be made in parallel, and as they complete).
#[derive(Debug, Clone)]
pub struct PageOutputs {
    markdown: String,
    regions: Vec<Region>,
    /// The page with its boxes drawn, for the layouts PDF.
    layout: JpegPage,
    /// Figure crops with their box counters.
    crops: Vec<(usize, Vec<u8>)>,
}

impl PageOutputs {
    /// The outputs of `page`, page `index` (0-based) of its document.
    pub fn make(index: usize, page: &PageText) -> Result<Self, RenderError> {
        let raw = strip_eos(&page.raw);
        let (w, h) = page.image.dimensions();
        let regions = regions(raw, w, h);
        let layout = JpegPage::encode(&draw_regions(&page.image, &regions))?;
        let crops = crop_jpegs(&page.image, raw)?;
        Ok(PageOutputs { markdown: to_markdown(raw, ImageLinks::Page(index)), regions, layout, crops })
    }
}
