//! A TCP proxy on 127.0.0.1 that can go silent: the connections open when it is silenced stop
//! forwarding bytes in either direction but stay open (no FIN, no RST), as when a NAT or a
//! firewall forgets a flow; connections opened afterwards are forwarded as usual. It also keeps
//! what clients sent, so a test can count the requests that went through.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A running proxy; stops accepting when dropped (open connections end with the test).
pub struct SilentProxy {
    /// The port it listens on.
    pub port: u16,
    state: Arc<State>,
}

struct State {
    /// Connections opened before this number was reached are silent.
    silent_below: AtomicU64,
    opened: AtomicU64,
    stop: AtomicBool,
    /// Every socket, so the silent ones stay open until the proxy goes.
    held: Mutex<Vec<TcpStream>>,
    /// Every byte clients sent, per connection.
    sent: Mutex<Vec<Vec<u8>>>,
}

impl SilentProxy {
    /// Forwards 127.0.0.1:<port> to 127.0.0.1:`target`.
    pub fn start(target: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(State {
            silent_below: AtomicU64::new(0),
            opened: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            held: Mutex::new(Vec::new()),
            sent: Mutex::new(Vec::new()),
        });
        let accepting = state.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if accepting.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let id = accepting.opened.fetch_add(1, Ordering::SeqCst);
                accepting.sent.lock().unwrap().push(Vec::new());
                {
                    let mut held = accepting.held.lock().unwrap();
                    held.push(client.try_clone().unwrap());
                    held.push(server.try_clone().unwrap());
                }
                for (from, to, upstream) in [
                    (
                        client.try_clone().unwrap(),
                        server.try_clone().unwrap(),
                        true,
                    ),
                    (server, client, false),
                ] {
                    let state = accepting.clone();
                    std::thread::spawn(move || pump(from, to, (id, upstream), &state));
                }
            }
        });
        Self { port, state }
    }

    /// Silences every connection open now; later ones are forwarded.
    pub fn silence_existing(&self) {
        let opened = self.state.opened.load(Ordering::SeqCst);
        self.state.silent_below.store(opened, Ordering::SeqCst);
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.state.opened.load(Ordering::SeqCst)
    }

    /// How many times clients sent `needle` (a request line's start, e.g. `PUT /bucket/`),
    /// over every connection so far.
    pub fn sent_count(&self, needle: &str) -> usize {
        let needle = needle.as_bytes();
        self.state
            .sent
            .lock()
            .unwrap()
            .iter()
            .map(|bytes| bytes.windows(needle.len()).filter(|w| *w == needle).count())
            .sum()
    }
}

/// Copies `from` to `to` until either ends; once the connection is silenced, what arrives is
/// read and dropped, and nothing is closed.
fn pump(mut from: TcpStream, mut to: TcpStream, (id, upstream): (u64, bool), state: &State) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if id < state.silent_below.load(Ordering::SeqCst) {
            continue;
        }
        if upstream {
            state.sent.lock().unwrap()[id as usize].extend_from_slice(&buf[..n]);
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    if id >= state.silent_below.load(Ordering::SeqCst) {
        let _ = to.shutdown(Shutdown::Write);
    }
}

impl Drop for SilentProxy {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the stop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        for s in self.state.held.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}
