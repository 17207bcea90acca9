//! The `--auth-config` file: registered clients (public JWKS, allowed scopes, admin flag),
//! access-token lifetime, issuer/audience and the token signing secret. JSON, because a
//! JWKS is JSON and can be pasted as it is, and because it needs no new parser. Every
//! mistake is reported with the file, the client and the field, and stops start-up.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use base64::Engine;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use serde_json::Value;

use super::scope::Scope;

/// Access tokens live this long unless the file says otherwise (SMART recommends at most
/// five minutes).
pub const DEFAULT_TOKEN_LIFETIME_SECONDS: u64 = 300;
/// The longest access-token lifetime the file may ask for.
pub const MAX_TOKEN_LIFETIME_SECONDS: u64 = 3600;
/// The shortest accepted token signing secret, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFormat {
    #[serde(default)]
    token_lifetime_seconds: Option<u64>,
    #[serde(default)]
    issuer: Option<String>,
    #[serde(default)]
    audience: Option<String>,
    #[serde(default)]
    signing_secret: Option<String>,
    clients: Vec<ClientFormat>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientFormat {
    client_id: String,
    #[serde(default)]
    keys: Vec<Value>,
    #[serde(default)]
    jwks_path: Option<PathBuf>,
    #[serde(default)]
    jwks_url: Option<String>,
    scopes: Vec<String>,
    #[serde(default)]
    admin: bool,
}

/// The validated settings of `--auth smart`.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Lifetime of issued access tokens, in seconds.
    pub token_lifetime_seconds: u64,
    /// `iss` of issued access tokens; `None`: the FHIR base URL.
    pub issuer: Option<String>,
    /// The `aud` client assertions must carry; `None`: the token endpoint URL.
    pub audience: Option<String>,
    /// HS256 secret for access tokens; `None`: a random one per process (tokens then die
    /// with the process and are not accepted by other nodes).
    pub signing_secret: Option<Vec<u8>>,
    /// The registered clients.
    pub clients: Vec<Client>,
}

/// A registered client.
#[derive(Debug, Clone)]
pub struct Client {
    /// Its `client_id` (the `iss` and `sub` of its assertions).
    pub client_id: String,
    /// Its public keys, selected by the assertion's `kid`.
    pub keys: Vec<ClientKey>,
    /// The only `jku` header its assertions may carry; keys are never fetched from it.
    pub jwks_url: Option<String>,
    /// The scopes it may be granted.
    pub scopes: Vec<Scope>,
    /// Whether it may run administrative operations.
    pub admin: bool,
}

/// One public key of a client.
#[derive(Debug, Clone)]
pub struct ClientKey {
    /// The JWK `kid`.
    pub kid: String,
    /// `RS384` for RSA keys, `ES384` for EC P-384 keys.
    pub algorithm: Algorithm,
    /// The verification key.
    pub key: DecodingKey,
}

/// A configuration mistake, saying where it is.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

impl AuthConfig {
    /// Reads and validates the file at `path` (key files are resolved relative to its folder).
    pub fn load(path: &Path) -> Result<AuthConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError(format!(
                "cannot read the auth config {}: {e}",
                path.display()
            ))
        })?;
        let dir = path.parent().unwrap_or_else(|| Path::new("."));
        Self::parse(&text, dir)
            .map_err(|e| ConfigError(format!("auth config {}: {}", path.display(), e.0)))
    }

    /// Validates the JSON text of a configuration; relative `jwks_path`s are under `dir`.
    pub fn parse(text: &str, dir: &Path) -> Result<AuthConfig, ConfigError> {
        let file: FileFormat =
            serde_json::from_str(text).map_err(|e| ConfigError(format!("not valid: {e}")))?;
        let token_lifetime_seconds = file
            .token_lifetime_seconds
            .unwrap_or(DEFAULT_TOKEN_LIFETIME_SECONDS);
        if !(1..=MAX_TOKEN_LIFETIME_SECONDS).contains(&token_lifetime_seconds) {
            return Err(ConfigError(format!(
                "token_lifetime_seconds must be between 1 and {MAX_TOKEN_LIFETIME_SECONDS}, not {token_lifetime_seconds}"
            )));
        }
        let signing_secret = match file.signing_secret {
            Some(s) if s.len() < MIN_SECRET_BYTES => {
                return Err(ConfigError(format!(
                    "signing_secret must be at least {MIN_SECRET_BYTES} bytes long"
                )));
            }
            other => other.map(String::into_bytes),
        };
        if file.clients.is_empty() {
            return Err(ConfigError(
                "no clients are registered: add at least one to \"clients\"".into(),
            ));
        }
        let mut ids = HashSet::new();
        let mut clients = Vec::with_capacity(file.clients.len());
        for c in file.clients {
            let client = client(c, dir)?;
            if !ids.insert(client.client_id.clone()) {
                return Err(ConfigError(format!(
                    "client_id '{}' is registered twice",
                    client.client_id
                )));
            }
            clients.push(client);
        }
        Ok(AuthConfig {
            token_lifetime_seconds,
            issuer: file.issuer,
            audience: file.audience,
            signing_secret,
            clients,
        })
    }
}

fn client(c: ClientFormat, dir: &Path) -> Result<Client, ConfigError> {
    let id = c.client_id.clone();
    if id.trim().is_empty() {
        return Err(ConfigError("a client has an empty client_id".into()));
    }
    let fail = |what: String| ConfigError(format!("client '{id}': {what}"));
    let mut jwks = c.keys;
    if let Some(path) = &c.jwks_path {
        let path = dir.join(path);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| fail(format!("cannot read jwks_path {}: {e}", path.display())))?;
        let set: Value = serde_json::from_str(&text)
            .map_err(|e| fail(format!("{} is not JSON: {e}", path.display())))?;
        match set.get("keys") {
            Some(Value::Array(keys)) => jwks.extend(keys.iter().cloned()),
            _ => {
                return Err(fail(format!(
                    "{} is not a JWKS (no \"keys\" array)",
                    path.display()
                )));
            }
        }
    }
    if jwks.is_empty() {
        return Err(fail(
            "no public keys: give \"keys\" (a JWKS keys array) or \"jwks_path\"".into(),
        ));
    }
    let mut keys: Vec<ClientKey> = Vec::with_capacity(jwks.len());
    for (i, value) in jwks.iter().enumerate() {
        let key = client_key(value).map_err(|e| fail(format!("key {i}: {e}")))?;
        if keys.iter().any(|k| k.kid == key.kid) {
            return Err(fail(format!("key {i}: kid '{}' is used twice", key.kid)));
        }
        keys.push(key);
    }
    if c.scopes.is_empty() {
        return Err(fail("no scopes: list the scopes it may be granted".into()));
    }
    let scopes = c
        .scopes
        .iter()
        .map(|s| Scope::parse(s).map_err(|e| fail(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Client {
        client_id: c.client_id,
        keys,
        jwks_url: c.jwks_url,
        scopes,
        admin: c.admin,
    })
}

/// One JWK → a verification key: RSA (≥ 2048 bits) for RS384 or EC P-384 for ES384, public
/// part only, with a `kid`.
fn client_key(value: &Value) -> Result<ClientKey, String> {
    if value.get("d").is_some() {
        return Err("it holds a private key ('d'); register the public key only".into());
    }
    let jwk: Jwk =
        serde_json::from_value(value.clone()).map_err(|e| format!("not a usable JWK: {e}"))?;
    let kid = jwk
        .common
        .key_id
        .clone()
        .filter(|k| !k.is_empty())
        .ok_or("it has no 'kid' (assertions select their key by kid)")?;
    let algorithm = match &jwk.algorithm {
        AlgorithmParameters::RSA(rsa) => {
            let bits = b64_len(&rsa.n)? * 8;
            if bits < 2048 {
                return Err(format!(
                    "an RSA key of {bits} bits is too short (2048 at least)"
                ));
            }
            Algorithm::RS384
        }
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P384 => {
            if b64_len(&ec.x)? != 48 || b64_len(&ec.y)? != 48 {
                return Err("x and y of a P-384 key are 48 bytes each".into());
            }
            Algorithm::ES384
        }
        _ => return Err("only RSA (RS384) and EC P-384 (ES384) keys are supported".into()),
    };
    if let Some(alg) = jwk.common.key_algorithm
        && alg != KeyAlgorithm::from(algorithm)
    {
        return Err(format!(
            "its 'alg' is {alg}, but this server verifies such a key with {algorithm:?}"
        ));
    }
    let key = DecodingKey::from_jwk(&jwk).map_err(|e| format!("not a usable key: {e}"))?;
    Ok(ClientKey {
        kid,
        algorithm,
        key,
    })
}

/// The decoded length of a base64url value, ignoring leading zero bytes.
fn b64_len(text: &str) -> Result<usize, String> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| "a key component is not base64url".to_string())?;
    Ok(bytes.iter().skip_while(|b| **b == 0).count())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ec_key(kid: &str) -> Value {
        let coord = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([7u8; 48]);
        json!({"kty": "EC", "crv": "P-384", "kid": kid, "x": coord, "y": coord})
    }

    fn parse(v: Value) -> Result<AuthConfig, String> {
        AuthConfig::parse(&v.to_string(), Path::new(".")).map_err(|e| e.0)
    }

    fn one_client(client: Value) -> Value {
        json!({"clients": [client]})
    }

    #[test]
    fn accepts_a_minimal_file_with_defaults() {
        let c = parse(one_client(
            json!({"client_id": "a", "keys": [ec_key("k1")], "scopes": ["system/*.read"]}),
        ))
        .unwrap();
        assert_eq!(c.token_lifetime_seconds, 300);
        assert!(c.signing_secret.is_none());
        assert_eq!(c.clients[0].keys[0].algorithm, Algorithm::ES384);
        assert!(!c.clients[0].admin);
    }

    #[test]
    fn reports_each_mistake() {
        let cases: Vec<(Value, &str)> = vec![
            (json!({"clients": []}), "no clients"),
            (json!({"clients": [], "typo": 1}), "unknown field"),
            (
                one_client(json!({"client_id": "a", "scopes": ["system/*.read"]})),
                "client 'a': no public keys",
            ),
            (
                one_client(
                    json!({"client_id": "a", "keys": [ec_key("k")], "scopes": ["patient/*.read"]}),
                ),
                "client 'a': 'patient/*.read' is not a supported scope",
            ),
            (
                one_client(
                    json!({"client_id": "a", "keys": [{"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"}], "scopes": ["system/*.read"]}),
                ),
                "no 'kid'",
            ),
            (
                one_client(
                    json!({"client_id": "a", "keys": [{"kty": "RSA", "kid": "r", "n": "AQAB", "e": "AQAB"}], "scopes": ["system/*.read"]}),
                ),
                "too short",
            ),
            (
                one_client(
                    json!({"client_id": "a", "keys": [{"kty": "EC", "crv": "P-256", "kid": "p", "x": "AA", "y": "AA"}], "scopes": ["system/*.read"]}),
                ),
                "only RSA (RS384) and EC P-384",
            ),
            (
                one_client(
                    json!({"client_id": "a", "keys": [ec_key("k"), ec_key("k")], "scopes": ["system/*.read"]}),
                ),
                "kid 'k' is used twice",
            ),
            (
                one_client(
                    json!({"client_id": "a", "keys": [{"kty": "EC", "crv": "P-384", "kid": "k", "x": "AA", "y": "AA", "d": "AA"}], "scopes": ["system/*.read"]}),
                ),
                "private key",
            ),
            (
                json!({"signing_secret": "short", "clients": [{"client_id": "a", "keys": [ec_key("k")], "scopes": ["system/*.read"]}]}),
                "at least 32 bytes",
            ),
            (
                json!({"token_lifetime_seconds": 0, "clients": [{"client_id": "a", "keys": [ec_key("k")], "scopes": ["system/*.read"]}]}),
                "token_lifetime_seconds",
            ),
            (
                json!({"clients": [
                    {"client_id": "a", "keys": [ec_key("k")], "scopes": ["system/*.read"]},
                    {"client_id": "a", "keys": [ec_key("k")], "scopes": ["system/*.read"]}]}),
                "registered twice",
            ),
            (
                one_client(
                    json!({"client_id": "a", "jwks_path": "/nonexistent/jwks.json", "scopes": ["system/*.read"]}),
                ),
                "cannot read jwks_path",
            ),
        ];
        for (file, expected) in cases {
            let error = parse(file.clone()).expect_err(&file.to_string());
            assert!(error.contains(expected), "{file}: {error}");
        }
    }

    #[test]
    fn reads_keys_from_a_jwks_file_beside_the_config() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.jwks.json"),
            json!({"keys": [ec_key("from-file")]}).to_string(),
        )
        .unwrap();
        let config = json!({"clients": [{"client_id": "a", "jwks_path": "a.jwks.json", "keys": [ec_key("inline")], "scopes": ["system/*.rs"], "admin": true}]});
        let path = dir.path().join("auth.json");
        std::fs::write(&path, config.to_string()).unwrap();
        let c = AuthConfig::load(&path).unwrap();
        let kids: Vec<&str> = c.clients[0].keys.iter().map(|k| k.kid.as_str()).collect();
        assert_eq!(kids, ["inline", "from-file"]);
        assert!(c.clients[0].admin);
        let missing = AuthConfig::load(&dir.path().join("nope.json")).unwrap_err();
        assert!(
            missing.0.contains("cannot read the auth config"),
            "{missing}"
        );
    }
}
