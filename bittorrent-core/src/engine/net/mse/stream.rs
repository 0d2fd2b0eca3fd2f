//! [`PeerStream`]: the peer connection after the MSE handshake, in clear or
//! RC4, as one `Read + Write` type for the peer thread.

use crate::engine::net::transport::{PeerSocket, Transport};
use crate::proto::mse::crypto::Ciphers;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

/// Most plaintext bytes encrypted ahead of the socket by one `write`.
const CHUNK: usize = 64 * 1024;

/// A peer connection: the socket (TCP or uTP), plus RC4 when the handshake chose it.
///
/// Plaintext reads and writes go straight to the socket (no copy, no
/// cipher). With RC4, a read decrypts in place the bytes it returns, and a
/// write encrypts up to 64 KiB into a pending buffer that it then hands to
/// the socket: `write` returns how many plaintext bytes were *taken* (their
/// keystream is spent), and bytes the socket did not accept yet stay
/// pending; they go out first on the next `write`, [`push_pending`] or
/// `flush`. So partial writes with a short write timeout work exactly as on
/// a bare socket, as long as the caller also drains [`has_pending`].
///
/// [`push_pending`]: PeerStream::push_pending
/// [`has_pending`]: PeerStream::has_pending
#[derive(Debug)]
pub struct PeerStream {
    tcp: PeerSocket,
    rc4: Option<Box<Ciphers>>,
    pending: Vec<u8>,
    sent: usize,
}

fn would_block(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

impl PeerStream {
    /// A connection in clear.
    pub fn plain(tcp: impl Into<PeerSocket>) -> PeerStream {
        PeerStream {
            tcp: tcp.into(),
            rc4: None,
            pending: Vec::new(),
            sent: 0,
        }
    }

    /// A connection encrypted with these streams (positioned after the handshake).
    pub fn rc4(tcp: impl Into<PeerSocket>, ciphers: Ciphers) -> PeerStream {
        PeerStream {
            tcp: tcp.into(),
            rc4: Some(Box::new(ciphers)),
            pending: Vec::new(),
            sent: 0,
        }
    }

    /// The TCP socket, if the connection is TCP (for TCP-only socket
    /// options). Never read or write it directly: that would bypass the cipher.
    pub fn tcp(&self) -> Option<&TcpStream> {
        self.tcp.tcp()
    }

    /// The socket (for `poll`, addresses, the closer). Never read or write it
    /// directly: that would bypass the cipher.
    pub fn socket(&self) -> &PeerSocket {
        &self.tcp
    }

    /// The connection's transport.
    pub fn transport(&self) -> Transport {
        self.tcp.transport()
    }

    #[cfg_attr(not(test), allow(dead_code))] // used by tests only
    /// Whether the payload is RC4-encrypted.
    pub fn is_encrypted(&self) -> bool {
        self.rc4.is_some()
    }

    /// Encrypted bytes the socket has not taken yet (always false in clear).
    pub fn has_pending(&self) -> bool {
        self.sent < self.pending.len()
    }

    /// Hand pending encrypted bytes to the socket, as many as it takes
    /// (errors as the socket gives them, `WouldBlock`/`TimedOut` included).
    pub fn push_pending(&mut self) -> io::Result<()> {
        while self.sent < self.pending.len() {
            match self.tcp.write(&self.pending[self.sent..]) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.pending.clear();
        self.sent = 0;
        Ok(())
    }

    /// Set the socket's read timeout.
    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.tcp.set_read_timeout(t)
    }

    /// Set the socket's write timeout.
    pub fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.tcp.set_write_timeout(t)
    }

    /// Switch the socket's non-blocking mode.
    pub fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        self.tcp.set_nonblocking(on)
    }

    /// Shut the socket down.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.tcp.shutdown(how)
    }
}

impl Read for PeerStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.tcp.read(buf)?;
        if let Some(c) = self.rc4.as_mut() {
            c.dec.apply(&mut buf[..n]);
        }
        Ok(n)
    }

    /// In clear, one vectored read of the socket; with RC4, a `read` into
    /// the first non-empty buffer (decrypted in place).
    fn read_vectored(&mut self, bufs: &mut [io::IoSliceMut<'_>]) -> io::Result<usize> {
        if self.rc4.is_none() {
            return self.tcp.read_vectored(bufs);
        }
        match bufs.iter_mut().find(|b| !b.is_empty()) {
            Some(b) => self.read(b),
            None => Ok(0),
        }
    }
}

impl Write for PeerStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.rc4.is_none() {
            return self.tcp.write(buf);
        }
        // Older bytes first: take new ones only once they are all out.
        self.push_pending()?;
        let Some(c) = self.rc4.as_mut() else {
            return Err(ErrorKind::Other.into());
        };
        let n = buf.len().min(CHUNK);
        self.pending.resize(n, 0);
        c.enc.apply_to(&buf[..n], &mut self.pending);
        match self.push_pending() {
            Ok(()) => Ok(n),
            // Taken (encrypted): it stays pending for the next call.
            Err(e) if would_block(&e) => Ok(n),
            Err(e) => Err(e),
        }
    }

    /// In clear, one vectored write of the socket; with RC4, the first
    /// non-empty slice through `write` (it is encrypted into a copy anyway).
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        if self.rc4.is_none() {
            return self.tcp.write_vectored(bufs);
        }
        match bufs.iter().find(|b| !b.is_empty()) {
            Some(b) => self.write(b),
            None => Ok(0),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.push_pending()?;
        self.tcp.flush()
    }
}
