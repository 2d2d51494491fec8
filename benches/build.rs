//! Finds the parse workload's corpus: the Rust sources of the `syn` 2.x
//! crate this package depends on, in cargo's registry (or wherever
//! `cargo metadata` says its manifest is), and passes their directory to
//! the bench binaries as `CHURN_PARSE_CORPUS` (see `churn/workload.rs`).
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=Cargo.toml");
    println!("cargo:rerun-if-changed=../Cargo.lock");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = format!(
        "{}/Cargo.toml",
        std::env::var("CARGO_MANIFEST_DIR").unwrap()
    );
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--manifest-path",
        ])
        .arg(&manifest)
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = String::from_utf8(out.stdout).expect("cargo metadata's output is UTF-8");
    // The package object starts with its name and version (dependency
    // entries have no "version" right after the name).
    let at = json
        .find(r#"{"name":"syn","version":"2."#)
        .expect("syn 2.x in cargo metadata's packages");
    let key = r#""manifest_path":""#;
    let start = at + json[at..].find(key).expect("syn's manifest_path") + key.len();
    let end = start + json[start..].find('"').unwrap();
    let manifest_path = json[start..end].replace("\\\\", "\\");
    let dir = std::path::Path::new(&manifest_path)
        .parent()
        .expect("syn's directory")
        .join("src");
    assert!(
        dir.is_dir(),
        "syn's sources: {} is not a directory",
        dir.display()
    );
    println!("cargo:rustc-env=CHURN_PARSE_CORPUS={}", dir.display());
}
