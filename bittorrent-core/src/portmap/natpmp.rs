//! NAT-PMP (RFC 6886): the external address and port mappings, over UDP
//! to the default gateway's port 5351. Requests are 2 or 12 bytes, answers
//! 12 or 16; a request is sent again after 250 ms, 500 ms and 1 s (the
//! RFC allows up to 64 s in all; a gateway that has not answered in 1.75 s
//! is taken to speak no NAT-PMP).

use super::{MapError, Protocol};
use std::net::Ipv4Addr;
use std::time::Duration;

/// The gateway's NAT-PMP port.
pub(crate) const PORT: u16 = 5351;
/// Waits between retransmissions (RFC 6886 §3.1, cut short).
const RETRIES: [Duration; 3] = [
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_millis(1000),
];

/// A request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Request {
    /// Opcode 0.
    ExternalAddress,
    /// Opcodes 1 (UDP) and 2 (TCP); lifetime 0 deletes the mapping.
    Map {
        protocol: Protocol,
        internal_port: u16,
        external_port: u16,
        lifetime: u32,
    },
}

/// A gateway's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// The external address.
    ExternalAddress(Ipv4Addr),
    /// A mapping (or its deletion).
    Mapped {
        protocol: Protocol,
        internal_port: u16,
        external_port: u16,
        lifetime: u32,
    },
}

impl Request {
    /// The request's bytes.
    pub(crate) fn encode(&self) -> Vec<u8> {
        match *self {
            Request::ExternalAddress => vec![0, 0],
            Request::Map {
                protocol,
                internal_port,
                external_port,
                lifetime,
            } => {
                let mut b = vec![0, op(protocol), 0, 0];
                b.extend_from_slice(&internal_port.to_be_bytes());
                b.extend_from_slice(&external_port.to_be_bytes());
                b.extend_from_slice(&lifetime.to_be_bytes());
                b
            }
        }
    }

    fn opcode(&self) -> u8 {
        match self {
            Request::ExternalAddress => 0,
            Request::Map { protocol, .. } => op(*protocol),
        }
    }
}

fn op(p: Protocol) -> u8 {
    match p {
        Protocol::Udp => 1,
        Protocol::Tcp => 2,
    }
}

/// The text of a NAT-PMP result code.
pub(crate) fn result_text(code: u16) -> &'static str {
    match code {
        1 => "unsupported version",
        2 => "not authorized (mapping disabled on the gateway)",
        3 => "network failure (the gateway has no external address)",
        4 => "out of resources",
        5 => "unsupported opcode",
        _ => "unknown result code",
    }
}

/// Decode an answer to a request with opcode `opcode`. `Ok(None)`: not an
/// answer to it (ignored); `Err`: the gateway refused.
pub(crate) fn decode(b: &[u8], opcode: u8) -> Result<Option<Answer>, MapError> {
    if b.len() < 8 || b[0] != 0 || b[1] != 128 + opcode {
        return Ok(None);
    }
    let result = u16::from_be_bytes([b[2], b[3]]);
    if result != 0 {
        return Err(MapError::Refused(format!(
            "NAT-PMP says {} (result {result})",
            result_text(result)
        )));
    }
    match opcode {
        0 if b.len() >= 12 => Ok(Some(Answer::ExternalAddress(Ipv4Addr::new(
            b[8], b[9], b[10], b[11],
        )))),
        1 | 2 if b.len() >= 16 => Ok(Some(Answer::Mapped {
            protocol: if opcode == 1 {
                Protocol::Udp
            } else {
                Protocol::Tcp
            },
            internal_port: u16::from_be_bytes([b[8], b[9]]),
            external_port: u16::from_be_bytes([b[10], b[11]]),
            lifetime: u32::from_be_bytes([b[12], b[13], b[14], b[15]]),
        })),
        _ => Ok(None),
    }
}

/// Send `req` to `gateway` and wait for its answer (retransmitting).
/// `Err(MapError::NoAnswer)` when the gateway stays silent.
pub(crate) fn exchange(gateway: Ipv4Addr, port: u16, req: Request) -> Result<Answer, MapError> {
    super::gateway::udp_exchange::<_, 64>(gateway, port, &req.encode(), &RETRIES, |b| {
        decode(b, req.opcode())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::time::Instant;

    #[test]
    fn requests_and_answers() {
        assert_eq!(Request::ExternalAddress.encode(), [0, 0]);
        let m = Request::Map {
            protocol: Protocol::Tcp,
            internal_port: 6881,
            external_port: 6881,
            lifetime: 7200,
        };
        assert_eq!(
            m.encode(),
            [0, 2, 0, 0, 0x1a, 0xe1, 0x1a, 0xe1, 0, 0, 0x1c, 0x20]
        );
        let ext = [0, 128, 0, 0, 0, 0, 0, 9, 84, 124, 73, 14];
        assert_eq!(
            decode(&ext, 0).expect("ok"),
            Some(Answer::ExternalAddress(Ipv4Addr::new(84, 124, 73, 14)))
        );
        // An answer to another opcode, or junk, is not this answer.
        assert_eq!(decode(&ext, 2).expect("ok"), None);
        assert_eq!(decode(&[1, 2, 3], 0).expect("ok"), None);
        let mapped = [
            0, 130, 0, 0, 0, 0, 0, 9, 0x1a, 0xe1, 0x1a, 0xe2, 0, 0, 0x0e, 0x10,
        ];
        assert_eq!(
            decode(&mapped, 2).expect("ok"),
            Some(Answer::Mapped {
                protocol: Protocol::Tcp,
                internal_port: 6881,
                external_port: 6882,
                lifetime: 3600
            })
        );
        // Result code 2: refused, with the RFC's meaning.
        let refused = [0, 130, 0, 2, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0];
        let e = decode(&refused, 2).expect_err("refused");
        assert!(e.to_string().contains("not authorized"), "{e}");
    }

    #[test]
    fn a_silent_gateway_is_given_up_within_two_seconds() {
        // A socket that never answers.
        let silent = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let port = silent.local_addr().expect("addr").port();
        let start = Instant::now();
        let r = exchange(Ipv4Addr::LOCALHOST, port, Request::ExternalAddress);
        assert!(matches!(r, Err(MapError::NoAnswer)), "{r:?}");
        assert!(start.elapsed() < Duration::from_secs(3));
    }
}
