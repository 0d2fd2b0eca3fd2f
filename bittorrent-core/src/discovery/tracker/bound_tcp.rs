//! HTTP(S) from the `--bind` address: a `ureq` connector that opens its
//! TCP connection from the session's source address for the server's
//! family (`util::source`), in place of `ureq`'s own TCP connector, which
//! lets the system choose. TLS is chained on top as usual.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, LazyBuffers, NextTimeout, ShutdownHandle, Transport,
};
use ureq::{Error, Timeout};

use crate::util::source::SourceAddrs;

/// Opens TCP connections from fixed source addresses.
#[derive(Debug)]
pub(crate) struct BoundTcpConnector(pub SourceAddrs);

impl Connector<()> for BoundTcpConnector {
    type Out = BoundTcp;

    fn connect(
        &self,
        details: &ConnectionDetails,
        _chained: Option<()>,
    ) -> Result<Option<BoundTcp>, Error> {
        let per_try = details.timeout.not_zero().map(|d| *d);
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address to connect to");
        for addr in details.addrs.iter().copied() {
            let source = match self.0.for_dest(addr.ip()) {
                Ok(s) => s,
                Err(e) => {
                    last = e;
                    continue;
                }
            };
            let timeout = per_try.unwrap_or(Duration::from_secs(30));
            match crate::engine::net::congestion::connect(addr, timeout, None, source) {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    let stream = Arc::new(s);
                    let weak = Arc::downgrade(&stream);
                    (details.register_shutdown)(weak as std::sync::Weak<dyn ShutdownHandle>)?;
                    let c = details.config;
                    return Ok(Some(BoundTcp {
                        stream,
                        buffers: LazyBuffers::new(c.input_buffer_size(), c.output_buffer_size()),
                    }));
                }
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    return Err(Error::Timeout(Timeout::Connect));
                }
                Err(e) => last = e,
            }
        }
        Err(last.into())
    }
}

/// A TCP connection opened by [`BoundTcpConnector`].
pub(crate) struct BoundTcp {
    stream: Arc<TcpStream>,
    buffers: LazyBuffers,
}

impl std::fmt::Debug for BoundTcp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundTcp")
            .field("local", &self.stream.local_addr().ok())
            .field("peer", &self.stream.peer_addr().ok())
            .finish()
    }
}

/// The time left in `t`, or the timeout it has reached.
fn left(t: NextTimeout) -> Result<Option<Duration>, Error> {
    if t.after.is_zero() {
        return Err(Error::Timeout(t.reason));
    }
    Ok(t.not_zero().map(|d| *d))
}

fn io_error(e: io::Error, reason: Timeout) -> Error {
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Error::Timeout(reason),
        _ => e.into(),
    }
}

impl Transport for BoundTcp {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), Error> {
        let t = timeout.for_write();
        self.stream.set_write_timeout(left(t)?)?;
        let out = &self.buffers.output()[..amount];
        (&*self.stream)
            .write_all(out)
            .map_err(|e| io_error(e, t.reason))
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, Error> {
        let t = timeout.for_read();
        self.stream.set_read_timeout(left(t)?)?;
        let input = self.buffers.input_append_buf();
        let n = loop {
            match (&*self.stream).read(input) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => break r.map_err(|e| io_error(e, t.reason))?,
            }
        };
        self.buffers.input_appended(n);
        Ok(n > 0)
    }

    fn is_open(&mut self) -> bool {
        // Open when nothing is waiting to be read and the peer has not
        // closed (an idle connection of the pool).
        if self.stream.set_nonblocking(true).is_err() {
            return false;
        }
        let mut b = [0u8; 1];
        let open = matches!(
            (&*self.stream).read(&mut b),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock
        );
        open && self.stream.set_nonblocking(false).is_ok()
    }
}
