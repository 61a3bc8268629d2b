//! HTTPS: certificates made with openssl at test time; HTTP/2 and HTTP/1.1 by ALPN, ffmpeg playing over TLS, a renewed certificate taken on SIGHUP.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::tools::{self, run_with_timeout};
use support::{Server, media, media_root, server};

const TOOL_TIMEOUT: Duration = Duration::from_secs(30);

fn certificate(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    tools::self_signed(dir, name)
}

fn start(cert: &Path, key: &Path) -> Server {
    let args = [
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ];
    let mut cmd = server::command(media_root(), "127.0.0.1:0", &args);
    cmd.env("RUST_LOG", "hlss=debug");
    Server::start_command(cmd, media_root())
}

/// curl's `HTTP-version status` for `url` with `flag` (`--http2`, `--http1.1`).
fn curl(url: &str, flag: &str) -> String {
    let run = run_with_timeout(
        Command::new("curl")
            .args([
                "-sk",
                flag,
                "-o",
                "/dev/null",
                "-w",
                "%{http_version} %{http_code}",
            ])
            .arg(url),
        TOOL_TIMEOUT,
    );
    run.stdout.trim().to_owned()
}

/// The CN of the certificate the server at `url` presents now.
fn presented(url: &str) -> String {
    let host = url
        .trim_start_matches("https://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let run = run_with_timeout(
        Command::new("sh").arg("-c").arg(format!(
            "openssl s_client -connect {host} </dev/null 2>/dev/null | openssl x509 -noout -subject"
        )),
        TOOL_TIMEOUT,
    );
    run.stdout.trim().to_owned()
}

#[test]
fn https_speaks_http2_and_http11_and_ffmpeg_plays() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(dir.path(), "first");
    let server = start(&cert, &key);
    let healthz = server.url("/healthz");
    assert!(healthz.starts_with("https://"), "{healthz}");
    assert_eq!(curl(&healthz, "--http2"), "2 200");
    assert_eq!(curl(&healthz, "--http1.1"), "1.1 200");
    // Plain HTTP on the TLS port gets no answer.
    let plain = healthz.replace("https://", "http://");
    assert_eq!(curl(&plain, "--http1.1"), "0 000");
    let master = server.url(&format!("/hls/{}/index.m3u8", media::MP4.rel));
    assert_eq!(curl(&master, "--http2"), "2 200");
    let played = tools::ffmpeg_play(&master).unwrap_or_else(|e| panic!("ffmpeg over TLS: {e}"));
    assert!((played.duration - 6.0).abs() < 0.5, "{played:?}");
}

#[test]
fn a_renewed_certificate_is_used_after_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(dir.path(), "first");
    let server = start(&cert, &key);
    let url = server.url("/healthz");
    assert!(
        presented(&url).contains("CN = first"),
        "{}",
        presented(&url)
    );
    let hangup = |pid: u32| {
        let run = run_with_timeout(
            Command::new("kill").args(["-HUP", &pid.to_string()]),
            TOOL_TIMEOUT,
        );
        assert!(run.success(), "{}", run.describe());
    };
    let presents = |name: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if presented(&url).contains(&format!("CN = {name}")) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    };
    // Renewed in place, as certbot does, then SIGHUP.
    let (renewed_cert, renewed_key) = certificate(dir.path(), "second");
    std::fs::copy(&renewed_cert, &cert).unwrap();
    std::fs::copy(&renewed_key, &key).unwrap();
    hangup(server.pid());
    assert!(presents("second"), "still {}", presented(&url));
    // A broken renewal keeps the certificate in use (and the server up).
    std::fs::write(&cert, "half a file").unwrap();
    hangup(server.pid());
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        presented(&url).contains("CN = second"),
        "{}",
        presented(&url)
    );
    assert_eq!(curl(&url, "--http2"), "2 200");
    assert!(
        server
            .stderr_text()
            .contains("the certificate in use stays")
    );
}

#[test]
fn unusable_certificate_files_stop_the_start_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, _) = certificate(dir.path(), "first");
    let (_, other_key) = certificate(dir.path(), "other");
    for (cert, key, says) in [
        (
            dir.path().join("missing.crt"),
            other_key.clone(),
            "cannot read the certificate chain",
        ),
        (
            cert.clone(),
            dir.path().join("missing.key"),
            "cannot read the private key",
        ),
        (cert.clone(), other_key.clone(), "does not match"),
    ] {
        let args = [
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ];
        let mut cmd = server::command(media_root(), "127.0.0.1:0", &args);
        cmd.env_remove("RUST_LOG");
        let run = run_with_timeout(&mut cmd, TOOL_TIMEOUT);
        assert!(!run.success(), "started with {cert:?} {key:?}");
        let lines: Vec<&str> = run
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        assert_eq!(lines.len(), 1, "{}", run.stderr);
        assert!(lines[0].contains(says), "{}", run.stderr);
    }
}
