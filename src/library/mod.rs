//! The media root: what PATH serves, safe path resolution and folder listings (no HTTP, no pipelines).

pub mod index;
pub mod language;
mod listing;
mod path;
pub mod sidecar;
pub mod tracks;

use std::path::{Path, PathBuf};

pub use listing::{Entry, EntryKind};
pub use path::{RelPath, confine};

/// Name of the built-in demo entry served when hlss is started without PATH.
pub const DEMO_NAME: &str = "demo (test pattern and tone).ts";

/// What hlss was pointed at.
#[derive(Debug, Clone)]
pub enum Library {
    /// A folder served as a browsable tree; `root` is canonical.
    Folder { root: PathBuf },
    /// One file served alone, listed under its own name.
    File { path: PathBuf, name: String },
    /// No PATH: a generated test pattern.
    Demo,
}

/// Something the transcoder can play.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    /// A canonical path to a regular file inside the library.
    File(PathBuf),
    /// The built-in test pattern with a tone.
    Demo,
}

#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    #[error("no such file or folder")]
    NotFound,
    #[error("cannot open {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} is neither a folder nor a regular file")]
    NotServable(PathBuf),
}

impl Library {
    /// Opens what the command line named; `None` is the demo.
    pub fn open(path: Option<&Path>) -> Result<Library, LibraryError> {
        let Some(path) = path else {
            return Ok(Library::Demo);
        };
        let canonical = path.canonicalize().map_err(|source| LibraryError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        if canonical.is_dir() {
            return Ok(Library::Folder { root: canonical });
        }
        let name = canonical
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|_| canonical.is_file())
            .ok_or_else(|| LibraryError::NotServable(path.to_path_buf()))?
            .to_owned();
        Ok(Library::File {
            path: canonical,
            name,
        })
    }

    /// A short description for logs and page titles.
    pub fn describe(&self) -> String {
        match self {
            Library::Folder { root } => root.display().to_string(),
            Library::File { path, .. } => path.display().to_string(),
            Library::Demo => "built-in demo".to_owned(),
        }
    }

    /// What pages call the library: the folder's or file's name.
    pub fn title(&self) -> String {
        match self {
            Library::Folder { root } => root
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "/".to_owned()),
            Library::File { name, .. } => name.clone(),
            Library::Demo => "hlss demo".to_owned(),
        }
    }

    /// The entries of the folder `rel`, sorted for display.
    pub fn list(&self, rel: &RelPath) -> Result<Vec<Entry>, LibraryError> {
        match self {
            Library::Folder { root } => {
                let dir = confine(root, rel).ok_or(LibraryError::NotFound)?;
                if !dir.is_dir() {
                    return Err(LibraryError::NotFound);
                }
                listing::read_folder(root, &dir)
                    .map_err(|source| LibraryError::Open { path: dir, source })
            }
            Library::File { path, name } if rel.is_root() => {
                let size = std::fs::metadata(path).map(|m| m.len()).ok();
                Ok(vec![Entry {
                    name: name.clone(),
                    kind: EntryKind::Media { size },
                }])
            }
            Library::Demo if rel.is_root() => Ok(vec![Entry {
                name: DEMO_NAME.to_owned(),
                kind: EntryKind::Media { size: None },
            }]),
            Library::File { .. } | Library::Demo => Err(LibraryError::NotFound),
        }
    }

    /// The languages of the media `entries` of folder `rel` (as [`Library::list`] gave them),
    /// aligned with them: `None` for folders, for files past [`tracks::MAX_FILES`] and outside a
    /// folder library.
    pub fn languages(&self, rel: &RelPath, entries: &[Entry]) -> Vec<Option<tracks::Languages>> {
        let dir = match self {
            Library::Folder { root } => confine(root, rel),
            Library::File { path, .. } => path.parent().map(Path::to_path_buf),
            Library::Demo => None,
        };
        let Some(dir) = dir else {
            return vec![None; entries.len()];
        };
        let names: Vec<String> = std::fs::read_dir(&dir)
            .map(|items| {
                items
                    .filter_map(|i| i.ok()?.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        let mut budget = tracks::MAX_FILES;
        entries
            .iter()
            .map(|entry| match entry.kind {
                EntryKind::Media { .. } if budget > 0 => {
                    budget -= 1;
                    // Entries come from listing this folder: their names are safe to join.
                    Some(tracks::languages(
                        &dir.join(&entry.name),
                        &entry.name,
                        &names,
                    ))
                }
                _ => None,
            })
            .collect()
    }

    /// The playable source that `rel` names.
    pub fn source(&self, rel: &RelPath) -> Result<Source, LibraryError> {
        match self {
            Library::Folder { root } => {
                let file = confine(root, rel).ok_or(LibraryError::NotFound)?;
                if !file.is_file() {
                    return Err(LibraryError::NotFound);
                }
                readable(file).map(Source::File)
            }
            Library::File { path, name } if rel.components() == [name.as_str()] => {
                readable(path.clone()).map(Source::File)
            }
            Library::Demo if rel.components() == [DEMO_NAME] => Ok(Source::Demo),
            Library::File { .. } | Library::Demo => Err(LibraryError::NotFound),
        }
    }
}

/// `file` if this process may read it: an unreadable file is refused here (403) rather than
/// handed to GStreamer, whose error would name the server's path.
fn readable(file: PathBuf) -> Result<PathBuf, LibraryError> {
    match std::fs::File::open(&file) {
        Ok(_) => Ok(file),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Err(LibraryError::NotFound),
        Err(source) => Err(LibraryError::Open { path: file, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_file_lists_itself_only() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("clip.mp4");
        std::fs::write(&file, b"abc").unwrap();
        std::fs::write(dir.path().join("other.mp4"), b"abc").unwrap();
        let lib = Library::open(Some(&file)).unwrap();
        let root = RelPath::default();
        assert_eq!(
            lib.list(&root).unwrap(),
            [Entry {
                name: "clip.mp4".into(),
                kind: EntryKind::Media { size: Some(3) }
            }]
        );
        assert!(lib.source(&RelPath::parse("clip.mp4").unwrap()).is_ok());
        assert!(matches!(
            lib.source(&RelPath::parse("other.mp4").unwrap()),
            Err(LibraryError::NotFound)
        ));
    }

    #[test]
    fn folder_resolves_files_not_folders() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/a.mp3"), b"abc").unwrap();
        let lib = Library::open(Some(dir.path())).unwrap();
        assert!(lib.source(&RelPath::parse("sub/a.mp3").unwrap()).is_ok());
        assert!(lib.source(&RelPath::parse("sub").unwrap()).is_err());
        assert!(lib.list(&RelPath::parse("sub/a.mp3").unwrap()).is_err());
        assert_eq!(lib.list(&RelPath::parse("sub").unwrap()).unwrap().len(), 1);
    }

    #[test]
    fn demo_has_one_entry() {
        let lib = Library::open(None).unwrap();
        let entries = lib.list(&RelPath::default()).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(
            lib.source(&RelPath::parse(DEMO_NAME).unwrap()).unwrap(),
            Source::Demo
        );
    }
}
