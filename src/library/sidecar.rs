//! Subtitle files kept beside a media file (`film.srt`, `film.fr.srt`, `film.en.forced.vtt`): found by name, language read from it.

use std::path::{Path, PathBuf};

use super::language::Language;
use crate::subtitles::Format;

/// Most sidecar files taken for one media file: a folder of a hundred files named after one
/// film is not a reason to read them all.
pub const MAX_SIDECARS: usize = 32;
/// Largest sidecar file read: a 3-hour film's subtitles are a few hundred kB.
pub const MAX_SIDECAR_BYTES: u64 = 8 << 20;

/// A subtitle file beside a media file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sidecar {
    /// Canonical path, inside the library.
    pub path: PathBuf,
    pub format: Format,
    /// The language its name gives (`film.fr.srt`), if any.
    pub language: Option<Language>,
    /// What else its name says (`forced`, `SDH`), joined by spaces; empty if nothing.
    pub label: String,
}

/// The sidecars of `media`, a canonical path, sorted by file name. Only files in the same folder
/// whose canonical path is still in that folder are taken, so a symlink cannot reach outside.
pub fn find(media: &Path) -> Vec<Sidecar> {
    let (Some(dir), Some(stem)) = (media.parent(), media.file_stem().and_then(|s| s.to_str()))
    else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(String, Sidecar)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let (language, label, format) = read_name(stem, &name)?;
            let path = entry.path().canonicalize().ok()?;
            let inside = path.parent() == Some(dir) && path.is_file();
            let small = path.metadata().ok()?.len() <= MAX_SIDECAR_BYTES;
            (inside && small).then_some((
                name,
                Sidecar {
                    path,
                    format,
                    language,
                    label,
                },
            ))
        })
        .collect();
    found.sort_by(|a, b| super::listing::natural_cmp(&a.0, &b.0));
    found.truncate(MAX_SIDECARS);
    found.into_iter().map(|(_, sidecar)| sidecar).collect()
}

/// The languages of the sidecars among `names` (a folder's file names) of the media file named
/// `media`, in name order, without repeats; a sidecar without a language counts as `None`.
pub fn languages_among(names: &[String], media: &str) -> Vec<Option<Language>> {
    let Some((stem, _)) = media.rsplit_once('.') else {
        return Vec::new();
    };
    let mut found: Vec<(&String, Option<Language>)> = names
        .iter()
        .filter_map(|name| read_name(stem, name).map(|(language, _, _)| (name, language)))
        .collect();
    found.sort_by(|a, b| super::listing::natural_cmp(a.0, b.0));
    let mut languages: Vec<Option<Language>> = Vec::new();
    for (_, language) in found.into_iter().take(MAX_SIDECARS) {
        if !languages.contains(&language) {
            languages.push(language);
        }
    }
    languages
}

/// Whether `name` is a sidecar of a media file whose name without extension is `stem`, and
/// what its name says: `stem.ext` or `stem.<labels>.ext`, the first label that names a
/// language being its language.
fn read_name(stem: &str, name: &str) -> Option<(Option<Language>, String, Format)> {
    let format = Format::from_name(name)?;
    let rest = name.strip_prefix(stem)?;
    let (middle, _extension) = rest.rsplit_once('.')?;
    if !(middle.is_empty() || middle.starts_with('.')) {
        // `film2.srt` is not `film.srt`'s.
        return None;
    }
    let mut language = None;
    let mut label = Vec::new();
    for part in middle.split('.').filter(|p| !p.is_empty()) {
        match Language::parse(part).filter(|_| language.is_none() && !is_flag(part)) {
            Some(found) => language = Some(found),
            None => label.push(part),
        }
    }
    Some((language, label.join(" "), format))
}

/// Words subtitle file names carry that are not languages (some are ISO 639-3 codes: `sdh`).
fn is_flag(part: &str) -> bool {
    ["forced", "sdh", "cc", "hi", "default", "full"]
        .iter()
        .any(|flag| part.eq_ignore_ascii_case(flag))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_give_language_and_label() {
        let read =
            |name| read_name("Film (2001)", name).map(|(l, label, f)| (l.map(|l| l.tag), label, f));
        assert_eq!(
            read("Film (2001).srt"),
            Some((None, "".into(), Format::SubRip))
        );
        assert_eq!(
            read("Film (2001).fr.srt"),
            Some((Some("fr".into()), "".into(), Format::SubRip))
        );
        assert_eq!(
            read("Film (2001).eng.sdh.VTT"),
            Some((Some("en".into()), "sdh".into(), Format::WebVtt))
        );
        assert_eq!(
            read("Film (2001).forced.ger.ass"),
            Some((Some("de".into()), "forced".into(), Format::Ass))
        );
        assert_eq!(read("Film (2001).mkv"), None);
        assert_eq!(read("Film (2001) extras.srt"), None);
        assert_eq!(read("Other.srt"), None);
    }

    #[test]
    fn finds_files_beside_the_media_only() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let media = root.join("film.mkv");
        std::fs::write(&media, b"x").unwrap();
        std::fs::write(root.join("film.en.srt"), b"1").unwrap();
        std::fs::write(root.join("film.srt"), b"1").unwrap();
        std::fs::write(root.join("film2.srt"), b"1").unwrap();
        std::fs::create_dir(root.join("film.fr.srt.d")).unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.srt"), b"1").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret.srt"), root.join("film.de.srt"))
            .unwrap();
        let found = find(&media);
        let names: Vec<_> = found
            .iter()
            .map(|s| s.path.file_name().unwrap().to_str().unwrap().to_owned())
            .collect();
        assert_eq!(names, ["film.en.srt", "film.srt"]);
        assert_eq!(found[0].language.as_ref().map(|l| l.name), Some("English"));
    }
}
