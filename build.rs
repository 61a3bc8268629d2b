//! Build step: fetches hls.js from the npm registry (pinned by web/package-lock.json) to embed it.
//!
//! `npm ci` runs in OUT_DIR, so the source tree never holds a copy. Without npm, or when it fails
//! (no network, no cache), the build still succeeds: the embedded file is left empty and player
//! pages load hls.js from `--hlsjs-url` instead. Set `HLSS_NO_NPM=1` to build that way on purpose.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

const LOCKFILE: &str = "web/package-lock.json";
const MANIFEST: &str = "web/package.json";
/// The file embedded, relative to the package folder.
const DIST: &str = "node_modules/hls.js/dist/hls.min.js";

fn main() {
    println!("cargo:rerun-if-changed={LOCKFILE}");
    println!("cargo:rerun-if-changed={MANIFEST}");
    println!("cargo:rerun-if-env-changed=HLSS_NO_NPM");
    println!("cargo:rerun-if-env-changed=NPM");

    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let out = Path::new(&out);
    let lock = fs::read_to_string(LOCKFILE).unwrap_or_default();
    let version = locked_version(&lock, "hls.js").unwrap_or_else(|| {
        println!("cargo:warning=no hls.js version in {LOCKFILE}");
        "1".to_owned()
    });
    println!("cargo:rustc-env=HLSS_HLSJS_VERSION={version}");

    let embedded = if std::env::var_os("HLSS_NO_NPM").is_some_and(|v| !v.is_empty() && v != "0") {
        println!("cargo:warning=HLSS_NO_NPM is set: hls.js is not embedded");
        Vec::new()
    } else {
        match fetch(out) {
            Ok(bytes) => bytes,
            Err(why) => {
                println!(
                    "cargo:warning=hls.js is not embedded ({why}); player pages will load it \
                     from --hlsjs-url"
                );
                Vec::new()
            }
        }
    };
    fs::write(out.join("hls.min.js"), embedded).expect("write OUT_DIR/hls.min.js");
}

/// Runs `npm ci` on a copy of web/ in OUT_DIR and reads the minified build.
fn fetch(out: &Path) -> Result<Vec<u8>, String> {
    let dir = out.join("web");
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {dir:?}: {e}"))?;
    for file in [MANIFEST, LOCKFILE] {
        let name = Path::new(file).file_name().expect("a file name");
        fs::copy(file, dir.join(name)).map_err(|e| format!("cannot copy {file}: {e}"))?;
    }
    let npm = std::env::var("NPM").unwrap_or_else(|_| "npm".to_owned());
    let output = Command::new(&npm)
        .args([
            "ci",
            "--omit=dev",
            "--ignore-scripts",
            "--no-audit",
            "--no-fund",
            "--prefer-offline",
            // A build on a machine without network should give up soon, not after minutes.
            "--fetch-retries=1",
            "--fetch-timeout=30000",
        ])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {npm}: {e}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr
            .lines()
            .rfind(|l| !l.trim().is_empty())
            .unwrap_or("")
            .to_owned();
        return Err(format!("npm ci failed: {last}"));
    }
    let file = dir.join(DIST);
    let bytes = fs::read(&file).map_err(|e| format!("cannot read {file:?}: {e}"))?;
    if bytes.is_empty() {
        return Err(format!("{file:?} is empty"));
    }
    Ok(bytes)
}

/// The version a lockfile (v2 or v3) pins for `package`, read without a JSON parser.
fn locked_version(lock: &str, package: &str) -> Option<String> {
    let key = format!("\"node_modules/{package}\"");
    let rest = &lock[lock.find(&key)? + key.len()..];
    let rest = &rest[rest.find("\"version\"")? + "\"version\"".len()..];
    let rest = &rest[rest.find('"')? + 1..];
    let version = &rest[..rest.find('"')?];
    version
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b".-+".contains(&b))
        .then(|| version.to_owned())
}
