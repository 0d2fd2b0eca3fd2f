//! Test-only HTTP(S) servers on loopback: a certificate authority and a
//! `localhost` / `127.0.0.1` certificate made with `rcgen`, and a tiny
//! server (plain TCP or TLS through `rustls`) that answers each request with
//! a handler's bytes, or forwards it to a plain HTTP backend (a TLS
//! terminator in front of a peer's embedded tracker).
//!
//! Shared by `bittorrent-core/tests/tracker_https.rs` and
//! `peer-cli/tests/https_tracker.rs` (included with `#[path]`).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A CA (its PEM goes into `SSL_CERT_FILE`) and a server certificate for
/// `localhost` and `127.0.0.1` signed by it.
pub struct TestCa {
    /// The CA certificate, PEM.
    pub ca_pem: String,
    /// The server certificate, DER.
    pub cert: CertificateDer<'static>,
    /// The server key, PKCS#8 DER.
    pub key: Vec<u8>,
}

impl TestCa {
    /// A new CA and server certificate.
    pub fn new() -> TestCa {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "peer test CA");
        let ca = ca_params.self_signed(&ca_key).expect("CA cert");
        let key = KeyPair::generate().expect("server key");
        let params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("server params");
        let cert = params.signed_by(&key, &ca, &ca_key).expect("server cert");
        TestCa {
            ca_pem: ca.pem(),
            cert: cert.der().clone(),
            key: key.serialize_der(),
        }
    }

    /// Write the CA certificate to `dir/ca.pem` and return the path.
    pub fn write_ca(&self, dir: &Path) -> PathBuf {
        std::fs::create_dir_all(dir).expect("mkdir");
        let p = dir.join("ca.pem");
        std::fs::write(&p, &self.ca_pem).expect("write ca.pem");
        p
    }

    fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.clone()));
        Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("protocol versions")
                .with_no_client_auth()
                .with_single_cert(vec![self.cert.clone()], key)
                .expect("server config"),
        )
    }
}

/// What a server does with one request (the request head as received).
pub type Handler = Arc<dyn Fn(&[u8]) -> Vec<u8> + Send + Sync>;

/// A server on 127.0.0.1 running until dropped.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl TestServer {
    /// Plain HTTP.
    pub fn http(handler: Handler) -> TestServer {
        TestServer::start(None, handler)
    }

    /// HTTPS with `ca`'s server certificate.
    pub fn https(ca: &TestCa, handler: Handler) -> TestServer {
        TestServer::start(Some(ca.server_config()), handler)
    }

    fn start(tls: Option<Arc<rustls::ServerConfig>>, handler: Handler) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let thread = thread::spawn(move || {
            // Polls every 10 ms until dropped; each connection on its own
            // thread, bounded by socket timeouts.
            while !st.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let (tls, handler) = (tls.clone(), handler.clone());
                        thread::spawn(move || serve(s, tls, handler));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        TestServer {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

/// Read one request head (up to the blank line, 64 KiB at most).
fn read_head(s: &mut impl Read) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut chunk).ok()?;
        if n == 0 || buf.len() > 64 * 1024 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(buf)
}

fn serve(s: TcpStream, tls: Option<Arc<rustls::ServerConfig>>, handler: Handler) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(10)));
    match tls {
        None => {
            let mut s = s;
            if let Some(req) = read_head(&mut s) {
                let _ = s.write_all(&handler(&req));
            }
            let _ = s.shutdown(Shutdown::Both);
        }
        Some(cfg) => {
            let Ok(conn) = rustls::ServerConnection::new(cfg) else {
                return;
            };
            let mut t = rustls::StreamOwned::new(conn, s);
            if let Some(req) = read_head(&mut t) {
                let _ = t.write_all(&handler(&req));
                t.conn.send_close_notify();
                let _ = t.flush();
            }
            let _ = t.sock.shutdown(Shutdown::Both);
        }
    }
}

/// A handler forwarding each request to the plain HTTP server at `backend`
/// and returning its whole answer (the backend closes after one response).
pub fn forward_to(backend: SocketAddr) -> Handler {
    Arc::new(move |req: &[u8]| {
        let Ok(mut b) = TcpStream::connect_timeout(&backend, Duration::from_secs(5)) else {
            return b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n".to_vec();
        };
        let _ = b.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = b.write_all(req);
        let mut out = Vec::new();
        let end = Instant::now() + Duration::from_secs(5);
        let mut chunk = [0u8; 8192];
        while Instant::now() < end {
            match b.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&chunk[..n]),
            }
        }
        out
    })
}

/// The path (and query) of a request head.
pub fn request_path(req: &[u8]) -> String {
    String::from_utf8_lossy(req)
        .split(' ')
        .nth(1)
        .unwrap_or("")
        .to_string()
}

/// A `200 OK` response with `body` and extra header lines.
pub fn ok_response(headers: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 200 OK\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}
