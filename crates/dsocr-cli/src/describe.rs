//! `dsocr describe`: what the tool takes and gives, as JSON, for agents and scripts.

use dsocr::Task;
use dsocr::preprocess::Mode;

pub fn run() -> anyhow::Result<i32> {
    let description = serde_json::json!({
        "name": "dsocr",
        "version": env!("CARGO_PKG_VERSION"),
        "summary": "DeepSeek-OCR: images and PDFs to markdown, with layout boxes",
        "usage": "dsocr ocr INPUT... [--out DIR] [--task TASK] [--mode MODE] [--pages 1-3,7] [--device auto|cpu|cuda[:N] | --devices all|0,1,3|cpu,cpu] [--shard INDEX/COUNT] [--overwrite] [--max-seqs N] [--gpu-memory 0.9]",
        "inputs": {
            "images": ["png", "jpeg", "tiff", "webp", "bmp"],
            "documents": ["pdf"],
            "directories": "searched recursively for images and PDFs",
            "stdin": "`-` reads one image or PDF from standard input and writes markdown to standard output",
        },
        "outputs": {
            "stdout": "markdown (without --out); for several inputs each is preceded by a line `<!-- dsocr: FILE -->`",
            "image": ["result.mmd", "result_ori.mmd", "result_with_boxes.jpg", "images/N.jpg", "result.json", "result-tK.csv (--csv)", "result.hocr (--format hocr)", "result_alto.xml (--format alto)", "NAME_searchable.pdf (--searchable)"],
            "pdf": ["NAME.mmd", "NAME_det.mmd", "NAME_layouts.pdf", "images/PAGE_N.jpg", "NAME.json", "NAME-pN-tK.csv (--csv)", "NAME.hocr (--format hocr)", "NAME_alto.xml (--format alto)", "NAME_searchable.pdf (--searchable)"],
        },
        "tasks": Task::NAMES,
        "modes": Mode::ALL.iter().map(|m| m.name()).collect::<Vec<_>>(),
        "devices": ["auto", "cpu", "cuda", "cuda:N"],
        "multi_device": {
            "option": "--devices all|0,1,3|cuda:0,cuda:1|cpu,cpu (excludes --device)",
            "behaviour": "one engine per device in one process; pages go to the least-loaded engine; results in input order; a failing device's pages are retried on the others and it is reported",
        },
        "batch": {
            "shard": "--shard INDEX/COUNT: the inputs sorted by path, every COUNT-th from INDEX (0-based)",
            "resume": "with --out, inputs whose outputs are complete (OUT/NAME/.dsocr-done.json) are skipped; --overwrite redoes them",
        },
        "dtypes": ["f32", "bf16", "f16"],
        "model": {
            "default": dsocr::DEFAULT_REPO,
            "option": "--model DIR|REPO",
            "supported": dsocr::Architecture::ALL.iter().map(|a| a.hub_repo()).collect::<Vec<_>>(),
        },
        "exit_codes": { "0": "all inputs succeeded", "1": "an input failed or bad arguments", "2": "usage error" },
    });
    println!("{}", serde_json::to_string_pretty(&description)?);
    Ok(0)
}
