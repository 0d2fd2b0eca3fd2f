//! Micro-benchmark of the receive path: blocks in -> verified piece on disk.
//!
//! `cargo run --release -p bittorrent-core --example receive_path -- [MIB] [PIECE_KIB]`
//! (default 256 MiB, 1024 KiB pieces). On one thread, for every piece: its
//! `piece` messages are read from an in-memory "socket" (the copy out of it
//! stands for the kernel's copy out of the socket) with the peer thread's
//! `FrameDecoder::read_blocks_from` (256 KiB vectored reads that put each
//! block straight into its own buffer) and decoded, each block is kept in
//! `PieceBuffers` (the torrent thread), the piece is taken out complete,
//! hashed with `sha1_smol` and compared (the hashing pool), and written with
//! `Storage::write_blocks` (32 KiB `pwritev`s). Reports MB/s of CPU time
//! (user + sys of this process), i.e. per core, and wall MB/s. The file goes
//! to a temporary directory (the page cache; nothing is synced). The wire
//! bytes are made before the clock starts.

use bittorrent_core::bench::{
    sha1_of_blocks, Complete, MemoryBudget, PieceBuffers, Storage, Stored,
};
use bittorrent_core::proto::bencode::OwnedValue;
use bittorrent_core::proto::layout::Layout;
use bittorrent_core::proto::wire::{BlockRef, FrameDecoder, Message, BLOCK_SIZE, MAX_FRAME};
use bittorrent_core::Metainfo;
use std::time::Instant;

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (get(11) + get(12)) as f64 / 100.0
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = |i: usize, d: usize| {
        std::env::args()
            .nth(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or(d)
    };
    let (mib, piece_kib) = (arg(1, 256), arg(2, 1024));
    let piece_len = piece_kib * 1024;
    let total = mib * 1024 * 1024;
    // One piece of pseudo-random data, reused for every piece (its hash is
    // then the same for all: the pieces list repeats it).
    let piece: Vec<u8> = (0..piece_len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1])
        .collect();
    let hash = sha1_smol::Sha1::from(&piece).digest().bytes();
    let n = total / piece_len;
    let info = OwnedValue::Dict(vec![
        (b"length".to_vec(), OwnedValue::Int((n * piece_len) as i64)),
        (b"name".to_vec(), OwnedValue::bytes("receive.bin")),
        (b"piece length".to_vec(), OwnedValue::Int(piece_len as i64)),
        (b"pieces".to_vec(), OwnedValue::Bytes(hash.repeat(n))),
    ]);
    let mut t = b"d4:info".to_vec();
    t.extend_from_slice(&info.to_bytes());
    t.push(b'e');
    let mi = Metainfo::from_bytes(&t)?;
    let dir = std::env::temp_dir().join(format!("peer-receive-{}", std::process::id()));
    let storage = Storage::open(&dir, &mi.info)?;
    let layout = Layout::of(&mi.info);
    let mut buffers = PieceBuffers::new(layout, 16 << 20, MemoryBudget::new(64 << 20));
    let mut wire = Vec::with_capacity(n * (piece_len + 13 * piece_len / BLOCK_SIZE as usize));
    for i in 0..n as u32 {
        for (k, chunk) in piece.chunks(BLOCK_SIZE as usize).enumerate() {
            Message::Piece {
                index: i,
                begin: k as u32 * BLOCK_SIZE,
                data: chunk.to_vec(),
            }
            .encode(&mut wire);
        }
    }
    let mut socket = std::io::Cursor::new(wire);
    let mut decoder = FrameDecoder::new(MAX_FRAME);
    // Block buffers recycled after the write, as `block_pool` does.
    let pool = std::cell::RefCell::new(Vec::<Vec<u8>>::new());
    let mut take = || {
        pool.borrow_mut()
            .pop()
            .unwrap_or_else(|| vec![0u8; BLOCK_SIZE as usize])
    };
    let (c0, t0) = (cpu_seconds(), Instant::now());
    for i in 0..n as u32 {
        let mut have = 0;
        while have < piece_len {
            let m = match decoder.next_message_with(&mut |d: &[u8]| d.to_vec())? {
                Some(m) => m,
                None => {
                    if decoder.read_blocks_from(&mut socket, 256 * 1024, &mut take)? == 0 {
                        return Err("the stream ended early".into());
                    }
                    continue;
                }
            };
            let Message::Piece { index, begin, data } = m else {
                return Err("not a piece message".into());
            };
            have += data.len();
            let block = BlockRef {
                index,
                begin,
                length: data.len() as u32,
            };
            if let Stored::Disk(_) = buffers.insert(&block, data) {
                return Err("over the budget".into());
            }
        }
        let Complete::Memory(blocks) = buffers.take_complete(i) else {
            return Err("piece not complete".into());
        };
        if sha1_of_blocks(&blocks) != mi.info.pieces[i as usize] {
            return Err("hash mismatch".into());
        }
        storage.write_blocks(layout.piece_offset(i), &blocks)?;
        buffers.release(i);
        pool.borrow_mut().extend(blocks);
    }
    let (cpu, wall) = (cpu_seconds() - c0, t0.elapsed().as_secs_f64());
    let mb = (n * piece_len) as f64 / 1e6;
    println!(
        "receive path: {mib} MiB in {piece_kib} KiB pieces: {:.0} MB/s per core (CPU {cpu:.2} s), {:.0} MB/s wall ({wall:.2} s)",
        mb / cpu.max(0.01),
        mb / wall
    );
    let (c1, t1) = (cpu_seconds(), Instant::now());
    for _ in 0..n {
        std::hint::black_box(sha1_smol::Sha1::from(&piece).digest().bytes());
    }
    let sha_cpu = cpu_seconds() - c1;
    println!(
        "for scale, sha1_smol alone on the same bytes: {:.0} MB/s per core ({:.2} s wall)",
        mb / sha_cpu.max(0.01),
        t1.elapsed().as_secs_f64()
    );
    drop(storage);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
