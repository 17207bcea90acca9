//! The token endpoint (`POST [base]/auth/token`, SMART Backend Services): a
//! `client_credentials` grant authenticated by a signed JWT `client_assertion` (RS384 or
//! ES384, key chosen by `kid` from the client's registered JWKS), answered with a short-lived
//! access token or an OAuth error (RFC 6749 §5.2).
//!
//! Access tokens are JWTs signed HS256 with the configured secret, so every node sharing the
//! secret accepts them and nothing is stored. Every failure of client authentication is
//! `invalid_client` (401), as SMART Backend Services prescribes; the description says why.

use jsonwebtoken::errors::ErrorKind as JwtError;
use jsonwebtoken::{Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::SmartAuth;
use super::config::Client;
use super::scope::{Scope, grant};
use crate::request::{FhirRequest, Method, parse_query};
use crate::response::FhirResponse;

/// The only `client_assertion_type` of SMART Backend Services.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// How far a client's clock may be off from ours, in seconds.
pub const CLOCK_SKEW_SECONDS: u64 = 30;
/// How far in the future an assertion's `exp` may be (SMART: at most five minutes).
pub const MAX_ASSERTION_LIFETIME_SECONDS: u64 = 300;

/// An OAuth 2.0 error response (RFC 6749 §5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    /// `invalid_request`, `invalid_client`, `invalid_scope`, `unsupported_grant_type`.
    pub error: &'static str,
    /// Why, for the client's developer.
    pub description: String,
}

impl OAuthError {
    fn new(error: &'static str, description: impl Into<String>) -> Self {
        OAuthError {
            error,
            description: description.into(),
        }
    }

    fn invalid_request(description: impl Into<String>) -> Self {
        Self::new("invalid_request", description)
    }

    fn invalid_client(description: impl Into<String>) -> Self {
        Self::new("invalid_client", description)
    }

    /// The HTTP status: 401 for `invalid_client`, 400 otherwise.
    pub fn status(&self) -> u16 {
        if self.error == "invalid_client" {
            401
        } else {
            400
        }
    }

    /// The JSON response, not cacheable.
    pub fn response(&self) -> FhirResponse {
        let body = json!({"error": self.error, "error_description": self.description});
        oauth_json(self.status(), &body)
    }
}

/// A JSON response of the OAuth endpoints (`Cache-Control: no-store`).
pub(super) fn oauth_json(status: u16, body: &Value) -> FhirResponse {
    FhirResponse::json(status, body.to_string().into_bytes())
        .with_header("content-type", "application/json")
        .with_header("cache-control", "no-store")
        .with_header("pragma", "no-cache")
}

/// The claims of an access token this server issues.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: u64,
    pub iat: u64,
    pub jti: String,
    pub client_id: String,
    pub scope: String,
}

/// The claims of a client assertion that are checked beyond what `jsonwebtoken` validates.
#[derive(Debug, Deserialize)]
struct AssertionClaims {
    exp: u64,
    #[serde(default)]
    jti: Option<String>,
}

/// Seconds since the Unix epoch.
pub(super) fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// Answers a request to the token endpoint.
pub(super) fn token_endpoint(auth: &SmartAuth, request: &FhirRequest) -> FhirResponse {
    match issue(auth, request) {
        Ok(body) => oauth_json(200, &body),
        Err(error) => {
            tracing::warn!(error = error.error, description = %error.description, "token request refused");
            error.response()
        }
    }
}

fn issue(auth: &SmartAuth, request: &FhirRequest) -> Result<Value, OAuthError> {
    if request.method != Method::Post {
        return Err(OAuthError::invalid_request(
            "the token endpoint takes POST with a form-encoded body",
        ));
    }
    let form_type = request
        .headers
        .content_type
        .as_deref()
        .and_then(|c| c.split(';').next())
        .map(|c| c.trim().to_ascii_lowercase());
    if form_type.as_deref() != Some("application/x-www-form-urlencoded") {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let text = std::str::from_utf8(&request.body)
        .map_err(|_| OAuthError::invalid_request("the body is not UTF-8"))?;
    let form = parse_query(text);
    let param = |name: &str| -> Result<Option<&str>, OAuthError> {
        let mut values = form.iter().filter(|(k, _)| k == name).map(|(_, v)| v);
        let first = values.next();
        if values.next().is_some() {
            return Err(OAuthError::invalid_request(format!(
                "'{name}' is given more than once"
            )));
        }
        Ok(first.map(String::as_str))
    };
    let required = |name: &str| -> Result<&str, OAuthError> {
        param(name)?
            .filter(|v| !v.is_empty())
            .ok_or_else(|| OAuthError::invalid_request(format!("'{name}' is missing")))
    };
    let grant_type = required("grant_type")?;
    if grant_type != "client_credentials" {
        return Err(OAuthError::new(
            "unsupported_grant_type",
            format!("grant_type must be client_credentials, not '{grant_type}'"),
        ));
    }
    let assertion_type = required("client_assertion_type")?;
    if assertion_type != JWT_BEARER {
        return Err(OAuthError::invalid_request(format!(
            "client_assertion_type must be {JWT_BEARER}"
        )));
    }
    let assertion = required("client_assertion")?;
    let requested = required("scope")?;
    let client = authenticate_client(auth, assertion)?;
    let scopes = grant(requested, &client.scopes);
    if scopes.is_empty() {
        return Err(OAuthError::new(
            "invalid_scope",
            format!(
                "none of the requested scopes '{requested}' is allowed for client '{}'",
                client.client_id
            ),
        ));
    }
    let scope = scopes
        .iter()
        .map(Scope::as_str)
        .collect::<Vec<_>>()
        .join(" ");
    let (token, lifetime) = access_token(auth, &client.client_id, &scope)?;
    tracing::info!(client_id = %client.client_id, %scope, "access token issued");
    Ok(json!({
        "access_token": token,
        "token_type": "bearer",
        "expires_in": lifetime,
        "scope": scope,
    }))
}

/// Verifies a client assertion and returns the client it authenticates.
fn authenticate_client<'a>(auth: &'a SmartAuth, assertion: &str) -> Result<&'a Client, OAuthError> {
    let header = jsonwebtoken::decode_header(assertion)
        .map_err(|e| OAuthError::invalid_client(format!("client_assertion is not a JWT: {e}")))?;
    if !matches!(header.alg, Algorithm::RS384 | Algorithm::ES384) {
        return Err(OAuthError::invalid_client(format!(
            "client_assertion is signed {:?}; RS384 and ES384 are supported",
            header.alg
        )));
    }
    // Only to find the client whose key then verifies the assertion; nothing else is trusted.
    let unverified: Value = jsonwebtoken::dangerous::insecure_decode_claims(assertion)
        .map_err(|e| OAuthError::invalid_client(format!("client_assertion claims: {e}")))?;
    let client_id = unverified
        .get("iss")
        .and_then(Value::as_str)
        .ok_or_else(|| OAuthError::invalid_client("client_assertion has no 'iss'"))?;
    let client = auth
        .client(client_id)
        .ok_or_else(|| OAuthError::invalid_client(format!("unknown client '{client_id}'")))?;
    if let Some(jku) = &header.jku
        && client.jwks_url.as_deref() != Some(jku.as_str())
    {
        return Err(OAuthError::invalid_client(
            "the 'jku' header is not the JWKS URL registered for this client",
        ));
    }
    let kid = header
        .kid
        .as_deref()
        .ok_or_else(|| OAuthError::invalid_client("client_assertion has no 'kid' header"))?;
    let key =
        client.keys.iter().find(|k| k.kid == kid).ok_or_else(|| {
            OAuthError::invalid_client(format!("no registered key has kid '{kid}'"))
        })?;
    if key.algorithm != header.alg {
        return Err(OAuthError::invalid_client(format!(
            "key '{kid}' verifies {:?}, but the assertion is {:?}",
            key.algorithm, header.alg
        )));
    }
    let mut validation = Validation::new(header.alg);
    validation.leeway = CLOCK_SKEW_SECONDS;
    validation.set_audience(&[auth.assertion_audience()]);
    validation.set_issuer(&[&client.client_id]);
    validation.sub = Some(client.client_id.clone());
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    let claims = jsonwebtoken::decode::<AssertionClaims>(assertion, &key.key, &validation)
        .map_err(|e| assertion_error(auth, e.kind()))?
        .claims;
    let now = now();
    if claims.exp > now + MAX_ASSERTION_LIFETIME_SECONDS + CLOCK_SKEW_SECONDS {
        return Err(OAuthError::invalid_client(
            "client_assertion expires more than five minutes from now",
        ));
    }
    let jti = claims
        .jti
        .filter(|j| !j.is_empty())
        .ok_or_else(|| OAuthError::invalid_client("client_assertion has no 'jti'"))?;
    if !auth.replay.first_use(
        &client.client_id,
        &jti,
        claims.exp + CLOCK_SKEW_SECONDS,
        now,
    ) {
        return Err(OAuthError::invalid_client(
            "this client_assertion's jti was already used",
        ));
    }
    Ok(client)
}

fn assertion_error(auth: &SmartAuth, kind: &JwtError) -> OAuthError {
    OAuthError::invalid_client(match kind {
        JwtError::ExpiredSignature => "client_assertion has expired".to_string(),
        JwtError::InvalidAudience => format!(
            "client_assertion 'aud' must be the token endpoint, {}",
            auth.assertion_audience()
        ),
        JwtError::InvalidSignature => {
            "client_assertion's signature does not verify with the registered key".to_string()
        }
        JwtError::InvalidIssuer | JwtError::InvalidSubject => {
            "client_assertion 'iss' and 'sub' must both be the client_id".to_string()
        }
        JwtError::MissingRequiredClaim(claim) => format!("client_assertion has no '{claim}'"),
        other => format!("client_assertion is not valid: {other:?}"),
    })
}

/// A signed access token for `client_id` with `scope`, and its lifetime in seconds.
fn access_token(
    auth: &SmartAuth,
    client_id: &str,
    scope: &str,
) -> Result<(String, u64), OAuthError> {
    let now = now();
    let lifetime = auth.config.token_lifetime_seconds;
    let claims = AccessClaims {
        iss: auth.issuer.clone(),
        sub: client_id.to_string(),
        aud: auth.resource_audience.clone(),
        exp: now + lifetime,
        iat: now,
        jti: uuid::Uuid::new_v4().to_string(),
        client_id: client_id.to_string(),
        scope: scope.to_string(),
    };
    let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &auth.encoding)
        .map_err(|e| {
            tracing::error!(error = %e, "cannot sign an access token");
            OAuthError::new("server_error", "the access token could not be signed")
        })?;
    Ok((token, lifetime))
}

/// Why a bearer token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRejection {
    /// No `Authorization: Bearer` header.
    Missing,
    /// Present but expired.
    Expired,
    /// Present but not one of ours, tampered with, or for an unregistered client.
    Invalid,
}

/// Verifies an access token; returns its client and scopes.
pub(super) fn verify_access_token(
    auth: &SmartAuth,
    token: &str,
) -> Result<(String, Vec<Scope>), TokenRejection> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 0;
    validation.set_audience(&[&auth.resource_audience]);
    validation.set_issuer(&[&auth.issuer]);
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    let claims = jsonwebtoken::decode::<AccessClaims>(token, &auth.decoding, &validation)
        .map_err(|e| match e.kind() {
            JwtError::ExpiredSignature => TokenRejection::Expired,
            _ => TokenRejection::Invalid,
        })?
        .claims;
    if auth.client(&claims.client_id).is_none() {
        return Err(TokenRejection::Invalid);
    }
    let scopes = claims
        .scope
        .split_whitespace()
        .filter_map(|s| Scope::parse(s).ok())
        .collect();
    Ok((claims.client_id, scopes))
}
