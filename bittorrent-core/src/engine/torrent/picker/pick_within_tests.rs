//! `Picker::pick_within`: the piece buffers' room bounds the pieces a pick
//! starts, never the blocks of pieces already in progress (issue 31).

use super::*;

fn layout(pieces: u32) -> Layout {
    // Pieces of 4 blocks.
    Layout {
        piece_length: 4 * 16384,
        total_length: 4 * 16384 * u64::from(pieces),
        num_pieces: pieces,
    }
}

#[test]
fn new_pieces_are_started_only_within_the_room() {
    let mut p = Picker::new(layout(10), Bitfield::new(10));
    let all = Bitfield::full(10);
    p.add_availability(&all);
    // Room for two new pieces: however many blocks are asked for, two
    // pieces' worth (8 blocks) come back.
    let got = p.pick_within(1, &all, 100, 2);
    assert_eq!(got.len(), 8, "{got:?}");
    let touched: HashSet<u32> = got.iter().map(|b| b.index).collect();
    assert_eq!(touched.len(), 2);
    assert_eq!(p.pieces_in_progress(), 2);
    // No room: nothing new, and no endgame duplicates while pieces are
    // missing.
    assert!(p.pick_within(2, &all, 100, 0).is_empty());
    assert_eq!(p.pieces_in_progress(), 2);
    // A request given up reopens its block: a pick with no room still
    // takes it, the piece is in progress already.
    let b = got[0];
    p.request_failed(1, &b);
    assert_eq!(p.pick_within(2, &all, 100, 0), vec![b]);
    assert_eq!(p.pieces_in_progress(), 2);
    // The room is per pick, not remembered.
    assert_eq!(p.pick_within(2, &all, 4, 1).len(), 4);
    assert_eq!(p.pieces_in_progress(), 3);
}

#[test]
fn endgame_duplicates_start_nothing() {
    let mut p = Picker::new(layout(2), Bitfield::new(2));
    let all = Bitfield::full(2);
    p.add_availability(&all);
    let first = p.pick_within(1, &all, 100, 2);
    assert_eq!(first.len(), 8);
    // Every block requested: a second peer gets duplicates with no room.
    let dup = p.pick_within(2, &all, 100, 0);
    assert_eq!(dup.len(), 8);
    assert_eq!(p.pieces_in_progress(), 2);
}
