//! Opaque keyset paging cursors, shared by both backends.
//!
//! A cursor carries the sort values of the last row of a page plus that row's `seq` (the
//! stable tiebreaker), so the next page starts strictly after it — no `OFFSET`, and rows
//! inserted between page fetches never shift a page.
//!
//! Encoding (ASCII, URL-safe without escaping, `.`-separated):
//! - search: `s1.<sort signature>.<value>….<seq>`; the signature names each sort key
//!   (`i` id, `l` lastUpdated) and its direction (`a`/`d`), or is `n` without sort keys.
//!   Ids are hex-encoded UTF-8, instants are decimal milliseconds.
//! - history: `h1.<lastUpdated ms>.<seq>`.
//!
//! A cursor whose kind, version or sort signature does not match the query is rejected with
//! [`StoreError::InvalidCursor`].

use crate::{SortField, SortKey, StoreError, StoreResult};

/// One sort value carried by a search cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CursorValue {
    Int(i64),
    Text(String),
}

/// Decoded position of a search cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SearchPosition {
    /// One value per sort key, in the order of the query's sort keys.
    pub values: Vec<CursorValue>,
    pub seq: i64,
}

fn signature(sort: &[SortKey]) -> String {
    if sort.is_empty() {
        return "n".to_owned();
    }
    let mut sig = String::with_capacity(sort.len() * 2);
    for key in sort {
        sig.push(match key.field {
            SortField::Id => 'i',
            SortField::LastUpdated => 'l',
        });
        sig.push(if key.descending { 'd' } else { 'a' });
    }
    sig
}

fn hex_encode(text: &str) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(text.len() * 2);
    for byte in text.bytes() {
        out.push(DIGITS[usize::from(byte >> 4)] as char);
        out.push(DIGITS[usize::from(byte & 0x0f)] as char);
    }
    out
}

fn hex_decode(text: &str) -> StoreResult<String> {
    fn nibble(c: u8) -> StoreResult<u8> {
        match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            _ => Err(StoreError::InvalidCursor),
        }
    }
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return Err(StoreError::InvalidCursor);
    }
    let mut out = Vec::with_capacity(bytes.len() / 2);
    for pair in bytes.chunks_exact(2) {
        out.push((nibble(pair[0])? << 4) | nibble(pair[1])?);
    }
    String::from_utf8(out).map_err(|_| StoreError::InvalidCursor)
}

fn parse_int(text: &str) -> StoreResult<i64> {
    text.parse().map_err(|_| StoreError::InvalidCursor)
}

/// Encodes the position after a search row with these sort values and `seq`.
pub(crate) fn encode_search(sort: &[SortKey], values: &[CursorValue], seq: i64) -> String {
    let mut out = format!("s1.{}", signature(sort));
    for value in values {
        out.push('.');
        match value {
            CursorValue::Int(n) => out.push_str(&n.to_string()),
            CursorValue::Text(t) => out.push_str(&hex_encode(t)),
        }
    }
    out.push('.');
    out.push_str(&seq.to_string());
    out
}

/// Decodes a search cursor issued for the same sort keys.
pub(crate) fn decode_search(sort: &[SortKey], cursor: &str) -> StoreResult<SearchPosition> {
    let parts: Vec<&str> = cursor.split('.').collect();
    if parts.len() != sort.len() + 3 || parts[0] != "s1" || parts[1] != signature(sort) {
        return Err(StoreError::InvalidCursor);
    }
    let mut values = Vec::with_capacity(sort.len());
    for (key, part) in sort.iter().zip(&parts[2..]) {
        values.push(match key.field {
            SortField::Id => CursorValue::Text(hex_decode(part)?),
            SortField::LastUpdated => CursorValue::Int(parse_int(part)?),
        });
    }
    let seq = parse_int(parts[parts.len() - 1])?;
    Ok(SearchPosition { values, seq })
}

/// Encodes the position after a history row.
pub(crate) fn encode_history(last_updated: i64, seq: i64) -> String {
    format!("h1.{last_updated}.{seq}")
}

/// Decodes a history cursor into `(last_updated, seq)`.
pub(crate) fn decode_history(cursor: &str) -> StoreResult<(i64, i64)> {
    let mut parts = cursor.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("h1"), Some(lu), Some(seq), None) => Ok((parse_int(lu)?, parse_int(seq)?)),
        _ => Err(StoreError::InvalidCursor),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID_DESC_LU: [SortKey; 2] = [
        SortKey {
            field: SortField::Id,
            descending: true,
        },
        SortKey {
            field: SortField::LastUpdated,
            descending: false,
        },
    ];

    #[test]
    fn search_cursor_round_trips() {
        let values = vec![
            CursorValue::Text("a-b.c/ü".to_owned()),
            CursorValue::Int(-1_700_000_000_000),
        ];
        let cursor = encode_search(&ID_DESC_LU, &values, 42);
        assert_eq!(
            decode_search(&ID_DESC_LU, &cursor).ok(),
            Some(SearchPosition { values, seq: 42 })
        );
        assert!(
            cursor
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        );
    }

    #[test]
    fn search_cursor_without_sort() {
        let cursor = encode_search(&[], &[], 7);
        assert_eq!(cursor, "s1.n.7");
        assert_eq!(decode_search(&[], &cursor).ok().map(|p| p.seq), Some(7));
    }

    #[test]
    fn malformed_cursors_are_rejected() {
        for bad in [
            "",
            "x",
            "s1.n",
            "s1.n.x",
            "s1.ia.zz.1",
            "s1.ia.616.1",
            "h1.1.2",
            "s1.ld.1.2",
        ] {
            assert!(
                matches!(
                    decode_search(&ID_DESC_LU[..1], bad),
                    Err(StoreError::InvalidCursor)
                ),
                "{bad}"
            );
        }
        for bad in ["", "h1", "h1.1", "h1.1.2.3", "h2.1.2", "h1.a.2", "s1.n.7"] {
            assert!(
                matches!(decode_history(bad), Err(StoreError::InvalidCursor)),
                "{bad}"
            );
        }
        assert_eq!(decode_history(&encode_history(5, 9)).ok(), Some((5, 9)));
    }
}
