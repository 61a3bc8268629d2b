//! Every error a request can meet, and the one place that turns each into an HTTP status.

use bytes::Bytes;
use warp::http::{Response, StatusCode, header};

use crate::library::LibraryError;
use crate::stream::StreamError;
use crate::transcode::TranscodeError;

/// Longest reason put in an error body; GStreamer messages can be long.
const MAX_REASON_CHARS: usize = 300;
/// Seconds a client is told to wait before retrying a stream that is still starting.
const RETRY_AFTER_SECS: u32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("no such file, folder or page")]
    NotFound,
    #[error("only GET and HEAD are supported")]
    MethodNotAllowed,
    /// No credentials, or wrong ones (unknown users and wrong passwords alike).
    #[error("log in: HTTP Basic, the form at /login, or a signed link")]
    Unauthorized,
    /// A browser without a login asked for a page: it is sent to the login form, then back to
    /// this path.
    #[error("log in first")]
    LoginRequired(String),
    #[error(transparent)]
    Link(#[from] crate::access::link::LinkError),
    #[error("a signed link opens its own file only")]
    LinkElsewhere,
    #[error("a login form is at most 4096 bytes")]
    BodyTooLarge,
    #[error("expires must be a duration such as 90m, 24h or 7days, a year at most")]
    BadLinkLifetime,
    #[error("too many failed logins from this address; try again later")]
    TooManyLogins(std::time::Duration),
    #[error(transparent)]
    Library(#[from] LibraryError),
    #[error(transparent)]
    Stream(#[from] StreamError),
    /// A handler panicked; the panic's text goes to the log, never to the client.
    #[error("internal error")]
    Panic,
}

impl HttpError {
    pub fn status(&self) -> StatusCode {
        match self {
            HttpError::NotFound => StatusCode::NOT_FOUND,
            HttpError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            HttpError::Unauthorized => StatusCode::UNAUTHORIZED,
            HttpError::LoginRequired(_) => StatusCode::SEE_OTHER,
            HttpError::Link(_) | HttpError::LinkElsewhere => StatusCode::FORBIDDEN,
            HttpError::TooManyLogins(_) => StatusCode::TOO_MANY_REQUESTS,
            HttpError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            HttpError::BadLinkLifetime => StatusCode::BAD_REQUEST,
            HttpError::Panic => StatusCode::INTERNAL_SERVER_ERROR,
            HttpError::Library(err) => match err {
                LibraryError::NotFound | LibraryError::NotServable(_) => StatusCode::NOT_FOUND,
                LibraryError::Open { source, .. }
                    if source.kind() == std::io::ErrorKind::PermissionDenied =>
                {
                    StatusCode::FORBIDDEN
                }
                LibraryError::Open { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            },
            HttpError::Stream(err) => match err {
                StreamError::Transcode(TranscodeError::NotMedia(_)) => {
                    StatusCode::UNSUPPORTED_MEDIA_TYPE
                }
                StreamError::Transcode(TranscodeError::Failed(_)) => StatusCode::BAD_GATEWAY,
                StreamError::Transcode(TranscodeError::MissingElement(_)) => {
                    StatusCode::INTERNAL_SERVER_ERROR
                }
                StreamError::NotReady | StreamError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
                StreamError::NoSuchSegment => StatusCode::NOT_FOUND,
                StreamError::Evicted(_) => StatusCode::GONE,
            },
        }
    }

    /// Logs a handler's panic (with the request path) and turns it into a 500.
    pub fn from_panic(panic: &(dyn std::any::Any + Send), path: &str) -> HttpError {
        let what = panic
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(no message)");
        tracing::error!(path = %path.escape_debug(), "request handler panicked: {what}");
        HttpError::Panic
    }

    /// A short plain-text response: the status line's words and one line of reason.
    pub fn into_response(self) -> Response<Bytes> {
        let status = self.status();
        // Library errors can name server paths; the client gets only the generic words.
        let reason = match &self {
            HttpError::Library(LibraryError::Open { source, .. })
                if source.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                "permission denied".to_owned()
            }
            HttpError::Library(LibraryError::Open { .. }) => "cannot read it".to_owned(),
            other => other.to_string(),
        };
        let reason: String = reason
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_REASON_CHARS)
            .collect();
        let body = format!(
            "{} {}: {reason}\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or("Error")
        );
        let mut response = Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .header(header::CACHE_CONTROL, "no-store");
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response = response.header(header::RETRY_AFTER, RETRY_AFTER_SECS);
        }
        match &self {
            HttpError::MethodNotAllowed => response = response.header(header::ALLOW, "GET, HEAD"),
            HttpError::Unauthorized => {
                response = response.header(
                    header::WWW_AUTHENTICATE,
                    "Basic realm=\"hlss\", charset=\"UTF-8\"",
                );
            }
            HttpError::LoginRequired(back) => {
                response = response.header(header::LOCATION, super::login::url(back));
            }
            HttpError::TooManyLogins(wait) => {
                response = response.header(
                    header::RETRY_AFTER,
                    (wait.as_secs_f64().ceil() as u64).max(1),
                );
            }
            _ => {}
        }
        response
            .body(Bytes::from(body))
            .unwrap_or_else(|_| Response::new(Bytes::from_static(b"error\n")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_bodies() {
        let cases = [
            (HttpError::NotFound, 404),
            (
                HttpError::Stream(StreamError::Transcode(TranscodeError::NotMedia(
                    "Could not determine type of stream".into(),
                ))),
                415,
            ),
            (
                HttpError::Stream(StreamError::Transcode(TranscodeError::Failed("x".into()))),
                502,
            ),
            (HttpError::Stream(StreamError::NotReady), 503),
            (HttpError::Stream(StreamError::Busy(2)), 503),
            (HttpError::Stream(StreamError::Evicted(3)), 410),
            (HttpError::from_panic(&"index out of bounds", "/x"), 500),
            (HttpError::Unauthorized, 401),
            (HttpError::LoginRequired("/a b/?x=1".into()), 303),
            (
                HttpError::Link(crate::access::link::LinkError::Expired),
                403,
            ),
            (HttpError::LinkElsewhere, 403),
            (
                HttpError::TooManyLogins(std::time::Duration::from_millis(200)),
                429,
            ),
        ];
        for (err, status) in cases {
            let response = err.into_response();
            assert_eq!(response.status().as_u16(), status);
            let body = std::str::from_utf8(response.body()).unwrap();
            assert!(body.starts_with(&status.to_string()), "{body}");
            assert_eq!(body.lines().count(), 1);
        }
        let busy = HttpError::Stream(StreamError::NotReady).into_response();
        assert_eq!(busy.headers()[header::RETRY_AFTER], "2");
        let login = HttpError::Unauthorized.into_response();
        assert!(
            login.headers()[header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .starts_with("Basic ")
        );
        let back = HttpError::LoginRequired("/browse/a b/".into()).into_response();
        assert_eq!(
            back.headers()[header::LOCATION],
            "/login?next=%2Fbrowse%2Fa%20b%2F"
        );
        let wait = HttpError::TooManyLogins(std::time::Duration::from_millis(200)).into_response();
        assert_eq!(wait.headers()[header::RETRY_AFTER], "1");
    }

    #[test]
    fn library_errors_do_not_leak_paths() {
        let err = HttpError::Library(LibraryError::Open {
            path: "/secret/place".into(),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        });
        let response = err.into_response();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert!(
            !std::str::from_utf8(response.body())
                .unwrap()
                .contains("secret")
        );
    }
}
