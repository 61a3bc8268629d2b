//! Logins and signed links: every route against every kind of credential, ffmpeg by a signed link, the login form, brute force, a users file changed while running.

mod support;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use support::tools::{self, run_with_timeout};
use support::{Server, media, media_root, server};

const TOOL_TIMEOUT: Duration = Duration::from_secs(30);
const PASSWORD: &str = "correct horse battery";

/// A response as the tests look at it.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn agent() -> &'static ureq::Agent {
    static AGENT: OnceLock<ureq::Agent> = OnceLock::new();
    AGENT.get_or_init(|| {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .proxy(None)
            .max_redirects(0)
            .build()
            .into()
    })
}

/// One request; `form` makes it a POST of that urlencoded body.
fn call(url: &str, headers: &[(&str, &str)], form: Option<&str>) -> Answer {
    let mut response = match form {
        Some(body) => {
            let mut request = agent()
                .post(url)
                .header("Content-Type", "application/x-www-form-urlencoded");
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            request.send(body.as_bytes())
        }
        None => {
            let mut request = agent().get(url);
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            request.call()
        }
    }
    .unwrap_or_else(|e| panic!("{url}: {e}"));
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = response.body_mut().read_to_string().unwrap_or_default();
    Answer {
        status: response.status().as_u16(),
        headers,
        body,
    }
}

fn get(url: &str, headers: &[(&str, &str)]) -> Answer {
    call(url, headers, None)
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// `hlss user add NAME` with the password on standard input: the line it prints.
fn user_line(name: &str, password: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hlss"))
        .args(["user", "add", name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run hlss user add");
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "hlss user add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8(out.stdout).unwrap();
    assert!(line.starts_with(&format!("{name}:$argon2id$")), "{line}");
    line
}

/// `hlss link PATH --expires EXPIRES --secret-file KEY`: the path it prints.
fn link(key: &Path, file: &str, expires: &str) -> String {
    let run = run_with_timeout(
        Command::new(env!("CARGO_BIN_EXE_hlss"))
            .args(["link", file, "--expires", expires, "--secret-file"])
            .arg(key),
        TOOL_TIMEOUT,
    );
    assert!(run.success(), "hlss link: {}", run.describe());
    let path = run.stdout.trim().to_owned();
    assert!(
        path.starts_with("/hls/") && path.contains("/index.m3u8?t="),
        "{path}"
    );
    path
}

/// A users file with alice, a key, and their folder.
struct Keys {
    dir: tempfile::TempDir,
}

impl Keys {
    fn new() -> Keys {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("users"), user_line("alice", PASSWORD)).unwrap();
        let mut key = [0u8; 32];
        for (i, b) in key.iter_mut().enumerate() {
            *b = (i as u8)
                .wrapping_mul(97)
                .wrapping_add(std::process::id() as u8);
        }
        std::fs::write(dir.path().join("key"), key).unwrap();
        Keys { dir }
    }

    fn users(&self) -> PathBuf {
        self.dir.path().join("users")
    }

    fn key(&self) -> PathBuf {
        self.dir.path().join("key")
    }

    fn start(&self, extra: &[&str]) -> Server {
        let users = self.users();
        let key = self.key();
        let mut args = vec![
            "--users",
            users.to_str().unwrap(),
            "--secret-file",
            key.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        Server::start(media_root(), &args)
    }
}

/// The cookie a form login sets, as `name=value`.
fn log_in(server: &Server, user: &str, password: &str) -> String {
    let form = format!(
        "user={user}&password={}&next=%2F",
        password.replace(' ', "+")
    );
    let answer = call(&server.url("/login"), &[], Some(&form));
    assert_eq!(answer.status, 303, "{answer:?}");
    let cookie = answer.header("set-cookie").expect("a cookie");
    cookie.split(';').next().unwrap().to_owned()
}

fn encoded(rel: &str) -> String {
    rel.split('/')
        .map(|c| {
            percent_encoding::utf8_percent_encode(c, percent_encoding::NON_ALPHANUMERIC).to_string()
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[test]
fn every_route_answers_every_credential_as_it_must() {
    let keys = Keys::new();
    // Twenty wrong logins in this table: the limit is tested on its own below.
    let server = keys.start(&["--login-attempts", "1000"]);
    let clip = media::MP4.rel;
    let other = encoded(media::AWKWARD.rel);
    let routes: Vec<(String, &str)> = vec![
        ("/".into(), "listing"),
        (
            format!("/browse/{}/", encoded(media::AWKWARD_DIR)),
            "folder",
        ),
        (format!("/watch/{clip}"), "player"),
        (format!("/hls/{clip}/index.m3u8"), "master"),
        (format!("/hls/{clip}/video.m3u8"), "media playlist"),
        (format!("/hls/{clip}/0.ts"), "segment"),
        (format!("/hls/{other}/index.m3u8"), "another file"),
        ("/status".into(), "status"),
        ("/metrics".into(), "metrics"),
        (format!("/link/{clip}"), "link maker"),
        ("/healthz".into(), "health"),
        ("/login".into(), "login form"),
        ("/assets/player.js".into(), "player script"),
    ];
    let token = |path: &str| path.split_once("?t=").unwrap().1.to_owned();
    let good = token(&link(&keys.key(), clip, "1h"));
    let elsewhere = token(&link(&keys.key(), media::EP2, "1h"));
    let soon = token(&link(&keys.key(), clip, "1s"));
    let mut tampered = good.clone().into_bytes();
    let last = tampered.len() - 1;
    tampered[last] = if tampered[last] == b'0' { b'1' } else { b'0' };
    let tampered = String::from_utf8(tampered).unwrap();
    let cookie = log_in(&server, "alice", PASSWORD);
    // The one-second link has certainly expired by now (expiry is in whole seconds).
    std::thread::sleep(Duration::from_millis(2100));

    let right = basic("alice", PASSWORD);
    let wrong = basic("alice", "correct horse battery!");
    let unknown = basic("mallory", PASSWORD);
    // Statuses for the routes above, in order; the last three are open to everyone.
    let open = [200, 200, 200];
    /// A credential: its name, headers, link token, and the statuses of the gated routes.
    type Row<'a> = (&'a str, Vec<(&'a str, String)>, Option<&'a str>, [u16; 10]);
    let table: Vec<Row> = vec![
        ("nothing", vec![], None, [401; 10]),
        (
            "wrong password",
            vec![("Authorization", wrong)],
            None,
            [401; 10],
        ),
        (
            "unknown user",
            vec![("Authorization", unknown)],
            None,
            [401; 10],
        ),
        ("Basic", vec![("Authorization", right)], None, [200; 10]),
        ("cookie", vec![("Cookie", cookie.clone())], None, [200; 10]),
        (
            "signed link",
            vec![],
            Some(&good),
            [403, 403, 200, 200, 200, 200, 403, 403, 403, 403],
        ),
        ("expired link", vec![], Some(&soon), [403; 10]),
        ("another file's link", vec![], Some(&elsewhere), [403; 10]),
        ("tampered link", vec![], Some(&tampered), [403; 10]),
    ];
    let mut wrong_answers = Vec::new();
    for (credential, headers, link, gated) in &table {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let expected = gated.iter().chain(&open);
        for ((path, what), want) in routes.iter().zip(expected) {
            let url = match link {
                Some(token) => format!("{}?t={token}", server.url(path)),
                None => server.url(path),
            };
            let answer = get(&url, &headers);
            if answer.status != *want {
                wrong_answers.push(format!(
                    "{credential} on {what} ({path}): {} instead of {want}: {:?}",
                    answer.status,
                    answer.body.lines().next()
                ));
            }
            // What a login or link opened is not for shared caches.
            let cache = answer.header("cache-control").unwrap_or_default();
            if answer.status == 200 && !path.starts_with("/assets/") && cache.contains("public") {
                wrong_answers.push(format!("{credential} on {what}: Cache-Control {cache}"));
            }
            if answer.status == 401 {
                let challenge = answer.header("www-authenticate").unwrap_or_default();
                if !challenge.starts_with("Basic realm=\"hlss\"") {
                    wrong_answers.push(format!("{credential} on {what}: challenge {challenge:?}"));
                }
            }
        }
    }
    assert!(wrong_answers.is_empty(), "\n{}", wrong_answers.join("\n"));

    // A browser without a login is sent to the form, and comes back after it.
    let page = get(
        &server.url(&format!("/watch/{clip}")),
        &[("Accept", "text/html")],
    );
    assert_eq!(page.status, 303);
    assert_eq!(
        page.header("location"),
        Some(
            format!(
                "/login?next=%2Fwatch%2F{}",
                encoded(clip).replace('.', "%2E")
            )
            .as_str()
        )
    );
    let player = get(
        &server.url(&format!("/hls/{clip}/0.ts")),
        &[("Accept", "text/html")],
    );
    assert_eq!(player.status, 401, "media answers 401, not a redirect");
}

fn plain_path() -> String {
    format!("/hls/{}/index.m3u8", media::MP4.rel)
}

#[test]
fn players_play_by_signed_link_and_by_basic() {
    let keys = Keys::new();
    let server = keys.start(&[]);
    let path = link(&keys.key(), media::MP4.rel, "24h");
    let token = path.split_once("?t=").unwrap().1;
    let master = get(&server.url(&path), &[]);
    assert_eq!(master.status, 200, "{master:?}");
    let uris: Vec<&str> = master
        .body
        .lines()
        .filter(|l| !l.starts_with('#'))
        .collect();
    assert!(!uris.is_empty());
    for uri in &uris {
        assert!(uri.contains(&format!("t={token}")), "{uri}");
        let media = get(&server.url(&format!("/hls/{}/{uri}", media::MP4.rel)), &[]);
        assert_eq!(media.status, 200, "{uri}");
        for segment in media.body.lines().filter(|l| !l.starts_with('#')) {
            assert!(segment.contains(&format!("t={token}")), "{segment}");
        }
    }
    let played = tools::ffmpeg_play(&server.url(&path)).expect("ffmpeg plays the link");
    let expected = f64::from(media::CLIP_SECONDS);
    assert!(
        (played.duration - expected).abs() < 0.5 && played.video_frames > 0,
        "{played:?}"
    );
    // The same link for a browser: the player page, which plays by it.
    let run = run_with_timeout(
        Command::new(env!("CARGO_BIN_EXE_hlss"))
            .args(["link", media::MP4.rel, "--page", "--secret-file"])
            .arg(keys.key()),
        TOOL_TIMEOUT,
    );
    let page = run.stdout.trim();
    assert!(
        page.starts_with(&format!("/watch/{}?t=", media::MP4.rel)),
        "{page}"
    );
    let html = get(&server.url(page), &[]);
    assert_eq!(html.status, 200);
    assert!(
        html.body.contains("index.m3u8?t="),
        "the page plays by its link"
    );
    // Players that take a name and password in the URL send them as HTTP Basic.
    let with_password = server.url(&plain_path()).replacen(
        "http://",
        &format!("http://alice:{}@", PASSWORD.replace(' ', "%20")),
        1,
    );
    let by_basic = tools::ffmpeg_play(&with_password).expect("ffmpeg plays with Basic");
    assert!((by_basic.duration - expected).abs() < 0.5, "{by_basic:?}");
    tools::gst_play(&with_password).expect("GStreamer plays with Basic");
    // Without the link ffmpeg gets nothing.
    let plain = plain_path();
    assert!(tools::ffmpeg_play(&server.url(&plain)).is_err());
}

#[test]
fn the_login_form_answers_alike_sets_a_careful_cookie_and_logs_out() {
    let keys = Keys::new();
    let server = keys.start(&["--login-attempts", "1000"]);
    let form = server.url("/login");
    let wrong = call(&form, &[], Some("user=alice&password=nope&next=%2Fstatus"));
    let unknown = call(
        &form,
        &[],
        Some("user=mallory&password=nope&next=%2Fstatus"),
    );
    assert_eq!((wrong.status, unknown.status), (401, 401));
    assert_eq!(wrong.body, unknown.body, "the same page for both");
    assert!(wrong.body.contains("Wrong name or password."));
    assert!(wrong.header("set-cookie").is_none());

    let right = call(
        &form,
        &[],
        Some(&format!(
            "user=alice&password={}&next=%2Fstatus",
            PASSWORD.replace(' ', "+")
        )),
    );
    assert_eq!(right.status, 303);
    assert_eq!(right.header("location"), Some("/status"));
    let set = right.header("set-cookie").unwrap();
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=1209600"] {
        assert!(set.contains(attribute), "{set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP: {set}");
    let cookie = set.split(';').next().unwrap();
    let listing = get(&server.url("/"), &[("Cookie", cookie)]);
    assert_eq!(listing.status, 200);
    assert!(
        listing
            .body
            .contains("alice <button type=\"submit\" id=\"logout\">")
    );

    // Somewhere else after logging in is not on offer.
    let away = call(
        &form,
        &[],
        Some(&format!(
            "user=alice&password={}&next=https://evil.example/",
            PASSWORD.replace(' ', "+")
        )),
    );
    assert_eq!(away.header("location"), Some("/"));

    let out = call(&server.url("/logout"), &[("Cookie", cookie)], Some(""));
    assert_eq!(out.status, 303);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    // A form body past 4 KiB is refused before it is read whole.
    let big = format!("user=alice&password={}", "x".repeat(5000));
    assert_eq!(call(&form, &[], Some(&big)).status, 413);
    // GET on /logout: it only takes a POST.
    assert_eq!(get(&server.url("/logout"), &[]).status, 405);
}

#[test]
fn brute_force_gets_429_and_logged_in_viewers_carry_on() {
    let keys = Keys::new();
    let server = keys.start(&[]);
    let cookie = log_in(&server, "alice", PASSWORD);
    let url = server.url("/");
    let wrong = basic("alice", "guess");
    for i in 0..10 {
        let answer = get(&url, &[("Authorization", &wrong)]);
        assert_eq!(answer.status, 401, "attempt {i}");
    }
    let answer = get(&url, &[("Authorization", &wrong)]);
    assert_eq!(answer.status, 429, "{answer:?}");
    let wait: u64 = answer.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    // The right password waits too, by Basic or by the form: guessing must stop, not just fail.
    assert_eq!(
        get(&url, &[("Authorization", &basic("alice", PASSWORD))]).status,
        429
    );
    let form = format!("user=alice&password={}", PASSWORD.replace(' ', "+"));
    let by_form = call(&server.url("/login"), &[], Some(&form));
    assert_eq!(by_form.status, 429);
    assert!(by_form.header("retry-after").is_some());
    // Someone already logged in watches on.
    assert_eq!(get(&url, &[("Cookie", &cookie)]).status, 200);
    // Operators see it: one login by the form, ten failures, three refusals.
    let metrics = get(&server.url("/metrics"), &[("Cookie", &cookie)]).body;
    for sample in [
        "hlss_logins_total{outcome=\"ok\"} 1\n",
        "hlss_logins_total{outcome=\"failed\"} 10\n",
        "hlss_logins_total{outcome=\"limited\"} 3\n",
    ] {
        assert!(metrics.contains(sample), "{sample} in {metrics}");
    }
    assert_eq!(get(&server.url("/healthz"), &[]).status, 200);
}

#[test]
fn unknown_users_and_wrong_passwords_take_the_same_time() {
    let keys = Keys::new();
    let server = keys.start(&["--login-attempts", "1000"]);
    let url = server.url("/status");
    let wrong = basic("alice", "nope");
    let unknown = basic("nobody", "nope");
    let time = |credential: &str| {
        let started = Instant::now();
        let answer = get(&url, &[("Authorization", credential)]);
        assert_eq!(answer.status, 401);
        started.elapsed()
    };
    // One of each in turn, so a busy moment of the machine falls on both alike.
    let (mut wrong_times, mut unknown_times) = (Vec::new(), Vec::new());
    for _ in 0..15 {
        wrong_times.push(time(&wrong));
        unknown_times.push(time(&unknown));
    }
    wrong_times.sort();
    unknown_times.sort();
    let (wrong_time, unknown_time) = (wrong_times[7], unknown_times[7]);
    let ratio = unknown_time.as_secs_f64() / wrong_time.as_secs_f64();
    // Skipping the hash for unknown names makes this ratio about 0.02; equal work makes it 1.
    assert!(
        (0.4..2.5).contains(&ratio),
        "unknown {unknown_time:?} vs wrong password {wrong_time:?}"
    );
}

#[test]
fn the_users_file_changed_while_running_takes_effect() {
    let keys = Keys::new();
    // Bob knocks until he is let in: these failures are not what is tested here.
    let server = keys.start(&["--login-attempts", "1000"]);
    let url = server.url("/");
    let alice_cookie = log_in(&server, "alice", PASSWORD);
    let bob = basic("bob", "bobs password");
    assert_eq!(get(&url, &[("Authorization", &bob)]).status, 401);

    // Bob joins; alice changes her password: her old sessions end with it.
    let lines = format!(
        "{}{}",
        user_line("alice", "new one"),
        user_line("bob", "bobs password")
    );
    std::fs::write(keys.users(), lines).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while get(&url, &[("Authorization", &bob)]).status != 200 {
        assert!(Instant::now() < deadline, "bob never got in");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(get(&url, &[("Cookie", &alice_cookie)]).status, 401);
    assert_eq!(
        get(&url, &[("Authorization", &basic("alice", PASSWORD))]).status,
        401
    );
    assert_eq!(
        get(&url, &[("Authorization", &basic("alice", "new one"))]).status,
        200
    );

    // A broken file is refused and the users read before stay.
    std::fs::write(keys.users(), "bob has no hash\n").unwrap();
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(get(&url, &[("Authorization", &bob)]).status, 200);
    assert!(server.stderr_text().contains("line 1: expected name:hash"));
}

#[test]
fn users_open_the_port_and_bad_setups_are_one_line_errors() {
    let keys = Keys::new();
    // With users, listening beyond loopback needs no --open.
    let users = keys.users();
    let mut cmd = server::command(
        media_root(),
        "0.0.0.0:0",
        &["--users", users.to_str().unwrap()],
    );
    let run = {
        cmd.env("RUST_LOG", "hlss=info");
        let mut child = cmd.spawn().unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        let _ = child.kill();
        let _ = child.wait();
        line
    };
    assert!(
        run.starts_with("hlss: listening on http://0.0.0.0:"),
        "{run}"
    );

    let dir = keys.dir.path();
    std::fs::write(dir.join("short"), b"12345").unwrap();
    std::fs::write(dir.join("broken"), b"alice\n").unwrap();
    let hlss = env!("CARGO_BIN_EXE_hlss");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--users".into(), dir.join("none").display().to_string()],
            "cannot read the users file",
        ),
        (
            vec!["--users".into(), dir.join("broken").display().to_string()],
            "line 1: expected name:hash",
        ),
        (
            vec![
                "--users".into(),
                users.display().to_string(),
                "--secret-file".into(),
                dir.join("short").display().to_string(),
            ],
            "holds 5 bytes; it needs at least 32",
        ),
        (
            vec![
                "link".into(),
                "../etc/passwd".into(),
                "--secret-file".into(),
                keys.key().display().to_string(),
            ],
            "is not a file's path in the library",
        ),
        (
            vec![
                "link".into(),
                "a.mp4".into(),
                "--expires".into(),
                "400days".into(),
                "--secret-file".into(),
                keys.key().display().to_string(),
            ],
            "at most a year",
        ),
        (
            vec!["user".into(), "add".into(), "a:b".into()],
            "a user name is 1 to 64",
        ),
    ];
    for (mut args, says) in cases {
        if args[0].starts_with("--") {
            args.push(media_root().display().to_string());
        }
        let run = run_with_timeout(
            Command::new(hlss).args(&args).stdin(Stdio::null()),
            TOOL_TIMEOUT,
        );
        assert!(!run.success(), "{args:?} started");
        let stderr = run.stderr.trim();
        assert!(
            stderr.contains(says) && stderr.lines().count() == 1,
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn cookies_are_secure_under_tls() {
    let keys = Keys::new();
    let (cert, key) = tools::self_signed(keys.dir.path(), "localhost");
    let server = keys.start(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    let run = run_with_timeout(
        Command::new("curl")
            .args(["-sk", "-o", "/dev/null", "-D", "-", "--data"])
            .arg(format!(
                "user=alice&password={}",
                PASSWORD.replace(' ', "+")
            ))
            .arg(server.url("/login")),
        TOOL_TIMEOUT,
    );
    let cookie = run
        .stdout
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("no cookie: {}", run.describe()))
        .to_owned();
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
}

#[test]
fn the_metrics_port_needs_no_login_and_the_public_one_does() {
    let keys = Keys::new();
    let users = keys.users();
    let mut child = server::command(
        media_root(),
        "127.0.0.1:0",
        &[
            "--users",
            users.to_str().unwrap(),
            "--metrics-listen",
            "127.0.0.1:0",
        ],
    )
    .spawn()
    .expect("hlss starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    let mut base = |prefix: &str| {
        let line = lines.next().and_then(Result::ok).unwrap_or_default();
        line.strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix('/'))
            .map(|host| format!("http://{host}"))
            .unwrap_or_else(|| panic!("wanted {prefix:?}, got {line:?}"))
    };
    let public = base("hlss: listening on http://");
    let admin = base("hlss: metrics and status on http://");
    let status = |url: String| get(&url, &[]).status;
    let statuses = [
        status(format!("{public}/metrics")),
        status(format!("{public}/")),
        status(format!("{public}/healthz")),
        status(format!("{admin}/metrics")),
        status(format!("{admin}/status")),
        status(format!("{admin}/")),
    ];
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(statuses, [404, 401, 200, 200, 200, 404]);
}

/// Reads `out` until `want` has appeared in what was read, or panics after 10 s.
fn read_until(out: &std::sync::mpsc::Receiver<String>, seen: &mut String, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !seen.contains(want) {
        let left = deadline.saturating_duration_since(Instant::now());
        match out.recv_timeout(left) {
            Ok(chunk) => seen.push_str(&chunk),
            Err(_) => panic!("no {want:?} in {seen:?}"),
        }
    }
}

#[test]
fn user_add_asks_twice_on_a_terminal_without_echo() {
    // `script` gives hlss a terminal (a pseudo-terminal) as people have when they type.
    let mut child = Command::new("script")
        .args([
            "-qec",
            &format!("{} user add tty-user", env!("CARGO_BIN_EXE_hlss")),
            "/dev/null",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("script (util-linux)");
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0
                || tx
                    .send(String::from_utf8_lossy(&buf[..n]).into_owned())
                    .is_err()
            {
                break;
            }
        }
    });
    let mut seen = String::new();
    let mut stdin = child.stdin.take().unwrap();
    read_until(&rx, &mut seen, "Password for tty-user: ");
    writeln!(stdin, "typed secret").unwrap();
    read_until(&rx, &mut seen, "Again: ");
    writeln!(stdin, "typed secret").unwrap();
    read_until(&rx, &mut seen, "tty-user:$argon2id$");
    let _ = child.wait();
    // Everything else it wrote, up to the end of its output.
    while let Ok(chunk) = rx.recv_timeout(Duration::from_secs(5)) {
        seen.push_str(&chunk);
    }
    assert!(
        !seen.contains("typed secret"),
        "the password was echoed: {seen:?}"
    );
    let line = seen
        .lines()
        .find(|l| l.starts_with("tty-user:"))
        .unwrap()
        .trim_end_matches('\r')
        .to_owned();
    // The line it printed logs in with what was typed.
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    std::fs::write(&users, format!("{line}\n")).unwrap();
    let server = Server::start(media_root(), &["--users", users.to_str().unwrap()]);
    let typed = basic("tty-user", "typed secret");
    assert_eq!(
        get(&server.url("/"), &[("Authorization", &typed)]).status,
        200
    );
}

#[test]
fn behind_a_trusted_proxy_each_client_has_its_own_limit() {
    let keys = Keys::new();
    let wrong = basic("alice", "guess");
    let knock = |server: &Server, client: &str| {
        get(
            &server.url("/"),
            &[("Authorization", &wrong), ("X-Forwarded-For", client)],
        )
        .status
    };
    // nginx on this machine forwards for many people: each is limited alone.
    let proxied = keys.start(&["--trusted-proxy", "127.0.0.1,10.0.0.0/8"]);
    for _ in 0..10 {
        assert_eq!(knock(&proxied, "198.51.100.7"), 401);
    }
    assert_eq!(knock(&proxied, "198.51.100.7"), 429);
    assert_eq!(
        knock(&proxied, "198.51.100.8"),
        401,
        "someone else behind the same proxy"
    );
    // A client cannot dodge the limit by writing the header itself: without --trusted-proxy it
    // is ignored.
    let direct = keys.start(&[]);
    for i in 0..10 {
        assert_eq!(knock(&direct, &format!("192.0.2.{i}")), 401);
    }
    assert_eq!(knock(&direct, "192.0.2.200"), 429);
}
