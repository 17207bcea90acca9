//! Authentication and authorization (`--auth none | smart`).
//!
//! With `smart`, the server is its own SMART Backend Services authorization server: clients
//! registered in the `--auth-config` file ([`config`]) obtain short-lived access tokens at
//! `[base]/auth/token` ([`token`]), discoverable at `[base]/.well-known/smart-configuration`.
//! At the HTTP edge, [`admit`] turns the bearer token into a [`Principal`] that travels inside
//! the [`FhirRequest`]; `dispatch` then checks every interaction, batch and transaction entry
//! against the principal's scopes ([`access`]). With `none`, nothing is checked and the
//! SMART endpoints answer 404.

pub mod access;
pub mod config;
pub mod principal;
pub mod replay;
pub mod scope;
pub mod token;

use std::sync::Arc;

use jsonwebtoken::{DecodingKey, EncodingKey};
use serde_json::{Value, json};

pub use access::authorize;
pub use config::AuthConfig;
pub use principal::Principal;
pub use scope::{Permission, Scope};

use crate::error::{ApiError, ErrorKind};
use crate::request::{FhirRequest, split_path};
use crate::response::FhirResponse;
use config::Client;
use replay::ReplayGuard;
use token::TokenRejection;

/// Path of the SMART configuration document below the FHIR base.
pub const SMART_CONFIGURATION_PATH: &str = ".well-known/smart-configuration";
/// Path of the token endpoint below the FHIR base.
pub const TOKEN_PATH: &str = "auth/token";

/// Whether and how requests are authenticated.
#[derive(Debug, Clone, Default)]
pub enum AuthMode {
    /// No authentication: every request may do everything (local use only).
    #[default]
    None,
    /// SMART Backend Services bearer tokens and scopes.
    Smart(Arc<SmartAuth>),
}

/// The SMART Backend Services authorization server and token verifier.
pub struct SmartAuth {
    config: AuthConfig,
    token_endpoint: String,
    assertion_audience: String,
    issuer: String,
    resource_audience: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    ephemeral_secret: bool,
    replay: ReplayGuard,
}

impl SmartAuth {
    /// The authorization server for the API at `base_url`: token endpoint
    /// `{base_url}/auth/token`, access tokens for audience `base_url`. Without a configured
    /// secret, a random one is made (from the OS's random source) and lives as long as the
    /// process.
    pub fn new(config: AuthConfig, base_url: &str) -> SmartAuth {
        let base_url = base_url.trim_end_matches('/');
        let token_endpoint = format!("{base_url}/{TOKEN_PATH}");
        let (secret, ephemeral_secret) = match &config.signing_secret {
            Some(secret) => (secret.clone(), false),
            None => {
                let mut secret = uuid::Uuid::new_v4().as_bytes().to_vec();
                secret.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
                (secret, true)
            }
        };
        SmartAuth {
            assertion_audience: config
                .audience
                .clone()
                .unwrap_or_else(|| token_endpoint.clone()),
            issuer: config
                .issuer
                .clone()
                .unwrap_or_else(|| base_url.to_string()),
            resource_audience: base_url.to_string(),
            token_endpoint,
            encoding: EncodingKey::from_secret(&secret),
            decoding: DecodingKey::from_secret(&secret),
            ephemeral_secret,
            replay: ReplayGuard::default(),
            config,
        }
    }

    /// The registered client with this id.
    pub fn client(&self, client_id: &str) -> Option<&Client> {
        self.config
            .clients
            .iter()
            .find(|c| c.client_id == client_id)
    }

    /// How many clients are registered.
    pub fn client_count(&self) -> usize {
        self.config.clients.len()
    }

    /// The token endpoint's URL.
    pub fn token_endpoint(&self) -> &str {
        &self.token_endpoint
    }

    /// The `aud` client assertions must carry.
    pub fn assertion_audience(&self) -> &str {
        &self.assertion_audience
    }

    /// True when the token signing secret was generated at start (tokens die with the
    /// process and other nodes reject them).
    pub fn secret_is_ephemeral(&self) -> bool {
        self.ephemeral_secret
    }

    /// The principal of an `Authorization` header value, or why there is none.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Principal, TokenRejection> {
        let token = authorization
            .and_then(|h| h.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|t| !t.is_empty())
            .ok_or(TokenRejection::Missing)?;
        let (client_id, scopes) = token::verify_access_token(self, token)?;
        let admin = self.client(&client_id).is_some_and(|c| c.admin);
        Ok(Principal {
            client_id,
            scopes,
            admin,
        })
    }

    /// `401` + `WWW-Authenticate` + OperationOutcome for a rejected bearer token (RFC 6750).
    pub(crate) fn challenge(&self, rejection: &TokenRejection) -> FhirResponse {
        let (challenge, text) = match rejection {
            TokenRejection::Missing => (
                format!("Bearer realm=\"{}\"", self.resource_audience),
                format!(
                    "Authentication required: send 'Authorization: Bearer <access token>'; tokens are issued at {}",
                    self.token_endpoint
                ),
            ),
            TokenRejection::Expired => (
                format!(
                    "Bearer realm=\"{}\", error=\"invalid_token\", error_description=\"The access token expired\"",
                    self.resource_audience
                ),
                "The access token expired; request a new one".to_string(),
            ),
            TokenRejection::Invalid => (
                format!(
                    "Bearer realm=\"{}\", error=\"invalid_token\", error_description=\"The access token is not valid\"",
                    self.resource_audience
                ),
                "The access token is not valid on this server".to_string(),
            ),
        };
        let error = ApiError::new(ErrorKind::Unauthorized, text);
        crate::format::apply(FhirResponse::from_error(&error), Default::default())
            .with_header("www-authenticate", challenge)
    }

    /// The SMART configuration document (`.well-known/smart-configuration`).
    fn smart_configuration(&self) -> Value {
        json!({
            "issuer": self.issuer,
            "token_endpoint": self.token_endpoint,
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
            "scopes_supported": [
                "system/*.read", "system/*.write", "system/*.*",
                "system/*.rs", "system/*.cud", "system/*.cruds"
            ],
            "capabilities": ["client-confidential-asymmetric", "permission-v1", "permission-v2"],
        })
    }
}

impl std::fmt::Debug for SmartAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmartAuth")
            .field("token_endpoint", &self.token_endpoint)
            .field("clients", &self.config.clients.len())
            .finish_non_exhaustive()
    }
}

/// What the HTTP edge does with a request before reading its body.
#[derive(Debug)]
pub enum Admission {
    /// Dispatch it without a principal (auth is off, or the path is public).
    Open,
    /// Dispatch it as this principal.
    Authenticated(Principal),
    /// One of the SMART endpoints: answer it with [`serve_endpoint`].
    Endpoint(Endpoint),
    /// Answer this (`401`) and do not read the body.
    Rejected(FhirResponse),
}

/// The SMART endpoints under the FHIR base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET [base]/.well-known/smart-configuration`.
    SmartConfiguration,
    /// `POST [base]/auth/token`.
    Token,
}

/// Decides, from the path below the base (`None` when outside it), the method and the
/// `Authorization` header, how a request proceeds. `GET [base]/metadata` stays public so
/// that clients can discover the server.
pub fn admit(
    mode: &AuthMode,
    relative_path: Option<&str>,
    method: &str,
    authorization: Option<&str>,
) -> Admission {
    let Some(path) = relative_path else {
        return Admission::Open;
    };
    let segments = split_path(path);
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    if segments == split_refs(SMART_CONFIGURATION_PATH) {
        return Admission::Endpoint(Endpoint::SmartConfiguration);
    }
    if segments == split_refs(TOKEN_PATH) {
        return Admission::Endpoint(Endpoint::Token);
    }
    if segments == ["metadata"] && matches!(method, "GET" | "HEAD") {
        return Admission::Open;
    }
    match authenticate(mode, authorization) {
        Ok(Some(principal)) => Admission::Authenticated(principal),
        Ok(None) => Admission::Open,
        Err(response) => Admission::Rejected(response),
    }
}

/// The principal of an `Authorization` header value: `Ok(None)` while authentication is
/// off, `Err` with the `401` to answer when the bearer token is missing or not valid. Pages
/// outside the FHIR base that show API data (the jobs page's JSON) use it directly.
pub fn authenticate(
    mode: &AuthMode,
    authorization: Option<&str>,
) -> Result<Option<Principal>, FhirResponse> {
    let AuthMode::Smart(auth) = mode else {
        return Ok(None);
    };
    auth.authenticate(authorization)
        .map(Some)
        .map_err(|rejection| auth.challenge(&rejection))
}

fn split_refs(path: &str) -> Vec<&str> {
    path.split('/').collect()
}

/// Answers a SMART endpoint; both are `404` when authentication is off.
pub fn serve_endpoint(mode: &AuthMode, endpoint: Endpoint, request: &FhirRequest) -> FhirResponse {
    let AuthMode::Smart(auth) = mode else {
        let error = ApiError::not_found(
            "This server runs without authentication (--auth none): there is no SMART configuration or token endpoint",
        );
        return crate::format::apply(FhirResponse::from_error(&error), Default::default());
    };
    match endpoint {
        Endpoint::Token => token::token_endpoint(auth, request),
        Endpoint::SmartConfiguration => {
            if !matches!(request.method, crate::Method::Get | crate::Method::Head) {
                let error = ApiError::new(
                    ErrorKind::MethodNotAllowed,
                    "The SMART configuration is read with GET",
                );
                return crate::format::apply(FhirResponse::from_error(&error), Default::default());
            }
            let mut response =
                FhirResponse::json(200, auth.smart_configuration().to_string().into_bytes())
                    .with_header("content-type", "application/json");
            if request.method == crate::Method::Head {
                response.body.clear();
            }
            response
        }
    }
}

/// The CapabilityStatement's `rest.security` when SMART is on: the SMART-on-FHIR service and
/// the token endpoint (`oauth-uris` extension).
pub fn capability_security(mode: &AuthMode) -> Option<Value> {
    let AuthMode::Smart(auth) = mode else {
        return None;
    };
    Some(json!({
        "extension": [{
            "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
            "extension": [{"url": "token", "valueUri": auth.token_endpoint}]
        }],
        "service": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
            "code": "SMART-on-FHIR"
        }]}],
        "description": "SMART Backend Services: client_credentials with a signed JWT assertion (RS384, ES384); system scopes, v1 and v2 syntax"
    }))
}
