#!/usr/bin/python3
"""lt_corrupt_peer.py INFO_HASH_HEX PORT NUM_PIECES PIECE_LENGTH DATA_FILE

A scripted peer for interop tests (plaintext only): answers the BitTorrent
handshake with the given 20-byte info-hash and BEP 52's v2 bit, claims every
piece, unchokes, and serves every request from DATA_FILE, the first block
it serves corrupted (first byte flipped): one piece fails, and libtorrent
(which lowers the trust of every peer of a failed piece and bans at a few
failures) bans nobody. Prints LISTENING once bound, and each
BEP 52 hash message it gets (it answers none). Runs until killed.
"""

import socket
import struct
import sys
import threading


def recvn(c, n):
    b = b""
    while len(b) < n:
        x = c.recv(n - len(b))
        if not x:
            raise EOFError
        b += x
    return b


def serve(c, ih, npieces, plen, data):
    try:
        hs = recvn(c, 68)
        if hs[:20] != b"\x13BitTorrent protocol":
            return  # an MSE attempt: not spoken here
        res = bytearray(8)
        res[7] |= 0x10  # BEP 52 v2
        res[5] |= 0x10  # BEP 10
        c.sendall(b"\x13BitTorrent protocol" + bytes(res) + ih + b"-XX0001-corruptpeer1")
        bf = bytearray((npieces + 7) // 8)
        for i in range(npieces):
            bf[i // 8] |= 0x80 >> (i % 8)
        c.sendall(struct.pack(">IB", 1 + len(bf), 5) + bytes(bf) + struct.pack(">IB", 1, 1))
        served = 0
        while True:
            (n,) = struct.unpack(">I", recvn(c, 4))
            if n == 0:
                continue
            body = recvn(c, n)
            if body[0] == 6:
                i, b, ln = struct.unpack(">III", body[1:13])
                blk = bytearray(data[i * plen + b: i * plen + b + ln])
                if served == 0 and blk:
                    blk[0] ^= 0xFF
                served += 1
                c.sendall(struct.pack(">IBII", 9 + ln, 7, i, b) + bytes(blk))
            elif body[0] in (21, 22, 23):
                print("HASH_MSG", body[0], flush=True)
    except (EOFError, OSError):
        pass
    finally:
        c.close()


def main():
    ih = bytes.fromhex(sys.argv[1])
    port, npieces, plen = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    with open(sys.argv[5], "rb") as f:
        data = f.read()
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(8)
    print("LISTENING", flush=True)
    while True:
        c, _ = srv.accept()
        threading.Thread(target=serve, args=(c, ih, npieces, plen, data), daemon=True).start()


if __name__ == "__main__":
    main()
