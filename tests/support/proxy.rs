//! A cuttable TCP proxy, so a fault test can take PostgreSQL or RabbitMQ
//! "away" from the service under test without stopping the machine's shared
//! servers (other tests are using them at the same time).

use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener as StdTcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(10);

/// Forwards every connection accepted on `127.0.0.1:<port>` to a target.
///
/// [`cut`](Self::cut) resets every open connection and makes new ones fail
/// until [`restore`](Self::restore); the listening port stays the same, so a
/// service configured with [`addr`](Self::addr) reconnects to the same place.
/// Dropping the proxy stops the listener and every connection.
#[derive(Debug)]
pub struct TcpProxy {
    addr: SocketAddr,
    target: SocketAddr,
    /// `true` while cut. Every connection task watches it; when the proxy
    /// is dropped the sender goes away and the tasks end too.
    cut: watch::Sender<bool>,
    /// Connections currently being forwarded, so a test can wait until the
    /// service has connected before cutting.
    active: Arc<AtomicUsize>,
    accept_loop: JoinHandle<()>,
}

impl TcpProxy {
    /// Listens on `127.0.0.1:0` and forwards to `target`.
    ///
    /// Must be called inside a tokio runtime.
    pub fn start(target: SocketAddr) -> io::Result<TcpProxy> {
        TcpProxy::start_on(IpAddr::from([127, 0, 0, 1]), target)
    }

    /// Listens on `<ip>:0` (e.g. another loopback address, `127.0.0.2`, which
    /// a server certificate for `127.0.0.1` does not name) and forwards to `target`.
    pub fn start_on(ip: IpAddr, target: SocketAddr) -> io::Result<TcpProxy> {
        // Bound with std so that `start` needs no `.await`; the socket is
        // handed to tokio right away.
        let listener = StdTcpListener::bind((ip, 0))?;
        listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(listener)?;
        let addr = listener.local_addr()?;
        let (cut, cut_rx) = watch::channel(false);
        let active = Arc::new(AtomicUsize::new(0));
        let accept_loop = tokio::spawn(accept_loop(listener, target, cut_rx, active.clone()));
        Ok(TcpProxy {
            addr,
            target,
            cut,
            active,
            accept_loop,
        })
    }

    /// Where clients connect: `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// Connections being forwarded right now.
    pub fn active_connections(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }

    pub fn is_cut(&self) -> bool {
        *self.cut.borrow()
    }

    /// Resets every open connection (client side and server side) and makes
    /// every new connection fail at once (it is accepted and reset, so the
    /// client sees "connection reset" on its first read or write) until
    /// [`restore`](Self::restore).
    ///
    /// Nothing sent after `cut` returns is answered: each connection checks
    /// the cut before it forwards anything further.
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    /// [`cut`](Self::cut), then wait until every forwarded connection is
    /// gone (the client has seen its reset).
    pub async fn cut_and_wait(&self) {
        self.cut();
        crate::eventually::eventually(
            Duration::from_secs(10),
            "the proxied connections reset",
            || async { (self.active_connections() == 0).then_some(()) },
        )
        .await;
    }

    /// Forwards new connections again, on the same port.
    pub fn restore(&self) {
        self.cut.send_replace(false);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        // The connection tasks end on their own: their `watch::Receiver`
        // sees the sender dropped together with `self`.
        self.accept_loop.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    cut: watch::Receiver<bool>,
    active: Arc<AtomicUsize>,
) {
    loop {
        let client = match listener.accept().await {
            Ok((client, _)) => client,
            // Per-connection errors (the client already gave up) or out of
            // file descriptors: the listener itself is still fine. The pause
            // only keeps a persistent error from spinning this loop.
            Err(_) => {
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        if *cut.borrow() {
            reset(client);
            continue;
        }
        // Subscribed before spawning so a cut between here and the task's
        // first poll is still seen.
        let cut = cut.clone();
        let guard = ActiveGuard::new(active.clone());
        tokio::spawn(async move {
            let _guard = guard;
            forward(client, target, cut).await;
        });
    }
}

async fn forward(mut client: TcpStream, target: SocketAddr, mut cut: watch::Receiver<bool>) {
    let mut server: Option<TcpStream> = None;
    let outcome = {
        let server = &mut server;
        let client = &mut client;
        let pipe = async move {
            let s = server.insert(TcpStream::connect(target).await?);
            let _ = client.set_nodelay(true);
            let _ = s.set_nodelay(true);
            tokio::io::copy_bidirectional(client, s).await
        };
        tokio::select! {
            // Checked first on every wake-up, so once the proxy is cut no
            // further bytes are forwarded in either direction.
            biased;
            _ = cut.wait_for(|is_cut| *is_cut) => Ending::Cut,
            result = pipe => match result {
                Ok(_) => Ending::Closed,
                Err(_) => Ending::Failed,
            },
        }
    };
    match outcome {
        // A graceful close from either side was already propagated by
        // copy_bidirectional (it shuts down the other write half).
        Ending::Closed => {}
        Ending::Cut | Ending::Failed => {
            reset(client);
            if let Some(server) = server {
                reset(server);
            }
        }
    }
}

enum Ending {
    Closed,
    Cut,
    Failed,
}

/// Closes with RST instead of FIN: the peer learns at once that the
/// connection is gone, as when the network or the server dies.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

struct ActiveGuard(Arc<AtomicUsize>);

impl ActiveGuard {
    fn new(active: Arc<AtomicUsize>) -> Self {
        active.fetch_add(1, Ordering::SeqCst);
        ActiveGuard(active)
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
