//! Answers everything under `/hls/<file>/`: the master playlist, media playlists of the video and of each audio and subtitle rendition, and their segments.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use warp::http::{Response, header};

use super::auth::Who;
use super::urls::{Carried, Leaf, Media};
use super::{App, HttpError, Request, caching, master, open, playlist, reply};
use crate::library::RelPath;
use crate::stream::{Snapshot, Stream, StreamError};
use crate::subtitles;
use crate::transcode::PTS_AT_ORIGIN;

const PLAYLIST: &str = "application/vnd.apple.mpegurl";

pub(super) async fn answer(
    app: &App,
    request: &Request<'_>,
    who: &Who,
    rel: &RelPath,
    leaf: Leaf,
) -> Result<Response<Bytes>, HttpError> {
    let carried = |session| Carried {
        session,
        link: who.link(),
    };
    let started = Instant::now();
    let opened = open(app, rel)?;
    let main = opened.stream;
    match leaf {
        Leaf::Master => {
            let session = main.open_playlist(request.session, request.client).await?;
            let opening = main.opening().await?;
            let text = master::render(&opening, app.registry.settings(), carried(Some(session)));
            if opened.created {
                app.stats.first_playlist(started.elapsed());
            }
            let cache = if opening.plan.is_vod() {
                caching::VOD_PLAYLIST
            } else {
                "no-cache"
            };
            Ok(reply(PLAYLIST, cache, text))
        }
        Leaf::Playlist(Media::Main) => {
            let session = main.open_playlist(request.session, request.client).await?;
            let text = playlist::render(&main.snapshot(), carried(Some(session)));
            // A client may start here rather than at the master playlist.
            if opened.created {
                app.stats.first_playlist(started.elapsed());
            }
            Ok(reply(PLAYLIST, "no-cache", text))
        }
        Leaf::Segment(Media::Main, k) => {
            let body = main.segment(k, request.session).await?;
            Ok(segment_reply(body))
        }
        Leaf::Playlist(Media::Audio(n)) => {
            let audio = audio(app, rel, &main, n).await?;
            let session = audio.open_playlist(request.session, request.client).await?;
            let name = |k| Leaf::Segment(Media::Audio(n), k).name();
            let text = playlist::render_named(&audio.snapshot(), carried(Some(session)), name);
            Ok(reply(PLAYLIST, "no-cache", text))
        }
        Leaf::Segment(Media::Audio(n), k) => {
            let audio = audio(app, rel, &main, n).await?;
            Ok(segment_reply(audio.segment(k, request.session).await?))
        }
        Leaf::Subtitles(n) => {
            let opening = main.opening().await?;
            if n >= opening.subtitles.len() || !opening.plan.is_vod() {
                return Err(HttpError::NotFound);
            }
            let snapshot = Snapshot::of_plan(&opening.plan);
            let name = |k| Leaf::Cues(n, k).name();
            let text = playlist::render_named(&snapshot, carried(None), name);
            Ok(reply(PLAYLIST, "no-cache", text))
        }
        Leaf::Cues(n, k) => {
            let opening = main.opening().await?;
            let plan = &opening.plan;
            let duration = plan.duration_of(k).ok_or(StreamError::NoSuchSegment)?;
            let cues = main.cues(&opening, n).await?;
            let from = plan.start_of(k).saturating_sub(plan.origin());
            let text = subtitles::segment(&cues, from, from + duration, PTS_AT_ORIGIN);
            Ok(reply("text/vtt; charset=utf-8", caching::SEGMENT, text))
        }
    }
}

/// The alternate audio rendition `n` of `main`'s file, once `main` has opened.
async fn audio(
    app: &App,
    rel: &RelPath,
    main: &Stream,
    n: usize,
) -> Result<Arc<Stream>, HttpError> {
    let opening = main.opening().await?;
    if n >= opening.audio_renditions().len() {
        return Err(HttpError::NotFound);
    }
    let source = app.library.source(rel)?;
    Ok(app
        .registry
        .open_audio(&source, &rel.to_string(), &opening, n)
        .stream)
}

fn segment_reply(body: crate::stream::Body) -> Response<Bytes> {
    let etag = caching::etag_from(body.digest, body.bytes.len());
    let mut response = reply("video/mp2t", caching::SEGMENT, body.bytes);
    if let Ok(value) = header::HeaderValue::try_from(etag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}
