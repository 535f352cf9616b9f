//! The preprocessor must stay embeddable without Burn (or any GPU stack): its normal dependency
//! tree, as Cargo resolves it, holds no `burn*` or `cubecl*` crate.

use std::process::Command;

#[test]
fn the_dependency_tree_holds_no_burn_crate() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["tree", "-p", "dsocr-preprocess", "-e", "normal", "--prefix", "none", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo tree");
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(tree.lines().any(|l| l.starts_with("image ")), "the tree should list the image crate:\n{tree}");
    let heavy: Vec<&str> = tree.lines().filter(|l| l.starts_with("burn") || l.starts_with("cubecl")).collect();
    assert!(heavy.is_empty(), "dsocr-preprocess depends on {heavy:?}");
}
