//! Server settings that shape responses: the public base URL and request limits (body size,
//! read timeout).

/// Settings of the FHIR API.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// The public base URL every absolute URL is built from, without a trailing `/`
    /// (e.g. `http://127.0.0.1:8080/fhir`).
    pub base_url: String,
    /// Largest accepted request body in bytes; larger bodies get `413`.
    pub max_body_bytes: usize,
    /// How long a client may take to send a request: its headers (else the connection is
    /// closed) and then its whole body (else `408`). Slow or stalled clients cannot hold a
    /// connection and a task for longer.
    pub read_timeout: std::time::Duration,
    /// Page size of searches and histories without `_count`.
    pub default_count: usize,
    /// Largest page size; larger `_count` values are lowered to it.
    pub max_count: usize,
    /// The asynchronous request pattern.
    pub asynchronous: crate::asynchronous::AsyncConfig,
    /// Bulk Data export.
    pub export: ExportConfig,
    /// `$reindex` and `$expunge` jobs.
    pub maintenance: MaintenanceConfig,
    /// A bearer token that lets a scraper read `GET /metrics` (`--metrics-token`); see
    /// [`crate::observability::endpoint`].
    pub metrics_token: Option<crate::observability::endpoint::MetricsToken>,
}

/// Settings of `$reindex` and `$expunge`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaintenanceConfig {
    /// Resources read and written per transaction.
    pub batch: usize,
    /// A pause after each batch (to make jobs slow in crash tests); zero in production.
    pub throttle: std::time::Duration,
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        MaintenanceConfig {
            batch: 2000,
            throttle: std::time::Duration::ZERO,
        }
    }
}

/// Settings of Bulk Data export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportConfig {
    /// Where export files are kept.
    pub location: crate::operations::export::files::ExportLocation,
    /// Most resources in one file.
    pub file_resources: u64,
    /// A file is closed once it holds this many bytes (it may exceed them by one batch).
    pub file_bytes: u64,
    /// Resources read per statement.
    pub batch: usize,
    /// Slices of an export read side by side: a type with more resources than a file holds
    /// is cut into slices of about a file each. 1 reads each type whole, in turn.
    pub parallel: usize,
    /// How long after its cut an export starts reading, so that every write stamped before
    /// the cut has committed.
    pub settle: std::time::Duration,
    /// A pause after each batch (to make exports slow in crash tests); zero in production.
    pub throttle: std::time::Duration,
}

impl Default for ExportConfig {
    fn default() -> Self {
        ExportConfig {
            location: crate::operations::export::files::ExportLocation::Local(
                std::env::temp_dir().join("oxifhir-exports"),
            ),
            file_resources: 100_000,
            file_bytes: 256 * 1024 * 1024,
            batch: 1000,
            parallel: 2,
            settle: std::time::Duration::from_millis(500),
            throttle: std::time::Duration::ZERO,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            base_url: "http://127.0.0.1:8080/fhir".into(),
            max_body_bytes: 16 * 1024 * 1024,
            read_timeout: std::time::Duration::from_secs(60),
            default_count: 20,
            max_count: 1000,
            asynchronous: Default::default(),
            export: ExportConfig::default(),
            maintenance: MaintenanceConfig::default(),
            metrics_token: None,
        }
    }
}

impl ServerConfig {
    /// The URL path the API is mounted at (`/fhir` for `http://host:8080/fhir`).
    pub fn base_path(&self) -> String {
        let without_scheme = self
            .base_url
            .split_once("://")
            .map_or(self.base_url.as_str(), |(_, r)| r);
        match without_scheme.find('/') {
            Some(i) => without_scheme[i..].trim_end_matches('/').to_string(),
            None => String::new(),
        }
    }

    /// `{base}/{relative}`.
    pub fn url(&self, relative: &str) -> String {
        format!("{}/{}", self.base_url, relative.trim_start_matches('/'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_path() {
        let mut c = ServerConfig::default();
        assert_eq!(c.base_path(), "/fhir");
        c.base_url = "https://example.org".into();
        assert_eq!(c.base_path(), "");
        c.base_url = "https://example.org/a/b".into();
        assert_eq!(c.base_path(), "/a/b");
        assert_eq!(c.url("Patient/1"), "https://example.org/a/b/Patient/1");
    }
}
