//! End-to-end: the ways people really watch long files (issue 11), replayed against the real server.
//!
//! A VOD playlist promises every segment it lists: a 404 or a long wait on one of them is a fatal
//! error in hls.js, Safari, VLC and ffmpeg. Each test plays one viewing session from the issue's
//! table and asserts that every segment request got 200 and a valid segment within
//! [`ANSWER_WITHIN`], reporting every request that did not.

mod support;

use std::ops::RangeInclusive;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use support::media::{LONG, TWO_HOURS, long_copies, long_root, two_hours_root};
use support::{Server, hls, http, ts};

/// The bound on any one answer: a player waiting longer shows a spinner, then gives up.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);
/// How long a request may hang before it is reported as never answered; a player has given up
/// long before, so the session stops there.
const GIVE_UP_AFTER: Duration = Duration::from_secs(20);
/// Segment duration every session is served with.
const SEGMENT: &str = "2";
/// Keeps the long clip quick to transcode on a two-core machine.
const FAST: [&str; 4] = ["--preset", "ultrafast", "--max-height", "240"];
/// Longest 503 body accepted as a short reason for people.
const SHORT_BODY: usize = 200;
/// Failed requests listed in a panic message; the count says how many more there were.
const LISTED_FAILURES: usize = 20;

/// One session at a time: each times its answers, and two cores cannot transcode for several
/// sessions at once without making all of them slow.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A test's turn: holds [`ONE_AT_A_TIME`] and, when dropped, prints how long the test took,
/// passed or failed (shown with --nocapture), to keep an eye on the suite's time budget.
struct Turn {
    _one: MutexGuard<'static, ()>,
    name: &'static str,
    started: Instant,
}

impl Turn {
    fn take(name: &'static str) -> Turn {
        let one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        Turn {
            _one: one,
            name,
            started: Instant::now(),
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        eprintln!(
            "{}: {:.1} s",
            self.name,
            self.started.elapsed().as_secs_f64()
        );
    }
}

/// Starts the server on `path` with `--segment-duration` [`SEGMENT`] and `extra`.
fn start(path: &Path, extra: &[&str]) -> Server {
    let mut args = vec!["--segment-duration", SEGMENT];
    args.extend_from_slice(extra);
    Server::start(path, &args)
}

/// A player watching one file: it opens the VOD playlist, then requests the segments it lists,
/// timing each answer and keeping every failure.
struct Viewer<'s> {
    server: &'s Server,
    case: String,
    /// Every segment's URL, from the playlist (with the viewer's session id).
    urls: Vec<String>,
    requests: usize,
    slowest: Duration,
    failures: Vec<String>,
    /// Why the viewer stopped before the end of its script: no playlist, or an answer that came
    /// after [`ANSWER_WITHIN`] or never (a player has given up by then).
    stopped: Option<&'static str>,
}

impl<'s> Viewer<'s> {
    /// Opens `rel`'s playlist, which must come as a complete VOD playlist within [`ANSWER_WITHIN`].
    fn open(server: &'s Server, case: &str, rel: &str) -> Viewer<'s> {
        let mut viewer = Viewer {
            server,
            case: case.to_owned(),
            urls: Vec::new(),
            requests: 1,
            slowest: Duration::ZERO,
            failures: Vec::new(),
            stopped: Some("no playlist"),
        };
        // The media playlist itself: these viewers are about segments, not the master.
        let url = server.url(&format!("/hls/{rel}/video.m3u8"));
        let started = Instant::now();
        let reply = http::try_get_within(&url, GIVE_UP_AFTER);
        let took = started.elapsed();
        viewer.slowest = took;
        let playlist = reply.and_then(|reply| {
            if reply.status != 200 {
                return Err(status_text(&reply));
            }
            let playlist = hls::parse(reply.utf8()?)?;
            if playlist.playlist_type != "VOD" {
                return Err(format!("#EXT-X-PLAYLIST-TYPE:{}", playlist.playlist_type));
            }
            Ok(playlist)
        });
        match playlist {
            Ok(_) if took > ANSWER_WITHIN => viewer.fail("playlist", "200 but too late", took),
            Ok(playlist) => {
                let base = url.strip_suffix("video.m3u8").expect("a playlist URL");
                viewer.urls = playlist
                    .segments
                    .iter()
                    .map(|s| format!("{base}{}", s.uri))
                    .collect();
                viewer.stopped = None;
            }
            Err(e) => viewer.fail("playlist", &e, took),
        }
        viewer
    }

    /// Segments the playlist lists.
    fn len(&self) -> usize {
        self.urls.len()
    }

    /// Requests each of `segments` in turn, as a player filling its buffer does.
    fn watch(&mut self, segments: impl IntoIterator<Item = usize>) {
        for k in segments {
            if self.stopped.is_some() {
                return;
            }
            let Some(url) = self.urls.get(k) else {
                let listed = format!("the playlist lists {} segments", self.len());
                self.fail(&format!("segment {k}"), &listed, Duration::ZERO);
                continue;
            };
            self.requests += 1;
            let started = Instant::now();
            let reply = http::try_get_within(url, GIVE_UP_AFTER);
            let took = started.elapsed();
            self.slowest = self.slowest.max(took);
            let problem = match reply {
                Err(e) => Some(format!("no answer ({e})")),
                Ok(reply) if reply.status != 200 => Some(status_text(&reply)),
                Ok(reply) if reply.mime().as_deref() != Some(ts::SEGMENT_MIME) => {
                    Some(format!("200 with Content-Type {:?}", reply.content_type))
                }
                Ok(reply) => match ts::check_segment(&reply.body, true) {
                    Err(e) => Some(format!("200 with an invalid segment: {e}")),
                    Ok(_) if took > ANSWER_WITHIN => Some("200 but too late".to_owned()),
                    Ok(_) => None,
                },
            };
            if let Some(problem) = problem {
                self.fail(&format!("segment {k} of {}", self.len()), &problem, took);
            }
        }
    }

    fn fail(&mut self, what: &str, problem: &str, took: Duration) {
        self.failures.push(format!(
            "{}: {what}: {problem} after {:.2} s",
            self.case,
            took.as_secs_f64()
        ));
        if took > ANSWER_WITHIN {
            self.stopped = Some("an answer came too late or never");
        }
    }

    /// Every failure, or a line of figures for the log when there were none.
    fn outcome(&self) -> Result<String, String> {
        let summary = format!(
            "{}: {} of {} requests failed, slowest answer {:.2} s{}",
            self.case,
            self.failures.len(),
            self.requests,
            self.slowest.as_secs_f64(),
            self.stopped
                .map(|why| format!("; stopped early: {why}"))
                .unwrap_or_default()
        );
        if self.failures.is_empty() {
            return Ok(summary);
        }
        let mut text = summary;
        for failure in self.failures.iter().take(LISTED_FAILURES) {
            text.push_str("\n  ");
            text.push_str(failure);
        }
        if self.failures.len() > LISTED_FAILURES {
            text.push_str(&format!(
                "\n  ... and {} more",
                self.failures.len() - LISTED_FAILURES
            ));
        }
        Err(text)
    }

    /// Panics with every failure; prints the figures otherwise (shown with --nocapture).
    fn check(&self) {
        match self.outcome() {
            Ok(summary) => eprintln!("{summary}"),
            Err(failures) => panic!("{failures}"),
        }
    }

    /// A sample of the server's `/metrics` about this viewer's stream, `name{stream="rel"}`.
    fn metric(&self, name: &str, rel: &str) -> f64 {
        let text = http::get(&self.server.url("/metrics")).text();
        let prefix = format!("{name}{{stream=\"{rel}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{}: no {prefix:?} in /metrics:\n{text}", self.case))
    }

    /// Checks that the stream no longer holds all of the `watched` segments, so that the viewer's
    /// seek back really asks for segments the server has dropped. Skipped when the viewer has
    /// stopped: its failures say more than the figures would.
    fn assert_evicted(&self, rel: &str, watched: usize) {
        if self.stopped.is_some() {
            return;
        }
        let held = self.metric("hlss_stream_segments_held", rel);
        let bytes = self.metric("hlss_stream_bytes_held", rel);
        eprintln!(
            "{}: after {watched} segments the stream holds {held} segments, {:.1} MiB",
            self.case,
            bytes / f64::from(1 << 20)
        );
        assert!(
            held < watched as f64,
            "{}: the stream still holds {held} segments after {watched} were watched: nothing was \
             evicted, so the seek back proves nothing",
            self.case
        );
    }
}

/// Prints the figures of every viewer that had no failure, then panics with every failure of the
/// others, so that one failing viewer does not hide what happened to the rest.
fn assert_all(outcomes: &[Result<String, String>]) {
    for summary in outcomes.iter().filter_map(|o| o.as_ref().ok()) {
        eprintln!("{summary}");
    }
    let failures: Vec<&str> = outcomes
        .iter()
        .filter_map(|o| o.as_ref().err())
        .map(String::as_str)
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `status (body)` of a reply that is not 200.
fn status_text(reply: &http::Reply) -> String {
    format!(
        "status {} ({:?})",
        reply.status,
        http::truncate(reply.text().trim_end(), 120)
    )
}

/// Watches `watched` in order with `--stream-memory MEMORY_MIB`, checks that the stream dropped
/// some of those segments, then seeks back to the first and plays six segments from there.
fn watch_then_seek_back(memory_mib: &str, watched: RangeInclusive<usize>) {
    let server = start(
        long_root(),
        &[&FAST[..], &["--stream-memory", memory_mib]].concat(),
    );
    let case = format!("{watched:?}, then back, --stream-memory {memory_mib}");
    let mut viewer = Viewer::open(&server, &case, LONG);
    let back = *watched.start();
    let count = watched.clone().count();
    viewer.watch(watched);
    viewer.assert_evicted(LONG, count);
    viewer.watch(back..back + 6);
    viewer.check();
}

// x264 stays well under the default 3000 kbit/s on the 240p test pattern: segments of the long
// clip are some 360 KB, so 16 MiB holds about 45 of them and 32 MiB about 90.

#[test]
fn watched_5_to_125_then_back_to_5_with_16_mib() {
    let _turn = Turn::take("5..=125 then 5");
    watch_then_seek_back("16", 5..=125);
}

#[test]
fn watched_0_to_150_then_back_to_0_with_32_mib() {
    let _turn = Turn::take("0..=150 then 0");
    watch_then_seek_back("32", 0..=150);
}

/// xorshift64: a fixed seed makes every run jump to the same places, so a failure reproduces.
struct Rng(u64);

impl Rng {
    /// A number in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

#[test]
fn twenty_five_random_jumps_three_segments_each() {
    let _turn = Turn::take("25 random jumps");
    let server = start(long_root(), &FAST);
    let mut viewer = Viewer::open(&server, "25 random jumps", LONG);
    let mut rng = Rng(0x1155_2026);
    let mut jumps = Vec::new();
    for _ in 0..25 {
        // Anywhere, up to the last three segments (the last segment included).
        let k = rng.below(viewer.len().saturating_sub(2).max(1));
        jumps.push(k);
        viewer.watch(k..(k + 3).min(viewer.len()));
    }
    eprintln!("jumped to {jumps:?}");
    viewer.check();
}

/// Run with one transcode place and with two (a two-core machine's default): with one, the jump
/// to the end takes the place of the run that opening the playlist started at segment 0, and
/// that run's stop must not be taken for the end of the media.
#[test]
fn last_three_segments_first_then_last_ten() {
    let _turn = Turn::take("last 3 then last 10");
    let outcomes: Vec<Result<String, String>> = ["1", "2"]
        .into_iter()
        .map(|places| {
            let server = start(
                long_root(),
                &[&FAST[..], &["--max-transcodes", places]].concat(),
            );
            let case = format!("last 3, then last 10, --max-transcodes {places}");
            let mut viewer = Viewer::open(&server, &case, LONG);
            let n = viewer.len();
            viewer.watch(n.saturating_sub(3)..n);
            viewer.watch(n.saturating_sub(10)..n);
            viewer.outcome()
        })
        .collect();
    assert_all(&outcomes);
}

/// The session as it was: 1,400 segments of a two-hour file in order (about 50 s here,
/// the file being tiny), then on to 1500, past every segment made so far, then the last three.
#[test]
fn two_hour_file_1400_in_order_then_1500_and_the_end() {
    let _turn = Turn::take("two hours");
    let server = start(two_hours_root(), &FAST);
    let mut viewer = Viewer::open(&server, "two hours: 0..1400, 1500..1505, last 3", TWO_HOURS);
    let n = viewer.len();
    viewer.watch(0..1400);
    viewer.watch(1500..1505);
    viewer.watch(n.saturating_sub(3)..n);
    viewer.check();
}

/// Four people browse: each opens a different file one second after the other, watches its
/// first segments and moves on. With two transcode places, the third and fourth files find both
/// held by streams whose viewers went quiet; they must wait for one (bounded), not get 503.
#[test]
fn four_files_opened_a_second_apart_with_two_transcodes() {
    let _turn = Turn::take("four files");
    let names = ["a.mp4", "b.mp4", "c.mp4", "d.mp4"];
    let dir = long_copies(&names);
    // Default options otherwise: what a two-core machine runs with.
    let server = start(dir.path(), &["--max-transcodes", "2"]);
    let outcomes: Vec<Result<String, String>> = thread::scope(|s| {
        let viewers: Vec<_> = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let server = &server;
                s.spawn(move || {
                    thread::sleep(Duration::from_secs(i as u64));
                    let mut viewer = Viewer::open(server, &format!("viewer {i} of {name}"), name);
                    viewer.watch(0..3);
                    viewer.outcome()
                })
            })
            .collect();
        viewers
            .into_iter()
            .map(|v| v.join().expect("viewer thread"))
            .collect()
    });
    assert_all(&outcomes);
}

/// Real overload: the only transcode place belongs to a stream someone is watching right now.
/// A second file may be refused, but only as 503 with Retry-After and a short reason, and the
/// viewer who holds the place must never see an error.
#[test]
fn real_overload_refuses_politely_and_never_hurts_the_active_viewer() {
    let _turn = Turn::take("real overload");
    let dir = long_copies(&["a.mp4", "b.mp4"]);
    let server = start(
        dir.path(),
        &[&FAST[..], &["--max-transcodes", "1"]].concat(),
    );
    let stop = AtomicBool::new(false);
    let playing = AtomicBool::new(false);
    let (first, second) = thread::scope(|s| {
        let first = s.spawn(|| {
            let mut viewer = Viewer::open(&server, "active viewer of a.mp4", "a.mp4");
            let mut k = 0;
            while !stop.load(Ordering::Relaxed) && viewer.stopped.is_none() && k < viewer.len() {
                viewer.watch([k]);
                k += 1;
                if k == 3 {
                    playing.store(true, Ordering::Relaxed);
                }
                // Steady requests, as a player keeping its buffer full does.
                thread::sleep(Duration::from_millis(250));
            }
            playing.store(true, Ordering::Relaxed);
            viewer
        });
        while !playing.load(Ordering::Relaxed) {
            thread::sleep(Duration::from_millis(50));
        }
        let asked = Instant::now();
        let second = http::try_get_within(&server.url("/hls/b.mp4/index.m3u8"), GIVE_UP_AFTER);
        let second = (second, asked.elapsed());
        // The active viewer goes on a while after the refusal, which must not disturb it.
        thread::sleep(Duration::from_secs(3));
        stop.store(true, Ordering::Relaxed);
        (first.join().expect("viewer thread"), second)
    });
    let (reply, waited) = second;
    let reply = reply.unwrap_or_else(|e| panic!("second file: no answer: {e}"));
    eprintln!(
        "second file: {} after {:.2} s, Retry-After {:?}, body {:?}",
        reply.status,
        waited.as_secs_f64(),
        reply.retry_after,
        reply.text()
    );
    assert!(
        waited <= ANSWER_WITHIN,
        "second file: {} only after {:.2} s",
        reply.status,
        waited.as_secs_f64()
    );
    match reply.status {
        200 => {}
        503 => {
            assert!(
                reply
                    .retry_after
                    .as_deref()
                    .is_some_and(|v| v.trim().parse::<u32>().is_ok()),
                "503 without a numeric Retry-After: {:?}",
                reply.retry_after
            );
            let body = reply.text();
            assert!(
                body.lines().count() == 1
                    && body.len() <= SHORT_BODY
                    && body.chars().any(char::is_alphabetic),
                "503 body is not one short line for people: {body:?}"
            );
        }
        _ => panic!("second file: {}", status_text(&reply)),
    }
    assert!(
        first.requests > 4,
        "the active viewer made only {} requests",
        first.requests
    );
    first.check();
}
