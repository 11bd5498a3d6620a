//! The accept path both receivers share: accept TCP, set `TCP_NODELAY`,
//! hold the connection cap, run the TLS handshake, and hand the connection
//! to the gRPC or HTTP server; plus the per-request layer that bounds a
//! request body's read time and marks a connection busy.
//!
//! A handshake runs in its own task with a timeout, so a client that stalls
//! or fails its handshake never holds up the accept loop or other clients.
//! This module knows nothing of OTLP; it never reads a request.

use std::{
    convert::Infallible,
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use bytes::Bytes;
use rustls_pki_types::CertificateDer;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch},
    time::Sleep,
};
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

use super::tls::{TlsError, TlsServer};
use crate::config::receivers::{GrpcServerConfig, HttpServerConfig};

/// The longest a client may take over its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How a receiver accepts connections.
#[derive(Clone, Default)]
pub struct ListenSettings {
    /// TLS; `None` serves plain text.
    pub tls: Option<Arc<TlsServer>>,
    /// At most this many connections at once; the next one is accepted when
    /// one closes (it waits in the listen backlog). `None`: no cap.
    pub max_connections: Option<usize>,
    /// Close a connection with no request in flight for this long.
    pub idle_timeout: Option<Duration>,
    /// Turns true when the server shuts down: connections with no request
    /// in flight close then (one that never sent a request would otherwise
    /// hold up the graceful shutdown). Set by the servers.
    pub draining: Option<watch::Receiver<bool>>,
}

/// A shutdown signal that also tells the accepted connections to close
/// once idle: `shutdown` for the server, the receiver for
/// [`ListenSettings::draining`].
pub fn drain_on(
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> (
    impl Future<Output = ()> + Send + 'static,
    watch::Receiver<bool>,
) {
    let (tx, rx) = watch::channel(false);
    let signal = async move {
        shutdown.await;
        let _ = tx.send(true);
    };
    (signal, rx)
}

impl GrpcServerConfig {
    /// How the gRPC server accepts: reads the TLS files.
    pub fn listen_settings(&self) -> Result<ListenSettings, TlsError> {
        let tls = match &self.tls {
            Some(tls) => Some(Arc::new(tls.build(&[b"h2"])?)),
            None => None,
        };
        Ok(ListenSettings {
            tls,
            max_connections: Some(self.otlp_lb_max_connections).filter(|n| *n > 0),
            idle_timeout: Some(self.keepalive.server_parameters.max_connection_idle)
                .filter(|d| !d.is_zero()),
            draining: None,
        })
    }
}

impl HttpServerConfig {
    /// How the HTTP server accepts: reads the TLS files.
    pub fn listen_settings(&self) -> Result<ListenSettings, TlsError> {
        let tls = match &self.tls {
            Some(tls) => Some(Arc::new(tls.build(&[b"h2", b"http/1.1"])?)),
            None => None,
        };
        Ok(ListenSettings {
            tls,
            max_connections: Some(self.otlp_lb_max_connections).filter(|n| *n > 0),
            idle_timeout: Some(self.idle_timeout).filter(|d| !d.is_zero()),
            draining: None,
        })
    }
}

/// What a receiver knows about one connection, in every request's
/// extensions (tonic puts it there for gRPC; the HTTP server does too).
#[derive(Clone, Debug)]
pub struct ConnInfo {
    /// Local and peer addresses, as tonic reports them for plain TCP.
    pub tcp: TcpConnectInfo,
    /// The client's certificate chain, when it presented one over TLS.
    pub peer_certificates: Option<Arc<[CertificateDer<'static>]>>,
    activity: Arc<Activity>,
}

/// Requests in flight on a connection, and when the last one ended.
#[derive(Debug)]
struct Activity {
    start: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds since `start` at which the connection was last busy.
    last: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            start: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last.store(ms, Ordering::Relaxed);
    }

    fn begin(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        Busy(self.clone())
    }

    /// When the connection becomes idle for `idle`, or `None` while busy.
    fn idle_at(&self, idle: Duration) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        Some(self.start + Duration::from_millis(self.last.load(Ordering::Relaxed)) + idle)
    }
}

/// A request in flight; the connection is idle again once all are dropped.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// An accepted connection, plain or TLS.
pub struct Conn {
    io: Io,
    info: ConnInfo,
    idle: Option<(Duration, Pin<Box<Sleep>>)>,
    /// Resolves when the server starts draining; `None` once it has.
    draining: Option<Pin<Box<dyn Future<Output = ()> + Send + Sync>>>,
    drained: bool,
    _permit: Option<OwnedSemaphorePermit>,
}

impl Conn {
    fn new(
        io: Io,
        tcp: TcpConnectInfo,
        settings: &ListenSettings,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Conn {
        let peer_certificates = match &io {
            Io::Plain(_) => None,
            Io::Tls(tls) => tls
                .get_ref()
                .1
                .peer_certificates()
                .map(|c| c.iter().map(|c| c.clone().into_owned()).collect()),
        };
        Conn {
            io,
            info: ConnInfo {
                tcp,
                peer_certificates,
                activity: Arc::new(Activity::new()),
            },
            idle: settings
                .idle_timeout
                .map(|d| (d, Box::pin(tokio::time::sleep(d)))),
            draining: settings.draining.clone().map(|mut rx| {
                Box::pin(async move {
                    let _ = rx.wait_for(|d| *d).await;
                }) as Pin<Box<dyn Future<Output = ()> + Send + Sync>>
            }),
            drained: false,
            _permit: permit,
        }
    }

    /// What requests on this connection see of it.
    pub fn info(&self) -> &ConnInfo {
        &self.info
    }

    /// The TCP socket under any TLS.
    pub fn tcp(&self) -> &TcpStream {
        match &self.io {
            Io::Plain(s) => s,
            Io::Tls(s) => s.get_ref().0,
        }
    }

    /// True when the connection has been idle past the idle timeout. While
    /// it is not, the timer is armed for the moment it could be.
    fn idle_expired(&mut self, cx: &mut Context<'_>) -> bool {
        if let Some(draining) = &mut self.draining
            && draining.as_mut().poll(cx).is_ready()
        {
            self.draining = None;
            self.drained = true;
        }
        if self.drained && self.info.activity.in_flight.load(Ordering::Acquire) == 0 {
            return true;
        }
        let Some((idle, sleep)) = &mut self.idle else {
            return false;
        };
        while sleep.as_mut().poll(cx).is_ready() {
            let now = tokio::time::Instant::now();
            match self.info.activity.idle_at(*idle) {
                None => sleep.as_mut().reset(now + *idle),
                Some(at) if at <= Instant::now() => return true,
                Some(at) => sleep
                    .as_mut()
                    .reset(now + at.saturating_duration_since(Instant::now())),
            }
        }
        false
    }
}

impl Connected for Conn {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> ConnInfo {
        self.info.clone()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.idle_expired(cx) {
            // End of stream: the server closes the connection.
            return Poll::Ready(Ok(()));
        }
        match &mut this.io {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The connections accepted on `listener`, ready to serve: `TCP_NODELAY`
/// set, within the cap, TLS established. The accept task stops when the
/// stream is dropped. Connections that fail their handshake are logged and
/// never appear.
pub fn incoming(
    listener: TcpListener,
    settings: ListenSettings,
) -> ReceiverStream<Result<Conn, Infallible>> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(accept_loop(listener, settings, tx));
    ReceiverStream::new(rx)
}

async fn accept_loop(
    listener: TcpListener,
    settings: ListenSettings,
    tx: mpsc::Sender<Result<Conn, Infallible>>,
) {
    let cap = settings
        .max_connections
        .map(|n| Arc::new(Semaphore::new(n)));
    if let Some(tls) = settings.tls.clone()
        && let Some(every) = tls.reload_interval()
    {
        let closed = tx.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        if let Err(e) = tls.reload() {
                            tracing::warn!("reloading the receiver certificate: {e}; keeping the previous one");
                        }
                    }
                    _ = closed.closed() => return,
                }
            }
        });
    }
    loop {
        let permit = match &cap {
            None => None,
            Some(cap) => tokio::select! {
                permit = cap.clone().acquire_owned() => permit.ok(),
                _ = tx.closed() => return,
            },
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before
                    // it was accepted: wait a little rather than spin.
                    tracing::warn!("accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = tx.closed() => return,
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(%peer, "setting TCP_NODELAY: {e}");
        }
        let info = TcpConnectInfo {
            local_addr: tcp.local_addr().ok(),
            remote_addr: Some(peer),
        };
        match &settings.tls {
            None => {
                let conn = Conn::new(Io::Plain(tcp), info, &settings, permit);
                if tx.send(Ok(conn)).await.is_err() {
                    return;
                }
            }
            Some(tls) => {
                let (acceptor, tx, settings) = (tls.acceptor(), tx.clone(), settings.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let io = Io::Tls(Box::new(stream));
                            let _ = tx.send(Ok(Conn::new(io, info, &settings, permit))).await;
                        }
                        Ok(Err(e)) => handshake_failed(peer, &e.to_string()),
                        Err(_) => handshake_failed(peer, "no handshake within the timeout"),
                    }
                });
            }
        }
    }
}

fn handshake_failed(peer: SocketAddr, why: &str) {
    tracing::debug!(%peer, "TLS handshake failed: {why}");
}

/// A tower layer for both servers: marks the connection busy while a
/// request is in flight (for the idle timeout), bounds the time to read the
/// request body, and puts tonic's [`TcpConnectInfo`] in the extensions so
/// `Request::remote_addr` works as with tonic's own listener.
pub struct EdgeLayer<B> {
    body_timeout: Option<Duration>,
    wrap: fn(DeadlineBody) -> B,
}

// By hand: a derive would ask for `B: Clone`, and bodies are not.
impl<B> Clone for EdgeLayer<B> {
    fn clone(&self) -> Self {
        EdgeLayer {
            body_timeout: self.body_timeout,
            wrap: self.wrap,
        }
    }
}

impl<B> EdgeLayer<B> {
    /// `wrap` turns the bounded body into the server's body type.
    pub fn new(body_timeout: Option<Duration>, wrap: fn(DeadlineBody) -> B) -> EdgeLayer<B> {
        EdgeLayer { body_timeout, wrap }
    }
}

impl<S, B> tower::Layer<S> for EdgeLayer<B> {
    type Service = Edge<S, B>;

    fn layer(&self, inner: S) -> Edge<S, B> {
        Edge {
            inner,
            body_timeout: self.body_timeout,
            wrap: self.wrap,
        }
    }
}

/// The service of [`EdgeLayer`].
pub struct Edge<S, B> {
    inner: S,
    body_timeout: Option<Duration>,
    wrap: fn(DeadlineBody) -> B,
}

impl<S: Clone, B> Clone for Edge<S, B> {
    fn clone(&self) -> Self {
        Edge {
            inner: self.inner.clone(),
            body_timeout: self.body_timeout,
            wrap: self.wrap,
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S, B, In> tower::Service<http::Request<In>> for Edge<S, B>
where
    S: tower::Service<http::Request<B>>,
    S::Future: Send + 'static,
    In: http_body::Body<Data = Bytes> + Send + 'static,
    In::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<In>) -> Self::Future {
        let info = req.extensions().get::<ConnInfo>().cloned();
        let busy = info.as_ref().map(|i| i.activity.begin());
        let timeout = self.body_timeout;
        let wrap = self.wrap;
        let mut req = req.map(|body| wrap(DeadlineBody::new(body, timeout)));
        if let Some(info) = info {
            req.extensions_mut().insert(info.tcp);
        }
        let response = self.inner.call(req);
        Box::pin(async move {
            let response = response.await;
            drop(busy);
            response
        })
    }
}

/// A request body that fails when it has not all arrived by its deadline:
/// a client trickling a body cannot hold a request open for long.
pub struct DeadlineBody {
    inner: Pin<Box<dyn http_body::Body<Data = Bytes, Error = BoxError> + Send>>,
    deadline: Option<(Duration, Pin<Box<Sleep>>)>,
}

impl DeadlineBody {
    fn new<B>(body: B, timeout: Option<Duration>) -> DeadlineBody
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        use http_body_util::BodyExt;
        DeadlineBody {
            inner: Box::pin(body.map_err(Into::into)),
            deadline: timeout.map(|d| (d, Box::pin(tokio::time::sleep(d)))),
        }
    }
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Some((limit, sleep)) = &mut this.deadline
            && sleep.as_mut().poll(cx).is_ready()
        {
            let limit = *limit;
            return Poll::Ready(Some(Err(Box::new(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the request body did not arrive within {limit:?}"),
            )))));
        }
        this.inner.as_mut().poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[tokio::test]
    async fn every_accepted_connection_has_tcp_nodelay() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut conns = incoming(listener, ListenSettings::default());
        let client = TcpStream::connect(addr).await.unwrap();
        assert!(!client.nodelay().unwrap(), "the client side is left alone");
        let Some(Ok(conn)) = conns.next().await else {
            panic!("no connection")
        };
        assert!(conn.tcp().nodelay().unwrap());
        assert_eq!(conn.info().tcp.remote_addr, client.local_addr().ok());
    }

    #[tokio::test]
    async fn the_cap_holds_the_next_connection_until_one_closes() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let settings = ListenSettings {
            max_connections: Some(1),
            ..ListenSettings::default()
        };
        let mut conns = incoming(listener, settings);
        let _a = TcpStream::connect(addr).await.unwrap();
        let first = conns.next().await;
        let _b = TcpStream::connect(addr).await.unwrap();
        let waiting = tokio::time::timeout(Duration::from_millis(300), conns.next()).await;
        assert!(waiting.is_err(), "a second connection over the cap");
        drop(first);
        let second = tokio::time::timeout(Duration::from_secs(5), conns.next()).await;
        assert!(matches!(second, Ok(Some(Ok(_)))));
    }
}
