//! The mapper's choice between PCP and NAT-PMP, against a fake gateway on
//! loopback that speaks NAT-PMP only or PCP.

use super::v4::{map_pcp_or_natpmp, remove, Held};
use super::*;
use std::net::UdpSocket;

/// What the fake gateway saw: the PCP requests (their nonces and
/// lifetimes) and the number of NAT-PMP requests.
#[derive(Default, Debug)]
struct Seen {
    pcp: Vec<([u8; 12], u32)>,
    natpmp: usize,
}

/// A fake gateway on 127.0.0.1 answering until 1 s passes in silence.
/// `pcp`: it speaks PCP; otherwise NAT-PMP only (a version-2 request gets
/// "unsupported version").
fn fake_gateway(pcp: bool) -> (u16, std::thread::JoinHandle<Seen>) {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = sock.local_addr().expect("addr").port();
    let t = std::thread::spawn(move || {
        let mut seen = Seen::default();
        let mut buf = [0u8; 1200];
        sock.set_read_timeout(Some(Duration::from_secs(1)))
            .expect("timeout");
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            let b = &buf[..n];
            let answer: Vec<u8> = match (b[0], b[1]) {
                (2, 1) if pcp && n == pcp::MAP_LEN => {
                    let mut nonce = [0u8; 12];
                    nonce.copy_from_slice(&b[24..36]);
                    let lifetime = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
                    seen.pcp.push((nonce, lifetime));
                    let mut a = vec![2, 129, 0, 0];
                    a.extend_from_slice(&b[4..8]); // the lifetime asked
                    a.extend_from_slice(&[0, 0, 0, 7]); // epoch
                    a.extend_from_slice(&[0; 12]);
                    a.extend_from_slice(&b[24..44]); // nonce .. ports
                    a.extend_from_slice(&Ipv4Addr::new(84, 124, 73, 14).to_ipv6_mapped().octets());
                    a
                }
                (2, op) => {
                    seen.pcp.push(([0; 12], 0));
                    vec![0, 128 + op, 0, 1, 0, 0, 0, 7]
                }
                (0, 0) => {
                    seen.natpmp += 1;
                    vec![0, 128, 0, 0, 0, 0, 0, 7, 84, 124, 73, 14]
                }
                (0, op @ (1 | 2)) if n == 12 => {
                    seen.natpmp += 1;
                    let mut a = vec![0, 128 + op, 0, 0, 0, 0, 0, 7];
                    a.extend_from_slice(&b[4..6]);
                    a.extend_from_slice(&b[4..6]);
                    a.extend_from_slice(&b[8..12]);
                    a
                }
                _ => continue,
            };
            sock.send_to(&answer, from).expect("answer");
        }
        seen
    });
    (port, t)
}

fn config(port: u16) -> PortMapConfig {
    PortMapConfig {
        port: 6881,
        ssdp: SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9),
        natpmp_port: port,
        on_external: Arc::new(|_| {}),
        listen6: None,
        ssdp6: SocketAddrV6::new(std::net::Ipv6Addr::LOCALHOST, 9, 0, 0),
    }
}

#[test]
fn a_nat_pmp_only_gateway_gets_nat_pmp_after_one_pcp_request_each() {
    let (port, t) = fake_gateway(false);
    let (held, st) = map_pcp_or_natpmp(&config(port), Ipv4Addr::LOCALHOST, None).expect("mapped");
    assert!(matches!(held, Held::NatPmp { .. }));
    assert_eq!(st.method, Some("nat-pmp"));
    assert_eq!(st.tcp_port, Some(6881));
    assert_eq!(st.external_ip, Some(Ipv4Addr::new(84, 124, 73, 14).into()));
    // A renewal of the NAT-PMP mapping does not ask PCP again.
    map_pcp_or_natpmp(&config(port), Ipv4Addr::LOCALHOST, Some(&held)).expect("renewed");
    let seen = t.join().expect("gateway");
    // One PCP request, answered "unsupported version" at once; then
    // NAT-PMP: external address, TCP, UDP; the renewal the same.
    assert_eq!(seen.pcp.len(), 1, "{seen:?}");
    assert_eq!(seen.natpmp, 6, "{seen:?}");
}

#[test]
fn a_pcp_gateway_is_mapped_renewed_and_cleared_with_the_same_nonces() {
    let (port, t) = fake_gateway(true);
    let cfg = config(port);
    let (held, st) = map_pcp_or_natpmp(&cfg, Ipv4Addr::LOCALHOST, None).expect("mapped");
    assert_eq!(st.method, Some("pcp"));
    assert_eq!((st.tcp_port, st.udp_port), (Some(6881), Some(6881)));
    assert_eq!(st.external_ip, Some(Ipv4Addr::new(84, 124, 73, 14).into()));
    let (held2, _) = map_pcp_or_natpmp(&cfg, Ipv4Addr::LOCALHOST, Some(&held)).expect("renewed");
    remove(&cfg, &held2);
    let seen = t.join().expect("gateway");
    assert_eq!(seen.natpmp, 0, "{seen:?}");
    let [tcp, udp, tcp2, udp2, del_tcp, del_udp] = seen.pcp[..] else {
        panic!("{seen:?}");
    };
    assert_ne!(tcp.0, udp.0, "one nonce per mapping");
    assert_eq!((tcp2.0, udp2.0), (tcp.0, udp.0), "renewal: same nonces");
    assert_eq!(
        (del_tcp.0, del_udp.0),
        (tcp.0, udp.0),
        "removal: same nonces"
    );
    assert_eq!((del_tcp.1, del_udp.1), (0, 0), "removal: lifetime 0");
    assert!(tcp.1 > 0);
}
