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
use std::path::Path;
use std::time::Duration;

#[path = "support/nginx.rs"]
mod nginx_server;
use nginx_server::Nginx;

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
    nginx_server::start(root, Some((cert, key)), "")
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
