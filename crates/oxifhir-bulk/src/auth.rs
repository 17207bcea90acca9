//! SMART Backend Services (client credentials with a signed JWT assertion): the private key
//! (RS384 or ES384, from PEM), the token endpoint found in the server's
//! `.well-known/smart-configuration`, and an access token fetched when needed and again
//! shortly before it expires (or when a server refuses it).

use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Url;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::error::response_detail;
use crate::request::endpoint;
use crate::retry::{Backoff, RetryPolicy, is_transient, retry_after};

/// The `client_assertion_type` of SMART Backend Services.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// How long an assertion is valid (SMART allows at most five minutes).
const ASSERTION_LIFETIME: u64 = 240;
/// A token is renewed this long before it expires (less for tokens that live shorter).
const RENEW_BEFORE: Duration = Duration::from_secs(30);

/// A client registered with a server for SMART Backend Services.
pub struct SmartCredentials {
    client_id: String,
    key: EncodingKey,
    alg: Algorithm,
    kid: String,
    public: serde_json::Value,
    scope: String,
    token_url: Option<Url>,
}

impl std::fmt::Debug for SmartCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmartCredentials")
            .field("client_id", &self.client_id)
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl SmartCredentials {
    /// Credentials of `client_id` with a PEM private key: RSA (PKCS#1 or PKCS#8) signs RS384,
    /// EC P-384 (SEC1 or PKCS#8) signs ES384. `kid` defaults to the key's RFC 7638
    /// thumbprint (SHA-256); `scope` is what the token is asked for.
    pub fn from_pem(
        client_id: &str,
        pem: &str,
        kid: Option<String>,
        scope: &str,
    ) -> Result<Self, Error> {
        let (key, alg, public) = signing_key(pem)?;
        let kid = match kid {
            Some(kid) => kid,
            None => serde_json::from_value::<Jwk>(public.clone())
                .map_err(|e| e.to_string())
                .and_then(|jwk| {
                    jwk.thumbprint(ThumbprintHash::SHA256)
                        .map_err(|e| e.to_string())
                })
                .map_err(|e| Error::Auth(format!("cannot derive the key's thumbprint: {e}")))?,
        };
        Ok(SmartCredentials {
            client_id: client_id.to_owned(),
            key,
            alg,
            kid,
            public,
            scope: scope.to_owned(),
            token_url: None,
        })
    }

    /// Uses `url` as the token endpoint instead of discovering it.
    pub fn with_token_url(mut self, url: Url) -> Self {
        self.token_url = Some(url);
        self
    }

    /// The signing algorithm chosen for the key.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The `kid` the assertions carry.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK with its `kid`, `alg` and `use` (what the server registers).
    pub fn public_jwk(&self) -> serde_json::Value {
        let mut jwk = self.public.clone();
        if let Some(fields) = jwk.as_object_mut() {
            fields.insert("kid".to_owned(), self.kid.clone().into());
            fields.insert("alg".to_owned(), format!("{:?}", self.alg).into());
            fields.insert("use".to_owned(), "sig".into());
        }
        jwk
    }

    /// A signed client assertion for the token endpoint `aud`.
    fn assertion(&self, aud: &str) -> Result<String, Error> {
        #[derive(Serialize)]
        struct Claims<'a> {
            iss: &'a str,
            sub: &'a str,
            aud: &'a str,
            exp: u64,
            iat: u64,
            jti: String,
        }
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            iss: &self.client_id,
            sub: &self.client_id,
            aud,
            exp: now + ASSERTION_LIFETIME,
            iat: now,
            jti: uuid::Uuid::new_v4().to_string(),
        };
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        header.typ = Some("JWT".to_owned());
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| Error::Auth(format!("cannot sign the client assertion: {e}")))
    }
}

/// The signing key in a PEM text, its algorithm and its public JWK (`kty` and the key's
/// parameters only).
fn signing_key(pem: &str) -> Result<(EncodingKey, Algorithm, serde_json::Value), Error> {
    use p384::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
    use rsa::pkcs1::{DecodeRsaPrivateKey as _, EncodeRsaPrivateKey as _};
    let rsa_key = |key: rsa::RsaPrivateKey| {
        use rsa::traits::PublicKeyParts as _;
        let der = key
            .to_pkcs1_der()
            .map_err(|e| Error::Auth(format!("cannot use the RSA key: {e}")))?;
        // n and e: unsigned big-endian integers without leading zeros (RFC 7518 §6.3.1).
        let public = serde_json::json!({
            "kty": "RSA",
            "n": base64url(&key.n().to_bytes_be()),
            "e": base64url(&key.e().to_bytes_be()),
        });
        Ok((
            EncodingKey::from_rsa_der(der.as_bytes()),
            Algorithm::RS384,
            public,
        ))
    };
    let ec_key = |key: p384::SecretKey| {
        use p384::elliptic_curve::sec1::ToEncodedPoint as _;
        let der = key
            .to_pkcs8_der()
            .map_err(|e| Error::Auth(format!("cannot use the EC key: {e}")))?;
        // x and y at their full 48 bytes, also when they start with zeros (RFC 7518 §6.2.1.2).
        let point = key.public_key().to_encoded_point(false);
        let (Some(x), Some(y)) = (point.x(), point.y()) else {
            return Err(Error::Auth(
                "the EC public key has no coordinates".to_owned(),
            ));
        };
        let public = serde_json::json!({
            "kty": "EC",
            "crv": "P-384",
            "x": base64url(x),
            "y": base64url(y),
        });
        Ok((
            EncodingKey::from_ec_der(der.as_bytes()),
            Algorithm::ES384,
            public,
        ))
    };
    if pem.contains("-----BEGIN RSA PRIVATE KEY-----") {
        let key = rsa::RsaPrivateKey::from_pkcs1_pem(pem)
            .map_err(|e| Error::Auth(format!("not a PKCS#1 RSA key: {e}")))?;
        return rsa_key(key);
    }
    if pem.contains("-----BEGIN EC PRIVATE KEY-----") {
        let key = p384::SecretKey::from_sec1_pem(pem)
            .map_err(|e| Error::Auth(format!("not an EC P-384 key (ES384 needs P-384): {e}")))?;
        return ec_key(key);
    }
    if pem.contains("-----BEGIN PRIVATE KEY-----") {
        if let Ok(key) = rsa::RsaPrivateKey::from_pkcs8_pem(pem) {
            return rsa_key(key);
        }
        return match p384::SecretKey::from_pkcs8_pem(pem) {
            Ok(key) => ec_key(key),
            Err(e) => Err(Error::Auth(format!(
                "the PKCS#8 key is neither RSA nor EC P-384: {e}"
            ))),
        };
    }
    Err(Error::Auth(
        "the key is not a PEM private key (BEGIN RSA PRIVATE KEY, EC PRIVATE KEY or PRIVATE KEY)"
            .to_owned(),
    ))
}

fn base64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// An access token and when to renew it.
#[derive(Debug, Clone)]
struct Token {
    value: String,
    renew_at: Instant,
}

/// Access tokens for one server, fetched once and shared by every request of an export.
#[derive(Debug)]
pub struct TokenSource {
    credentials: SmartCredentials,
    base: Url,
    cached: tokio::sync::Mutex<Option<Token>>,
    token_url: tokio::sync::OnceCell<Url>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl TokenSource {
    /// Tokens for the FHIR server at `base`.
    pub fn new(credentials: SmartCredentials, base: Url) -> Self {
        TokenSource {
            credentials,
            base,
            cached: tokio::sync::Mutex::new(None),
            token_url: tokio::sync::OnceCell::new(),
        }
    }

    /// A valid access token: the cached one, or a new one when it is missing or about to
    /// expire.
    pub async fn token(
        &self,
        http: &reqwest::Client,
        policy: RetryPolicy,
    ) -> Result<String, Error> {
        let mut cached = self.cached.lock().await;
        if let Some(token) = cached.as_ref()
            && Instant::now() < token.renew_at
        {
            return Ok(token.value.clone());
        }
        let token = self.fetch(http, policy).await?;
        let value = token.value.clone();
        *cached = Some(token);
        Ok(value)
    }

    /// Forgets `stale` (a token a server refused), so that the next request gets a new one.
    pub async fn refused(&self, stale: &str) {
        let mut cached = self.cached.lock().await;
        if cached.as_ref().is_some_and(|t| t.value == stale) {
            *cached = None;
        }
    }

    async fn token_url(&self, http: &reqwest::Client) -> Result<&Url, Error> {
        self.token_url
            .get_or_try_init(|| async {
                if let Some(url) = &self.credentials.token_url {
                    return Ok(url.clone());
                }
                discover(http, &self.base).await
            })
            .await
    }

    async fn fetch(&self, http: &reqwest::Client, policy: RetryPolicy) -> Result<Token, Error> {
        let url = self.token_url(http).await?.clone();
        let context = format!("getting an access token from {url}");
        let mut backoff = Backoff::new(policy);
        loop {
            let assertion = self.credentials.assertion(url.as_str())?;
            let body = form_urlencoded::Serializer::new(String::new())
                .append_pair("grant_type", "client_credentials")
                .append_pair("scope", &self.credentials.scope)
                .append_pair("client_assertion_type", JWT_BEARER)
                .append_pair("client_assertion", &assertion)
                .finish();
            let sent = http
                .post(url.clone())
                .header("content-type", "application/x-www-form-urlencoded")
                .header("accept", "application/json")
                .body(body)
                .send()
                .await;
            let response = match sent {
                Ok(response) => response,
                Err(e) => match backoff.failed(None) {
                    Some(wait) => {
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    None => return Err(Error::http(context, e)),
                },
            };
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let bytes = response
                .bytes()
                .await
                .map_err(|e| Error::http(context.clone(), e))?;
            if status == 200 {
                let token: TokenResponse = serde_json::from_slice(&bytes).map_err(|e| {
                    Error::Auth(format!(
                        "{context}: the answer is not a token response: {e}"
                    ))
                })?;
                return Ok(Token {
                    value: token.access_token,
                    renew_at: Instant::now() + use_for(token.expires_in),
                });
            }
            if is_transient(status, &headers, &bytes)
                && let Some(wait) = backoff.failed(retry_after(&headers))
            {
                tokio::time::sleep(wait).await;
                continue;
            }
            return Err(Error::Auth(format!(
                "{context}: the server answered {status}: {}",
                response_detail(&bytes)
            )));
        }
    }
}

/// How long a token that expires in `expires_in` seconds (300 when the server does not say)
/// is used: until [`RENEW_BEFORE`] before it expires, or half its life for short-lived ones.
fn use_for(expires_in: Option<u64>) -> Duration {
    let lifetime = Duration::from_secs(expires_in.unwrap_or(300));
    lifetime - RENEW_BEFORE.min(lifetime / 2)
}

/// The token endpoint in `[base]/.well-known/smart-configuration`.
async fn discover(http: &reqwest::Client, base: &Url) -> Result<Url, Error> {
    let url = endpoint(base, ".well-known/smart-configuration")?;
    let context = format!("reading {url}");
    let response = http
        .get(url.clone())
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|e| Error::http(context.clone(), e))?;
    let status = response.status().as_u16();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| Error::http(context.clone(), e))?;
    if status != 200 {
        return Err(Error::Auth(format!(
            "{context}: the server answered {status} (does it support SMART Backend Services? \
             --token-url names the token endpoint directly)"
        )));
    }
    let config: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| Error::Auth(format!("{context}: not JSON: {e}")))?;
    let endpoint = config
        .get("token_endpoint")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| Error::Auth(format!("{context}: it names no token_endpoint")))?;
    url.join(endpoint)
        .map_err(|e| Error::Auth(format!("{context}: bad token_endpoint '{endpoint}': {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rsa_pem() -> String {
        use rsa::pkcs8::EncodePrivateKey;
        let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 1024).unwrap();
        key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF)
            .unwrap()
            .to_string()
    }

    #[test]
    fn tokens_are_renewed_before_they_expire() {
        let secs = |s| Duration::from_secs(s);
        assert_eq!(use_for(Some(3600)), secs(3570));
        assert_eq!(use_for(None), secs(270));
        assert_eq!(use_for(Some(10)), secs(5));
        assert_eq!(use_for(Some(0)), secs(0));
    }

    #[test]
    fn keys_choose_their_algorithm_and_sign() {
        use p384::pkcs8::EncodePrivateKey;
        use rsa::pkcs1::EncodeRsaPrivateKey;
        let ec = p384::SecretKey::random(&mut rsa::rand_core::OsRng);
        let ec_pkcs8 = ec.to_pkcs8_pem(p384::pkcs8::LineEnding::LF).unwrap();
        let ec_sec1 = ec.to_sec1_pem(p384::pkcs8::LineEnding::LF).unwrap();
        let rsa_pkcs8 = rsa_pem();
        let rsa_pkcs1 = rsa::RsaPrivateKey::from_pkcs8_pem(&rsa_pkcs8)
            .unwrap()
            .to_pkcs1_pem(rsa::pkcs8::LineEnding::LF)
            .unwrap();
        use rsa::pkcs8::DecodePrivateKey;
        for (pem, alg) in [
            (ec_pkcs8.as_str(), Algorithm::ES384),
            (ec_sec1.as_str(), Algorithm::ES384),
            (rsa_pkcs8.as_str(), Algorithm::RS384),
            (rsa_pkcs1.as_str(), Algorithm::RS384),
        ] {
            let c = SmartCredentials::from_pem("c", pem, None, "system/*.read").unwrap();
            assert_eq!(c.algorithm(), alg);
            assert_eq!(c.kid().len(), 43, "a base64url SHA-256 thumbprint");
            let jwt = c.assertion("http://h/token").unwrap();
            let header = jsonwebtoken::decode_header(&jwt).unwrap();
            assert_eq!((header.alg, header.kid.as_deref()), (alg, Some(c.kid())));
            // The assertion verifies with the public JWK.
            let jwk: Jwk = serde_json::from_value(c.public_jwk()).unwrap();
            let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
            let mut validation = jsonwebtoken::Validation::new(alg);
            validation.set_audience(&["http://h/token"]);
            jsonwebtoken::decode::<serde_json::Value>(&jwt, &key, &validation).unwrap();
            assert_eq!(c.public_jwk()["kid"], c.kid());
        }
        // EC coordinates keep their 48 bytes (64 base64url characters) also when they start
        // with a zero byte (one key in 128), or the thumbprint would not match; a few keys
        // (key generation is slow in debug builds) check the encoding's length.
        for _ in 0..20 {
            let key = p384::SecretKey::random(&mut rsa::rand_core::OsRng);
            let pem = key.to_pkcs8_pem(p384::pkcs8::LineEnding::LF).unwrap();
            let jwk = SmartCredentials::from_pem("c", &pem, None, "s")
                .unwrap()
                .public_jwk();
            assert_eq!(jwk["x"].as_str().unwrap().len(), 64, "{jwk}");
            assert_eq!(jwk["y"].as_str().unwrap().len(), 64, "{jwk}");
        }
        let named = SmartCredentials::from_pem("c", &ec_pkcs8, Some("k1".into()), "s").unwrap();
        assert_eq!(named.kid(), "k1");
        let p256 = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n";
        for bad in ["", "hello", p256] {
            assert!(SmartCredentials::from_pem("c", bad, None, "s").is_err());
        }
    }
}
