//! `dsocr ocr` at scale on the small parity model (CPU): several engines in one process
//! (`--devices cpu,cpu`) give the results of one, in input order; `--shard` splits a directory;
//! a rerun skips the inputs whose outputs are complete (a killed run's half-written input is
//! redone), `--overwrite` redoes them; the commands in docs/scale.md and deploy/ use flags that
//! exist.

use std::path::Path;
use std::process::{Command, Output};

use dsocr_testdata::parity;

mod common;
use common::TempDir;

fn dsocr(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dsocr")).args(args).env("NO_COLOR", "1").output().expect("run dsocr")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const FAST: [&str; 4] = ["--max-new-tokens", "3", "--mode", "tiny"];

fn ocr(model: &Path, args: &[&str]) -> Output {
    let mut all = vec!["ocr", "--model", model.to_str().unwrap()];
    all.extend(FAST);
    all.extend(args);
    let o = dsocr(&all);
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    o
}

/// The JSON lines of `--json`: (source, tokens) in the order printed.
fn json_results(o: &Output) -> Vec<(String, serde_json::Value)> {
    assert!(o.status.success(), "{}", stderr(o));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["source"].as_str().unwrap().to_string(), v["result"]["tokens"].clone())
        })
        .collect()
}

#[test]
fn two_engines_shards_and_resume() {
    let Some(p) = parity("two_engines_shards_and_resume") else { return };
    let model = p.model_dir();
    let tmp = TempDir::new("resume");
    let inputs = tmp.0.join("in");
    std::fs::create_dir_all(&inputs).unwrap();
    // Four pages of distinct names (every case's image is input.png).
    let names = ["a", "b", "c", "d"];
    for (name, case) in names.iter().zip(p.cases().iter().cycle()) {
        std::fs::copy(case.input_image(), inputs.join(format!("{name}.png"))).unwrap();
    }
    let dir = inputs.to_str().unwrap();

    // Two CPU engines: the results of one, printed in input order.
    let one = json_results(&ocr(&model, &[dir, "--device", "cpu", "--json"]));
    let two = json_results(&ocr(&model, &[dir, "--devices", "cpu,cpu", "--json"]));
    assert_eq!(one.len(), 4);
    assert_eq!(two, one, "two engines give one engine's results, in input order");
    assert!(one.iter().map(|(s, _)| s.as_str()).is_sorted(), "{one:?}");

    // Shard 0/2 of the sorted directory: a and c.
    let out = tmp.0.join("out");
    let out_s = out.to_str().unwrap();
    let o = ocr(&model, &[dir, "--out", out_s, "--shard", "0/2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("shard 0/2: 2 of 4 input(s)"), "{}", stderr(&o));
    let done = |name: &str| out.join(name).join(".dsocr-done.json").is_file();
    assert!(done("a") && done("c") && !done("b") && !done("d"));

    // A killed run left b half written (no marker); a's output is marked so a rerun that redid
    // it would be seen.
    std::fs::create_dir_all(out.join("b")).unwrap();
    std::fs::write(out.join("b").join("result.mmd"), "half").unwrap();
    std::fs::write(out.join("a").join("result.mmd"), "KEPT").unwrap();
    let o = ocr(&model, &[dir, "--out", out_s, "--devices", "cpu,cpu"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("skipped 2 input(s)"), "{}", stderr(&o));
    assert!(names.iter().all(|n| done(n)));
    assert_eq!(std::fs::read_to_string(out.join("a").join("result.mmd")).unwrap(), "KEPT", "a complete input is skipped");
    assert_ne!(std::fs::read_to_string(out.join("b").join("result.mmd")).unwrap(), "half", "a half-written input is redone");

    // Other settings do not count as complete; --overwrite redoes everything.
    let o = ocr(&model, &[dir, "--out", out_s, "--overwrite"]);
    assert!(o.status.success() && !stderr(&o).contains("skipped"), "{}", stderr(&o));
    assert_ne!(std::fs::read_to_string(out.join("a").join("result.mmd")).unwrap(), "KEPT");
    let o = ocr(&model, &[dir, "--out", out_s, "--csv"]);
    assert!(o.status.success() && !stderr(&o).contains("skipped"), "{}", stderr(&o));
    let o = ocr(&model, &[dir, "--out", out_s, "--csv"]);
    assert!(stderr(&o).contains("skipped 4 input(s)"), "{}", stderr(&o));
}

/// `dsocr bench --devices cpu,cpu --mixed N`: the mixed workload through two engines, every
/// page done and both engines reported.
#[test]
fn bench_runs_the_mixed_workload_on_several_engines() {
    let Some(p) = parity("bench_runs_the_mixed_workload_on_several_engines") else { return };
    let model = p.model_dir();
    let image = p.cases()[0].input_image();
    let o = dsocr(&[
        "bench",
        "--devices",
        "cpu,cpu",
        "--model",
        model.to_str().unwrap(),
        "--image",
        image.to_str().unwrap(),
        "--mixed",
        "3",
        "--min-tokens",
        "2",
        "--max-tokens",
        "3",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["devices"], serde_json::json!(["cpu", "cpu"]));
    assert_eq!(report["mixed"]["pages"], 3);
    let engines = report["engines"].as_array().unwrap();
    assert_eq!(engines.len(), 2);
    assert!(engines.iter().all(|e| e["failure"].is_null()), "{engines:?}");
    let o = dsocr(&["bench", "--devices", "cpu,cpu", "--model", model.to_str().unwrap()]);
    assert!(!o.status.success() && stderr(&o).contains("give --mixed N"), "{}", stderr(&o));
}

#[test]
fn bad_device_lists_and_shards_are_refused_clearly() {
    for (args, says) in [
        (&["ocr", "x.png", "--device", "cpu", "--devices", "cpu,cpu"][..], "cannot be used with"),
        (&["ocr", "x.png", "--devices", "0,0"][..], "twice"),
        (&["ocr", "x.png", "--devices", "cpu,tpu"][..], "bad entry \"tpu\""),
        (&["ocr", "x.png", "--shard", "4/4"][..], "INDEX/COUNT"),
        (&["ocr", "-", "--shard", "0/2"][..], "cannot take standard input"),
        (&["serve", "--devices", ""][..], "empty"),
    ] {
        let o = dsocr(args);
        let err = stderr(&o);
        assert!(!o.status.success() && !err.contains("panicked") && err.contains(says), "{args:?}: {err}");
    }
}

/// Every `dsocr SUBCOMMAND … --flag` written in the scaling recipe and its deploy files names a
/// flag that subcommand takes (its `--help` lists it).
#[test]
fn the_scaling_recipes_use_flags_that_exist() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let files = ["docs/scale.md", "deploy/compose.yaml", "deploy/k8s/serve.yaml", "deploy/k8s/ocr-job.yaml", "deploy/slurm/ocr-array.sh"];
    let mut checked = 0;
    for file in files {
        let text = std::fs::read_to_string(root.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        // A command is one line (continued by a trailing backslash); YAML's flow lists
        // (`["dsocr", "serve", "--port", "8000"]`) are one line too.
        for line in text.replace("\\\n", " ").lines() {
            let words: Vec<&str> = line.split(|c: char| c.is_whitespace() || "\"'[],".contains(c)).filter(|w| !w.is_empty()).collect();
            for (i, pair) in words.windows(2).enumerate() {
                if !(pair[0].ends_with("dsocr") && ["ocr", "serve", "warmup", "bench"].contains(&pair[1])) {
                    continue;
                }
                let sub = pair[1];
                let help = String::from_utf8_lossy(&dsocr(&[sub, "--help"]).stdout).into_owned();
                for w in words[i + 2..].iter().take_while(|w| !["|", "&&", "||", ";"].contains(w) && !w.starts_with('#')) {
                    if let Some(flag) = w.strip_prefix("--") {
                        let flag = flag.split('=').next().unwrap();
                        assert!(help.contains(&format!("--{flag}")), "{file}: `dsocr {sub}` has no --{flag}");
                        checked += 1;
                    }
                }
            }
        }
    }
    assert!(checked >= 10, "only {checked} flags found in the recipes");
}
