//! The request id: taken from a client's `X-Request-Id` when it is sane, generated otherwise,
//! logged with everything the request does and echoed in the response's `X-Request-Id`.

use axum::http::{HeaderMap, HeaderValue};

/// The header that carries the id, both ways.
pub const HEADER: &str = "x-request-id";

/// The longest id taken from a client.
pub const MAX_LEN: usize = 128;

/// One request's id: 1 to [`MAX_LEN`] visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    /// The id of a request with `headers`: the client's `X-Request-Id` when there is exactly
    /// one and it is 1 to [`MAX_LEN`] visible ASCII characters; else a new UUID (v7, so ids
    /// sort by time). A hostile id (too long, control characters, several headers) is
    /// replaced, never echoed.
    pub fn of(headers: &HeaderMap) -> Self {
        let mut given = headers.get_all(HEADER).iter();
        match (given.next(), given.next()) {
            (Some(value), None) => Self::parse(value.as_bytes()).unwrap_or_else(Self::generate),
            _ => Self::generate(),
        }
    }

    /// The id `text` stands for, if it is sane.
    pub fn parse(text: &[u8]) -> Option<Self> {
        let sane = (1..=MAX_LEN).contains(&text.len()) && text.iter().all(u8::is_ascii_graphic);
        // Visible ASCII is valid UTF-8.
        sane.then(|| RequestId(String::from_utf8_lossy(text).into_owned()))
    }

    /// A new id.
    pub fn generate() -> Self {
        RequestId(uuid::Uuid::now_v7().to_string())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id as a header value.
    pub fn header_value(&self) -> HeaderValue {
        // Visible ASCII is always a valid header value.
        HeaderValue::from_str(&self.0).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id_of(values: &[&[u8]]) -> RequestId {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(
                HEADER,
                HeaderValue::from_bytes(value).expect("header value"),
            );
        }
        RequestId::of(&headers)
    }

    #[test]
    fn sane_ids_are_kept_and_others_replaced() {
        assert_eq!(id_of(&[b"abc-123"]).as_str(), "abc-123");
        let longest = "x".repeat(MAX_LEN);
        assert_eq!(id_of(&[longest.as_bytes()]).as_str(), longest);
        let too_long = "x".repeat(MAX_LEN + 1);
        let hostile: [&[u8]; 5] = [
            too_long.as_bytes(),
            b"a b",
            b"tab\there",
            b"caf\xc3\xa9",
            b"",
        ];
        for hostile in hostile {
            let id = id_of(&[hostile]);
            assert_ne!(id.as_str().as_bytes(), hostile);
            assert!(uuid::Uuid::parse_str(id.as_str()).is_ok(), "{id}");
        }
        let twice = id_of(&[b"one", b"two"]);
        assert!(uuid::Uuid::parse_str(twice.as_str()).is_ok());
        assert!(uuid::Uuid::parse_str(RequestId::of(&HeaderMap::new()).as_str()).is_ok());
    }
}
