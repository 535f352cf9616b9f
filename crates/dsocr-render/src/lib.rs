//! # dsocr-render
//!
//! Turning DeepSeek-OCR output into what people use (docs/model.md §8):
//!
//! - [`find_grounding`] / [`regions`]: parse `<|ref|>label<|/ref|><|det|>[[x1,y1,x2,y2],…]<|/det|>`
//!   blocks safely (no `eval`; malformed blocks are skipped with a warning), boxes scaled from the
//!   0–999 grid to pixels with truncation as the official code;
//! - [`to_markdown`]: the official markdown rewrite (figure links, tags removed, `\coloneqq` fixes);
//! - [`draw_regions`] / [`crop`]: boxes drawn on the page (deterministic colours per label) and
//!   figure crops;
//! - [`write_image_outputs`] / [`write_document_outputs`]: the official output files, a JSON record,
//!   CSV files for HTML tables, and the layouts PDF;
//! - [`page_layout`]: each region's text as lines and words placed in its box, written as hOCR
//!   ([`to_hocr`]) and ALTO XML v4 ([`to_alto`]) for archive pipelines, or as the invisible text
//!   layer of a searchable PDF ([`searchable_pdf`], [`searchable_pdf_from_images`]; docs/formats.md).
//!
//! ```
//! use dsocr_render::{ImageLinks, regions, to_markdown};
//! let text = "<|ref|>title<|/ref|><|det|>[[100, 50, 900, 150]]<|/det|>\n# Chapter III";
//! let found = regions(text, 2000, 1000);
//! assert_eq!(found[0].label, "title");
//! assert_eq!(found[0].bbox, [200, 50, 1801, 150]); // the 0–999 grid scaled to 2000×1000 pixels
//! assert_eq!(to_markdown(text, ImageLinks::Image).trim(), "# Chapter III");
//! ```

#![warn(missing_docs)]

mod alto;
mod draw;
mod glyphless;
mod grounding;
mod hocr;
mod layout;
mod layouts_pdf;
mod markdown;
mod output;
mod searchable;
mod tables;
mod xml;

pub use alto::{to_alto, to_alto_numbered};
pub use draw::{crop, draw_regions, label_colour};
pub use grounding::{GroundingMatch, Region, find_grounding, parse_boxes, regions, to_pixels};
pub use hocr::{HocrPage, to_hocr, to_hocr_numbered};
pub use layout::{Block, BlockKind, Line, PageLayout, Word, page_layout, plain_lines};
pub use layouts_pdf::{JPEG_MAX_SIDE, JpegPage, jpeg_bytes, write_jpeg_pages_pdf, write_layouts_pdf};
pub use markdown::{EOS_TEXT, ImageLinks, PAGE_SPLIT, strip_eos, to_markdown};
pub use output::{PageOutputs, PageText, WrittenFiles, write_document_files, write_document_outputs, write_image_outputs};
pub use searchable::{SearchablePdf, TextLayer, searchable_pdf, searchable_pdf_from_images};
pub use tables::{html_tables, to_csv};

/// Errors while writing outputs.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// A file or directory could not be written.
    #[error("cannot write {path}: {error}; check that the output directory is writable")]
    Io {
        /// The path.
        path: std::path::PathBuf,
        /// The underlying error.
        #[source]
        error: std::io::Error,
    },
    /// An image or PDF could not be encoded.
    #[error("cannot encode output: {0}")]
    Encode(String),
}
