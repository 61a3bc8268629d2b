//! The languages a media file offers, for listings: from its container's track headers and the subtitle files beside it, without decoding anything.

use std::path::Path;

use super::index::{self, TrackKind};
use super::language::Language;
use super::sidecar;

/// Media files of one listing whose tracks are read: each costs a few small reads.
pub const MAX_FILES: usize = 200;

/// Languages a file's audio and subtitles come in, as BCP 47 tags, in track order, without
/// repeats; `und` tracks are left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Languages {
    pub audio: Vec<String>,
    pub subtitles: Vec<String>,
}

impl Languages {
    pub fn is_empty(&self) -> bool {
        self.audio.is_empty() && self.subtitles.is_empty()
    }
}

/// The languages of the media file `path` (named `name`), its folder's file names being `names`.
pub fn languages(path: &Path, name: &str, names: &[String]) -> Languages {
    let mut languages = Languages::default();
    let push = |list: &mut Vec<String>, language: Option<Language>| {
        if let Some(language) = language
            && !list.contains(&language.tag)
        {
            list.push(language.tag);
        }
    };
    let labels = index::track_labels(path).unwrap_or_default();
    let audio = labels.iter().filter(|l| l.kind == TrackKind::Audio);
    // One audio track says nothing worth showing unless its language is known.
    for label in audio {
        push(
            &mut languages.audio,
            label.language.as_deref().and_then(Language::parse),
        );
    }
    for label in labels.iter().filter(|l| l.kind == TrackKind::Subtitles) {
        push(
            &mut languages.subtitles,
            label.language.as_deref().and_then(Language::parse),
        );
    }
    for language in sidecar::languages_among(names, name) {
        push(&mut languages.subtitles, language);
    }
    languages
}
