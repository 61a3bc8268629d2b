//! HTTP: warp routes for listings, playlists and segments; the only layer that knows about HTTP.

mod error;
mod metrics;
mod pages;
mod playlist;
mod urls;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use warp::Filter;
use warp::http::{Method, Response, StatusCode, header};

use crate::library::{Library, RelPath};
use crate::stream::Registry;
pub use error::HttpError;
use urls::Route;

/// Everything a request handler can reach.
pub struct App {
    pub library: Library,
    pub registry: Registry,
}

/// The whole site as one warp filter: the path is taken raw and routed by [`urls::route`], so it
/// is percent-decoded exactly once.
pub fn routes(
    app: Arc<App>,
) -> impl Filter<Extract = (Response<Bytes>,), Error = Infallible> + Clone + Send + Sync + 'static {
    warp::method().and(warp::path::full()).then(
        move |method: Method, path: warp::path::FullPath| {
            let app = app.clone();
            async move {
                handle(&app, &method, path.as_str())
                    .await
                    .unwrap_or_else(HttpError::into_response)
            }
        },
    )
}

async fn handle(app: &App, method: &Method, path: &str) -> Result<Response<Bytes>, HttpError> {
    if method != Method::GET && method != Method::HEAD {
        return Err(HttpError::MethodNotAllowed);
    }
    match urls::route(path).ok_or(HttpError::NotFound)? {
        Route::Health => Ok(reply("text/plain; charset=utf-8", "no-store", "ok\n")),
        Route::Metrics => Ok(reply(
            "text/plain; version=0.0.4; charset=utf-8",
            "no-store",
            metrics::render(&app.registry),
        )),
        Route::Folder(rel) => folder(app, &rel, path),
        Route::Playlist(rel) => {
            let stream = open(app, &rel)?;
            stream.wait_ready().await?;
            let text = playlist::render(&stream.snapshot());
            Ok(reply("application/vnd.apple.mpegurl", "no-cache", text))
        }
        Route::Segment(rel, sequence) => {
            let stream = open(app, &rel)?;
            let bytes = stream.segment(sequence).await?;
            Ok(reply("video/mp2t", "public, max-age=3600", bytes))
        }
    }
}

fn open(app: &App, rel: &RelPath) -> Result<Arc<crate::stream::Stream>, HttpError> {
    let source = app.library.source(rel)?;
    Ok(app.registry.open(&source, &rel.to_string()))
}

fn folder(app: &App, rel: &RelPath, path: &str) -> Result<Response<Bytes>, HttpError> {
    let entries = app.library.list(rel)?;
    // Listings are linked with a trailing slash; send `/browse/a` there so the address bar
    // shows one canonical URL.
    if !path.ends_with('/') {
        return Ok(Response::builder()
            .status(StatusCode::MOVED_PERMANENTLY)
            .header(header::LOCATION, urls::folder(rel))
            .body(Bytes::new())
            .unwrap_or_default());
    }
    let title = match &app.library {
        Library::Folder { root } => root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "/".to_owned()),
        Library::File { name, .. } => name.clone(),
        Library::Demo => "hlss demo".to_owned(),
    };
    Ok(reply(
        "text/html; charset=utf-8",
        "no-cache",
        pages::folder(&title, rel, &entries),
    ))
}

fn reply(
    content_type: &'static str,
    cache: &'static str,
    body: impl Into<Bytes>,
) -> Response<Bytes> {
    let mut response = Response::new(body.into());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static(cache),
    );
    response
}
