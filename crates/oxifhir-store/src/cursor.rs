//! Opaque keyset paging cursors, shared by both backends.
//!
//! A search cursor carries a direction, the sort values of a row and that row's resource type
//! and id (the tiebreaker that makes the order total). The next page starts strictly after
//! that row, the previous page ends strictly before it — no `OFFSET`, so rows inserted or
//! deleted between page fetches never shift a page, and a deep page costs what the first does.
//!
//! Encoding (ASCII, URL-safe without escaping, `.`-separated):
//! - search: `s2.<signature>.<a|b>.<value>….<type>.<id>`: `a` continues after the row, `b`
//!   before it. The signature is a hash of the sort keys, so a cursor only applies to the sort
//!   it was issued for. Values: `n` (none), `i<decimal>`, `f<16 hex digits of the f64 bits>`,
//!   `t<hex of the UTF-8 text>`; type and id are hex-encoded UTF-8.
//! - history: `h1.<lastUpdated ms>.<seq>`.
//!
//! A cursor whose kind, version or signature does not match the query is rejected with
//! [`StoreError::InvalidCursor`].

use crate::{SortField, SortKey, StoreError, StoreResult};

/// One sort value carried by a search cursor.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum CursorValue {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
}

/// Which side of the cursor's row a page lies on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    After,
    Before,
}

/// A decoded search cursor.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SearchPosition {
    pub direction: Direction,
    /// One value per sort key, in the order of the query's sort keys.
    pub values: Vec<CursorValue>,
    pub resource_type: String,
    pub id: String,
}

/// A 64-bit FNV-1a hash of the sort keys, in hex.
fn signature(sort: &[SortKey]) -> String {
    let mut text = String::new();
    for key in sort {
        match &key.field {
            SortField::Id => text.push_str("_id"),
            SortField::LastUpdated => text.push_str("_lastUpdated"),
            SortField::Param { params, table } => {
                text.push_str(&params.join(","));
                text.push('@');
                text.push_str(table.table_name());
            }
        }
        text.push(if key.descending { '-' } else { '+' });
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
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

fn encode_value(value: &CursorValue) -> String {
    match value {
        CursorValue::Null => "n".to_owned(),
        CursorValue::Int(n) => format!("i{n}"),
        CursorValue::Float(f) => format!("f{:016x}", f.to_bits()),
        CursorValue::Text(t) => format!("t{}", hex_encode(t)),
    }
}

fn decode_value(text: &str) -> StoreResult<CursorValue> {
    let (kind, rest) = text.split_at_checked(1).ok_or(StoreError::InvalidCursor)?;
    match kind {
        "n" if rest.is_empty() => Ok(CursorValue::Null),
        "i" => Ok(CursorValue::Int(parse_int(rest)?)),
        "f" if rest.len() == 16 => u64::from_str_radix(rest, 16)
            .map(|bits| CursorValue::Float(f64::from_bits(bits)))
            .map_err(|_| StoreError::InvalidCursor),
        "t" => Ok(CursorValue::Text(hex_decode(rest)?)),
        _ => Err(StoreError::InvalidCursor),
    }
}

/// Encodes a position for a query sorted by `sort`.
pub(crate) fn encode_search(sort: &[SortKey], position: &SearchPosition) -> String {
    let mut out = format!(
        "s2.{}.{}",
        signature(sort),
        match position.direction {
            Direction::After => 'a',
            Direction::Before => 'b',
        }
    );
    for value in &position.values {
        out.push('.');
        out.push_str(&encode_value(value));
    }
    out.push('.');
    out.push_str(&hex_encode(&position.resource_type));
    out.push('.');
    out.push_str(&hex_encode(&position.id));
    out
}

/// Decodes a search cursor issued for the same sort keys.
pub(crate) fn decode_search(sort: &[SortKey], cursor: &str) -> StoreResult<SearchPosition> {
    let parts: Vec<&str> = cursor.split('.').collect();
    if parts.len() != sort.len() + 5 || parts[0] != "s2" || parts[1] != signature(sort) {
        return Err(StoreError::InvalidCursor);
    }
    let direction = match parts[2] {
        "a" => Direction::After,
        "b" => Direction::Before,
        _ => return Err(StoreError::InvalidCursor),
    };
    let values = parts[3..3 + sort.len()]
        .iter()
        .map(|p| decode_value(p))
        .collect::<StoreResult<Vec<_>>>()?;
    let resource_type = hex_decode(parts[parts.len() - 2])?;
    let id = hex_decode(parts[parts.len() - 1])?;
    if resource_type.is_empty() || id.is_empty() {
        return Err(StoreError::InvalidCursor);
    }
    Ok(SearchPosition {
        direction,
        values,
        resource_type,
        id,
    })
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
    use crate::IndexTable;

    fn sort() -> Vec<SortKey> {
        vec![
            SortKey {
                field: SortField::Id,
                descending: true,
            },
            SortKey {
                field: SortField::Param {
                    params: vec!["birthdate".into()],
                    table: IndexTable::Date,
                },
                descending: false,
            },
            SortKey {
                field: SortField::LastUpdated,
                descending: false,
            },
            SortKey {
                field: SortField::Param {
                    params: vec!["name".into()],
                    table: IndexTable::String,
                },
                descending: false,
            },
            SortKey {
                field: SortField::Param {
                    params: vec!["length".into()],
                    table: IndexTable::Number,
                },
                descending: true,
            },
        ]
    }

    #[test]
    fn search_cursor_round_trips() {
        let position = SearchPosition {
            direction: Direction::Before,
            values: vec![
                CursorValue::Text("a-b.c/ü".to_owned()),
                CursorValue::Null,
                CursorValue::Int(-1_700_000_000_000),
                CursorValue::Text(String::new()),
                CursorValue::Float(-12.5e-3),
            ],
            resource_type: "Patient".into(),
            id: "x.1".into(),
        };
        let cursor = encode_search(&sort(), &position);
        assert_eq!(decode_search(&sort(), &cursor).ok(), Some(position));
        assert!(
            cursor
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        );
    }

    #[test]
    fn search_cursor_without_sort() {
        let position = SearchPosition {
            direction: Direction::After,
            values: vec![],
            resource_type: "Patient".into(),
            id: "p1".into(),
        };
        let cursor = encode_search(&[], &position);
        assert!(cursor.starts_with("s2.") && cursor.ends_with(".a.50617469656e74.7031"));
        assert_eq!(decode_search(&[], &cursor).ok(), Some(position));
    }

    #[test]
    fn malformed_cursors_are_rejected() {
        let good = encode_search(
            &sort()[..1],
            &SearchPosition {
                direction: Direction::After,
                values: vec![CursorValue::Text("a".into())],
                resource_type: "Patient".into(),
                id: "p1".into(),
            },
        );
        assert!(decode_search(&sort()[..1], &good).is_ok());
        let swapped = good.replace(".a.", ".x.");
        let other_sort = encode_search(
            &sort()[1..2],
            &SearchPosition {
                direction: Direction::After,
                values: vec![CursorValue::Null],
                resource_type: "Patient".into(),
                id: "p1".into(),
            },
        );
        for bad in [
            "",
            "x",
            "s2.n",
            "s1.n.7",
            "h1.1.2",
            swapped.as_str(),
            other_sort.as_str(),
            &format!("{good}.00"),
            &good.replace("7031", "zz"),
            &good.replace("7031", ""),
        ] {
            assert!(
                matches!(
                    decode_search(&sort()[..1], bad),
                    Err(StoreError::InvalidCursor)
                ),
                "{bad}"
            );
        }
        for bad in ["q", "i1x", "f12", "tzz", "nn", ""] {
            assert!(decode_value(bad).is_err(), "{bad}");
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
