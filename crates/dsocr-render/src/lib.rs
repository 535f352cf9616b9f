//! # dsocr-render
//!
//! Turning DeepSeek-OCR output into files people use.
//!
//! **Not implemented yet.** This crate will parse grounding output
//! (`<|ref|>label<|/ref|><|det|>[[x1,y1,x2,y2]]<|/det|>`), draw the layout boxes on the page, crop
//! figures, rewrite the markdown and write the official output files (`result.mmd`,
//! `result_with_boxes.jpg`, `images/`, per-PDF `.mmd`, `_det.mmd`, `_layouts.pdf`). Until then it
//! exports nothing.
