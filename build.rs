//! Embeds every rule pack under `patterns/` into the binary, so that logveil works alone.
//!
//! The packs are parsed here, at build time, and embedded as JSON: parsing the TOML was
//! ~90% of loading the library at start-up (~6 ms of ~17), and JSON of the same data
//! deserializes several times faster into the same structures. A pack that is not valid
//! TOML fails the build, with the parser's line and column.
use std::{env, fs, path::Path};

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("patterns");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<_> = fs::read_dir(&dir)
        .expect("patterns/ exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let out_dir = env::var("OUT_DIR").unwrap();
    let mut out = String::from(
        "/// Built-in rule packs: (file name, the pack as JSON, converted from its TOML at build time).\npub static BUILTIN_PACKS: &[(&str, &str)] = &[\n",
    );
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let text = fs::read_to_string(f).expect("read pack");
        let value: toml::Value = toml::from_str(&text)
            .unwrap_or_else(|e| panic!("patterns/{name} is not valid TOML: {e}"));
        let json = serde_json::to_string(&value).expect("a TOML value is JSON");
        let dest = Path::new(&out_dir).join(format!("{name}.json"));
        fs::write(&dest, json).unwrap();
        out.push_str(&format!(
            "    ({name:?}, include_str!({:?})),\n",
            dest.display().to_string()
        ));
    }
    out.push_str("];\n");
    // A digest of the library as built in (FNV-1a over every pack's name and JSON): the
    // rule-library version that `--version` prints.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let json = fs::read_to_string(Path::new(&out_dir).join(format!("{name}.json"))).unwrap();
        for b in name.bytes().chain([0u8]).chain(json.bytes()) {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
    }
    out.push_str(&format!(
        "/// Digest of the built-in packs (FNV-1a 64 over names and contents): the rule-library version.\npub static LIBRARY_DIGEST: &str = \"{:012x}\";\n",
        h >> 16
    ));
    fs::write(Path::new(&out_dir).join("builtin_packs.rs"), out).unwrap();
}
