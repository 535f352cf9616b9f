//! `dsocr`: the command-line tool.
//!
//! **Not implemented yet**: the `ocr`, `describe`, `parity` and `bench` commands arrive with the
//! end-to-end work. This binary only says so.

fn main() {
    eprintln!("dsocr {}: the command-line interface is not implemented yet; use the library crates", env!("CARGO_PKG_VERSION"));
    std::process::exit(2);
}
