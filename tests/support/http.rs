//! Blocking HTTP GET with bounded waits that reports every status instead of turning 4xx/5xx into errors.

use std::sync::OnceLock;
use std::time::Duration;

use ureq::Agent;
use ureq::http::header::CONTENT_TYPE;

/// Bound on one whole request; the first playlist request legitimately waits for three segments.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Bound on connecting; the server is local, so anything slower means it is wedged.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest body accepted; far above any test clip's segment, well below what could hurt the machine.
const BODY_LIMIT: u64 = 256 * 1024 * 1024;

/// A response, read completely.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: Option<String>,
    /// The `Retry-After` header, for 503s.
    pub retry_after: Option<String>,
    pub body: Vec<u8>,
}

impl Reply {
    /// The media type without parameters, lower-cased (`text/html; charset=utf-8` -> `text/html`).
    pub fn mime(&self) -> Option<String> {
        self.content_type.as_deref().map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
    }

    /// The body as text; invalid UTF-8 is replaced, so check [`Reply::utf8`] where it matters.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as UTF-8 text, or an error naming the URL's problem.
    pub fn utf8(&self) -> Result<&str, String> {
        std::str::from_utf8(&self.body).map_err(|e| format!("body is not UTF-8: {e}"))
    }
}

fn agent() -> &'static Agent {
    static AGENT: OnceLock<Agent> = OnceLock::new();
    AGENT.get_or_init(|| {
        Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(REQUEST_TIMEOUT))
            .timeout_connect(Some(CONNECT_TIMEOUT))
            // The server is on loopback; a proxy from the environment must not get in the way.
            .proxy(None)
            .max_redirects(0)
            .build()
            .into()
    })
}

/// GET `url`; transport errors (refused, timeout, malformed response) are `Err`, statuses are not.
pub fn try_get(url: &str) -> Result<Reply, String> {
    try_get_within(url, REQUEST_TIMEOUT)
}

/// [`try_get`] that gives up after `timeout` instead of the default bound, for tests that time
/// each answer and need not wait a whole minute to report one that never comes.
pub fn try_get_within(url: &str, timeout: Duration) -> Result<Reply, String> {
    let mut response = agent()
        .get(url)
        .config()
        .timeout_global(Some(timeout))
        .build()
        .call()
        .map_err(|e| format!("GET {url}: {e}"))?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let body = response
        .body_mut()
        .with_config()
        .limit(BODY_LIMIT)
        .read_to_vec()
        .map_err(|e| format!("GET {url}: reading body: {e}"))?;
    Ok(Reply {
        status,
        content_type,
        retry_after,
        body,
    })
}

/// GET `url`, panicking on transport errors.
pub fn get(url: &str) -> Reply {
    try_get(url).unwrap_or_else(|e| panic!("{e}"))
}

/// GET `url` expecting 200 and the given media type.
pub fn get_ok(url: &str, mime: &str) -> Result<Reply, String> {
    let reply = try_get(url)?;
    if reply.status != 200 {
        return Err(format!(
            "GET {url}: status {} (body {:?})",
            reply.status,
            truncate(&reply.text(), 300)
        ));
    }
    if reply.mime().as_deref() != Some(mime) {
        return Err(format!(
            "GET {url}: Content-Type {:?}, wanted {mime}",
            reply.content_type
        ));
    }
    Ok(reply)
}

/// At most `max` bytes of `s` (cut on a character boundary), for error messages.
pub fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
