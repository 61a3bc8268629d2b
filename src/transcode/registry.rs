//! Points GStreamer at its plugin registry cache read-only, so hlss never writes one to disk.
//!
//! GStreamer reads `~/.cache/gstreamer-1.0/registry.ARCH.bin` at start-up and, when it is missing
//! or stale, scans the plugins and saves a new one there. hlss hands GStreamer the cache through
//! `/proc/self/fd/N` instead (a descriptor opened read-only): reading works as before, and the
//! save, if GStreamer attempts one, goes to a temporary file next to it in `/proc/self/fd`, which
//! cannot be created, so it fails at once and silently. Without a cache the scan happens in
//! memory on every start (about a second).

use std::ffi::OsString;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// Variables the user may set to choose the registry themselves; any of them turns this off.
const USER_VARIABLES: [&str; 3] = ["GST_REGISTRY", "GST_REGISTRY_1_0", "GST_REGISTRY_UPDATE"];
/// The variable GStreamer 1.x reads first for the registry location.
const REGISTRY_VARIABLE: &str = "GST_REGISTRY_1_0";
/// Where open descriptors appear as files; a name inside cannot be created.
const FD_DIR: &str = "/proc/self/fd";

/// What to set before `gst::init`, and the open cache it refers to.
#[derive(Debug)]
pub struct RegistryEnv {
    /// Name and value of each variable to set.
    pub vars: Vec<(&'static str, OsString)>,
    /// Why, for the log.
    pub reason: String,
    /// Must stay open until GStreamer has read it (during `gst::init`).
    _cache: Option<File>,
}

/// Decides from the environment; changes nothing itself (setting variables is the caller's
/// job, done while the process has a single thread).
pub fn registry_env() -> RegistryEnv {
    let keep = |reason: &str| RegistryEnv {
        vars: Vec::new(),
        reason: reason.to_owned(),
        _cache: None,
    };
    if let Some(name) = USER_VARIABLES
        .iter()
        .find(|name| std::env::var_os(name).is_some())
    {
        return keep(&format!(
            "{name} is set: GStreamer's registry is left as configured"
        ));
    }
    if !Path::new(FD_DIR).is_dir() {
        return keep("no /proc: GStreamer's registry is left at its default");
    }
    let cache = default_cache();
    match cache.as_deref().map(File::open) {
        Some(Ok(file)) => RegistryEnv {
            vars: vec![(
                REGISTRY_VARIABLE,
                format!("{FD_DIR}/{}", file.as_raw_fd()).into(),
            )],
            reason: format!(
                "reading the plugin registry cache {} without ever writing it",
                cache.unwrap_or_default().display()
            ),
            _cache: Some(file),
        },
        _ => RegistryEnv {
            vars: vec![(
                REGISTRY_VARIABLE,
                format!("{FD_DIR}/hlss-no-registry").into(),
            )],
            reason: "no plugin registry cache: plugins are scanned in memory, nothing is saved"
                .to_owned(),
            _cache: None,
        },
    }
}

/// GStreamer's default cache file: `$XDG_CACHE_HOME` (else `$HOME/.cache`), as GLib finds it.
fn default_cache() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(
        base.join("gstreamer-1.0")
            .join(format!("registry.{}.bin", std::env::consts::ARCH)),
    )
}
