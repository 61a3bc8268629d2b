//! `GET /metrics`: the server's figures in the Prometheus text exposition format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use parking_lot::Mutex;
use warp::http::StatusCode;

use crate::stream::Registry;

/// Upper bounds (seconds) of the time-to-first-playlist histogram's buckets.
const FIRST_PLAYLIST_BUCKETS: [f64; 8] = [0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0];

/// What the HTTP layer counts itself.
#[derive(Debug, Default)]
pub struct HttpStats {
    responses: Mutex<BTreeMap<u16, u64>>,
    first_playlist: Mutex<Histogram>,
}

#[derive(Debug, Default)]
struct Histogram {
    /// Counts per bucket of [`FIRST_PLAYLIST_BUCKETS`], not cumulative.
    buckets: [u64; FIRST_PLAYLIST_BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl HttpStats {
    pub fn count_response(&self, status: StatusCode) {
        *self.responses.lock().entry(status.as_u16()).or_default() += 1;
    }

    /// Records how long the request that opened a stream waited for its first playlist.
    pub fn first_playlist(&self, took: Duration) {
        let secs = took.as_secs_f64();
        let mut histogram = self.first_playlist.lock();
        if let Some(i) = FIRST_PLAYLIST_BUCKETS.iter().position(|b| secs <= *b) {
            histogram.buckets[i] += 1;
        }
        histogram.count += 1;
        histogram.sum += secs;
    }
}

/// Escapes a label value as the exposition format requires.
fn label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// One metric family: `# HELP`, `# TYPE`, then one sample per stream.
fn family<T: std::fmt::Display>(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    samples: impl Iterator<Item = (String, T)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (stream, value) in samples {
        let _ = writeln!(out, "{name}{{stream=\"{}\"}} {value}", label(&stream));
    }
}

fn single(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    let _ = writeln!(out, "{name} {value}");
}

pub fn render(registry: &Registry, stats: &HttpStats, gate: Option<&super::auth::Gate>) -> String {
    let streams: Vec<_> = registry
        .streams()
        .into_iter()
        .map(|s| (s.name().to_owned(), s.status()))
        .collect();
    let mut out = String::new();
    single(
        &mut out,
        "hlss_streams",
        "gauge",
        "Streams open.",
        streams.len(),
    );
    single(
        &mut out,
        "hlss_streams_transcoding",
        "gauge",
        "Streams with at least one pipeline running.",
        streams.iter().filter(|(_, s)| s.runs_running > 0).count(),
    );
    let budget = registry.budget();
    single(
        &mut out,
        "hlss_transcodes_running",
        "gauge",
        "Pipelines holding a place under --max-transcodes.",
        budget.transcodes(),
    );
    single(
        &mut out,
        "hlss_transcodes_max",
        "gauge",
        "The --max-transcodes limit.",
        budget.max_transcodes(),
    );
    single(
        &mut out,
        "hlss_direct_runs_running",
        "gauge",
        "Direct runs (the source's own stream remuxed, no transcode place taken).",
        budget.direct_runs(),
    );
    single(
        &mut out,
        "hlss_openings_given_up_total",
        "counter",
        "Stream openings given up after 15 s (GStreamer hung; a thread is left behind for each).",
        crate::stream::openings_given_up(),
    );
    single(
        &mut out,
        "hlss_bytes_held",
        "gauge",
        "Bytes of segments all streams hold in memory.",
        budget.bytes(),
    );
    single(
        &mut out,
        "hlss_viewers",
        "gauge",
        "Viewers seen within the viewer timeout, over all streams.",
        streams.iter().map(|(_, s)| s.viewers.len()).sum::<usize>(),
    );
    let each = |f: fn(&crate::stream::Status) -> u64| {
        streams
            .iter()
            .map(move |(name, status)| (name.clone(), f(status)))
    };
    family(
        &mut out,
        "hlss_stream_bytes_held",
        "gauge",
        "Bytes of segments a stream holds in memory.",
        each(|s| s.bytes_held as u64),
    );
    family(
        &mut out,
        "hlss_stream_segments_held",
        "gauge",
        "Segments a stream holds in memory.",
        each(|s| s.segments_held as u64),
    );
    family(
        &mut out,
        "hlss_stream_transcodes_running",
        "gauge",
        "Pipelines running for a stream.",
        each(|s| s.runs_running as u64),
    );
    family(
        &mut out,
        "hlss_stream_transcodes_started_total",
        "counter",
        "Pipelines started for a stream (the first, plus one per seek or re-make).",
        each(|s| s.runs_started),
    );
    family(
        &mut out,
        "hlss_stream_segments_made_total",
        "counter",
        "Segments a stream's pipelines have made.",
        each(|s| s.segments_made),
    );
    family(
        &mut out,
        "hlss_stream_segments_served_total",
        "counter",
        "Segment requests a stream answered from memory.",
        each(|s| s.segments_served),
    );
    family(
        &mut out,
        "hlss_stream_viewers",
        "gauge",
        "Viewers of a stream seen within the viewer timeout.",
        each(|s| s.viewers.len() as u64),
    );
    family(
        &mut out,
        "hlss_stream_realtime_factor",
        "gauge",
        "Seconds of media a stream's pipelines make per second of work (pauses excluded).",
        streams
            .iter()
            .map(|(name, s)| (name.clone(), format!("{:.3}", s.realtime_factor))),
    );
    {
        let name = "hlss_stream_delivery";
        let _ = writeln!(
            out,
            "# HELP {name} How a stream is delivered (direct or transcode) and why; always 1."
        );
        let _ = writeln!(out, "# TYPE {name} gauge");
        for (stream, status) in &streams {
            if let Some(delivery) = &status.delivery {
                let reason = match delivery {
                    crate::stream::Delivery::Transcode(reason) => reason.to_string(),
                    crate::stream::Delivery::Direct { .. } => String::new(),
                };
                let _ = writeln!(
                    out,
                    "{name}{{stream=\"{}\",delivery=\"{}\",reason=\"{}\"}} 1",
                    label(stream),
                    delivery.name(),
                    label(&reason)
                );
            }
        }
    }
    {
        let histogram = stats.first_playlist.lock();
        let name = "hlss_first_playlist_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time from a stream's first request to its first playlist."
        );
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, count) in FIRST_PLAYLIST_BUCKETS.iter().zip(histogram.buckets) {
            cumulative += count;
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", histogram.count);
        let _ = writeln!(out, "{name}_sum {:.6}", histogram.sum);
        let _ = writeln!(out, "{name}_count {}", histogram.count);
    }
    let _ = writeln!(
        out,
        "# HELP hlss_http_responses_total HTTP responses by status code."
    );
    let _ = writeln!(out, "# TYPE hlss_http_responses_total counter");
    for (code, count) in stats.responses.lock().iter() {
        let _ = writeln!(out, "hlss_http_responses_total{{code=\"{code}\"}} {count}");
    }
    if let Some(gate) = gate {
        let name = "hlss_logins_total";
        let _ = writeln!(
            out,
            "# HELP {name} Password checks (form and HTTP Basic) by outcome: ok, failed \
             (wrong password or unknown name), limited (refused: too many failures from the address)."
        );
        let _ = writeln!(out, "# TYPE {name} counter");
        for (outcome, count) in super::auth::LOGIN_OUTCOMES.iter().zip(gate.login_counts()) {
            let _ = writeln!(out, "{name}{{outcome=\"{outcome}\"}} {count}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let stats = HttpStats::default();
        stats.first_playlist(Duration::from_millis(80));
        stats.first_playlist(Duration::from_millis(700));
        stats.first_playlist(Duration::from_secs(60));
        stats.count_response(StatusCode::OK);
        stats.count_response(StatusCode::OK);
        let registry = Registry::new(
            crate::config::EncoderSettings {
                preset: crate::config::Preset::Veryfast,
                max_height: 720,
                video_kbps: 1000,
                audio_kbps: 128,
                segment: Duration::from_secs(2),
                direct_max_segment: None,
            },
            crate::config::StreamLimits {
                mode: crate::config::PlaylistMode::Vod,
                memory: 1 << 20,
                read_ahead: 5,
            },
            crate::stream::Budget::new(2, 1 << 20),
        );
        let text = render(&registry, &stats, None);
        assert!(text.contains("hlss_first_playlist_seconds_bucket{le=\"0.1\"} 1\n"));
        assert!(text.contains("hlss_first_playlist_seconds_bucket{le=\"1\"} 2\n"));
        assert!(text.contains("hlss_first_playlist_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("hlss_http_responses_total{code=\"200\"} 2\n"));
        assert!(text.contains("hlss_transcodes_max 2\n"));
    }

    #[test]
    fn escapes_label_values() {
        assert_eq!(label("a \"b\"\\c\nd"), "a \\\"b\\\"\\\\c\\nd");
    }
}
