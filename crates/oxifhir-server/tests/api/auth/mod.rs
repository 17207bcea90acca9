//! `--auth smart`: the token endpoint (SMART Backend Services) and scope enforcement. Keys
//! are generated once per test run; every client assertion is signed here, as a client would.

mod access;
mod token;

use std::path::Path;
use std::sync::OnceLock;

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use oxifhir_server::auth::AuthConfig;
use serde_json::{Value, json};

use crate::support::{Reply, TestOptions, TestServer};

/// The secret the test servers sign access tokens with (so tests can forge expired ones).
pub const SECRET: &str = "test-secret-that-is-at-least-32-bytes-long";

/// A private key as a client holds it.
pub struct TestKey {
    pub kid: &'static str,
    pub alg: Algorithm,
    pub private: EncodingKey,
    pub public: Value,
}

/// The keys: an RSA one, an EC P-384 one, and an EC one nobody registered.
pub struct Keys {
    pub rsa: TestKey,
    pub ec: TestKey,
    pub stranger: TestKey,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn rsa_key(kid: &'static str) -> TestKey {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::traits::PublicKeyParts;
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).expect("rsa key");
    let der = key.to_pkcs1_der().expect("pkcs1");
    TestKey {
        kid,
        alg: Algorithm::RS384,
        private: EncodingKey::from_rsa_der(der.as_bytes()),
        public: json!({"kty": "RSA", "kid": kid, "alg": "RS384", "use": "sig",
            "n": b64(&key.n().to_bytes_be()), "e": b64(&key.e().to_bytes_be())}),
    }
}

fn ec_key(kid: &'static str) -> TestKey {
    use p384::elliptic_curve::sec1::ToEncodedPoint;
    use p384::pkcs8::EncodePrivateKey;
    let key = p384::SecretKey::random(&mut rsa::rand_core::OsRng);
    let der = key.to_pkcs8_der().expect("pkcs8");
    let point = key.public_key().to_encoded_point(false);
    TestKey {
        kid,
        alg: Algorithm::ES384,
        private: EncodingKey::from_ec_der(der.as_bytes()),
        public: json!({"kty": "EC", "crv": "P-384", "kid": kid,
            "x": b64(point.x().expect("x")), "y": b64(point.y().expect("y"))}),
    }
}

/// The test keys, made once.
pub fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        rsa: rsa_key("rsa-1"),
        ec: ec_key("ec-1"),
        stranger: ec_key("ec-1"),
    })
}

/// A server setup with SMART on and these clients:
/// - `rsa-client` (RSA key): `system/*.read`;
/// - `ec-client` (EC key): `system/Patient.read`, `system/Observation.rs`;
/// - `writer` (EC key): `system/*.*`;
/// - `v2-client` (EC key): `system/Patient.cruds`, `system/Observation.rs`;
/// - `admin` (EC key): `system/*.rs`, administrator.
pub fn smart() -> TestOptions {
    let k = keys();
    let client = |id: &str, key: &TestKey, scopes: &[&str], admin: bool| json!({"client_id": id, "keys": [key.public], "scopes": scopes, "admin": admin});
    let file = json!({
        "signing_secret": SECRET,
        "clients": [
            client("rsa-client", &k.rsa, &["system/*.read"], false),
            client("ec-client", &k.ec, &["system/Patient.read", "system/Observation.rs"], false),
            client("writer", &k.ec, &["system/*.*"], false),
            client("v2-client", &k.ec, &["system/Patient.cruds", "system/Observation.rs"], false),
            client("admin", &k.ec, &["system/*.rs"], true),
        ]
    });
    let auth = AuthConfig::parse(&file.to_string(), Path::new(".")).expect("auth config");
    TestOptions {
        auth: Some(auth),
        ..TestOptions::default()
    }
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// The claims of a fresh, valid assertion of `client_id` for server `s`.
pub fn claims(s: &TestServer, client_id: &str) -> Value {
    json!({
        "iss": client_id,
        "sub": client_id,
        "aud": s.url("auth/token"),
        "exp": now() + 240,
        "jti": uuid::Uuid::new_v4().to_string(),
    })
}

/// `claims` signed with `key` (its kid in the header).
pub fn sign(claims: &Value, key: &TestKey) -> String {
    let mut header = Header::new(key.alg);
    header.kid = Some(key.kid.to_string());
    jsonwebtoken::encode(&header, claims, &key.private).expect("sign")
}

/// `POST [base]/auth/token` with a form body.
pub async fn token_request(s: &TestServer, form: &[(&str, &str)]) -> Reply {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    s.send(
        "POST",
        "auth/token",
        &[("content-type", "application/x-www-form-urlencoded")],
        Some(body.into_bytes()),
    )
    .await
}

/// A client-credentials request with `assertion` and `scope`.
pub async fn request_token(s: &TestServer, assertion: &str, scope: &str) -> Reply {
    token_request(
        s,
        &[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion),
            ("scope", scope),
        ],
    )
    .await
}

/// An access token for `client_id` (signing with `key`) with `scope`; panics unless granted.
pub async fn token(s: &TestServer, client_id: &str, key: &TestKey, scope: &str) -> String {
    let reply = request_token(s, &sign(&claims(s, client_id), key), scope).await;
    assert_eq!(reply.status, 200, "token for {client_id}: {}", reply.text());
    reply.json()["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

/// Sends a request with `Authorization: Bearer token` and an optional FHIR JSON body.
pub async fn as_client(
    s: &TestServer,
    token: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Reply {
    let bearer = format!("Bearer {token}");
    let mut headers = vec![("authorization", bearer.as_str())];
    if body.is_some() {
        headers.push(("content-type", "application/fhir+json"));
    }
    s.send(
        method,
        path,
        &headers,
        body.map(|b| serde_json::to_vec(b).expect("json")),
    )
    .await
}

/// The OAuth `error` of a token endpoint reply.
pub fn oauth_error(reply: &Reply) -> String {
    reply.json()["error"].as_str().unwrap_or("").to_string()
}
