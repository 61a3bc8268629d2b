//! The shipped systemd unit: systemd accepts every line of it and rates its sandbox, its command line starts this hlss, and its memory limit covers the budget it sets.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::tools::run_with_timeout;
use support::{Server, media_root};

fn unit() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/systemd/hlss.service");
    std::fs::read_to_string(path).expect("read deploy/systemd/hlss.service")
}

/// The value of `key=` in the unit, continuation lines joined.
fn setting(unit: &str, key: &str) -> Option<String> {
    let joined = unit.replace("\\\n", " ");
    joined
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{key}=")))
        .map(|value| value.split_whitespace().collect::<Vec<_>>().join(" "))
}

#[test]
fn systemd_accepts_every_line_of_the_unit() {
    let analyze = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .expect("systemd-analyze not found: install systemd (`make test` does)");
    let dir = tempfile::tempdir().unwrap();
    // verify also checks that ExecStart's program exists: point it at this build.
    let file = dir.path().join("hlss.service");
    let text = unit().replace("/usr/local/bin/hlss", env!("CARGO_BIN_EXE_hlss"));
    std::fs::write(&file, text).unwrap();
    let run = run_with_timeout(
        Command::new(analyze).arg("verify").arg(&file),
        Duration::from_secs(60),
    );
    // Unknown keys and bad values are warnings on stderr, not a failed exit.
    assert!(
        run.success() && run.stderr.trim().is_empty() && run.stdout.trim().is_empty(),
        "{}",
        run.describe()
    );
    // systemd's own rating of the sandbox, without a running systemd: 0 is best, 10 worst.
    let rated = run_with_timeout(
        Command::new(analyze)
            .args(["security", "--offline=yes", "--no-pager"])
            .arg(&file),
        Duration::from_secs(60),
    );
    let exposure: f64 = rated
        .stdout
        .lines()
        .find_map(|l| l.split("Overall exposure level for hlss.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no rating: {}", rated.describe()));
    assert!(exposure <= 1.5, "exposure {exposure}: {}", rated.describe());
    for hardening in [
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "ReadOnlyPaths=/srv/media",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=",
    ] {
        assert!(
            unit().lines().any(|l| l == hardening),
            "{hardening} is gone"
        );
    }
}

#[test]
fn the_units_command_line_starts_this_hlss() {
    let unit = unit();
    let exec = setting(&unit, "ExecStart").expect("ExecStart");
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, [9u8; 32]).unwrap();
    let exec = exec
        .replace("${CREDENTIALS_DIRECTORY}/secret", secret.to_str().unwrap())
        .replace("/srv/media", media_root().to_str().unwrap())
        .replace("127.0.0.1:5000", "127.0.0.1:0");
    let mut words = exec.split_whitespace();
    assert_eq!(words.next(), Some("/usr/local/bin/hlss"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hlss"));
    cmd.args(words)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let server = Server::start_command(cmd, media_root());
    assert_eq!(
        support::http::get(&server.url("/healthz")).status,
        200,
        "{exec}"
    );
}

#[test]
fn memory_max_covers_the_budget_the_unit_sets() {
    let unit = unit();
    let exec = setting(&unit, "ExecStart").unwrap();
    let option = |name: &str| -> u64 {
        let mut words = exec.split_whitespace();
        words.find(|w| *w == name);
        words
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {exec}"))
    };
    let (budget, transcodes) = (option("--memory-budget"), option("--max-transcodes"));
    let mib = |key: &str| -> u64 {
        let value = setting(&unit, key).unwrap_or_else(|| panic!("{key}"));
        value
            .strip_suffix('M')
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{key}={value}: write it in M"))
    };
    // The unit's own rule: budget + 150 MiB per transcode + 200 MiB for the process.
    let needed = budget + 150 * transcodes + 200;
    assert!(mib("MemoryHigh") >= needed, "MemoryHigh below {needed}M");
    assert!(mib("MemoryMax") > mib("MemoryHigh"));
}
