//! PCP (RFC 6887) MAP: a port mapping over UDP to the default gateway's
//! port 5351 (the port NAT-PMP uses too). A request is the 24-byte common
//! header (version 2, opcode MAP, the lifetime asked, our address as an
//! IPv4-mapped IPv6 address) and the 36-byte MAP body (a random 12-byte
//! nonce, the protocol, the internal port, the suggested external port and
//! address); the answer carries a result code, the lifetime granted, the
//! gateway's epoch and the assigned external port and address.
//!
//! A renewal and the removal (lifetime 0) repeat the nonce of the mapping
//! (RFC 6887 §11.2: the nonce proves the mapping is ours). A NAT-PMP-only
//! gateway answers a version-2 request with a NAT-PMP "unsupported
//! version" (version 0, result 1), a PCP gateway of another version with
//! UNSUPP_VERSION: both are [`MapError::NoAnswer`] here, as is silence, and
//! the mapper falls back to NAT-PMP.
//!
//! Over IPv6 (RFC 6887 §11.3: a MAP whose client address is our IPv6
//! address, sent to the IPv6 default router, suggested external address
//! `::`) the same MAP opens a pinhole in the router's IPv6 firewall: the
//! answer's external address is then IPv6 (ours, where there is no NAT66),
//! and a v4-mapped one is refused. Retransmission (RFC 6887 §8.1.1 starts
//! at 3 s and doubles without end) is cut short like NAT-PMP's: after
//! 250 ms, 500 ms and 1 s, so a silent gateway is given up after 1.75 s.

use super::{MapError, Protocol};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// Our PCP version.
pub(crate) const VERSION: u8 = 2;
/// The MAP opcode.
const OP_MAP: u8 = 1;
/// The common header's length (request and response).
const HEADER_LEN: usize = 24;
/// A MAP request or response: header and MAP body.
pub(crate) const MAP_LEN: usize = HEADER_LEN + 36;
/// The longest PCP message (RFC 6887 §7).
const MAX_LEN: usize = 1100;
/// Waits between retransmissions (RFC 6887 §8.1.1, cut short).
const RETRIES: [Duration; 3] = [
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_millis(1000),
];

/// A MAP request (lifetime 0 deletes the mapping).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MapRequest {
    /// Our address on the gateway's side (the packet's source address):
    /// IPv4 for a NAT mapping, IPv6 for a pinhole.
    pub(crate) client: IpAddr,
    /// The mapping's nonce: random, repeated in renewals and the removal.
    pub(crate) nonce: [u8; 12],
    pub(crate) protocol: Protocol,
    pub(crate) internal_port: u16,
    /// The external port we would like (0: any).
    pub(crate) external_port: u16,
    /// The external address we would like (`0.0.0.0` or `::`: any).
    pub(crate) external_ip: IpAddr,
    pub(crate) lifetime: u32,
}

impl MapRequest {
    /// The MAP of our `port` for protocol `i` (0 TCP, 1 UDP) from `client`:
    /// the same external port asked for, any external address of the
    /// client's family; lifetime 0 deletes the mapping (external port 0).
    pub(crate) fn ours(
        client: IpAddr,
        nonce: [u8; 12],
        i: usize,
        port: u16,
        lifetime: u32,
    ) -> MapRequest {
        MapRequest {
            client,
            nonce,
            protocol: if i == 0 { Protocol::Tcp } else { Protocol::Udp },
            internal_port: port,
            external_port: if lifetime == 0 { 0 } else { port },
            external_ip: match client {
                IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
                IpAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
            },
            lifetime,
        }
    }
}

/// A successful MAP answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mapped {
    pub(crate) protocol: Protocol,
    pub(crate) internal_port: u16,
    pub(crate) external_port: u16,
    /// The assigned external address, of the client address's family (an
    /// answer of the other family is refused; `0.0.0.0` or `::` after a
    /// removal).
    pub(crate) external_ip: IpAddr,
    /// Seconds granted (0 after a removal).
    pub(crate) lifetime: u32,
    /// The gateway's epoch (seconds since its mapping state was reset).
    pub(crate) epoch: u32,
}

/// A fresh random nonce.
pub(crate) fn new_nonce() -> [u8; 12] {
    let mut n = [0u8; 12];
    crate::proto::mse::crypto::fill_random(&mut n);
    n
}

/// The IANA protocol number.
fn proto_number(p: Protocol) -> u8 {
    match p {
        Protocol::Tcp => 6,
        Protocol::Udp => 17,
    }
}

impl MapRequest {
    /// The request's 60 bytes.
    pub(crate) fn encode(&self) -> [u8; MAP_LEN] {
        let mut b = [0u8; MAP_LEN];
        b[0] = VERSION;
        b[1] = OP_MAP; // R bit 0: a request
                       // b[2..4] reserved
        b[4..8].copy_from_slice(&self.lifetime.to_be_bytes());
        b[8..24].copy_from_slice(&as_v6(self.client).octets());
        b[24..36].copy_from_slice(&self.nonce);
        b[36] = proto_number(self.protocol);
        // b[37..40] reserved
        b[40..42].copy_from_slice(&self.internal_port.to_be_bytes());
        b[42..44].copy_from_slice(&self.external_port.to_be_bytes());
        b[44..60].copy_from_slice(&as_v6(self.external_ip).octets());
        b
    }
}

/// An address as PCP carries it: IPv4 as `::ffff:a.b.c.d`.
fn as_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// The text of a PCP result code (RFC 6887 §7.4).
pub(crate) fn result_text(code: u8) -> &'static str {
    match code {
        1 => "unsupported version",
        2 => "not authorized (mapping disabled on the gateway)",
        3 => "malformed request",
        4 => "unsupported opcode",
        5 => "unsupported option",
        6 => "malformed option",
        7 => "network failure (the gateway has no external address)",
        8 => "no resources",
        9 => "unsupported protocol",
        10 => "user exceeded quota",
        11 => "cannot provide the external port or address",
        12 => "address mismatch (the gateway sees another source address)",
        13 => "excessive remote peers",
        _ => "unknown result code",
    }
}

/// Decode an answer to `req`. `Ok(None)`: not an answer to it (another
/// nonce, protocol or port, a request, junk: ignored). `Err(NoAnswer)`:
/// the gateway speaks no PCP version 2 (fall back to NAT-PMP);
/// `Err(Refused)`: the gateway refused.
pub(crate) fn decode(b: &[u8], req: &MapRequest) -> Result<Option<Mapped>, MapError> {
    if b.len() < 4 {
        return Ok(None);
    }
    // A NAT-PMP gateway: version 0, an answer (opcode >= 128), result
    // 1 "unsupported version" (RFC 6887 §9: the fallback).
    if b[0] == 0 {
        return if b[1] >= 128 && u16::from_be_bytes([b[2], b[3]]) == 1 {
            Err(MapError::NoAnswer)
        } else {
            Ok(None)
        };
    }
    if b[1] != 128 + OP_MAP || b.len() < HEADER_LEN || b.len() > MAX_LEN || b.len() % 4 != 0 {
        return Ok(None);
    }
    let result = b[3];
    // UNSUPP_VERSION: the version field is the gateway's (possibly lower)
    // version, the rest of the answer may be short.
    if result == 1 {
        return Err(MapError::NoAnswer);
    }
    if b[0] != VERSION || b.len() < MAP_LEN {
        return Ok(None);
    }
    if b[24..36] != req.nonce
        || b[36] != proto_number(req.protocol)
        || u16::from_be_bytes([b[40], b[41]]) != req.internal_port
    {
        return Ok(None);
    }
    if result != 0 {
        return Err(MapError::Refused(format!(
            "PCP says {} (result {result})",
            result_text(result)
        )));
    }
    let lifetime = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
    let epoch = u32::from_be_bytes([b[8], b[9], b[10], b[11]]);
    let mut ip = [0u8; 16];
    ip.copy_from_slice(&b[44..60]);
    let ip = Ipv6Addr::from(ip);
    let external_ip = match (req.client, ip.to_ipv4_mapped()) {
        (IpAddr::V4(_), Some(v4)) => IpAddr::V4(v4),
        // A removal's answer may carry no address.
        (IpAddr::V4(_), None) if lifetime == 0 && ip.is_unspecified() => {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        }
        (IpAddr::V4(_), None) => {
            return Err(MapError::Refused(format!(
                "PCP assigned a non-IPv4 external address {ip}"
            )));
        }
        (IpAddr::V6(_), None) if lifetime == 0 || !(ip.is_unspecified() || ip.is_multicast()) => {
            IpAddr::V6(ip)
        }
        (IpAddr::V6(_), _) => {
            return Err(MapError::Refused(format!(
                "PCP assigned {ip} for an IPv6 pinhole: not a usable IPv6 address"
            )));
        }
    };
    Ok(Some(Mapped {
        protocol: req.protocol,
        internal_port: req.internal_port,
        external_port: u16::from_be_bytes([b[42], b[43]]),
        external_ip,
        lifetime,
        epoch,
    }))
}

/// Send `req` to `gateway` and wait for its answer (retransmitting).
/// `Err(MapError::NoAnswer)` when the gateway stays silent or speaks no
/// PCP.
pub(crate) fn exchange(gateway: Ipv4Addr, port: u16, req: &MapRequest) -> Result<Mapped, MapError> {
    exchange_at(SocketAddr::from((gateway, port)), req)
}

/// [`exchange`] with the gateway at `to` (IPv6: the default router, with
/// the interface as the scope of a link-local address), from a socket
/// bound to the request's client address when it is IPv6 (so that the
/// gateway sees that source, not our link-local address).
pub(crate) fn exchange_at(to: SocketAddr, req: &MapRequest) -> Result<Mapped, MapError> {
    let bind = match req.client {
        IpAddr::V6(v6) => IpAddr::V6(v6),
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    };
    // One byte more than the longest message: a longer one is seen as such.
    super::gateway::udp_exchange_from::<_, { MAX_LEN + 1 }>(
        bind,
        to,
        &req.encode(),
        &RETRIES,
        |b| decode(b, req),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::time::Instant;

    const NONCE: [u8; 12] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];

    fn req() -> MapRequest {
        MapRequest {
            client: Ipv4Addr::new(192, 168, 77, 2).into(),
            nonce: NONCE,
            protocol: Protocol::Tcp,
            internal_port: 6881,
            external_port: 6881,
            external_ip: Ipv4Addr::UNSPECIFIED.into(),
            lifetime: 7200,
        }
    }

    /// A MAP answer laid out as RFC 6887 §7.2 and §11.1 draw it.
    fn answer(result: u8, nonce: [u8; 12], proto: u8, ext: [u8; 16]) -> Vec<u8> {
        let mut b = vec![
            2, 129, 0, result, // version, R|MAP, reserved, result
            0, 0, 0x0e, 0x10, // lifetime 3600
            0, 0, 0x01, 0x00, // epoch 256
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // reserved (96 bits)
        ];
        b.extend_from_slice(&nonce);
        b.extend_from_slice(&[proto, 0, 0, 0]); // protocol, reserved
        b.extend_from_slice(&[0x1a, 0xe1, 0x1a, 0xe2]); // internal 6881, external 6882
        b.extend_from_slice(&ext);
        b
    }

    const EXT: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 84, 124, 73, 14];

    #[test]
    fn a_map_request_is_laid_out_as_the_rfc_says() {
        let mut want = vec![
            2, 1, 0, 0, // version 2, R=0 opcode MAP, reserved
            0, 0, 0x1c, 0x20, // lifetime 7200
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 77, 2, // client, v4-mapped
        ];
        want.extend_from_slice(&NONCE);
        want.extend_from_slice(&[6, 0, 0, 0]); // TCP, reserved
        want.extend_from_slice(&[0x1a, 0xe1, 0x1a, 0xe1]); // ports 6881, 6881
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0]);
        assert_eq!(req().encode().to_vec(), want);
        let del = MapRequest {
            protocol: Protocol::Udp,
            lifetime: 0,
            external_port: 0,
            ..req()
        };
        let b = del.encode();
        assert_eq!(&b[4..8], &[0, 0, 0, 0]);
        assert_eq!(b[36], 17);
        assert_eq!(&b[24..36], &NONCE, "a removal repeats the nonce");
    }

    #[test]
    fn answers_are_decoded_and_every_length_checked() {
        let ok = answer(0, NONCE, 6, EXT);
        assert_eq!(ok.len(), MAP_LEN);
        assert_eq!(
            decode(&ok, &req()).expect("ok"),
            Some(Mapped {
                protocol: Protocol::Tcp,
                internal_port: 6881,
                external_port: 6882,
                external_ip: Ipv4Addr::new(84, 124, 73, 14).into(),
                lifetime: 3600,
                epoch: 256,
            })
        );
        // Every truncation is not an answer (never a panic).
        for n in 0..ok.len() {
            assert!(matches!(decode(&ok[..n], &req()), Ok(None)), "length {n}");
        }
        // Not a multiple of 4, or longer than 1100 bytes: ignored.
        let mut odd = ok.clone();
        odd.push(0);
        assert!(matches!(decode(&odd, &req()), Ok(None)));
        let mut long = ok.clone();
        long.resize(1104, 0);
        assert!(matches!(decode(&long, &req()), Ok(None)));
        // Options after the MAP body (a multiple of 4, within 1100): fine.
        let mut opts = ok.clone();
        opts.extend_from_slice(&[0; 8]);
        assert!(matches!(decode(&opts, &req()), Ok(Some(_))));
        // Another nonce, protocol or internal port: not our answer.
        assert!(matches!(
            decode(&answer(0, [9; 12], 6, EXT), &req()),
            Ok(None)
        ));
        assert!(matches!(
            decode(&answer(0, NONCE, 17, EXT), &req()),
            Ok(None)
        ));
        let mut port = ok.clone();
        port[41] = 0xe2;
        assert!(matches!(decode(&port, &req()), Ok(None)));
        // A request (R bit clear) or another opcode: ignored.
        let mut r = ok.clone();
        r[1] = 1;
        assert!(matches!(decode(&r, &req()), Ok(None)));
        // An IPv6 external address for our IPv4 mapping: refused.
        let mut v6 = EXT;
        v6[0] = 0x20;
        let e = decode(&answer(0, NONCE, 6, v6), &req()).expect_err("v6");
        assert!(matches!(e, MapError::Refused(_)), "{e}");
    }

    #[test]
    fn an_ipv6_pinhole_request_and_its_answers() {
        let me: Ipv6Addr = "fd77::2".parse().unwrap();
        let r6 = MapRequest {
            client: me.into(),
            external_ip: Ipv6Addr::UNSPECIFIED.into(),
            ..req()
        };
        let b = r6.encode();
        assert_eq!(&b[8..24], &me.octets(), "our IPv6 address as the client");
        assert_eq!(&b[44..60], &[0; 16], "suggested external address ::");
        // The answer: our own address, opened.
        let m = decode(&answer(0, NONCE, 6, me.octets()), &r6)
            .expect("ok")
            .expect("answer");
        assert_eq!(m.external_ip, IpAddr::V6(me));
        // A v4-mapped, unspecified or multicast address for a pinhole: refused.
        for bad in [
            EXT,
            [0; 16],
            "ff02::1".parse::<Ipv6Addr>().unwrap().octets(),
        ] {
            let e = decode(&answer(0, NONCE, 6, bad), &r6).expect_err("refused");
            assert!(matches!(e, MapError::Refused(_)), "{e}");
        }
        // A removal's answer (lifetime 0) may carry `::`.
        let mut del = answer(0, NONCE, 6, [0; 16]);
        del[4..8].copy_from_slice(&[0; 4]);
        assert!(matches!(decode(&del, &r6), Ok(Some(_))));
    }

    #[test]
    fn refusals_and_the_fallback_to_nat_pmp() {
        // Result 2 NOT_AUTHORIZED and 7 NETWORK_FAILURE: refused with
        // the RFC's meaning.
        let e = decode(&answer(2, NONCE, 6, EXT), &req()).expect_err("refused");
        assert!(e.to_string().contains("not authorized"), "{e}");
        let e = decode(&answer(7, NONCE, 6, EXT), &req()).expect_err("refused");
        assert!(e.to_string().contains("network failure"), "{e}");
        // A NAT-PMP gateway answers version 0, opcode 128+1, result 1.
        let natpmp = [0, 129, 0, 1, 0, 0, 0, 9];
        assert!(matches!(decode(&natpmp, &req()), Err(MapError::NoAnswer)));
        // A PCP gateway of version 1 with UNSUPP_VERSION (header only).
        let mut v1 = answer(1, NONCE, 6, EXT);
        v1[0] = 1;
        v1.truncate(HEADER_LEN);
        assert!(matches!(decode(&v1, &req()), Err(MapError::NoAnswer)));
        // Any other NAT-PMP packet is not an answer.
        assert!(matches!(
            decode(&[0, 128, 0, 0, 0, 0, 0, 9], &req()),
            Ok(None)
        ));
    }

    #[test]
    fn a_silent_gateway_is_given_up_within_two_seconds() {
        let silent = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let port = silent.local_addr().expect("addr").port();
        let start = Instant::now();
        let r = exchange(Ipv4Addr::LOCALHOST, port, &req());
        assert!(matches!(r, Err(MapError::NoAnswer)), "{r:?}");
        assert!(start.elapsed() < Duration::from_secs(3));
        // It was asked three times, each time the same 60 bytes.
        silent
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        let mut buf = [0u8; 128];
        let mut got = 0;
        while let Ok((n, _)) = silent.recv_from(&mut buf) {
            assert_eq!(&buf[..n], &req().encode()[..]);
            got += 1;
        }
        assert_eq!(got, 3);
    }

    #[test]
    fn an_answer_from_a_loopback_gateway_is_taken() {
        let gw = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let port = gw.local_addr().expect("addr").port();
        let t = std::thread::spawn(move || {
            let mut buf = [0u8; 128];
            gw.set_read_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");
            let (n, from) = gw.recv_from(&mut buf).expect("request");
            assert_eq!(n, MAP_LEN);
            let mut nonce = [0u8; 12];
            nonce.copy_from_slice(&buf[24..36]);
            // Junk first, then the answer.
            gw.send_to(&[2, 129], from).expect("send");
            gw.send_to(&answer(0, nonce, 6, EXT), from).expect("send");
        });
        let m = exchange(Ipv4Addr::LOCALHOST, port, &req()).expect("mapped");
        assert_eq!(m.external_port, 6882);
        assert_eq!(m.external_ip, IpAddr::V4(Ipv4Addr::new(84, 124, 73, 14)));
        t.join().expect("gateway thread");
    }
}
