//! A peer thread's incoming wire messages: choke and interest, have and bitfield (and
//! the fast extension's), blocks, and the extension protocol (BEP 10: ut_metadata, ut_pex).

use super::*;

impl Connection<'_> {
    pub(super) fn on_message(&mut self, m: Message) -> Result<(), CloseReason> {
        let n = self.ctx.layout.num_pieces as usize;
        match m {
            Message::KeepAlive | Message::SuggestPiece(_) => {}
            Message::Port(p) => {
                // BEP 5: the peer runs a DHT node there; try it, in the
                // DHT of the connection's family (BEP 32).
                if let Ok(addr) = self.stream.socket().peer_addr() {
                    let node = SocketAddr::new(addr.ip().to_canonical(), p);
                    if let (Some(dht), true) = (self.ctx.dht_for(node), p != 0 && !self.ctx.private)
                    {
                        dht.add_node(node);
                    }
                }
            }
            Message::AllowedFast(i) => {
                if self.fast && i < self.ctx.layout.num_pieces {
                    self.event(PeerEvent::AllowedFast(i))?;
                }
            }
            Message::Extended { id, payload } => self.on_extended(id, &payload)?,
            Message::Hash { id, payload } => self.on_hash_message(id, &payload)?,
            Message::Choke => {
                self.peer_choking = true;
                self.chokes = self.chokes.wrapping_add(1);
                // Requests are void after a choke (BEP 3); fast peers reject
                // them explicitly, others drop them silently. Those still
                // queued are not sent at all: the torrent thread gives every
                // outstanding request up on this choke and asks again after
                // the unchoke, so sending them now would have an honest peer
                // answer the same block twice.
                self.sent_requests.clear();
                self.out.retract_requests();
                self.event(PeerEvent::ChokedUs(true))?;
            }
            Message::Unchoke => {
                self.peer_choking = false;
                self.event(PeerEvent::ChokedUs(false))?;
            }
            Message::Interested => self.event(PeerEvent::Interested(true))?,
            Message::NotInterested => {
                self.upload_queue.take_all();
                self.event(PeerEvent::Interested(false))?
            }
            Message::Have(i) => {
                if i as usize >= n {
                    return Err(CloseReason::Protocol(format!("have {i} out of range")));
                }
                self.peer_has(i)?;
            }
            // A bitfield, have-all or have-none at any time replaces the
            // peer's piece set (aria2 sends have-none, allowed-fast, then a
            // bitfield, sometimes two; libtorrent accepts that, so do we).
            // Spare bits are ignored, as libtorrent and Transmission do; a
            // wrong length is fatal there too.
            Message::Bitfield(bytes) => {
                let bf = Bitfield::from_wire(&bytes, n)
                    .map_err(|e| CloseReason::Protocol(e.to_string()))?;
                self.event(PeerEvent::Bitfield(bf))?;
            }
            Message::HaveAll | Message::HaveNone => {
                if !self.fast {
                    return Err(CloseReason::Protocol(
                        "have-all/none without fast extension".into(),
                    ));
                }
                let bf = if m == Message::HaveAll {
                    Bitfield::full(n)
                } else {
                    Bitfield::new(n)
                };
                self.event(PeerEvent::Bitfield(bf))?;
            }
            Message::Request(b) => self.on_request(b)?,
            Message::Cancel(b) => {
                // BEP 6: every request gets exactly one answer.
                if self.upload_queue.remove(&b) && self.fast {
                    self.send(&Message::Reject(b));
                }
            }
            Message::Piece { index, begin, data } => {
                let block = BlockRef {
                    index,
                    begin,
                    length: data.len() as u32,
                };
                if !self.ctx.layout.is_block(index, begin, data.len()) {
                    return Err(CloseReason::Protocol("piece message for no block".into()));
                }
                if !self.sent_requests.remove(&block) {
                    self.unrequested = self.unrequested.saturating_add(1);
                    if self.unrequested > MAX_UNREQUESTED {
                        return Ok(()); // waste: neither counted nor written
                    }
                }
                self.counters
                    .downloaded
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
                self.pending_blocks.push((block, data));
            }
            Message::Reject(b) => {
                if !self.fast {
                    return Err(CloseReason::Protocol(
                        "reject without fast extension".into(),
                    ));
                }
                if self.sent_requests.remove(&b) {
                    self.event(PeerEvent::Rejected(b))?;
                }
            }
        }
        Ok(())
    }

    pub(super) fn on_extended(&mut self, id: u8, payload: &[u8]) -> Result<(), CloseReason> {
        use crate::proto::extension::{ExtHandshake, PexMessage};
        // Read even from a peer that did not set the BEP 10 bit (libtorrent
        // does the same).
        match id {
            crate::proto::extension::HANDSHAKE_EXT_ID => {
                // A handshake we cannot read just means no extensions.
                let Ok(h) = ExtHandshake::decode(payload) else {
                    return Ok(());
                };
                self.their_pex = h.id_of("ut_pex").filter(|_| !self.ctx.private);
                self.their_metadata = h.id_of("ut_metadata");
                self.their_holepunch = h
                    .id_of(crate::proto::holepunch::HOLEPUNCH_EXTENSION)
                    .filter(|_| !self.ctx.private);
                self.event(PeerEvent::ExtHandshake {
                    listen_port: h.p.filter(|p| *p != 0),
                    pex: self.their_pex.is_some(),
                    holepunch: self.their_holepunch.is_some(),
                    client: h.v.clone(),
                    reqq: h.reqq,
                    yourip: h.yourip,
                })
            }
            OUR_PEX_ID if !self.ctx.private => {
                // BEP 11: at most one message a minute; tolerate some jitter.
                if self.last_pex_in.is_some_and(|t| t.elapsed() < PEX_MIN_GAP) {
                    return Ok(());
                }
                self.last_pex_in = Some(Instant::now());
                if let Ok(m) = PexMessage::decode(payload) {
                    let flags = m.added_flags.iter().copied().chain(std::iter::repeat(0));
                    let added: Vec<(SocketAddr, u8)> =
                        m.added.into_iter().zip(flags).take(PEX_MAX_ADDED).collect();
                    if !added.is_empty() {
                        self.event(PeerEvent::Pex(added))?;
                    }
                }
                Ok(())
            }
            OUR_HOLEPUNCH_ID if !self.ctx.private => self.on_holepunch(payload),
            OUR_METADATA_ID => {
                self.on_metadata(payload);
                Ok(())
            }
            _ => Ok(()), // an extension we did not offer: ignore
        }
    }

    /// BEP 55: a `ut_holepunch` message. Ignored from a peer that did not
    /// advertise the extension (as the BEP asks), when malformed, and past
    /// `HOLEPUNCH_PER_SECOND`; else handed to the torrent thread.
    pub(super) fn on_holepunch(&mut self, payload: &[u8]) -> Result<(), CloseReason> {
        if self.their_holepunch.is_none() {
            return Ok(());
        }
        let now = Instant::now();
        let (since, n) = &mut self.holepunch_budget;
        if now.duration_since(*since) >= Duration::from_secs(1) {
            *since = now;
            *n = 0;
        }
        if *n >= HOLEPUNCH_PER_SECOND {
            return Ok(());
        }
        *n += 1;
        match crate::proto::holepunch::HolepunchMessage::decode(payload) {
            Ok(m) => self.event(PeerEvent::Holepunch(m)),
            Err(e) => {
                log::debug!("holepunch message refused: {e}");
                Ok(())
            }
        }
    }

    /// BEP 9: answer a request for a piece of the info dictionary.
    pub(super) fn on_metadata(&mut self, payload: &[u8]) {
        use crate::proto::extension::{MetadataMessage, METADATA_PIECE_SIZE};
        let (Ok(MetadataMessage::Request { piece }), Some(id)) =
            (MetadataMessage::decode(payload), self.their_metadata)
        else {
            return; // data/reject are for the metadata fetcher, not us
        };
        self.metadata_served += 1;
        let info = &self.ctx.info_bytes;
        let start = piece as usize * METADATA_PIECE_SIZE;
        let reply = if start < info.len() && self.metadata_served <= MAX_METADATA_REQUESTS {
            let end = (start + METADATA_PIECE_SIZE).min(info.len());
            MetadataMessage::Data {
                piece,
                total_size: info.len() as u64,
                data: info[start..end].to_vec(),
            }
        } else {
            MetadataMessage::Reject { piece }
        };
        self.send(&Message::Extended {
            id,
            payload: reply.encode(),
        });
    }
}
