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
        if status == StatusCode::METHOD_NOT_ALLOWED {
            response = response.header(header::ALLOW, "GET, HEAD");
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
