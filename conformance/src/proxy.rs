//! A fault-injecting TCP proxy, for tests of what sstore does when the network between it and
//! a real server misbehaves: point a target at [`FaultProxy::port`] instead of the server's
//! port, then [`FaultProxy::set`] a [`NetFault`]:
//!
//! | fault | what the client sees |
//! |---|---|
//! | [`NetFault::Pass`] | a plain relay |
//! | [`NetFault::Latency`] | every chunk, in both directions, arrives that much later |
//! | [`NetFault::Throttle`] | at most that many bytes a second in each direction (shared by every connection) |
//! | [`NetFault::Drop`] | once `after_bytes` more bytes went upstream, the connection carrying them is closed (FIN both ways), mid-body; `times` connections in all |
//! | [`NetFault::Reset`] | the same, but aborted with a TCP reset (RST) |
//! | [`NetFault::BlackHole`] | once `after_bytes` more bytes went upstream, nothing is answered any more: every byte sent vanishes, on open connections and new ones, and nothing comes back; when the fault is lifted, the swallowed connections are reset (their streams are broken) and new ones work again |
//!
//! The byte counts of `Drop`, `Reset` and `BlackHole` start when the fault is set, so a test
//! can aim a fault at the middle of an upload by setting it just before. [`FaultProxy::stats`]
//! says how many faults were injected. Plain threads and blocking sockets: the proxy needs no
//! runtime and works under any test harness. Dropping the proxy stops it and closes every
//! connection.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often a waiting relay thread looks at the proxy's state.
const POLL: Duration = Duration::from_millis(20);
/// The largest chunk relayed at once (smaller under a throttle, so the pace is smooth).
const CHUNK: usize = 64 * 1024;
const THROTTLED_CHUNK: usize = 8 * 1024;

/// What the proxy does to the traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NetFault {
    /// Relay everything as it comes.
    #[default]
    Pass,
    /// Hold every chunk this long before relaying it.
    Latency(Duration),
    /// Relay at most this many bytes a second in each direction.
    Throttle { bytes_per_sec: u64 },
    /// Close connections (FIN) part-way through an upload.
    Drop { after_bytes: u64, times: u32 },
    /// Abort connections (RST) part-way through an upload.
    Reset { after_bytes: u64, times: u32 },
    /// Swallow everything once `after_bytes` more bytes went upstream.
    BlackHole { after_bytes: u64 },
}

impl NetFault {
    /// A short name for reports (`latency`, `throttle`, `drop`, `reset`, `black-hole`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Latency(_) => "latency",
            Self::Throttle { .. } => "throttle",
            Self::Drop { .. } => "drop",
            Self::Reset { .. } => "reset",
            Self::BlackHole { .. } => "black-hole",
        }
    }
}

impl std::fmt::Display for NetFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Pass => f.write_str("pass"),
            Self::Latency(d) => write!(f, "latency {} ms per chunk", d.as_millis()),
            Self::Throttle { bytes_per_sec } => write!(f, "throttle {bytes_per_sec} B/s"),
            Self::Drop { after_bytes, times } => {
                write!(f, "drop {times} connection(s) after {after_bytes} bytes up")
            }
            Self::Reset { after_bytes, times } => {
                write!(
                    f,
                    "reset {times} connection(s) after {after_bytes} bytes up"
                )
            }
            Self::BlackHole { after_bytes } => {
                write!(f, "black hole after {after_bytes} bytes up")
            }
        }
    }
}

/// What the proxy saw and did since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Connections accepted.
    pub connections: u64,
    /// Bytes relayed to the server and to the client.
    pub bytes_up: u64,
    pub bytes_down: u64,
    /// Chunks held back by [`NetFault::Latency`].
    pub delayed: u64,
    /// Chunks paced by [`NetFault::Throttle`].
    pub throttled: u64,
    /// Connections closed by [`NetFault::Drop`].
    pub dropped: u64,
    /// Connections aborted by [`NetFault::Reset`].
    pub reset: u64,
    /// Connections swallowed by [`NetFault::BlackHole`].
    pub black_holed: u64,
}

impl ProxyStats {
    /// Every fault injected: delayed and paced chunks, and connections cut or swallowed.
    pub fn faults(&self) -> u64 {
        self.delayed + self.throttled + self.dropped + self.reset + self.black_holed
    }

    /// The counts since `earlier` (a snapshot of the same proxy).
    pub fn since(&self, earlier: &ProxyStats) -> ProxyStats {
        ProxyStats {
            connections: self.connections - earlier.connections,
            bytes_up: self.bytes_up - earlier.bytes_up,
            bytes_down: self.bytes_down - earlier.bytes_down,
            delayed: self.delayed - earlier.delayed,
            throttled: self.throttled - earlier.throttled,
            dropped: self.dropped - earlier.dropped,
            reset: self.reset - earlier.reset,
            black_holed: self.black_holed - earlier.black_holed,
        }
    }
}

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
    delayed: AtomicU64,
    throttled: AtomicU64,
    dropped: AtomicU64,
    reset: AtomicU64,
    black_holed: AtomicU64,
}

/// The fault in force and its progress.
struct Armed {
    fault: NetFault,
    /// Bytes relayed upstream since the fault was set (or since its last cut).
    up_bytes: u64,
    /// Cuts left (`Drop`, `Reset`).
    cuts_left: u32,
    /// The black hole has opened.
    swallowing: bool,
    /// Throttle: when each direction may send again.
    next_up: Instant,
    next_down: Instant,
}

impl Armed {
    fn new(fault: NetFault) -> Self {
        let cuts_left = match fault {
            NetFault::Drop { times, .. } | NetFault::Reset { times, .. } => times,
            _ => 0,
        };
        let now = Instant::now();
        Self {
            fault,
            up_bytes: 0,
            cuts_left,
            swallowing: matches!(fault, NetFault::BlackHole { after_bytes: 0 }),
            next_up: now,
            next_down: now,
        }
    }
}

struct Shared {
    upstream: SocketAddr,
    armed: Mutex<Armed>,
    stop: AtomicBool,
    counters: Counters,
    connections: Mutex<Vec<Weak<Connection>>>,
}

impl Shared {
    fn armed(&self) -> std::sync::MutexGuard<'_, Armed> {
        self.armed.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn swallowing(&self) -> bool {
        self.armed().swallowing
    }
}

/// One relayed connection: the client's socket and the server's.
struct Connection {
    client: TcpStream,
    server: Option<TcpStream>,
    /// Cut or finished: both relay threads stop.
    dead: AtomicBool,
    /// Swallowed by a black hole: its stream is broken for good.
    swallowed: AtomicBool,
}

impl Connection {
    /// Ends the connection: with a reset (RST to both sides once every handle is closed) or a
    /// plain close (FIN both ways).
    fn cut(&self, reset: bool) {
        if self.dead.swap(true, Ordering::SeqCst) {
            return;
        }
        let sockets = std::iter::once(&self.client).chain(self.server.as_ref());
        for socket in sockets {
            if reset {
                let _ = socket2::SockRef::from(socket).set_linger(Some(Duration::ZERO));
                // Wakes the relay threads; the last handle's close then sends the RST.
                let _ = socket.shutdown(Shutdown::Read);
            } else {
                let _ = socket.shutdown(Shutdown::Both);
            }
        }
    }

    fn swallow(&self, shared: &Shared) {
        if !self.swallowed.swap(true, Ordering::SeqCst) {
            shared.counters.black_holed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A fault-injecting TCP proxy on a loopback port (see the module documentation).
pub struct FaultProxy {
    port: u16,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("port", &self.port)
            .field("upstream", &self.shared.upstream)
            .field("fault", &self.fault())
            .finish()
    }
}

impl FaultProxy {
    /// Listens on a free loopback port and relays to `upstream`, passing everything.
    pub fn start(upstream: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0))?;
        let port = listener.local_addr()?.port();
        let shared = Arc::new(Shared {
            upstream,
            armed: Mutex::new(Armed::new(NetFault::Pass)),
            stop: AtomicBool::new(false),
            counters: Counters::default(),
            connections: Mutex::new(Vec::new()),
        });
        let accept = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("fault-proxy-{port}"))
                .spawn(move || accept_loop(&listener, &shared))?
        };
        Ok(Self {
            port,
            shared,
            accept: Some(accept),
        })
    }

    /// A proxy for a server on `127.0.0.1:port`.
    pub fn to_local_port(port: u16) -> io::Result<Self> {
        Self::start(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    /// The loopback port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The fault in force.
    pub fn fault(&self) -> NetFault {
        self.shared.armed().fault
    }

    /// Puts `fault` in force for open and new connections; its byte count starts now.
    /// Connections a black hole swallowed are reset when another fault replaces it.
    pub fn set(&self, fault: NetFault) {
        let was_swallowing = {
            let mut armed = self.shared.armed();
            let was = armed.swallowing;
            *armed = Armed::new(fault);
            was
        };
        if was_swallowing && !self.shared.swallowing() {
            for connection in self.live_connections() {
                if connection.swallowed.load(Ordering::SeqCst) {
                    connection.cut(true);
                }
            }
        }
    }

    /// Relays everything again ([`NetFault::Pass`]).
    pub fn clear(&self) {
        self.set(NetFault::Pass);
    }

    /// Resets every open connection (as a restarted middlebox would).
    pub fn reset_all(&self) {
        for connection in self.live_connections() {
            connection.cut(true);
        }
    }

    /// The counts so far.
    pub fn stats(&self) -> ProxyStats {
        let c = &self.shared.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ProxyStats {
            connections: load(&c.connections),
            bytes_up: load(&c.bytes_up),
            bytes_down: load(&c.bytes_down),
            delayed: load(&c.delayed),
            throttled: load(&c.throttled),
            dropped: load(&c.dropped),
            reset: load(&c.reset),
            black_holed: load(&c.black_holed),
        }
    }

    fn live_connections(&self) -> Vec<Arc<Connection>> {
        let mut list = self
            .shared
            .connections
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        list.retain(|w| w.strong_count() > 0);
        list.iter().filter_map(Weak::upgrade).collect()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect_timeout(&self.addr(), Duration::from_millis(200));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        for connection in self.live_connections() {
            connection.cut(true);
        }
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        shared.counters.connections.fetch_add(1, Ordering::Relaxed);
        let _ = client.set_nodelay(true);
        // A black hole takes new connections and answers nothing; otherwise the server is
        // dialled (a refused dial closes the client's connection, as a down server would).
        let server = if shared.swallowing() {
            None
        } else {
            match TcpStream::connect_timeout(&shared.upstream, Duration::from_secs(5)) {
                Ok(server) => {
                    let _ = server.set_nodelay(true);
                    Some(server)
                }
                Err(_) => {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
            }
        };
        let connection = Arc::new(Connection {
            client,
            server,
            dead: AtomicBool::new(false),
            swallowed: AtomicBool::new(false),
        });
        if connection.server.is_none() {
            connection.swallow(shared);
        }
        shared
            .connections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::downgrade(&connection));
        for up in [true, false] {
            let (shared, relayed) = (shared.clone(), connection.clone());
            let spawned = std::thread::Builder::new()
                .name("fault-proxy-relay".into())
                .spawn(move || relay(&shared, &relayed, up));
            if spawned.is_err() {
                connection.cut(true);
            }
        }
    }
}

/// Relays one direction of a connection until it ends, applying the fault in force.
fn relay(shared: &Shared, connection: &Connection, up: bool) {
    let (mut from, to) = match (up, &connection.server) {
        (true, server) => (&connection.client, server.as_ref()),
        (false, Some(server)) => (server, Some(&connection.client)),
        // A connection born in a black hole has no server: nothing comes down.
        (false, None) => {
            hold_until_dead(shared, connection);
            return;
        }
    };
    if from.set_read_timeout(Some(POLL)).is_err() {
        connection.cut(true);
        return;
    }
    let mut buf = vec![0u8; CHUNK];
    loop {
        if shared.stop.load(Ordering::SeqCst) || connection.dead.load(Ordering::SeqCst) {
            connection.cut(true);
            return;
        }
        let swallowed = connection.swallowed.load(Ordering::SeqCst);
        if swallowed && !shared.swallowing() {
            // The black hole closed: this connection's stream lost bytes for good.
            connection.cut(true);
            return;
        }
        let limit = match shared.armed().fault {
            NetFault::Throttle { .. } => THROTTLED_CHUNK,
            _ => CHUNK,
        };
        let n = match from.read(&mut buf[..limit]) {
            Ok(0) => {
                // End of this direction: pass the half-close on, keep the other way open.
                if let Some(to) = to {
                    let _ = to.shutdown(Shutdown::Write);
                }
                if !up || connection.server.is_none() {
                    connection.dead.store(true, Ordering::SeqCst);
                }
                return;
            }
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if shared.swallowing() {
                    connection.swallow(shared);
                }
                continue;
            }
            Err(_) => {
                connection.cut(true);
                return;
            }
        };
        match plan(shared, connection, up, n) {
            Step::Forward { bytes, wait } => {
                if !wait.is_zero() {
                    std::thread::sleep(wait);
                }
                let Some(to) = to else { continue };
                if write_all(shared, connection, to, &buf[..bytes]).is_err() {
                    connection.cut(true);
                    return;
                }
                let counter = if up {
                    &shared.counters.bytes_up
                } else {
                    &shared.counters.bytes_down
                };
                counter.fetch_add(bytes as u64, Ordering::Relaxed);
            }
            Step::Cut { bytes, reset } => {
                if let Some(to) = to {
                    let _ = write_all(shared, connection, to, &buf[..bytes]);
                }
                connection.cut(reset);
                return;
            }
            Step::Swallow => connection.swallow(shared),
        }
    }
}

/// What to do with a chunk just read.
enum Step {
    /// Relay its first `bytes` after `wait`.
    Forward { bytes: usize, wait: Duration },
    /// Relay its first `bytes`, then end the connection.
    Cut { bytes: usize, reset: bool },
    /// Throw it away (the black hole).
    Swallow,
}

fn plan(shared: &Shared, connection: &Connection, up: bool, n: usize) -> Step {
    let mut armed = shared.armed();
    if armed.swallowing || connection.swallowed.load(Ordering::SeqCst) {
        return Step::Swallow;
    }
    let counters = &shared.counters;
    match armed.fault {
        NetFault::Pass => Step::Forward {
            bytes: n,
            wait: Duration::ZERO,
        },
        NetFault::Latency(delay) => {
            counters.delayed.fetch_add(1, Ordering::Relaxed);
            Step::Forward {
                bytes: n,
                wait: delay,
            }
        }
        NetFault::Throttle { bytes_per_sec } => {
            counters.throttled.fetch_add(1, Ordering::Relaxed);
            let cost = Duration::from_secs_f64(n as f64 / bytes_per_sec.max(1) as f64);
            let now = Instant::now();
            let next = if up {
                &mut armed.next_up
            } else {
                &mut armed.next_down
            };
            let start = (*next).max(now);
            *next = start + cost;
            Step::Forward {
                bytes: n,
                wait: *next - now,
            }
        }
        NetFault::Drop { after_bytes, .. } | NetFault::Reset { after_bytes, .. } if up => {
            let reset = matches!(armed.fault, NetFault::Reset { .. });
            let left = after_bytes.saturating_sub(armed.up_bytes);
            if armed.cuts_left > 0 && (n as u64) > left {
                armed.cuts_left -= 1;
                armed.up_bytes = 0;
                let counter = if reset {
                    &counters.reset
                } else {
                    &counters.dropped
                };
                counter.fetch_add(1, Ordering::Relaxed);
                return Step::Cut {
                    bytes: usize::try_from(left).unwrap_or(n),
                    reset,
                };
            }
            armed.up_bytes += n as u64;
            Step::Forward {
                bytes: n,
                wait: Duration::ZERO,
            }
        }
        NetFault::BlackHole { after_bytes } if up => {
            let left = after_bytes.saturating_sub(armed.up_bytes);
            if (n as u64) > left {
                armed.swallowing = true;
                drop(armed);
                connection.swallow(shared);
                // The bytes before the threshold still reach the server.
                return Step::Forward {
                    bytes: usize::try_from(left).unwrap_or(n),
                    wait: Duration::ZERO,
                };
            }
            armed.up_bytes += n as u64;
            Step::Forward {
                bytes: n,
                wait: Duration::ZERO,
            }
        }
        _ => Step::Forward {
            bytes: n,
            wait: Duration::ZERO,
        },
    }
}

/// Writes all of `data`, giving up when the connection is cut or the proxy stops (a peer that
/// stops reading must not pin a relay thread forever).
fn write_all(
    shared: &Shared,
    connection: &Connection,
    mut to: &TcpStream,
    mut data: &[u8],
) -> io::Result<()> {
    to.set_write_timeout(Some(POLL * 5))?;
    while !data.is_empty() {
        if shared.stop.load(Ordering::SeqCst) || connection.dead.load(Ordering::SeqCst) {
            return Err(io::Error::other("connection cut"));
        }
        match to.write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Waits (for a connection without a server) until it is cut or the proxy stops.
fn hold_until_dead(shared: &Shared, connection: &Connection) {
    while !shared.stop.load(Ordering::SeqCst) && !connection.dead.load(Ordering::SeqCst) {
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server on a free port; returns its port.
    fn echo_server() -> u16 {
        let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap_or_else(|e| panic!("{e}"));
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut stream = stream;
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = stream.read(&mut buf) {
                        if n == 0 || stream.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        port
    }

    fn connect(proxy: &FaultProxy) -> TcpStream {
        let stream = TcpStream::connect(proxy.addr()).unwrap_or_else(|e| panic!("{e}"));
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap_or_else(|e| panic!("{e}"));
        stream
    }

    fn echo(stream: &mut TcpStream, data: &[u8]) -> io::Result<Vec<u8>> {
        stream.write_all(data)?;
        let mut back = vec![0u8; data.len()];
        stream.read_exact(&mut back)?;
        Ok(back)
    }

    fn proxy() -> FaultProxy {
        FaultProxy::to_local_port(echo_server()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn passes_and_delays() {
        let proxy = proxy();
        let mut stream = connect(&proxy);
        assert_eq!(
            echo(&mut stream, b"hello").ok().as_deref(),
            Some(&b"hello"[..])
        );
        proxy.set(NetFault::Latency(Duration::from_millis(100)));
        let started = Instant::now();
        assert_eq!(
            echo(&mut stream, b"again").ok().as_deref(),
            Some(&b"again"[..])
        );
        // Held once on the way up and once on the way down.
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert!(proxy.stats().delayed >= 2);
    }

    #[test]
    fn throttles() {
        let proxy = proxy();
        proxy.set(NetFault::Throttle {
            bytes_per_sec: 64 * 1024,
        });
        let mut stream = connect(&proxy);
        let started = Instant::now();
        let data = vec![7u8; 32 * 1024];
        assert_eq!(echo(&mut stream, &data).ok(), Some(data));
        // 32 KiB at 64 KiB/s, each way (the directions pace independently, in parallel).
        assert!(
            started.elapsed() >= Duration::from_millis(400),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn drops_and_resets_mid_stream_then_passes() {
        for (fault, reset) in [
            (
                NetFault::Drop {
                    after_bytes: 100,
                    times: 1,
                },
                false,
            ),
            (
                NetFault::Reset {
                    after_bytes: 100,
                    times: 1,
                },
                true,
            ),
        ] {
            let proxy = proxy();
            proxy.set(fault);
            let mut stream = connect(&proxy);
            assert!(echo(&mut stream, &[1u8; 50]).is_ok());
            let err = echo(&mut stream, &[2u8; 100]).map(|_| ());
            assert!(err.is_err(), "{fault}: the connection was not cut");
            // The budget is spent: a new connection works.
            let mut stream = connect(&proxy);
            assert!(echo(&mut stream, &[3u8; 500]).is_ok(), "{fault}");
            let stats = proxy.stats();
            assert_eq!(
                (stats.dropped, stats.reset),
                (u64::from(!reset), u64::from(reset))
            );
        }
    }

    #[test]
    fn a_black_hole_swallows_until_lifted_then_resets_what_it_swallowed() {
        let proxy = proxy();
        let mut old = connect(&proxy);
        assert!(echo(&mut old, b"before").is_ok());
        proxy.set(NetFault::BlackHole { after_bytes: 0 });
        old.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            echo(&mut old, b"lost").is_err(),
            "an open connection answered"
        );
        let mut new = connect(&proxy);
        new.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            echo(&mut new, b"lost too").is_err(),
            "a new connection answered"
        );
        assert_eq!(proxy.stats().black_holed, 2);
        proxy.clear();
        // The swallowed connections are reset; new ones work.
        std::thread::sleep(Duration::from_millis(100));
        old.set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut rest = Vec::new();
        assert!(old.read_to_end(&mut rest).is_err() || rest.is_empty());
        let mut fresh = connect(&proxy);
        assert_eq!(
            echo(&mut fresh, b"back").ok().as_deref(),
            Some(&b"back"[..])
        );
    }
}
