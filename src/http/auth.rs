//! The gate in front of the routes: who is asking (session cookie, HTTP Basic or a signed link) and whether they may.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;

use base64::Engine;
use parking_lot::Mutex;
use warp::http::{HeaderMap, HeaderValue, header};

use super::HttpError;
use super::urls::Route;
use crate::access::limit::Limiter;
use crate::access::{Accounts, Secret, cookie, link, unix_now};

/// argon2 checks running at once: each holds 19 MiB and a core for tens of milliseconds.
const CONCURRENT_CHECKS: usize = 2;

/// Who a request comes from, once the gate let it through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    /// Nobody has to log in (no `--users`), or the route is open to all (`/healthz`, `/login`,
    /// the player's own scripts).
    Anyone,
    /// A user, by cookie or HTTP Basic.
    User(String),
    /// The holder of a signed link to the file the route names; the token rides along in the
    /// URIs of playlists and pages.
    Link(String),
}

impl Who {
    /// The signed link to carry into relative URIs, if the request came with one.
    pub fn link(&self) -> Option<&str> {
        match self {
            Who::Link(token) => Some(token),
            _ => None,
        }
    }

    /// The logged-in user's name.
    pub fn user(&self) -> Option<&str> {
        match self {
            Who::User(user) => Some(user),
            _ => None,
        }
    }

    /// Whether this viewer may make links and see listings: not a link holder.
    pub fn may_share(&self) -> bool {
        !matches!(self, Who::Link(_))
    }
}

/// Logins: the users file, the key that signs cookies and links, the failed-login limit.
pub struct Gate {
    accounts: Arc<Accounts>,
    secret: Secret,
    limiter: Mutex<Limiter>,
    checks: tokio::sync::Semaphore,
    /// Cookies are marked `Secure` when hlss serves HTTPS.
    secure: bool,
    /// Password checks by outcome, for `/metrics`: [`LOGIN_OUTCOMES`] order.
    logins: [std::sync::atomic::AtomicU64; 3],
}

/// How a password check ended: the password was right, wrong (or the name unknown), or it was
/// not checked because the address had failed too often.
pub const LOGIN_OUTCOMES: [&str; 3] = ["ok", "failed", "limited"];

/// What a request presented, read from its headers and query.
pub struct Presented<'a> {
    pub headers: &'a HeaderMap,
    pub query: &'a str,
    pub address: Option<IpAddr>,
    /// The path and query to come back to after logging in.
    pub path: &'a str,
}

impl Presented<'_> {
    fn address(&self) -> IpAddr {
        self.address.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }

    fn link(&self) -> Option<&str> {
        self.query
            .split('&')
            .find_map(|pair| pair.strip_prefix("t="))
    }

    fn cookie(&self) -> Option<&str> {
        cookie::from_header(
            self.headers
                .get_all(header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok()),
        )
    }

    /// `Some(Err)` for an `Authorization: Basic` header that does not decode.
    fn basic(&self) -> Option<Result<(String, String), ()>> {
        let value = self.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        let (scheme, rest) = value.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok());
        Some(
            decoded
                .and_then(|pair| {
                    pair.split_once(':')
                        .map(|(user, password)| (user.to_owned(), password.to_owned()))
                })
                .ok_or(()),
        )
    }

    /// A browser navigating (it takes HTML) rather than a player or a script.
    fn wants_page(&self) -> bool {
        self.headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|accept| accept.contains("text/html"))
    }
}

impl Gate {
    pub fn new(accounts: Arc<Accounts>, secret: Secret, attempts: u32, secure: bool) -> Gate {
        Gate {
            accounts,
            secret,
            limiter: Mutex::new(Limiter::new(attempts)),
            checks: tokio::sync::Semaphore::new(CONCURRENT_CHECKS),
            secure,
            logins: Default::default(),
        }
    }

    pub fn accounts(&self) -> &Accounts {
        &self.accounts
    }

    pub fn secret(&self) -> &Secret {
        &self.secret
    }

    /// Password checks so far by outcome, in [`LOGIN_OUTCOMES`] order.
    pub fn login_counts(&self) -> [u64; 3] {
        self.logins
            .each_ref()
            .map(|count| count.load(std::sync::atomic::Ordering::Relaxed))
    }

    fn count_login(&self, outcome: usize) {
        self.logins[outcome].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Lets the request through as someone, or says why not. HTTP Basic, when sent, decides
    /// alone (a wrong password is a failed login even beside a cookie); then a valid cookie;
    /// then a signed link, which opens its own file's playlists, segments and player page only.
    pub async fn admit(&self, route: &Route, presented: &Presented<'_>) -> Result<Who, HttpError> {
        if matches!(
            route,
            Route::Health | Route::Login | Route::Logout | Route::Asset(_)
        ) {
            return Ok(Who::Anyone);
        }
        if let Some(basic) = presented.basic() {
            let (user, password) = basic.unwrap_or_default();
            return match self.password(presented.address(), user, password).await? {
                Some(user) => Ok(Who::User(user)),
                None => Err(HttpError::Unauthorized),
            };
        }
        if let Some(value) = presented.cookie()
            && let Some(user) = cookie::check(&self.secret, value, unix_now(), |user| {
                self.accounts.hash_of(user)
            })
        {
            return Ok(Who::User(user));
        }
        if let Some(token) = presented.link() {
            let file = match route {
                Route::Hls(rel, _) | Route::Watch(rel) => rel.to_string(),
                _ => return Err(HttpError::LinkElsewhere),
            };
            link::check(&self.secret, &file, token, unix_now()).map_err(HttpError::Link)?;
            return Ok(Who::Link(token.to_owned()));
        }
        let page = matches!(route, Route::Folder(_) | Route::Watch(_) | Route::Status);
        Err(if page && presented.wants_page() {
            HttpError::LoginRequired(presented.path.to_owned())
        } else {
            HttpError::Unauthorized
        })
    }

    /// Checks a password, counting failures against `address`: `Ok(Some(user))` when it is
    /// theirs, `Ok(None)` when not, 429 once the address has failed too often. Unknown users
    /// and wrong passwords cost the same and answer the same.
    pub async fn password(
        &self,
        address: IpAddr,
        user: String,
        password: String,
    ) -> Result<Option<String>, HttpError> {
        self.limited(address)?;
        // Waiting here is fair: a flood queues behind two checks instead of filling memory.
        let _permit = self.checks.acquire().await;
        // Failures recorded while this one queued count too.
        self.limited(address)?;
        let accounts = self.accounts.clone();
        let name = user.clone();
        let checked = tokio::task::spawn_blocking(move || accounts.verify(&name, &password))
            .await
            .ok()
            .flatten();
        if checked.is_none() {
            self.limiter.lock().failed(address, Instant::now());
            self.count_login(1);
            tracing::info!(%address, user = %user.escape_debug(), "failed login");
        } else {
            self.count_login(0);
        }
        Ok(checked.map(|_| user))
    }

    fn limited(&self, address: IpAddr) -> Result<(), HttpError> {
        let checked = self.limiter.lock().check(address, Instant::now());
        checked.map_err(|wait| {
            self.count_login(2);
            HttpError::TooManyLogins(wait)
        })
    }

    /// The `Set-Cookie` value that logs `user` in.
    pub fn login_cookie(&self, user: &str) -> Option<HeaderValue> {
        let hash = self.accounts.hash_of(user)?;
        let expires = unix_now() + cookie::LIFETIME_SECS;
        let value = cookie::issue(&self.secret, user, &hash, expires);
        self.set_cookie(&value, cookie::LIFETIME_SECS)
    }

    /// The `Set-Cookie` value that logs out.
    pub fn logout_cookie(&self) -> Option<HeaderValue> {
        self.set_cookie("", 0)
    }

    fn set_cookie(&self, value: &str, max_age: u64) -> Option<HeaderValue> {
        let secure = if self.secure { "; Secure" } else { "" };
        HeaderValue::try_from(format!(
            "{}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}",
            cookie::NAME
        ))
        .ok()
    }
}
