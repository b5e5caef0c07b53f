//! Echo servers running inside a namespace, stopped when their handle drops.

use std::{
    io::{ErrorKind, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream, UdpSocket},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    thread::{self, JoinHandle},
    time::Duration,
};

use anyhow::{Context, Result};

use crate::netns::Netns;

/// How often a server looks at its stop flag (its read and accept timeout).
const POLL: Duration = Duration::from_millis(100);
/// How long a TCP echo may wait for a peer that does not read.
const WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// A running echo server; dropping it stops the server and joins its threads
/// (within about 100 ms, its polling interval).
#[derive(Debug)]
pub struct ServerHandle {
    local: SocketAddr,
    stop: Arc<AtomicBool>,
    served: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl ServerHandle {
    /// The address the server listens on (with the real port when bound to 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// How many datagrams (UDP) or connections (TCP) the server has received.
    pub fn served(&self) -> usize {
        self.served.load(Ordering::SeqCst)
    }

    fn start(
        local: SocketAddr,
        name: String,
        serve: impl FnOnce(&AtomicBool, &AtomicUsize) + Send + 'static,
    ) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicUsize::new(0));
        let (thread_stop, thread_served) = (Arc::clone(&stop), Arc::clone(&served));
        let thread = thread::Builder::new()
            .name(name)
            .spawn(move || serve(&thread_stop, &thread_served))
            .context("cannot spawn the server thread")?;
        Ok(Self {
            local,
            stop,
            served,
            thread: Some(thread),
        })
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            // A server thread that panicked has nothing more to say here.
            let _ = thread.join();
        }
    }
}

/// Starts a UDP server in `ns` that sends every datagram back to its sender.
pub fn udp_echo_server(ns: &Netns, bind: SocketAddr) -> Result<ServerHandle> {
    let socket = ns
        .run(|| UdpSocket::bind(bind))
        .with_context(|| format!("cannot bind UDP {bind} in {}", ns.name()))?;
    socket.set_read_timeout(Some(POLL))?;
    let local = socket.local_addr()?;
    ServerHandle::start(
        local,
        format!("udp-echo-{}", local.port()),
        move |stop, served| {
            let mut buf = vec![0; 65_536];
            while !stop.load(Ordering::SeqCst) {
                match socket.recv_from(&mut buf) {
                    Ok((len, peer)) => {
                        served.fetch_add(1, Ordering::SeqCst);
                        // A lost echo is what probes exist to notice.
                        let _ = socket.send_to(&buf[..len], peer);
                    }
                    Err(err) if is_timeout(&err) => {}
                    Err(_) => thread::sleep(POLL),
                }
            }
        },
    )
}

/// Starts a TCP server in `ns` that echoes whatever each connection sends,
/// one thread per connection.
pub fn tcp_echo_server(ns: &Netns, bind: SocketAddr) -> Result<ServerHandle> {
    let listener = ns
        .run(|| TcpListener::bind(bind))
        .with_context(|| format!("cannot listen on TCP {bind} in {}", ns.name()))?;
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    ServerHandle::start(
        local,
        format!("tcp-echo-{}", local.port()),
        move |stop, served| {
            thread::scope(|scope| {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            served.fetch_add(1, Ordering::SeqCst);
                            scope.spawn(move || echo_connection(stream, stop));
                        }
                        Err(err) if is_timeout(&err) => thread::sleep(POLL / 5),
                        Err(_) => thread::sleep(POLL),
                    }
                }
            });
        },
    )
}

/// Echoes `stream` until the peer closes it, an error, or `stop`.
fn echo_connection(mut stream: TcpStream, stop: &AtomicBool) {
    let configured = stream.set_nonblocking(false).is_ok()
        && stream.set_read_timeout(Some(POLL)).is_ok()
        && stream.set_write_timeout(Some(WRITE_TIMEOUT)).is_ok();
    if !configured {
        return;
    }
    let mut buf = [0; 4096];
    while !stop.load(Ordering::SeqCst) {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(len) => {
                if stream.write_all(&buf[..len]).is_err() {
                    return;
                }
            }
            Err(err) if is_timeout(&err) || err.kind() == ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// Whether `err` means "nothing yet" (a read timeout or a non-blocking miss).
fn is_timeout(err: &std::io::Error) -> bool {
    matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}
