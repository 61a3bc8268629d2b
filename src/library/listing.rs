//! Reads one folder of the media tree: visible entries, folders first, in natural order.

use std::cmp::Ordering;
use std::io;
use std::path::Path;

/// Extensions listed as playable. Anything else is hidden from listings (a direct playlist URL
/// still works for any file GStreamer can decode).
const MEDIA_EXTENSIONS: &[&str] = &[
    "3g2", "3gp", "aac", "ac3", "aif", "aiff", "ape", "asf", "au", "avi", "dts", "dv", "f4v",
    "flac", "flv", "m1v", "m2t", "m2ts", "m2v", "m4a", "m4v", "mka", "mkv", "mov", "mp2", "mp3",
    "mp4", "mpeg", "mpg", "mts", "mxf", "nut", "oga", "ogg", "ogm", "ogv", "opus", "qt", "rm",
    "rmvb", "spx", "ts", "vob", "wav", "webm", "wma", "wmv", "wv", "y4m",
];

/// Most entries one listing shows: a folder with more is cut, so one request stays cheap.
pub const MAX_ENTRIES: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    Folder,
    Media { size: Option<u64> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub kind: EntryKind,
}

pub fn is_media_name(name: &str) -> bool {
    name.rsplit_once('.')
        .is_some_and(|(_, ext)| MEDIA_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()))
}

/// Lists `dir`, a folder inside `root` (both canonical). Names that are not UTF-8 are skipped
/// (they could not be put in a URL we resolve), as are hidden names, entries whose metadata
/// cannot be read (e.g. dangling symlinks) and symlinks that lead outside `root` (their
/// target's kind and size would tell about a place the server does not serve).
pub fn read_folder(root: &Path, dir: &Path) -> io::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    for item in std::fs::read_dir(dir)? {
        let Ok(item) = item else { continue };
        let Ok(name) = item.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        if item.file_type().is_ok_and(|t| t.is_symlink())
            && super::path::inside(root, &item.path()).is_none()
        {
            continue;
        }
        // Follows symlinks, so a link to a folder lists as a folder.
        let Ok(meta) = std::fs::metadata(item.path()) else {
            continue;
        };
        let kind = if meta.is_dir() {
            EntryKind::Folder
        } else if meta.is_file() && is_media_name(&name) {
            EntryKind::Media {
                size: Some(meta.len()),
            }
        } else {
            continue;
        };
        entries.push(Entry { name, kind });
        if entries.len() >= MAX_ENTRIES {
            break;
        }
    }
    entries.sort_by(|a, b| {
        let folder_first =
            matches!(b.kind, EntryKind::Folder).cmp(&matches!(a.kind, EntryKind::Folder));
        folder_first.then_with(|| natural_cmp(&a.name, &b.name))
    });
    Ok(entries)
}

/// Compares names the way people count: "ep2" < "ep10", case-insensitively, ties broken bytewise.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (a.chars().peekable(), b.chars().peekable());
    loop {
        match (x.peek().copied(), y.peek().copied()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let n = take_number(&mut x);
                let m = take_number(&mut y);
                // Compare digit strings without parsing, so any length works: strip leading zeros,
                // then the longer is larger, then lexicographic.
                let (n0, m0) = (n.trim_start_matches('0'), m.trim_start_matches('0'));
                let order = n0.len().cmp(&m0.len()).then_with(|| n0.cmp(m0));
                if order != Ordering::Equal {
                    return order;
                }
            }
            (Some(c), Some(d)) => {
                let order = c.to_lowercase().cmp(d.to_lowercase());
                if order != Ordering::Equal {
                    return order;
                }
                x.next();
                y.next();
            }
        }
    }
}

fn take_number(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> String {
    let mut digits = String::new();
    while let Some(c) = chars.next_if(char::is_ascii_digit) {
        digits.push(c);
    }
    digits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order() {
        let mut names = vec![
            "ep10.mp4", "Ep2.mp4", "ep1.mp4", "b", "a100", "a20", "a020x",
        ];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            names,
            [
                "a20", "a020x", "a100", "b", "ep1.mp4", "Ep2.mp4", "ep10.mp4"
            ]
        );
        assert_eq!(
            natural_cmp("x99999999999999999999999", "x100000000000000000000000"),
            Ordering::Less
        );
    }

    #[test]
    fn lists_folders_first_and_skips_hidden_and_non_media() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["b10.mkv", "b9.mp3", ".hidden.mp4", "notes.txt", "A.webm"] {
            std::fs::write(dir.path().join(f), b"1234").unwrap();
        }
        std::fs::create_dir(dir.path().join("zfolder")).unwrap();
        std::fs::create_dir(dir.path().join(".git")).unwrap();
        std::os::unix::fs::symlink("/", dir.path().join("outside")).unwrap();
        std::os::unix::fs::symlink("zfolder", dir.path().join("inside")).unwrap();
        let root = dir.path().canonicalize().unwrap();
        let names: Vec<_> = read_folder(&root, &root)
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["inside", "zfolder", "A.webm", "b9.mp3", "b10.mkv"]);
    }
}
