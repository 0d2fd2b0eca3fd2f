"""Helpers shared by the benchmark scripts (imported from their own folder)."""

import hashlib


def sha1_file(path):
    """SHA-1 of a file in hex, read in 1 MiB chunks; None if it cannot be read."""
    h = hashlib.sha1()
    try:
        with open(path, "rb") as f:
            while True:
                b = f.read(1 << 20)
                if not b:
                    break
                h.update(b)
    except OSError:
        return None
    return h.hexdigest()
