//! Trackers: the announce client (BEP 3, 12, 15, 23) and the tracker embedded in every peer.
