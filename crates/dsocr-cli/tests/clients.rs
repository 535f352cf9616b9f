//! `dsocr serve` as a user runs it, with the clients users have: the binary started on a loopback
//! port with the parity model on the CPU, then `clients/clients.py` drives it with the real
//! `openai` Python package (plain and streaming, sent unchanged) and the upload page in headless
//! Chromium; both must give exactly what `dsocr ocr` prints for the same image.
//!
//! The Python side needs a Python with `openai` and `selenium` installed, named by
//! `DSOCR_CLIENT_PYTHON` (`.ci/run` makes that venv and installs Debian's chromium and
//! chromium-driver). Without it the test is skipped with a printed reason, or fails when
//! `DSOCR_REQUIRE_CLIENTS` is set (as in CI).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use dsocr_testdata::{parity, skip};

struct Server(Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn the_openai_client_and_the_upload_page_get_what_dsocr_ocr_prints() {
    const TEST: &str = "the_openai_client_and_the_upload_page";
    let Some(p) = parity(TEST) else { return };
    let python = match std::env::var_os("DSOCR_CLIENT_PYTHON") {
        Some(py) => PathBuf::from(py),
        None => {
            let why = "DSOCR_CLIENT_PYTHON is not set (a python with `openai` and `selenium`; .ci/run makes one)";
            assert!(std::env::var_os("DSOCR_REQUIRE_CLIENTS").is_none(), "{TEST}: {why}, and DSOCR_REQUIRE_CLIENTS is set");
            skip(TEST, why);
            return;
        }
    };
    let model = p.model_dir();
    let image = p.root.join("cases/banner_tiny/input.png");
    let dir = std::env::temp_dir().join(format!("dsocr-clients-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    // What `dsocr ocr` prints for the image (streamed raw text, then a newline).
    let ocr = Command::new(env!("CARGO_BIN_EXE_dsocr"))
        .args(["ocr", image.to_str().unwrap(), "--model", model.to_str().unwrap(), "--device", "cpu"])
        .args(["--task", "describe", "--mode", "tiny", "--max-new-tokens", "6"])
        .output()
        .unwrap();
    assert!(ocr.status.success(), "dsocr ocr: {}", String::from_utf8_lossy(&ocr.stderr));
    let printed = String::from_utf8(ocr.stdout).unwrap();
    let expected = printed.strip_suffix('\n').unwrap_or(&printed);
    assert!(!expected.is_empty());
    let expected_file = dir.join("expected.txt");
    std::fs::write(&expected_file, expected).unwrap();

    let port = free_port();
    let server = Server(
        Command::new(env!("CARGO_BIN_EXE_dsocr"))
            .args(["serve", "--model", model.to_str().unwrap(), "--device", "cpu", "--port", &port.to_string()])
            .args(["--api-key", "sesame", "--max-tokens", "6"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let screenshot = std::env::var_os("DSOCR_SCREENSHOT_DIR").map_or(dir.clone(), PathBuf::from).join("upload-page.png");
    let run = Command::new(&python)
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients/clients.py"))
        .args([&format!("http://127.0.0.1:{port}"), image.to_str().unwrap(), expected_file.to_str().unwrap()])
        .arg(&screenshot)
        .output()
        .unwrap();
    drop(server);
    let out = String::from_utf8_lossy(&run.stdout);
    let err = String::from_utf8_lossy(&run.stderr);
    println!("{out}");
    match run.status.code() {
        Some(0) => assert!(screenshot.is_file(), "no screenshot at {}", screenshot.display()),
        Some(3) if std::env::var_os("DSOCR_REQUIRE_CLIENTS").is_none() => skip(TEST, "the browser part: Chromium is not installed"),
        _ => panic!("the clients failed:\n{out}\n{err}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}
