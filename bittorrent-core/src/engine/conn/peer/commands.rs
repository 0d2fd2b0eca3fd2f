//! A peer thread's inbox: the torrent thread's commands (requests, cancels, choke,
//! have, PEX, close), drained between socket reads.

use super::*;

impl Connection<'_> {
    pub(super) fn drain_inbox(&mut self) -> Result<(), CloseReason> {
        loop {
            match self.inbox.try_recv() {
                Ok(cmd) => self.on_command(cmd)?,
                Err(TryRecvError::Empty) => return Ok(()),
                Err(TryRecvError::Disconnected) => return Err(CloseReason::Shutdown),
            }
        }
    }

    pub(super) fn on_command(&mut self, cmd: PeerCmd) -> Result<(), CloseReason> {
        match cmd {
            PeerCmd::Request { chokes, blocks } => {
                if chokes != self.chokes {
                    // Asked before a choke the torrent thread had not seen
                    // yet: it gives these up when it does; not sent.
                    return Ok(());
                }
                // Sent even if we think it is outstanding: the torrent
                // re-requests only what it gave up on.
                for b in blocks {
                    self.sent_requests.insert(b);
                    self.out.push_request(b);
                }
            }
            PeerCmd::Cancel(b) => {
                if self.sent_requests.remove(&b) {
                    self.send(&Message::Cancel(b));
                }
            }
            PeerCmd::Have(i) => self.send(&Message::Have(i)),
            PeerCmd::Haves(v) => {
                for i in v {
                    self.send(&Message::Have(i));
                }
            }
            PeerCmd::Start(_) => {}
            PeerCmd::Pex(msg) => {
                if let Some(id) = self.their_pex {
                    self.send(&Message::Extended {
                        id,
                        payload: msg.encode(),
                    });
                }
            }
            PeerCmd::Holepunch(msg) => {
                if let Some(id) = self.their_holepunch {
                    self.send(&Message::Extended {
                        id,
                        payload: msg.encode(),
                    });
                }
            }
            PeerCmd::Choke(true) => {
                if !self.am_choking {
                    self.am_choking = true;
                    self.send(&Message::Choke);
                    let dropped = self.upload_queue.take_all();
                    if self.fast {
                        for b in dropped {
                            self.send(&Message::Reject(b));
                        }
                    }
                }
            }
            PeerCmd::Choke(false) => {
                if self.am_choking {
                    self.am_choking = false;
                    self.send(&Message::Unchoke);
                }
            }
            PeerCmd::Interested(true) => self.send(&Message::Interested),
            PeerCmd::Interested(false) => self.send(&Message::NotInterested),
            PeerCmd::HashRequest(r) => self.ask_hashes(r),
            PeerCmd::Close(r) => return Err(r),
        }
        Ok(())
    }
}
