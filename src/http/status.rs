//! `GET /status`: a small page listing the open streams, their pipelines and their viewers.

use std::fmt::Write;

use super::pages::escape;
use crate::library::language::Language;
use crate::stream::{Opening, Part, Registry, Subtitles, describe};

pub fn page(registry: &Registry) -> String {
    let budget = registry.budget();
    let mut streams = registry.streams();
    streams.sort_by(|a, b| a.name().cmp(b.name()));
    let mut html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>hlss status</title>\
         <style>body{{font-family:system-ui,sans-serif;margin:2rem}}td,th{{padding:.3rem .6rem;\
         text-align:left;border-bottom:1px solid #eee}}</style></head><body>\n<h1>hlss status</h1>\n\
         <p>{} of {} transcodes and {} direct runs running; {:.1} MiB of segments held. \
         <a href=\"/\">Library</a> · <a href=\"/metrics\">metrics</a></p>\n",
        budget.transcodes(),
        budget.max_transcodes(),
        budget.direct_runs(),
        budget.bytes() as f64 / f64::from(1 << 20),
    );
    if streams.is_empty() {
        html.push_str("<p>No streams open.</p>\n");
    } else {
        html.push_str(
            "<table><tr><th>stream</th><th>delivery</th><th>tracks</th><th>runs</th>\
             <th>segments held</th><th>MiB</th><th>speed</th><th>idle</th>\
             <th>viewers (session: segment)</th></tr>\n",
        );
    }
    for stream in &streams {
        let status = stream.status();
        let viewers: Vec<String> = status
            .viewers
            .iter()
            .map(|v| match v.session {
                Some(id) => format!("{id}: {}", v.position),
                None => format!("anonymous: {}", v.position),
            })
            .collect();
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.1}x</td><td>{} s</td><td>{}</td></tr>",
            escape(stream.name()),
            escape(&match (stream.part(), status.delivery.as_ref()) {
                (_, None) => "probing".into(),
                (Part::Audio(n), Some(_)) => format!("audio track {n} alone"),
                (Part::Main, Some(delivery)) => describe(delivery),
            }),
            escape(&match (stream.part(), stream.opened()) {
                (Part::Main, Some(opening)) => tracks(&opening),
                _ => String::new(),
            }),
            status.runs_running,
            status.segments_held,
            status.bytes_held as f64 / f64::from(1 << 20),
            status.realtime_factor,
            status.idle.as_secs(),
            escape(&viewers.join(", ")),
        );
    }
    if !streams.is_empty() {
        html.push_str("</table>\n");
    }
    html.push_str("</body></html>\n");
    html
}

/// A main stream's tracks in a line: audio renditions, subtitle renditions and the subtitles not
/// offered (bitmaps cannot become WebVTT).
fn tracks(opening: &Opening) -> String {
    let label = |language: Option<&str>| {
        language
            .and_then(Language::parse)
            .map_or_else(|| "?".to_owned(), |l| l.tag)
    };
    let mut parts = Vec::new();
    let audio: Vec<String> = opening
        .audio_renditions()
        .iter()
        .map(|t| label(t.language.as_deref()))
        .collect();
    if !audio.is_empty() {
        parts.push(format!("audio: {}", audio.join(", ")));
    }
    let subtitles: Vec<String> = opening
        .subtitles
        .iter()
        .map(|s| match s {
            Subtitles::Embedded(t) => label(t.language.as_deref()),
            Subtitles::Sidecar(s) => {
                format!("{} (file)", s.language.as_ref().map_or("?", |l| &l.tag))
            }
        })
        .collect();
    if !subtitles.is_empty() {
        parts.push(format!("subtitles: {}", subtitles.join(", ")));
    }
    let bitmaps: Vec<String> = opening
        .bitmap_subtitles()
        .iter()
        .map(|t| format!("{} {}", t.media_type, label(t.language.as_deref())))
        .collect();
    if !bitmaps.is_empty() {
        parts.push(format!(
            "not offered (bitmap subtitles): {}",
            bitmaps.join(", ")
        ));
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::stream::{Delivery, Plan, Reason};
    use crate::transcode::{Codecs, Probe, SubtitleTrack, Tracks};

    fn subtitle(media_type: &str, language: &str) -> SubtitleTrack {
        SubtitleTrack {
            stream_id: format!("{media_type}-{language}"),
            language: Some(language.into()),
            title: None,
            media_type: media_type.into(),
            forced: false,
        }
    }

    #[test]
    fn bitmap_subtitles_are_listed_as_not_offered() {
        let text = subtitle("text/x-raw", "en");
        let opening = Opening {
            plan: Plan::new(
                Duration::from_secs(2),
                Duration::ZERO,
                Some(Duration::from_secs(10)),
            ),
            delivery: Delivery::Transcode(Reason::Off),
            probe: Some(Probe {
                duration: Some(Duration::from_secs(10)),
                origin: Duration::ZERO,
                codecs: Codecs::default(),
                tracks: Tracks {
                    audio: Vec::new(),
                    subtitles: vec![
                        text.clone(),
                        subtitle("subpicture/x-pgs", "fre"),
                        subtitle("subpicture/x-dvd", "de"),
                    ],
                },
            }),
            file_len: None,
            direct_peak: None,
            subtitles: vec![Subtitles::Embedded(text)],
        };
        assert_eq!(
            tracks(&opening),
            "subtitles: en; not offered (bitmap subtitles): subpicture/x-pgs fr, subpicture/x-dvd de"
        );
    }
}
