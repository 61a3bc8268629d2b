//! More than one machine: nginx with the shipped deploy/nginx/hlss-cache.conf in front of origins on loopback; an origin killed mid-play, cache hits, consistent hashing, origins that share nothing.

mod support;

use std::collections::BTreeMap;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use support::media::{self, cached_tree, lavfi_args, run_recipes};
use support::tools::{self, run_with_timeout};
use support::{Server, http, media_root};

/// The film played through the tier: transcoded (MPEG-4 Part 2 and MP3 in Matroska), long
/// enough to kill its origin in the middle.
const FILM: &str = "film.mkv";
const FILM_SECONDS: f64 = 24.0;
const FPS: f64 = 25.0;
/// When the origin dies: a third of the way in, several segments after the start.
const KILL_AFTER: Duration = Duration::from_secs(8);
const NGINX_START: Duration = Duration::from_secs(10);
/// Lighter transcodes: two origins and ffmpeg share two cores.
const FAST: [&str; 4] = ["--preset", "ultrafast", "--max-height", "240"];

fn film_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let recipes = vec![(
            FILM,
            lavfi_args(
                &[
                    "testsrc2=size=320x240:rate=25",
                    "sine=frequency=440:sample_rate=48000",
                ],
                &format!("-t {FILM_SECONDS} -c:v mpeg4 -q:v 5 -g 50 -c:a libmp3lame -b:a 96k"),
            ),
        )];
        cached_tree("tier", &recipes, |dir| run_recipes(dir, &recipes))
    })
}

/// nginx running the shipped cache-tier configuration in front of `origins`.
struct Tier {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

/// The shipped file with this machine's addresses and folders; panics if a line it fills in is
/// no longer there, so the test cannot drift from what is shipped.
fn shipped_config(origins: &[&Server], port: u16, dir: &Path) -> String {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/nginx/hlss-cache.conf");
    let text = std::fs::read_to_string(&shipped).expect("read deploy/nginx/hlss-cache.conf");
    let mut out = String::new();
    let mut servers_written = false;
    let (mut listens, mut caches, mut logs) = (0, 0, 0);
    for line in text.lines() {
        if line.contains("# EDIT: origin") {
            // The shipped options of an origin line (max_fails, fail_timeout) are kept.
            let options = line
                .split(';')
                .next()
                .and_then(|server| server.trim().splitn(3, ' ').nth(2))
                .unwrap_or_default()
                .to_owned();
            if !servers_written {
                for origin in origins {
                    let address = origin
                        .url("/")
                        .trim_start_matches("http://")
                        .trim_end_matches('/')
                        .to_owned();
                    out.push_str(&format!("    server {address} {options};\n"));
                }
                servers_written = true;
            }
            continue;
        }
        let mut line = line.to_owned();
        if line.contains("# EDIT: address") {
            line = format!("    listen 127.0.0.1:{port};");
            listens += 1;
        }
        if line.contains("/var/cache/nginx/hlss") {
            line = line.replace(
                "/var/cache/nginx/hlss",
                &dir.join("cache").display().to_string(),
            );
            caches += 1;
        }
        if line.contains("/var/log/nginx/hlss-cache.log") {
            line = line.replace(
                "/var/log/nginx/hlss-cache.log",
                &dir.join("access.log").display().to_string(),
            );
            logs += 1;
        }
        out.push_str(&line);
        out.push('\n');
    }
    assert!(
        servers_written && (listens, caches, logs) == (1, 1, 1),
        "the shipped config changed shape"
    );
    out
}

impl Tier {
    fn start(origins: &[&Server]) -> Tier {
        let binary = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| Path::new(p).is_file())
            .expect("nginx not found: install nginx-light (`make test` does)");
        let dir = tempfile::tempdir().expect("nginx folder");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let d = dir.path().display();
        std::fs::write(
            dir.path().join("hlss-cache.conf"),
            shipped_config(origins, port, dir.path()),
        )
        .expect("write the tier's config");
        let conf = format!(
            "daemon off; master_process off; error_log {d}/error.log; pid {d}/nginx.pid;\n\
             events {{}}\n\
             http {{\n\
               client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n\
               include {d}/hlss-cache.conf;\n\
             }}\n"
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).expect("write nginx.conf");
        let mut child = Command::new(binary)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
        let deadline = Instant::now() + NGINX_START;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                if let Some(mut stderr) = child.stderr.take() {
                    let _ = stderr.read_to_string(&mut err);
                }
                panic!("nginx exited with {status}: {err}");
            }
            assert!(Instant::now() < deadline, "nginx did not start listening");
            thread::sleep(Duration::from_millis(50));
        }
        Tier { child, port, dir }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// [`Tier::log`] once it has stopped growing for a moment: nginx writes a request's line
    /// when it has finished it, which can be just after the client has its answer.
    fn settled_log(&self) -> Vec<(String, String, String, String)> {
        let mut last = self.log();
        loop {
            thread::sleep(Duration::from_millis(300));
            let now = self.log();
            if now.len() == last.len() {
                return now;
            }
            last = now;
        }
    }

    /// The access log's lines: (cache status, upstream address, request line, user agent).
    fn log(&self) -> Vec<(String, String, String, String)> {
        let text = std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default();
        text.lines()
            .filter_map(|line| {
                let quoted: Vec<&str> = line.split('"').collect();
                // addr [time] STATUS "UPSTREAM" code bytes "REQUEST" "UA" time
                let status = quoted.first()?.split_whitespace().last()?.to_owned();
                Some((
                    status,
                    quoted.get(1)?.to_string(),
                    quoted.get(3)?.to_string(),
                    quoted.get(5)?.to_string(),
                ))
            })
            .collect()
    }
}

impl Drop for Tier {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn streams(server: &Server) -> f64 {
    let text = http::get(&server.url("/metrics")).text();
    text.lines()
        .find_map(|l| l.strip_prefix("hlss_streams "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Presentation times of one stream's packets in `file`, sorted (`v:0` or `a:0`).
fn packet_times(file: &Path, stream: &str) -> Vec<f64> {
    let run = run_with_timeout(
        Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-select_streams",
                stream,
                "-show_entries",
                "packet=pts_time",
                "-of",
                "csv=p=0",
            ])
            .arg(file),
        Duration::from_secs(60),
    );
    assert!(run.success(), "ffprobe: {}", run.describe());
    // ffprobe's csv ends each line with a comma (and adds blank lines for side data).
    let mut times: Vec<f64> = run
        .stdout
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect();
    times.sort_by(f64::total_cmp);
    times
}

/// The largest and smallest step between consecutive times.
fn steps(times: &[f64]) -> (f64, f64) {
    assert!(times.len() > 1, "{} packets", times.len());
    times
        .windows(2)
        .map(|w| w[1] - w[0])
        .fold((0.0, f64::MAX), |(hi, lo), d| (hi.max(d), lo.min(d)))
}

#[test]
fn an_origin_killed_mid_play_is_replaced_without_a_glitch() {
    let root = film_root();
    let mut origins = [Server::start(root, &FAST), Server::start(root, &FAST)];
    let tier = Tier::start(&[&origins[0], &origins[1]]);
    let url = tier.url(&format!("/hls/{FILM}/index.m3u8"));
    let out = tempfile::tempdir().unwrap();
    let recorded = out.path().join("first.ts");

    // The first viewer plays at the film's own pace and keeps what it receives, timestamps as sent.
    let started = Instant::now();
    let mut first = Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-hide_banner",
            "-v",
            "error",
            "-re",
            "-user_agent",
            "first-viewer",
        ])
        .args([
            "-i", &url, "-map", "0", "-c", "copy", "-copyts", "-f", "mpegts", "-y",
        ])
        .arg(&recorded)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ffmpeg");
    let owner = loop {
        if let Some(i) = (0..2).find(|&i| streams(&origins[i]) >= 1.0) {
            break i;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no origin opened the film"
        );
        thread::sleep(Duration::from_millis(100));
    };
    let other = 1 - owner;
    assert_eq!(streams(&origins[other]), 0.0, "one file, one origin");
    thread::sleep(KILL_AFTER.saturating_sub(started.elapsed()));
    let pid = origins[owner].pid().to_string();
    assert!(
        Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .unwrap()
            .success()
    );
    let killed_at = started.elapsed();

    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = first.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "ffmpeg did not finish");
        thread::sleep(Duration::from_millis(200));
    };
    let mut errors = String::new();
    first
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut errors)
        .unwrap();
    assert!(
        status.success() && errors.trim().is_empty(),
        "ffmpeg: {status} {errors}"
    );
    assert!(
        !origins[owner].is_running(),
        "the owner was killed at {killed_at:?}"
    );
    assert!(
        streams(&origins[other]) >= 1.0,
        "the other origin took the film over"
    );
    let address = |i: usize| {
        origins[i]
            .url("/")
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned()
    };
    let first_log: Vec<_> = tier
        .settled_log()
        .into_iter()
        .filter(|(_, _, _, ua)| ua == "first-viewer")
        .collect();
    let from = |i: usize| {
        first_log
            .iter()
            .filter(|(_, upstream, request, _)| {
                upstream.contains(&address(i)) && request.contains(".ts")
            })
            .count()
    };
    let retried: Vec<_> = first_log
        .iter()
        .filter(|(_, upstream, ..)| upstream.contains(','))
        .collect();
    eprintln!(
        "killed at {killed_at:?}: {} segments from the owner, {} from the other, retried: {retried:?}",
        from(owner),
        from(other)
    );
    for i in [owner, other] {
        assert!(
            first_log
                .iter()
                .any(|(_, upstream, request, _)| upstream.contains(&address(i))
                    && request.contains(".ts")),
            "no segment from origin {i}: {first_log:?}"
        );
    }

    // Every frame, once, in order, with no gap at the switch: steps of one frame (40 ms) and one
    // audio frame (MP3 at 48 kHz: 24 ms), within half of one.
    let video = packet_times(&recorded, "v:0");
    let audio = packet_times(&recorded, "a:0");
    let frame = 1.0 / FPS;
    let (video_max, video_min) = steps(&video);
    assert!(
        video_max < 1.5 * frame && video_min > 0.5 * frame,
        "video steps {video_min:.4}..{video_max:.4} s"
    );
    let span = video.last().unwrap() - video.first().unwrap() + frame;
    assert!(
        (span - FILM_SECONDS).abs() < 0.1,
        "video spans {span:.3} s of {FILM_SECONDS}"
    );
    assert_eq!(video.len() as f64, FILM_SECONDS * FPS, "frames");
    let (audio_max, _) = steps(&audio);
    assert!(audio_max < 0.036, "an audio gap of {audio_max:.4} s");
    let audio_span = audio.last().unwrap() - audio.first().unwrap();
    assert!(
        (audio_span - FILM_SECONDS).abs() < 0.2,
        "audio spans {audio_span:.3} s"
    );

    // A second viewer is served by the cache.
    let played = run_with_timeout(
        Command::new("ffmpeg")
            .args([
                "-nostdin",
                "-hide_banner",
                "-v",
                "error",
                "-user_agent",
                "second-viewer",
            ])
            .args(["-i", &url, "-f", "null", "-"]),
        Duration::from_secs(60),
    );
    assert!(
        played.success() && played.stderr.trim().is_empty(),
        "{}",
        played.describe()
    );
    let second: Vec<_> = tier
        .settled_log()
        .into_iter()
        .filter(|(_, _, _, ua)| ua == "second-viewer")
        .collect();
    let hits = second.iter().filter(|(status, ..)| status == "HIT").count();
    assert!(second.len() > 10, "{second:?}");
    assert!(
        hits * 100 >= second.len() * 95,
        "{hits} hits of {}: {:?}",
        second.len(),
        second
            .iter()
            .filter(|(status, ..)| status != "HIT")
            .collect::<Vec<_>>()
    );
}

/// Which origin the tier sent each path to, by the access log (nginx writes a line when it
/// has finished the request, which may be just after the client has its answer: wait for all).
fn placements(tier: &Tier, paths: &[String]) -> BTreeMap<String, String> {
    for path in paths {
        let _ = http::get(&tier.url(path));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let logged: BTreeMap<String, String> = tier
            .log()
            .into_iter()
            .filter_map(|(_, upstream, request, _)| {
                let path = request.split_whitespace().nth(1)?.to_owned();
                Some((path, upstream))
            })
            .collect();
        if paths.iter().all(|p| logged.contains_key(p)) {
            return logged;
        }
        assert!(
            Instant::now() < deadline,
            "not all of {paths:?} logged: {logged:?}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn one_file_one_origin_and_a_new_origin_takes_only_some_files() {
    let origins: Vec<Server> = (0..3).map(|_| Server::start(media_root(), &[])).collect();
    let address = |i: usize| {
        origins[i]
            .url("/")
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned()
    };
    let two = Tier::start(&[&origins[0], &origins[1]]);
    // Every URL of one file goes where its master playlist went.
    let leaves = ["index.m3u8", "video.m3u8", "0.ts", "subs0.m3u8"];
    for i in 0..8 {
        let paths: Vec<String> = leaves
            .iter()
            .map(|leaf| format!("/hls/film{i}.mkv/{leaf}"))
            .collect();
        let mut all = paths.clone();
        all.push(format!("/watch/film{i}.mkv"));
        let placed = placements(&two, &all);
        let origins_used: std::collections::BTreeSet<_> =
            all.iter().map(|p| placed[p].clone()).collect();
        assert_eq!(origins_used.len(), 1, "film{i}: {placed:?}");
    }
    let files: Vec<String> = (0..40)
        .map(|i| format!("/hls/show/episode{i:02}.mkv/index.m3u8"))
        .collect();
    let before = placements(&two, &files);
    let three = Tier::start(&[&origins[0], &origins[1], &origins[2]]);
    let after = placements(&three, &files);
    let moved: Vec<&String> = files.iter().filter(|f| before[*f] != after[*f]).collect();
    assert!(
        !moved.is_empty() && moved.len() * 100 <= files.len() * 60,
        "{} of {} moved",
        moved.len(),
        files.len()
    );
    for file in &moved {
        assert_eq!(
            after[*file],
            address(2),
            "{file} moved, but not to the new origin"
        );
    }
    let used: std::collections::BTreeSet<_> = before.values().collect();
    assert_eq!(used.len(), 2, "both origins take files: {before:?}");
    eprintln!(
        "a third origin took {} of {} files",
        moved.len(),
        files.len()
    );
}

#[test]
fn origins_need_nothing_shared() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    std::fs::write(&key, [42u8; 32]).unwrap();
    let root = media::long_root();
    let args = ["--secret-file", key.to_str().unwrap()];
    let (a, b) = (Server::start(root, &args), Server::start(root, &args));
    let file = media::DIRECT_LONG;
    // The same plan everywhere: playlists equal but for the viewer session in their URIs.
    let without_session = |text: String| {
        text.lines()
            .map(|l| l.split("?s=").next().unwrap_or(l).to_owned())
            .collect::<Vec<_>>()
            .join("\n")
    };
    for leaf in ["index.m3u8", "video.m3u8"] {
        let path = format!("/hls/{file}/{leaf}");
        assert_eq!(
            without_session(http::get(&a.url(&path)).text()),
            without_session(http::get(&b.url(&path)).text()),
            "{leaf}"
        );
    }
    // Direct-stream segments are the same bytes from any origin, whichever segment each started
    // with, so caches and ETags agree.
    for k in [0, 7, 3, 30] {
        let path = format!("/hls/{file}/{k}.ts");
        let (from_a, from_b) = (http::get(&a.url(&path)), http::get(&b.url(&path)));
        assert_eq!(from_a.status, 200);
        assert!(
            from_a.body == from_b.body,
            "segment {k} differs between origins"
        );
    }
    // A viewer whose requests land on either origin needs no stickiness: a session from one is
    // taken by the other.
    let playlist = http::get(&a.url(&format!("/hls/{file}/video.m3u8"))).text();
    let uris: Vec<&str> = playlist
        .lines()
        .filter(|l| !l.starts_with('#'))
        .take(6)
        .collect();
    for (i, uri) in uris.iter().enumerate() {
        let origin = if i % 2 == 0 { &b } else { &a };
        let reply = http::get(&origin.url(&format!("/hls/{file}/{uri}")));
        assert_eq!(reply.status, 200, "{uri} on origin {}", i % 2);
    }
    // Signed links verify on every origin given the same --secret-file.
    let users = dir.path().join("users");
    std::fs::write(&users, "").unwrap();
    let gated = [
        "--secret-file",
        key.to_str().unwrap(),
        "--users",
        users.to_str().unwrap(),
    ];
    let (c, d) = (Server::start(root, &gated), Server::start(root, &gated));
    let run = run_with_timeout(
        Command::new(env!("CARGO_BIN_EXE_hlss")).args([
            "link",
            file,
            "--secret-file",
            key.to_str().unwrap(),
        ]),
        Duration::from_secs(30),
    );
    assert!(run.success(), "{}", run.describe());
    let link = run.stdout.trim().to_owned();
    for origin in [&c, &d] {
        assert_eq!(http::get(&origin.url(&link)).status, 200);
        assert_eq!(
            http::get(&origin.url(&format!("/hls/{file}/index.m3u8"))).status,
            401
        );
    }
    let played = tools::ffmpeg_play(&d.url(&link)).expect("a link made for one plays on another");
    assert!(played.duration > 90.0, "{played:?}");
}
