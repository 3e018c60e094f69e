//! Call ids: the client's `x-litellm-call-id` when usable, else a new UUID v7.

use std::sync::Arc;

use http::HeaderMap;

use super::headers::EdgeHeaders;

pub(super) fn call_id(headers: &HeaderMap) -> Arc<str> {
    EdgeHeaders::read(headers).call_id()
}

/// A new call id: a UUID v7 string (RFC 9562: Unix milliseconds, then random bits).
#[must_use]
pub fn new_call_id() -> String {
    let mut buf = [0u8; 36];
    write_uuid(&mut buf).to_owned()
}

/// Writes a UUID v7 into `buf` (hex digits by hand: `format!` cost more than the rest of the
/// call-id handling together).
///
/// Version 7 rather than 4: the call id is the spend log's primary key, and ids that grow with
/// time land at the right edge of that index. Random v4 ids put each row on a random index page,
/// so a batch of 500 rows rewrote hundreds of pages (in SQLite's WAL, or PostgreSQL's). 74 random
/// bits per millisecond keep ids unique.
pub(super) fn write_uuid(buf: &mut [u8; 36]) -> &str {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    // Where each byte's two digits go in `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
    const AT: [usize; 16] = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let mut bytes = fastrand::u128(..).to_be_bytes();
    bytes[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
    bytes[6] = (bytes[6] & 0x0f) | 0x70; // version 7
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 9562 variant
    for (b, at) in bytes.iter().zip(AT) {
        buf[at] = HEX[usize::from(b >> 4)];
        buf[at + 1] = HEX[usize::from(b & 0xf)];
    }
    for dash in [8, 13, 18, 23] {
        buf[dash] = b'-';
    }
    // Only ASCII hex digits and dashes were written.
    std::str::from_utf8(buf).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;
    use crate::server::headers::X_LITELLM_CALL_ID;

    #[test]
    fn call_ids_are_uuid_v7() {
        let a = new_call_id();
        // The next id from a later millisecond (the first 13 characters are the timestamp).
        let b = loop {
            let b = new_call_id();
            if b[..13] != a[..13] {
                break b;
            }
        };
        // Time-ordered: a later id sorts after an earlier one.
        assert!(a < b, "{a} {b}");
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis();
        let stamp = u128::from_str_radix(&b.replace('-', "")[..12], 16).unwrap();
        assert!(stamp <= millis && millis - stamp < 60_000, "{b}");
        assert_ne!(a, b);
        for id in [&a, &b] {
            let parts: Vec<&str> = id.split('-').collect();
            assert_eq!(
                parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
                [8, 4, 4, 4, 12],
                "{id}"
            );
            assert!(id
                .chars()
                .all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c)));
            assert_eq!(&parts[2][..1], "7", "{id}");
            assert!(matches!(&parts[3][..1], "8" | "9" | "a" | "b"), "{id}");
        }
    }

    #[test]
    fn call_id_prefers_the_clients_header() {
        let mut h = HeaderMap::new();
        h.insert(X_LITELLM_CALL_ID, HeaderValue::from_static("abc-123"));
        assert_eq!(&*call_id(&h), "abc-123");
        assert_eq!(call_id(&HeaderMap::new()).len(), 36);
    }
}
