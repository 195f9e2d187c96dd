//! Every shader in `shaders/` parses and validates with naga (no GPU needed), and every one is
//! registered in the library.

use enma::gpu::{ALL_SHADERS, validate_wgsl};

fn all_caps() -> naga::valid::Capabilities {
    use naga::valid::Capabilities as C;
    C::IMMEDIATES | C::SHADER_FLOAT16 | C::SUBGROUP
}

#[test]
fn every_shader_file_validates() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/shaders");
    let mut n = 0;
    let mut failures = Vec::new();
    for entry in std::fs::read_dir(dir).expect("shaders/ exists") {
        let path = entry.expect("dir entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("wgsl") {
            continue;
        }
        let source = std::fs::read_to_string(&path).expect("readable shader");
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let name = format!("shaders/{file}");
        // the compiled-in source is this file, with perhaps a part of shaders/parts/ appended
        let compiled = ALL_SHADERS.iter().find(|s| s.name == file).map_or("", |s| s.source);
        assert!(compiled.starts_with(&source), "{name}: the compiled-in source is not the file (rebuild?)");
        if let Err(e) = validate_wgsl(&name, compiled, all_caps()) {
            failures.push(e.to_string());
        }
        n += 1;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(n >= 6, "expected the shader folder to hold the kernels, found {n}");
}

#[test]
fn every_shader_file_is_registered() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/shaders");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".wgsl"))
        .collect();
    files.sort();
    let mut registered: Vec<String> = ALL_SHADERS.iter().map(|s| s.name.to_string()).collect();
    registered.sort();
    assert_eq!(files, registered);
}

#[test]
fn every_shared_part_is_appended_to_a_shader() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/shaders/parts");
    for entry in std::fs::read_dir(dir).expect("shaders/parts/ exists") {
        let path = entry.expect("dir entry").path();
        let part = std::fs::read_to_string(&path).expect("readable part");
        let users = ALL_SHADERS.iter().filter(|s| s.source.contains(&part)).count();
        assert!(users >= 2, "{}: appended to {users} shaders; a part serves several", path.display());
    }
}

#[test]
fn a_broken_shader_reports_file_and_line() {
    let src = "@compute @workgroup_size(1)\nfn main() {\n    let x: f32 = 1u;\n}\n";
    let err = validate_wgsl("shaders/broken.wgsl", src, all_caps()).unwrap_err().to_string();
    assert!(err.contains("shaders/broken.wgsl:3"), "error should name file and line 3: {err}");
    let err = validate_wgsl("shaders/syntax.wgsl", "fn main( {", all_caps()).unwrap_err().to_string();
    assert!(err.contains("shaders/syntax.wgsl:1"), "{err}");
}

#[test]
fn f16_shader_needs_the_capability() {
    let cast = ALL_SHADERS.iter().find(|s| s.name == "cast.wgsl").unwrap();
    let no_f16 = naga::valid::Capabilities::IMMEDIATES;
    assert!(validate_wgsl(cast.name, cast.source, no_f16).is_err());
}
