//! `GET /metrics`: the server's figures in the Prometheus text exposition format.

use std::fmt::Write;

use crate::stream::Registry;

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

pub fn render(registry: &Registry) -> String {
    let streams: Vec<_> = registry
        .streams()
        .into_iter()
        .map(|s| (s.name().to_owned(), s.status()))
        .collect();
    let mut out = String::new();
    let _ = writeln!(out, "# HELP hlss_streams Streams open.");
    let _ = writeln!(out, "# TYPE hlss_streams gauge");
    let _ = writeln!(out, "hlss_streams {}", streams.len());
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
    out
}

#[cfg(test)]
mod tests {
    use super::label;

    #[test]
    fn escapes_label_values() {
        assert_eq!(label("a \"b\"\\c\nd"), "a \\\"b\\\"\\\\c\\nd");
    }
}
