//! Reading and writing the keys of a KRPC message's dictionaries.

use super::error::DecodeErrorKind;
use super::NodeId;
use crate::proto::bencode::{Dict, OwnedValue};

pub(super) fn id_value(id: &NodeId) -> OwnedValue {
    OwnedValue::bytes(id.0)
}

pub(super) fn key(k: &str) -> Vec<u8> {
    k.as_bytes().to_vec()
}

pub(super) fn get_dict<'d, 'a>(
    d: &'d Dict<'a>,
    k: &'static str,
) -> Result<&'d Dict<'a>, DecodeErrorKind> {
    d.get(k.as_bytes())
        .ok_or(DecodeErrorKind::Missing(k))?
        .as_dict()
        .ok_or(DecodeErrorKind::NotADict)
}

pub(super) fn get_bytes<'a>(d: &Dict<'a>, k: &'static str) -> Result<&'a [u8], DecodeErrorKind> {
    d.get(k.as_bytes())
        .ok_or(DecodeErrorKind::Missing(k))?
        .as_bytes()
        .ok_or(DecodeErrorKind::Invalid(k))
}

pub(super) fn get_20(d: &Dict<'_>, k: &'static str) -> Result<[u8; 20], DecodeErrorKind> {
    let b = get_bytes(d, k)?;
    <[u8; 20]>::try_from(b).map_err(|_| DecodeErrorKind::Invalid(k))
}
