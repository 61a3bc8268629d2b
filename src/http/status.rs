//! `GET /status`: a small page listing the open streams, their pipelines and their viewers.

use std::fmt::Write;

use super::pages::escape;
use crate::stream::{Registry, describe};

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
            "<table><tr><th>stream</th><th>delivery</th><th>runs</th><th>segments held</th>\
             <th>MiB</th><th>speed</th><th>idle</th><th>viewers (session: segment)</th></tr>\n",
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
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.1}x</td><td>{} s</td><td>{}</td></tr>",
            escape(stream.name()),
            escape(
                &status
                    .delivery
                    .as_ref()
                    .map_or_else(|| "probing".into(), describe)
            ),
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
