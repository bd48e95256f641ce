//! Links the system libxml2 through pkg-config (we declare the few functions we use ourselves in
//! src/xml/ffi.rs, so no libclang/bindgen is needed) and embeds every XSD under `schemas/` so the
//! binary validates the same way from any directory and never reads schemas from elsewhere.
use std::path::{Path, PathBuf};

fn main() {
    if let Err(e) = pkg_config::Config::new()
        .atleast_version("2.9")
        .probe("libxml-2.0")
    {
        panic!("libxml2 not found through pkg-config ({e}); install libxml2-dev");
    }
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("schemas");
    let mut files = Vec::new();
    collect(&root, &root, &mut files);
    files.sort();
    let mut out = String::from("pub static SCHEMA_FILES: &[(&str, &[u8])] = &[\n");
    for (rel, abs) in &files {
        out.push_str(&format!("    ({rel:?}, include_bytes!({abs:?})),\n"));
    }
    out.push_str("];\n");
    let dest = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("schemas.rs");
    std::fs::write(dest, out).unwrap();
    println!("cargo:rerun-if-changed=schemas");
    println!("cargo:rerun-if-changed=build.rs");
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        println!("cargo:rerun-if-changed={}", path.display());
        if path.is_dir() {
            collect(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "xsd") {
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            out.push((rel, path.to_string_lossy().into_owned()));
        }
    }
}
