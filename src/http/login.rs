//! The login form (`/login`) and logging out (`/logout`): browsers get a signed session cookie.

use bytes::Bytes;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use warp::http::{HeaderValue, Method, Response, StatusCode, header};

use super::auth::Gate;
use super::pages::escape;
use super::{App, HttpError, Request};

/// Largest login form body read.
pub const MAX_FORM_BYTES: usize = 4096;

/// The login form, coming back to `back` (a path and query on this server) afterwards.
pub fn url(back: &str) -> String {
    format!(
        "/login?next={}",
        utf8_percent_encode(back, NON_ALPHANUMERIC)
    )
}

/// `next` if it is a path on this server; `/` otherwise, so the form cannot send anyone away.
fn local(next: &str) -> &str {
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next.chars().any(char::is_control);
    if local { next } else { "/" }
}

/// `/login`: the form (GET) or a login (POST). Without `--users` there is nothing to log in to.
pub async fn answer(app: &App, request: &Request<'_>) -> Result<Response<Bytes>, HttpError> {
    let gate = app.gate.as_ref().ok_or(HttpError::NotFound)?;
    let title = app.library.title();
    if request.method != Method::POST {
        let next = form_value(request.query.as_bytes(), "next").unwrap_or_default();
        return Ok(page(StatusCode::OK, &title, local(&next), None));
    }
    let body = request.body.as_ref().ok_or(HttpError::BodyTooLarge)?;
    let user = form_value(body, "user").unwrap_or_default();
    let password = form_value(body, "password").unwrap_or_default();
    let next = form_value(body, "next").unwrap_or_default();
    let next = local(&next);
    let address = request.address.unwrap_or([0, 0, 0, 0].into());
    match gate.password(address, user, password).await {
        Ok(Some(user)) => {
            tracing::info!(%address, user = %user.escape_debug(), "logged in");
            let mut response = see_other(next);
            if let Some(cookie) = gate.login_cookie(&user) {
                response.headers_mut().insert(header::SET_COOKIE, cookie);
            }
            Ok(response)
        }
        Ok(None) => Ok(page(
            StatusCode::UNAUTHORIZED,
            &title,
            next,
            Some("Wrong name or password."),
        )),
        Err(HttpError::TooManyLogins(wait)) => {
            let mut response = page(
                StatusCode::TOO_MANY_REQUESTS,
                &title,
                next,
                Some("Too many failed logins from this address. Try again in a minute."),
            );
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from((wait.as_secs_f64().ceil() as u64).max(1)),
            );
            Ok(response)
        }
        Err(err) => Err(err),
    }
}

/// `POST /logout`: forgets the cookie and shows the form.
pub fn logout(gate: Option<&Gate>) -> Result<Response<Bytes>, HttpError> {
    let gate = gate.ok_or(HttpError::NotFound)?;
    let mut response = see_other("/login");
    if let Some(cookie) = gate.logout_cookie() {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

fn see_other(to: &str) -> Response<Bytes> {
    Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, to)
        .header(header::CACHE_CONTROL, "no-store")
        .body(Bytes::new())
        .unwrap_or_default()
}

/// The value of `name` in a form body or query string.
fn form_value(body: &[u8], name: &str) -> Option<String> {
    form_urlencoded::parse(body)
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:22rem;margin:4rem auto;padding:0 1rem;color:#222}\
h1{font-size:1.3rem}label{display:block;margin:.8rem 0}input{display:block;width:100%;box-sizing:border-box;\
padding:.4rem;margin-top:.2rem;font-size:1rem}button{padding:.4rem 1.2rem;font-size:1rem}.error{color:#b00}";

/// The form. A failed login is answered 401 without a Basic challenge: browsers would put
/// their own password dialog over the form.
fn page(status: StatusCode, title: &str, next: &str, message: Option<&str>) -> Response<Bytes> {
    let message = message
        .map(|m| {
            format!(
                "<p class=\"error\" id=\"message\" role=\"alert\">{}</p>\n",
                escape(m)
            )
        })
        .unwrap_or_default();
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Log in - {title}</title><link rel=\"icon\" href=\"data:,\"><style>{STYLE}</style>\
         </head><body>\n<main>\n<h1>{title}</h1>\n{message}\
         <form method=\"post\" action=\"/login\">\n\
         <input type=\"hidden\" name=\"next\" value=\"{next}\">\n\
         <label>Name <input name=\"user\" id=\"user\" autocomplete=\"username\" required autofocus></label>\n\
         <label>Password <input name=\"password\" id=\"password\" type=\"password\" \
         autocomplete=\"current-password\" required></label>\n\
         <button type=\"submit\" id=\"login\">Log in</button>\n</form>\n</main>\n</body></html>\n",
        title = escape(title),
        next = escape(next),
    );
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .header(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        )
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .body(Bytes::from(html))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comes_back_only_to_this_server() {
        assert_eq!(local("/browse/a%20b/?x=1"), "/browse/a%20b/?x=1");
        for away in [
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example",
            "",
            "x",
            "/a\nb",
        ] {
            assert_eq!(local(away), "/", "{away}");
        }
        assert_eq!(url("/watch/a b"), "/login?next=%2Fwatch%2Fa%20b");
        assert_eq!(
            form_value(b"next=%2Fwatch%2Fa%20b", "next").as_deref(),
            Some("/watch/a b")
        );
        assert_eq!(
            form_value(b"user=al+ice&password=p%26w%3D", "password").as_deref(),
            Some("p&w=")
        );
    }

    #[test]
    fn the_form_escapes_what_it_echoes() {
        let response = page(StatusCode::OK, "<Films>", "/\"><script>", None);
        let html = std::str::from_utf8(response.body()).unwrap();
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;Films&gt;"));
    }
}
