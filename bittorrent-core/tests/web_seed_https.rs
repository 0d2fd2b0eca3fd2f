//! An HTTPS web seed (BEP 19 over TLS): Debian's `nginx` with `ssl` on a
//! loopback port and a certificate for `127.0.0.1` signed by a CA made by
//! the test (`rcgen`), trusted through `SSL_CERT_FILE` only (set before the
//! process's first HTTPS request loads the trust roots: this binary has this
//! one test). The torrent, with no peers, downloads byte-identical from it;
//! the same server under a CA we do not trust gives nothing and shows a
//! certificate error.
#![allow(clippy::unwrap_used)]

mod harness;

use bittorrent_core::{AddTorrent, Phase};
use harness::*;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Nginx {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A CA's PEM and a `127.0.0.1` server certificate and key (PEM) it signed.
fn make_ca() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "peer web seed test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

/// `nginx` serving `root` over TLS with `cert`/`key` (PEM); `None` after a
/// loud SKIP when nginx is missing (a failure under CI).
fn nginx_tls(root: &Path, cert: &str, key: &str) -> Option<Nginx> {
    let Some(bin) = ["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
    else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "nginx is required under CI (apt-get install nginx-light)"
        );
        eprintln!(
            "SKIP: nginx not installed (apt-get install nginx-light): HTTPS web seed test not run"
        );
        return None;
    };
    let dir = temp_dir("nginx-tls");
    std::fs::write(dir.join("cert.pem"), cert).unwrap();
    std::fs::write(dir.join("key.pem"), key).unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let d = dir.display();
    let conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
         error_log {d}/error.log warn;\nevents {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
           fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
           types {{ application/octet-stream bin; }}\n\
           server {{\n    listen 127.0.0.1:{port} ssl;\n    ssl_certificate {d}/cert.pem;\n\
             ssl_certificate_key {d}/key.pem;\n    root \"{}\";\n    location / {{ }}\n  }}\n}}\n",
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

#[test]
fn https_web_seed_with_a_trusted_ca_and_not_with_an_untrusted_one() {
    let (ca_pem, cert, key) = make_ca();
    let (_, other_cert, other_key) = make_ca();
    let ca_dir = temp_dir("ws-tls-ca");
    std::fs::write(ca_dir.join("ca.pem"), &ca_pem).unwrap();
    // Before any HTTPS request of this process (the roots load once).
    std::env::set_var("SSL_CERT_FILE", ca_dir.join("ca.pem"));
    std::env::remove_var("SSL_CERT_DIR");

    let data = pseudo_random(2 * 1024 * 1024 + 4321, 9);
    let (mut mi, seed_dir) = single_file_torrent("tls.bin", &data, 32 * 1024);
    let Some(good) = nginx_tls(&seed_dir, &cert, &key) else {
        return;
    };
    let Some(untrusted) = nginx_tls(&seed_dir, &other_cert, &other_key) else {
        return;
    };
    mi.url_list = vec![
        format!("https://{}/tls.bin", untrusted.addr),
        format!("https://{}/tls.bin", good.addr),
    ];
    let dir = temp_dir("ws-tls");
    let s = session();
    s.add(AddTorrent::new(mi.clone(), &dir)).unwrap();
    wait_phase(&s, &mi, Phase::Seeding, Duration::from_secs(90));
    assert_eq!(std::fs::read(dir.join("tls.bin")).unwrap(), data);
    let st = s.status(&mi.info_hash).unwrap();
    eprintln!("{:#?}", st.web_seeds);
    let w = &st.web_seeds;
    assert_eq!(w[0].downloaded, 0, "{w:?}");
    let err = w[0].error.as_deref().unwrap_or("").to_ascii_lowercase();
    assert!(
        err.contains("certificate") || err.contains("issuer"),
        "{w:?}"
    );
    assert!(w[1].downloaded >= data.len() as u64, "{w:?}");
    assert_eq!(st.peers, 0);
}
