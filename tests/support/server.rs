//! The `hlss` binary as a child process: started on an ephemeral port, killed when dropped.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::Duration;

/// How long the server may take to print its listening line; covers GStreamer's first registry scan.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// How much of the server's stderr to show when a test fails; debug logs can be long.
const STDERR_TAIL: usize = 64 * 1024;

/// The line the server prints on stdout once it accepts connections, up to the port.
const LISTENING_PREFIX: &str = "hlss: listening on http://127.0.0.1:";
const TLS_LISTENING_PREFIX: &str = "hlss: listening on https://127.0.0.1:";

/// A running server. Its stderr is kept and printed if the test panics while the server is alive.
pub struct Server {
    child: Child,
    base: String,
    stderr: Arc<Mutex<Vec<u8>>>,
}

/// The server command line without `--listen`, for tests that need to start it in a special way.
pub fn command(path: &Path, listen: &str, extra_args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hlss"));
    cmd.arg("--listen")
        .arg(listen)
        .args(extra_args)
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

impl Server {
    /// Starts `hlss --listen 127.0.0.1:0 EXTRA_ARGS PATH` and waits for its listening line.
    pub fn start(path: impl AsRef<Path>, extra_args: &[&str]) -> Server {
        let path = path.as_ref();
        let mut cmd = command(path, "127.0.0.1:0", extra_args);
        cmd.env("RUST_LOG", "hlss=debug");
        Server::start_command(cmd, path)
    }

    /// Starts `cmd`, a server command line (possibly wrapped in another program that ends by
    /// exec'ing it, so that killing the child kills the server), and waits for its listening line.
    pub fn start_command(mut cmd: Command, path: &Path) -> Server {
        super::watchdog();
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", env!("CARGO_BIN_EXE_hlss")));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        collect_stderr(
            child.stderr.take().expect("stderr is piped"),
            stderr.clone(),
        );

        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            // Keep draining so that a chatty server never blocks on a full pipe.
            for _ in lines {}
        });

        let mut server = Server {
            child,
            base: String::new(),
            stderr,
        };
        let line = match rx.recv_timeout(START_TIMEOUT) {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("hlss printed no listening line within {START_TIMEOUT:?} (path {path:?})")
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // Give the stderr reader a moment to catch the exit message.
                thread::sleep(Duration::from_millis(200));
                let status = server.child.try_wait();
                panic!(
                    "hlss closed stdout without a listening line (path {path:?}, exit {status:?})"
                )
            }
        };
        // `https` when started with a certificate.
        let (scheme, rest) = match line.strip_prefix(LISTENING_PREFIX) {
            Some(rest) => ("http", Some(rest)),
            None => ("https", line.strip_prefix(TLS_LISTENING_PREFIX)),
        };
        let port = rest
            .and_then(|rest| rest.strip_suffix('/'))
            .and_then(|port| port.parse::<u16>().ok())
            .filter(|&port| port != 0)
            .unwrap_or_else(|| {
                panic!("unexpected first stdout line {line:?}, wanted \"{LISTENING_PREFIX}PORT/\"")
            });
        server.base = format!("{scheme}://127.0.0.1:{port}");
        server
    }

    /// The absolute URL of `path`, which must start with `/` (as the server's own hrefs do).
    pub fn url(&self, path: &str) -> String {
        assert!(path.starts_with('/'), "not an absolute path: {path:?}");
        format!("{}{path}", self.base)
    }

    /// The child's process id (the server's, unless a wrapper that does not exec runs it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running (it must survive bad requests).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGTERM and waits up to `timeout` for the process to exit; `None` if it did not.
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {pid} failed");
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Everything the server wrote to stderr so far.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            let text = self.stderr_text();
            let mut start = text.len().saturating_sub(STDERR_TAIL);
            while !text.is_char_boundary(start) {
                start += 1;
            }
            eprintln!(
                "---- hlss stderr ({}) ----\n{}\n---- end of hlss stderr ----",
                if start > 0 { "tail" } else { "complete" },
                &text[start..]
            );
        }
    }
}

/// Copies a child's stderr into `sink` on a thread, so the pipe never fills up.
pub fn collect_stderr(mut stderr: ChildStderr, sink: Arc<Mutex<Vec<u8>>>) {
    thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(&buf[..n]);
        }
    });
}
