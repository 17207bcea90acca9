//! Serde for request and response bodies: UTF-8 bodies (almost all) are stored as JSON text so
//! stored jobs stay readable; anything else as bytes.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Body {
    Text(String),
    Bytes(Vec<u8>),
}

pub fn serialize<S: Serializer>(body: &[u8], s: S) -> Result<S::Ok, S::Error> {
    match std::str::from_utf8(body) {
        Ok(text) => Body::Text(text.to_string()).serialize(s),
        Err(_) => Body::Bytes(body.to_vec()).serialize(s),
    }
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    Ok(match Body::deserialize(d)? {
        Body::Text(text) => text.into_bytes(),
        Body::Bytes(bytes) => bytes,
    })
}
