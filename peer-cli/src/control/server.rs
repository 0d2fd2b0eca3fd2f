//! The control API's HTTP server: one thread blocks in `accept` and hands each
//! connection to a fixed pool of [`WORKERS`] worker threads over a rendezvous
//! channel, so the number of threads never grows with the number of clients.
//!
//! When every worker is busy, the connection that has been *reading its head*
//! the longest is closed (an idle or slow client, never a request being
//! handled), and the new one waits up to [`WAIT_FOR_WORKER`] for a worker;
//! if none frees up it gets `503`. [`Server::stop`] wakes the accept thread
//! by connecting to it (as tiny_http does), so nothing ever polls.

use super::http::{read_request, send_response, write_response, Request, Response};
use crossbeam_channel::{SendTimeoutError, TrySendError};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Worker threads: the most connections served at once.
pub const WORKERS: usize = 8;
/// How long a client may take to send its request.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a connection waits for a free worker before it gets `503`.
pub const WAIT_FOR_WORKER: Duration = Duration::from_millis(500);
/// Timeout for writing a response.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the server serves.
pub trait Service: Send + Sync + 'static {
    /// Look at a request's head before its body is read: the largest request
    /// (head and body) allowed for it, or the response that refuses it.
    fn admit(&self, head: &Request) -> Result<usize, Response>;
    /// Answer a complete request.
    fn handle(&self, req: &Request) -> Response;
}

/// What each worker is doing, so that the accept thread can shed an idle
/// connection when all are busy.
#[derive(Default)]
struct Slots(Mutex<Vec<Option<Busy>>>);

struct Busy {
    /// A handle on the connection (to shut it down).
    stream: TcpStream,
    since: Instant,
    /// Still reading the request head or body (not yet handled).
    reading: bool,
}

impl Slots {
    fn with<R>(&self, f: impl FnOnce(&mut Vec<Option<Busy>>) -> R) -> R {
        let mut g = match self.0.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        f(&mut g)
    }

    /// Close the connection that has been reading the longest, if any.
    fn shed_oldest_reader(&self) -> bool {
        self.with(|s| {
            let oldest = s
                .iter_mut()
                .flatten()
                .filter(|b| b.reading)
                .min_by_key(|b| b.since);
            match oldest {
                Some(b) => {
                    let _ = b.stream.shutdown(Shutdown::Both);
                    b.reading = false;
                    true
                }
                None => false,
            }
        })
    }

    fn shed_all_readers(&self) {
        self.with(|s| {
            for b in s.iter_mut().flatten().filter(|b| b.reading) {
                let _ = b.stream.shutdown(Shutdown::Both);
            }
        })
    }
}

/// A listening socket on 127.0.0.1, any free port (never other interfaces).
#[cfg(test)]
pub fn bind_local() -> std::io::Result<TcpListener> {
    bind_local_port(0)
}

/// A listening socket on 127.0.0.1 and this port (0: any free port).
pub fn bind_local_port(port: u16) -> std::io::Result<TcpListener> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port))
}

/// A running control server.
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    slots: Arc<Slots>,
    accept: Option<JoinHandle<()>>,
    workers: Vec<JoinHandle<()>>,
}

impl Server {
    /// Serve on `listener` (from [`bind_local`]).
    pub fn start(listener: TcpListener, service: Arc<dyn Service>) -> std::io::Result<Server> {
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let slots = Arc::new(Slots(Mutex::new((0..WORKERS).map(|_| None).collect())));
        let (tx, rx) = crossbeam_channel::bounded::<TcpStream>(0);
        let mut workers = Vec::with_capacity(WORKERS);
        for i in 0..WORKERS {
            let (rx, service, slots) = (rx.clone(), service.clone(), slots.clone());
            workers.push(
                std::thread::Builder::new()
                    .name("control worker".into())
                    .spawn(move || {
                        for stream in rx {
                            serve(i, stream, &*service, &slots);
                        }
                    })?,
            );
        }
        let (s, sl) = (stop.clone(), slots.clone());
        let accept = std::thread::Builder::new()
            .name("control accept".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if s.load(Ordering::SeqCst) {
                        break;
                    }
                    let stream = match conn {
                        Ok(c) => c,
                        Err(e) => {
                            // Out of descriptors, most likely: back off a little.
                            log::warn!("control: accept: {e}");
                            std::thread::sleep(Duration::from_millis(20));
                            continue;
                        }
                    };
                    match tx.try_send(stream) {
                        Ok(()) => continue,
                        Err(TrySendError::Disconnected(_)) => break,
                        Err(TrySendError::Full(stream)) => {
                            sl.shed_oldest_reader();
                            match tx.send_timeout(stream, WAIT_FOR_WORKER) {
                                Ok(()) => {}
                                Err(SendTimeoutError::Timeout(mut stream)) => {
                                    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
                                    write_response(
                                        &mut stream,
                                        &Response::error(503, "the control API is busy; try again"),
                                    );
                                }
                                Err(SendTimeoutError::Disconnected(_)) => break,
                            }
                        }
                    }
                }
            })?;
        Ok(Server {
            addr,
            stop,
            slots,
            accept: Some(accept),
            workers,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop: no new connection is accepted; requests being handled finish.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept by connecting to it.
        let woke =
            (0..3).any(|_| TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).is_ok());
        if let Some(t) = self.accept.take() {
            if woke {
                let _ = t.join();
            } else {
                log::warn!("control: could not wake the accept thread; leaving it");
            }
        }
        self.slots.shed_all_readers();
        if self.accept.is_none() {
            for w in self.workers.drain(..) {
                let _ = w.join();
            }
        }
    }
}

fn serve(worker: usize, mut stream: TcpStream, service: &dyn Service, slots: &Slots) {
    let start = Instant::now();
    let handle = stream.try_clone();
    // Without a handle to shut it down, the connection is simply never shed.
    let registered = slots.with(|s| match (s.get_mut(worker), handle) {
        (Some(slot), Ok(h)) => {
            *slot = Some(Busy {
                stream: h,
                since: start,
                reading: true,
            });
            true
        }
        _ => false,
    });
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let timeouts = stream.try_clone();
    let set_timeout = |d: Duration| {
        if let Ok(t) = &timeouts {
            let _ = t.set_read_timeout(Some(d));
        }
    };
    let req = read_request(&mut stream, &set_timeout, READ_TIMEOUT, &|h| {
        service.admit(h)
    });
    // From here on the connection is never shed.
    let shed = registered
        && slots.with(|s| match s.get_mut(worker) {
            Some(Some(b)) if b.reading => {
                b.reading = false;
                false
            }
            _ => true,
        });
    if !shed {
        let r = match req {
            Ok(req) => service.handle(&req),
            Err(r) => r,
        };
        send_response(&mut stream, r);
    }
    slots.with(|s| {
        if let Some(slot) = s.get_mut(worker) {
            *slot = None;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::io::{Read, Write};

    struct Echo;
    impl Service for Echo {
        fn admit(&self, _: &Request) -> Result<usize, Response> {
            Ok(super::super::http::MAX_REQUEST)
        }
        fn handle(&self, r: &Request) -> Response {
            Response::ok(json!({"path": r.path, "body": String::from_utf8_lossy(&r.body)}))
        }
    }

    fn get(addr: SocketAddr) -> (String, Duration) {
        let t = Instant::now();
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        s.write_all(b"GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .expect("write");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        (out, t.elapsed())
    }

    #[test]
    fn answers_and_sheds_idle_connections() {
        let server = Server::start(bind_local().expect("bind"), Arc::new(Echo)).expect("start");
        let (out, _) = get(server.addr());
        assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
        assert!(out.contains(r#""path":"/x""#), "{out}");
        // Many idle connections: each new one sheds the oldest idle one,
        // and a real request still gets a worker at once.
        let idle: Vec<TcpStream> = (0..200)
            .map(|_| TcpStream::connect(server.addr()).expect("connect"))
            .collect();
        std::thread::sleep(Duration::from_millis(100));
        let (out, took) = get(server.addr());
        assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
        assert!(took < WAIT_FOR_WORKER, "took {took:?}");
        drop(idle);
        server.stop();
    }

    /// Holds every request until released.
    struct Slow(Arc<(Mutex<bool>, std::sync::Condvar)>);
    impl Service for Slow {
        fn admit(&self, _: &Request) -> Result<usize, Response> {
            Ok(1024)
        }
        fn handle(&self, _: &Request) -> Response {
            let (m, cv) = &*self.0;
            let mut open = m.lock().expect("lock");
            while !*open {
                open = cv.wait(open).expect("wait");
            }
            Response::ok(json!({}))
        }
    }

    #[test]
    fn busy_workers_mean_503_not_more_threads() {
        let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let server = Server::start(bind_local().expect("bind"), Arc::new(Slow(gate.clone())))
            .expect("start");
        let addr = server.addr();
        // Occupy every worker with a request being handled (never shed),
        // one at a time: a connection that finds no worker waiting sheds
        // the oldest one still reading its request, and on a loaded machine
        // eight clients at once may not all have sent theirs yet.
        let busy = || {
            server
                .slots
                .with(|s| s.iter().flatten().filter(|b| !b.reading).count())
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut held = Vec::new();
        for n in 1..=WORKERS {
            held.push(std::thread::spawn(move || get(addr).0));
            while busy() < n {
                assert!(Instant::now() < deadline, "the workers never all got busy");
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let (out, took) = get(addr);
        assert!(out.starts_with("HTTP/1.1 503"), "{out}");
        assert!(took >= WAIT_FOR_WORKER, "{took:?}");
        let (m, cv) = &*gate;
        *m.lock().expect("lock") = true;
        cv.notify_all();
        for h in held {
            assert!(h.join().expect("join").starts_with("HTTP/1.1 200"));
        }
        assert!(get(addr).0.starts_with("HTTP/1.1 200"));
        server.stop();
    }

    #[test]
    fn stop_wakes_the_blocking_accept() {
        let server = Server::start(bind_local().expect("bind"), Arc::new(Echo)).expect("start");
        let addr = server.addr();
        let t = Instant::now();
        server.stop();
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        // Nothing listens any more.
        assert!(TcpStream::connect(addr).is_err() || get(addr).0.is_empty());
    }
}
