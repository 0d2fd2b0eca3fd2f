//! Debian's `nginx` for the web seed tests, started by the test on a
//! loopback port with its own configuration in a temp directory and killed
//! by pid on drop. Missing nginx is a loud SKIP, and a failure under CI.

use super::harness::{temp_dir, wait_until};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// An `nginx` serving a directory on a loopback port; killed on drop.
pub struct Nginx {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Serve `root` on a free loopback port. `tls`: the certificate and key (PEM)
/// to listen with `ssl`; `extra`: more lines for the `server` block (more
/// `location`s). `None` after a loud SKIP when nginx is not installed (an
/// assertion failure under `CI=true`).
pub fn start(root: &Path, tls: Option<(&str, &str)>, extra: &str) -> Option<Nginx> {
    let Some(bin) = ["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
    else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "nginx is required under CI (apt-get install nginx-light)"
        );
        eprintln!("SKIP: nginx not installed (apt-get install nginx-light): web seed test not run");
        return None;
    };
    let dir = temp_dir("nginx");
    let d = dir.display();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = match tls {
        Some((cert, key)) => {
            std::fs::write(dir.join("cert.pem"), cert).unwrap();
            std::fs::write(dir.join("key.pem"), key).unwrap();
            format!(
                "listen 127.0.0.1:{port} ssl;\n    ssl_certificate {d}/cert.pem;\n    \
                 ssl_certificate_key {d}/key.pem;"
            )
        }
        None => format!("listen 127.0.0.1:{port};"),
    };
    let conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
         error_log {d}/error.log warn;\nevents {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
           fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
           types {{ application/octet-stream bin; }}\n\
           server {{\n    {listen}\n    root \"{}\";\n    location / {{ }}\n    {extra}\n  }}\n}}\n",
        root.display()
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let child = Command::new(bin)
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .arg("-e")
        .arg(dir.join("error.log"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let n = Nginx { child, addr };
    assert!(
        wait_until(Duration::from_secs(10), || TcpStream::connect(addr).is_ok()),
        "nginx did not start: {}",
        std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
    );
    Some(n)
}
