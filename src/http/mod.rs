//! HTTP: warp routes for listings, playlists and segments; the only layer that knows about HTTP.

mod assets;
pub mod auth;
mod caching;
mod cors;
mod error;
pub mod forwarded;
mod hls;
fn open(app: &App, rel: &RelPath) -> Result<crate::stream::Opened, HttpError> {
    let source = app.library.source(rel)?;
    Ok(app.registry.open(&source, &rel.to_string()))
}

async fn folder(
    app: &App,
    rel: &RelPath,
    path: &str,
    who: &Who,
) -> Result<Response<Bytes>, HttpError> {
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
    let title = app.library.title();
    // Up to 200 files' headers are read: off the async runtime.
    let (library, folder, listed) = (app.library.clone(), rel.clone(), entries.clone());
    let languages = tokio::task::spawn_blocking(move || library.languages(&folder, &listed))
        .await
        .unwrap_or_default();
    Ok(reply(
        "text/html; charset=utf-8",
        "no-cache",
        pages::folder(&title, rel, &entries, &languages, who.user()),
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

#[cfg(test)]
mod hostile_paths;
mod login;
mod master;
mod metrics;
mod pages;
mod player;
mod playlist;
pub mod serve;
mod status;
pub mod tls;
mod urls;
mod web;

use std::convert::Infallible;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use warp::Filter;
use warp::http::{Method, Response, StatusCode, header};

use crate::library::{Library, RelPath};
use crate::stream::{Registry, SessionId};
use auth::Who;
pub use error::HttpError;
use urls::Route;

/// Everything a request handler can reach.
pub struct App {
    pub library: Library,
    pub registry: Registry,
    pub stats: metrics::HttpStats,
    /// CORS origin and where player pages get hls.js.
    pub web: crate::config::WebSettings,
    /// `/metrics` and `/status` are served on a listener of their own (`--metrics-listen`), and
    /// not on the public one.
    pub admin_apart: bool,
    /// Logins, when `--users` is given; `None` lets everyone in.
    pub gate: Option<auth::Gate>,
    /// Proxies whose `X-Forwarded-For` names the client (`--trusted-proxy`).
    pub trusted_proxies: Vec<forwarded::Network>,
}

/// Which listener a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// The site: listings, players, playlists, segments (and `/metrics`, `/status` unless they
    /// are apart).
    Public,
    /// `--metrics-listen`: `/metrics`, `/status` and `/healthz` only.
    Admin,
}

/// Whether `route` is served on `listener`.
fn admits(listener: Listener, admin_apart: bool, route: &Route) -> bool {
    let admin = matches!(route, Route::Metrics | Route::Status);
    match listener {
        Listener::Public => !(admin && admin_apart),
        Listener::Admin => admin || matches!(route, Route::Health),
    }
}

/// What a handler needs to know about a request besides its path.
pub(crate) struct Request<'a> {
    listener: Listener,
    method: &'a Method,
    path: &'a str,
    query: &'a str,
    headers: &'a header::HeaderMap,
    /// The client's address: the peer's, or the one a trusted proxy forwarded.
    address: Option<std::net::IpAddr>,
    /// A POST's body; `None` when it was larger than a form can be.
    body: Option<Bytes>,
    /// The viewer session named by the URL's `s` query parameter.
    session: Option<SessionId>,
    /// Address and user agent, hashed: lets a player that reloads its playlist by its original
    /// URL (without the session) rejoin its session.
    client: u64,
}

fn session_from_query(query: &str) -> Option<SessionId> {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("s="))
        .and_then(SessionId::parse)
}

fn client_key(address: Option<std::net::IpAddr>, user_agent: Option<&str>) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    address.hash(&mut hasher);
    user_agent.hash(&mut hasher);
    hasher.finish()
}

/// The whole site as one warp filter: the path is taken raw and routed by [`urls::route`], so it
/// is percent-decoded exactly once.
pub fn routes(
    app: Arc<App>,
    listener: Listener,
) -> impl Filter<Extract = (Response<Bytes>,), Error = Infallible> + Clone + Send + Sync + 'static {
    // Caching, CORS and ranges are applied around the handlers, in one place; responses are
    // counted as sent, after that layer has turned some into 304 or 206.
    let stats = app.clone();
    web::layer(app.clone(), site(app, listener)).map(move |response: Response<Bytes>| {
        stats.stats.count_response(response.status());
        response
    })
}

fn site(
    app: Arc<App>,
    listener: Listener,
) -> impl Filter<Extract = (Response<Bytes>,), Error = Infallible> + Clone + Send + Sync + 'static {
    let query = warp::query::raw().or(warp::any().map(String::new)).unify();
    // A POST's body, bounded (login forms); nothing else reads one.
    let body = warp::method()
        .and(warp::body::stream())
        .then(|method: Method, body| async move {
            if method == Method::POST {
                read_body(body, login::MAX_FORM_BYTES).await
            } else {
                Some(Bytes::new())
            }
        })
        .or(warp::any().map(|| None))
        .unify();
    warp::method()
        .and(warp::path::full())
        .and(query)
        .and(serve::remote())
        .and(warp::header::headers_cloned())
        .and(body)
        .then(
            move |method: Method,
                  path: warp::path::FullPath,
                  query: String,
                  remote: Option<SocketAddr>,
                  headers: header::HeaderMap,
                  body: Option<Bytes>| {
                let app = app.clone();
                async move {
                    let address =
                        forwarded::client(remote.map(|a| a.ip()), &headers, &app.trusted_proxies);
                    let request = Request {
                        listener,
                        method: &method,
                        path: path.as_str(),
                        query: &query,
                        headers: &headers,
                        address,
                        body,
                        session: session_from_query(&query),
                        client: client_key(
                            address,
                            headers
                                .get(header::USER_AGENT)
                                .and_then(|v| v.to_str().ok()),
                        ),
                    };
                    let started = Instant::now();
                    let response = handle(&app, &request)
                        .await
                        .unwrap_or_else(HttpError::into_response);
                    // An access log at debug level: what a player asked and what it got, when.
                    tracing::debug!(
                        path = %request.path.escape_debug(),
                        query = %query.escape_debug(),
                        status = response.status().as_u16(),
                        ms = started.elapsed().as_millis() as u64,
                        "answered"
                    );
                    response
                }
            },
        )
}

/// A request body of at most `limit` bytes; `None` if it is longer or breaks off.
async fn read_body<S, B>(body: S, limit: usize) -> Option<Bytes>
where
    S: futures_util::Stream<Item = Result<B, warp::Error>>,
    B: bytes::Buf,
{
    use futures_util::StreamExt;
    let mut body = std::pin::pin!(body);
    let mut out = bytes::BytesMut::new();
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.ok()?;
        if out.len() + chunk.remaining() > limit {
            return None;
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            out.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    Some(out.freeze())
}

async fn handle(app: &App, request: &Request<'_>) -> Result<Response<Bytes>, HttpError> {
    let (method, path) = (request.method, request.path);
    let route = urls::route(path)
        .filter(|route| admits(request.listener, app.admin_apart, route))
        .ok_or(HttpError::NotFound)?;
    let allowed = match route {
        Route::Login => [Method::GET, Method::HEAD, Method::POST].contains(method),
        Route::Logout => method == Method::POST,
        _ => method == Method::GET || method == Method::HEAD,
    };
    if !allowed {
        return Err(HttpError::MethodNotAllowed);
    }
    // The metrics listener is private by configuration; the public one asks who is there.
    let who = match (&app.gate, request.listener) {
        (Some(gate), Listener::Public) => {
            let presented = auth::Presented {
                headers: request.headers,
                query: request.query,
                address: request.address,
                path: &back_to(request),
            };
            gate.admit(&route, &presented).await?
        }
        _ => Who::Anyone,
    };
    match route {
        Route::Health => Ok(reply("text/plain; charset=utf-8", "no-store", "ok\n")),
        Route::Metrics => Ok(reply(
            "text/plain; version=0.0.4; charset=utf-8",
            "no-store",
            metrics::render(&app.registry, &app.stats, app.gate.as_ref()),
        )),
        Route::Status => Ok(reply(
            "text/html; charset=utf-8",
            "no-store",
            status::page(&app.registry),
        )),
        Route::Folder(rel) => folder(app, &rel, path, &who).await,
        Route::Watch(rel) => web::watch(app, &rel, &who),
        Route::Asset(name) => web::asset(&name),
        Route::Hls(rel, leaf) => hls::answer(app, request, &who, &rel, leaf).await,
        Route::Login => login::answer(app, request).await,
        Route::Logout => login::logout(app.gate.as_ref()),
        Route::Link(rel) => share(app, &who, &rel, request.query),
    }
}

/// Where a browser sent to the login form comes back to: this path and query.
fn back_to(request: &Request<'_>) -> String {
    if request.query.is_empty() {
        request.path.to_owned()
    } else {
        format!("{}?{}", request.path, request.query)
    }
}

/// Longest a link from `/link/<file>` lives unless asked otherwise.
const DEFAULT_LINK_LIFETIME: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// `GET /link/<file>?expires=24h`: for a logged-in user to give to someone who cannot log in,
/// the file's playlist (for players) and player page (for browsers) with a signed link, as JSON.
/// Without `--users` they are the plain paths.
fn share(app: &App, who: &Who, rel: &RelPath, query: &str) -> Result<Response<Bytes>, HttpError> {
    if !who.may_share() {
        return Err(HttpError::LinkElsewhere);
    }
    app.library.source(rel)?;
    let lifetime = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("expires="))
        .map(|text| {
            let text = percent_encoding::percent_decode_str(text).decode_utf8_lossy();
            humantime::parse_duration(&text).map_err(|_| HttpError::BadLinkLifetime)
        })
        .transpose()?
        .unwrap_or(DEFAULT_LINK_LIFETIME);
    let shared = match &app.gate {
        Some(gate) => {
            signed_link(gate.secret(), rel, lifetime).ok_or(HttpError::BadLinkLifetime)?
        }
        None => Shared {
            playlist: urls::playlist(rel),
            page: urls::watch(rel),
        },
    };
    let json = format!(
        "{{\"playlist\":{},\"page\":{}}}\n",
        player::json_string(&shared.playlist),
        player::json_string(&shared.page)
    );
    Ok(reply("application/json", "no-store", json))
}

/// A file's addresses carrying a signed link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shared {
    /// The master playlist's path: for VLC, TVs, ffplay.
    pub playlist: String,
    /// The player page's path: for a browser.
    pub page: String,
}

/// `rel`'s playlist and player page with a link signed by `secret`, valid for `lifetime` (a
/// year at most; `None` beyond).
pub fn signed_link(
    secret: &crate::access::Secret,
    rel: &RelPath,
    lifetime: std::time::Duration,
) -> Option<Shared> {
    if lifetime.as_secs() == 0 || lifetime.as_secs() > crate::access::link::MAX_LIFETIME_SECS {
        return None;
    }
    let expires = crate::access::unix_now() + lifetime.as_secs();
    let token = crate::access::link::sign(secret, &rel.to_string(), expires);
    let carried = urls::Carried {
        session: None,
        link: Some(&token),
    };
    Some(Shared {
        playlist: format!("{}{}", urls::playlist(rel), carried.query()),
        page: format!("{}{}", urls::watch(rel), carried.query()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_and_status_go_where_they_are_told() {
        let (metrics, status, health) = (Route::Metrics, Route::Status, Route::Health);
        let page = Route::Folder(RelPath::default());
        for route in [&metrics, &status, &health, &page] {
            assert!(admits(Listener::Public, false, route), "{route:?}");
        }
        assert!(!admits(Listener::Public, true, &metrics));
        assert!(!admits(Listener::Public, true, &status));
        assert!(admits(Listener::Public, true, &page));
        assert!(admits(Listener::Admin, true, &metrics));
        assert!(admits(Listener::Admin, true, &health));
        assert!(!admits(Listener::Admin, true, &page));
    }
}
