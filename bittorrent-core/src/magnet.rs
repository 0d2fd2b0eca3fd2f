//! Magnet links (BEP 9 syntax).
