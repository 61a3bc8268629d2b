//! Writes a stream's media playlist (RFC 8216) with m3u8-rs.

use std::sync::atomic::Ordering;

use m3u8_rs::{MediaPlaylist, MediaPlaylistType, MediaSegment, WRITE_OPT_FLOAT_PRECISION};

use super::urls::Carried;
use crate::stream::Snapshot;

/// Decimal places of EXTINF: milliseconds are as precise as a 90 kHz clock is useful to players.
const EXTINF_DECIMALS: usize = 3;
/// Version 3 is the lowest that allows decimal EXTINF; no later tag is used.
const VERSION: usize = 3;

/// Renders `snapshot`: a VOD playlist lists every segment and never changes. A growing playlist
/// is an EVENT playlist while the stream still holds its first segment; once segments were
/// dropped to stay within the memory budget it is a sliding window. Segment URIs carry the
/// viewer's `session`, so the server knows where each viewer is; the bytes behind them are the
/// same for everyone.
pub fn render(snapshot: &Snapshot, carried: Carried<'_>) -> String {
    render_named(snapshot, carried, |k| format!("{k}.ts"))
}

/// [`render`] with segment `k` named `name(k)` (relative to the playlist).
pub fn render_named(
    snapshot: &Snapshot,
    carried: Carried<'_>,
    name: impl Fn(u64) -> String,
) -> String {
    let query = carried.query();
    // m3u8-rs keeps the precision in a process-wide setting; every writer here wants the same.
    WRITE_OPT_FLOAT_PRECISION.store(EXTINF_DECIMALS, Ordering::Relaxed);
    let playlist = MediaPlaylist {
        version: Some(VERSION),
        target_duration: snapshot.target_duration,
        media_sequence: snapshot.first_sequence,
        playlist_type: if snapshot.vod {
            Some(MediaPlaylistType::Vod)
        } else {
            (snapshot.first_sequence == 0).then_some(MediaPlaylistType::Event)
        },
        independent_segments: true,
        end_list: snapshot.ended,
        segments: snapshot
            .segments
            .iter()
            .map(|(sequence, duration)| MediaSegment {
                uri: format!("{}{query}", name(*sequence)),
                duration: duration.as_secs_f32(),
                ..MediaSegment::default()
            })
            .collect(),
        ..MediaPlaylist::default()
    };
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = playlist.write_to(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn render_plain(snapshot: &Snapshot) -> String {
        render(snapshot, Carried::default())
    }

    #[test]
    fn segment_uris_carry_the_session() {
        let session = crate::stream::SessionId::parse("00000000000000ab").unwrap();
        let carried = Carried {
            session: Some(session),
            link: None,
        };
        let text = render(&snapshot(0, &[2.0], true), carried);
        assert!(text.contains("\n0.ts?s=00000000000000ab\n"), "{text}");
        let link = Carried {
            session: Some(session),
            link: Some("99-ab"),
        };
        let text = render(&snapshot(0, &[2.0], true), link);
        assert!(
            text.contains("\n0.ts?s=00000000000000ab&t=99-ab\n"),
            "{text}"
        );
    }

    fn snapshot(first: u64, durations: &[f64], ended: bool) -> Snapshot {
        Snapshot {
            vod: false,
            target_duration: 2,
            first_sequence: first,
            segments: durations
                .iter()
                .enumerate()
                .map(|(i, d)| (first + i as u64, Duration::from_secs_f64(*d)))
                .collect(),
            ended,
        }
    }

    #[test]
    fn event_playlist_grows_then_ends() {
        let growing = render_plain(&snapshot(0, &[2.0, 2.033, 1.967], false));
        assert_eq!(
            growing,
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-TARGETDURATION:2\n\
             #EXT-X-PLAYLIST-TYPE:EVENT\n#EXTINF:2.000,\n0.ts\n#EXTINF:2.033,\n1.ts\n\
             #EXTINF:1.967,\n2.ts\n"
        );
        let done = render_plain(&snapshot(0, &[2.0, 2.033, 1.967, 0.5], true));
        assert!(done.starts_with(&growing));
        assert!(done.ends_with("#EXTINF:0.500,\n3.ts\n#EXT-X-ENDLIST\n"));
        let parsed = m3u8_rs::parse_media_playlist_res(done.as_bytes()).unwrap();
        assert_eq!(parsed.segments.len(), 4);
        assert!(parsed.end_list);
    }

    #[test]
    fn vod_playlist_is_complete() {
        let text = render_plain(&Snapshot {
            vod: true,
            ..snapshot(0, &[2.0, 2.0, 0.75], true)
        });
        assert!(text.contains("#EXT-X-PLAYLIST-TYPE:VOD\n"));
        assert!(text.ends_with("#EXTINF:0.750,\n2.ts\n#EXT-X-ENDLIST\n"));
    }

    #[test]
    fn sliding_window_after_eviction() {
        let text = render_plain(&snapshot(7, &[2.0, 2.0], false));
        assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:7\n"));
        assert!(!text.contains("PLAYLIST-TYPE"));
        assert!(text.contains("7.ts\n"));
    }
}
