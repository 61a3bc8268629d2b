//! Turns a decoded request path into a path confined to the media root, or refuses it.

use std::path::{Component, Path, PathBuf};

/// Longest relative path (in bytes) we resolve; longer ones cannot name anything we serve.
pub const MAX_PATH_BYTES: usize = 4096;

/// A relative path inside the media root: non-empty components, none of them `.`, `..`, hidden,
/// or containing a separator, backslash or NUL. Built only by [`RelPath::parse`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct RelPath(Vec<String>);

impl RelPath {
    /// Parses `a/b/c` (already percent-decoded). Empty input (or only slashes) is the root.
    /// Returns `None` for anything that could step outside the root or name a hidden file.
    pub fn parse(decoded: &str) -> Option<RelPath> {
        if decoded.len() > MAX_PATH_BYTES {
            return None;
        }
        let mut parts = Vec::new();
        for part in decoded.split('/') {
            if part.is_empty() {
                // Tolerate `a//b` and a trailing slash; they name the same thing.
                continue;
            }
            if part.starts_with('.') || part.contains(['\\', '\0']) {
                return None;
            }
            parts.push(part.to_owned());
        }
        Some(RelPath(parts))
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    pub fn components(&self) -> &[String] {
        &self.0
    }

    /// The last component, or "" for the root.
    pub fn name(&self) -> &str {
        self.0.last().map(String::as_str).unwrap_or("")
    }

    pub fn parent(&self) -> Option<RelPath> {
        let (_, rest) = self.0.split_last()?;
        Some(RelPath(rest.to_vec()))
    }

    pub fn join(&self, name: &str) -> RelPath {
        let mut parts = self.0.clone();
        parts.push(name.to_owned());
        RelPath(parts)
    }
}

/// The one gate between a request and the filesystem: the file or folder `rel` names inside
/// `root` (which must be canonical), with every symlink followed, or `None` when it does not
/// exist or leads outside `root`. Every path the server opens for a request comes from here;
/// `None` is all a caller learns, so a refusal says nothing about what exists outside.
pub fn confine(root: &Path, rel: &RelPath) -> Option<PathBuf> {
    let mut path = root.to_path_buf();
    for part in &rel.0 {
        // `parse` already refused these; checking the Component kind guards against platform quirks.
        let mut components = Path::new(part).components();
        match (components.next(), components.next()) {
            (Some(Component::Normal(_)), None) => path.push(part),
            _ => return None,
        }
    }
    inside(root, &path)
}

/// `path` with symlinks resolved, if that is still inside `root` (canonical).
pub(super) fn inside(root: &Path, path: &Path) -> Option<PathBuf> {
    let canonical = path.canonicalize().ok()?;
    canonical.starts_with(root).then_some(canonical)
}

impl std::fmt::Display for RelPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("/"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_paths() {
        let p = RelPath::parse("a b/ü & <c>.mp4").unwrap();
        assert_eq!(p.components(), ["a b", "ü & <c>.mp4"]);
        assert_eq!(p.name(), "ü & <c>.mp4");
        assert!(RelPath::parse("").unwrap().is_root());
        assert!(RelPath::parse("/").unwrap().is_root());
        assert_eq!(RelPath::parse("a//b/").unwrap().to_string(), "a/b");
    }

    #[test]
    fn refuses_escapes_and_hidden_names() {
        for bad in [
            "..",
            "../etc/passwd",
            "a/../../b",
            ".",
            "a/./b",
            ".hidden",
            "a/.git/config",
            "a\\..\\b",
            "a\0b",
            "..\\x",
        ] {
            assert_eq!(RelPath::parse(bad), None, "{bad:?}");
        }
        assert_eq!(RelPath::parse(&"a/".repeat(MAX_PATH_BYTES)), None);
    }

    #[test]
    fn resolve_stays_inside_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir(root.join("in")).unwrap();
        std::fs::write(root.join("in/f.mp4"), b"x").unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("out")).unwrap();
        std::os::unix::fs::symlink(root.join("in"), root.join("alias")).unwrap();

        let rel = RelPath::parse("in/f.mp4").unwrap();
        assert_eq!(confine(&root, &rel), Some(root.join("in/f.mp4")));
        assert_eq!(
            confine(&root, &RelPath::parse("alias/f.mp4").unwrap()),
            Some(root.join("in/f.mp4"))
        );
        assert_eq!(confine(&root, &RelPath::parse("out").unwrap()), None);
        assert_eq!(confine(&root, &RelPath::parse("missing").unwrap()), None);
    }
}
