//! The HTTP/1.1 accept loop: warp's routes served by hyper with the limits warp 0.4 leaves unset.
//!
//! `warp::serve` builds hyper's connection without a timer, so hyper's header read timeout never
//! fires and one client could hold connections open forever; it also lets a handler's panic
//! drop the connection without an answer. This loop bounds both.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tower_service::Service;
use warp::Filter;
use warp::http::Response;

use super::HttpError;

/// Longest a client may take to send a request's headers, counted from the moment the server
/// is ready for them; it also closes keep-alive connections left idle this long.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head (request line and headers) read; a larger one gets 431.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Most headers in one request.
pub const MAX_HEADERS: usize = 64;
/// A response write that makes no progress for this long (a client that stopped reading)
/// closes the connection.
pub const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How often an HTTP/2 connection is pinged; one that does not answer within the header read
/// timeout is closed.
const H2_PING_INTERVAL: Duration = Duration::from_secs(30);
/// Most connections served at once; further ones wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 1024;
/// Pause after a failed accept (e.g. out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The peer's address, for [`remote`].
#[derive(Debug, Clone, Copy)]
struct Peer(SocketAddr);

/// The client's address, like `warp::addr::remote` (which only `warp::serve` can fill in).
pub fn remote() -> impl Filter<Extract = (Option<SocketAddr>,), Error = Infallible> + Copy {
    warp::ext::optional::<Peer>().map(|peer: Option<Peer>| peer.map(|p| p.0))
}

/// Serves the site on `listener` (over TLS when `tls` is given) until `shutdown` resolves, then
/// waits for the requests in flight (bound that wait from outside).
pub async fn serve(
    listener: TcpListener,
    app: Arc<super::App>,
    role: super::Listener,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) {
    let filter = super::routes(app, role);
    serve_filter(listener, filter, tls, shutdown, HEADER_READ_TIMEOUT).await;
}

async fn serve_filter<F>(
    listener: TcpListener,
    filter: F,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
    header_timeout: Duration,
) where
    F: Filter<Extract = (Response<Bytes>,), Error = Infallible> + Clone + Send + Sync + 'static,
{
    let site = warp::service(filter);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(MAX_HEADER_BYTES)
        .max_headers(MAX_HEADERS);
    // HTTP/2 only over TLS, where ALPN chose it. hyper's HTTP/2 server has no idle timeout like
    // HTTP/1.1's header timeout: pings at least drop peers that went away.
    let mut h2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    h2.timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(MAX_HEADER_BYTES).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(H2_PING_INTERVAL))
        .keep_alive_timeout(header_timeout);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = accept(&listener, &slots) => accepted,
        };
        let Some((stream, peer, slot)) = accepted else {
            continue;
        };
        let site = site.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
            request.extensions_mut().insert(Peer(peer));
            let path = request.uri().path().to_owned();
            let mut site = site.clone();
            // A panic anywhere in the filters becomes a 500 and a log line; the connection,
            // the other requests and the server carry on.
            let handled = AssertUnwindSafe(site.call(request)).catch_unwind();
            async move {
                Ok::<_, Infallible>(match handled.await {
                    Ok(Ok(response)) => response,
                    Ok(Err(never)) => match never {},
                    Err(panic) => warp::Reply::into_response(
                        HttpError::from_panic(panic.as_ref(), &path).into_response(),
                    ),
                })
            }
        });
        let Some(acceptor) = tls.clone() else {
            let connection =
                graceful.watch(http.serve_connection(TokioIo::new(Stalling::new(stream)), service));
            tokio::spawn(async move {
                if let Err(err) = connection.await {
                    tracing::debug!(%peer, "connection closed: {err}");
                }
                drop(slot);
            });
            continue;
        };
        let (watcher, http, h2) = (graceful.watcher(), http.clone(), h2.clone());
        tokio::spawn(async move {
            // The handshake is bounded like a request's headers: a client that starts one and
            // stops must not hold a connection slot.
            let stream = match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(err)) => {
                    tracing::debug!(%peer, "TLS handshake failed: {err}");
                    return drop(slot);
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return drop(slot);
                }
            };
            let wants_h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
            let io = TokioIo::new(Stalling::new(stream));
            let ended = if wants_h2 {
                watcher.watch(h2.serve_connection(io, service)).await
            } else {
                watcher.watch(http.serve_connection(io, service)).await
            };
            if let Err(err) = ended {
                tracing::debug!(%peer, "connection closed: {err}");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// The next connection once a slot is free; `None` after a failed accept (already waited on).
async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
) -> Option<(TcpStream, SocketAddr, tokio::sync::OwnedSemaphorePermit)> {
    // The semaphore is never closed, so acquiring fails only if it were.
    let slot = slots.clone().acquire_owned().await.ok()?;
    match listener.accept().await {
        Ok((stream, peer)) => {
            let _ = stream.set_nodelay(true);
            Some((stream, peer, slot))
        }
        Err(err) => {
            tracing::warn!("accept failed: {err}");
            tokio::time::sleep(ACCEPT_BACKOFF).await;
            None
        }
    }
}

/// A connection (TCP, or TLS over it) whose writes fail once they have made no progress for
/// [`WRITE_STALL_TIMEOUT`].
struct Stalling<S> {
    stream: S,
    stalled_since: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stalling<S> {
    fn new(stream: S) -> Stalling<S> {
        Stalling {
            stream,
            stalled_since: None,
        }
    }

    /// Passes `poll` through, arming the stall timer while it is pending and clearing it on progress.
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: impl FnOnce(Pin<&mut S>, &mut Context<'_>) -> Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        match poll(Pin::new(&mut self.stream), cx) {
            Poll::Ready(result) => {
                self.stalled_since = None;
                Poll::Ready(result)
            }
            Poll::Pending => {
                let timer = self
                    .stalled_since
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(WRITE_STALL_TIMEOUT)));
                ready!(timer.as_mut().poll(cx));
                Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the client stopped reading",
                )))
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Stalling<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        // Reads are bounded by hyper's header timeout; an idle read is not a stall.
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Stalling<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.watch(cx, |s, cx| s.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.watch(cx, |s, cx| s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.watch(cx, |s, cx| s.poll_flush(cx))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.watch(cx, |s, cx| s.poll_shutdown(cx))
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    /// Sends one raw request and returns the whole response (the server closes after it).
    fn exchange(addr: SocketAddr, request: &str) -> String {
        let mut socket = std::net::TcpStream::connect(addr).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        socket.write_all(request.as_bytes()).unwrap();
        let mut response = Vec::new();
        let _ = socket.read_to_end(&mut response);
        String::from_utf8_lossy(&response).into_owned()
    }

    #[test]
    fn a_panicking_handler_gets_a_500_and_the_server_carries_on() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let site = warp::path::full().map(|path: warp::path::FullPath| {
            assert!(path.as_str() != "/boom", "handler bug on purpose");
            Response::new(Bytes::from_static(b"fine\n"))
        });
        runtime.spawn(serve_filter(
            listener,
            site,
            None,
            std::future::pending(),
            HEADER_READ_TIMEOUT,
        ));
        for _ in 0..3 {
            let boom = exchange(
                addr,
                "GET /boom HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            );
            assert!(boom.starts_with("HTTP/1.1 500 "), "{boom}");
            assert!(!boom.contains("on purpose"), "panic text leaked: {boom}");
            let fine = exchange(
                addr,
                "GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            );
            assert!(
                fine.starts_with("HTTP/1.1 200 ") && fine.ends_with("fine\n"),
                "{fine}"
            );
        }
    }

    #[test]
    fn a_client_that_never_finishes_its_headers_is_cut_off() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let site = warp::any().map(|| Response::new(Bytes::new()));
        let timeout = Duration::from_secs(1);
        runtime.spawn(serve_filter(
            listener,
            site,
            None,
            std::future::pending(),
            timeout,
        ));
        let started = std::time::Instant::now();
        let answer = exchange(addr, "GET / HTTP/1.1\r\nHost: x\r\n");
        let waited = started.elapsed();
        assert!(
            waited >= timeout && waited < timeout + Duration::from_secs(5),
            "closed after {waited:?}; answer {answer:?}"
        );
    }
}
