//! # dsocr-pdf
//!
//! PDF pages to RGB images for DeepSeek-OCR.
//!
//! **Not implemented yet.** This crate will render pages at a chosen DPI (144 by default, as the
//! official PDF script) with the pure-Rust `hayro` renderer, with an optional `pdfium` backend;
//! handle page ranges, encrypted files and missing CJK fonts. Until then it exports nothing.
