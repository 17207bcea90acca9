//! Server settings that shape responses: the public base URL and request limits.

/// Settings of the FHIR API.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// The public base URL every absolute URL is built from, without a trailing `/`
    /// (e.g. `http://127.0.0.1:8080/fhir`).
    pub base_url: String,
    /// Largest accepted request body in bytes; larger bodies get `413`.
    pub max_body_bytes: usize,
    /// Page size of searches and histories without `_count`.
    pub default_count: usize,
    /// Largest page size; larger `_count` values are lowered to it.
    pub max_count: usize,
    /// The asynchronous request pattern.
    pub asynchronous: crate::asynchronous::AsyncConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            base_url: "http://127.0.0.1:8080/fhir".into(),
            max_body_bytes: 16 * 1024 * 1024,
            default_count: 20,
            max_count: 1000,
            asynchronous: Default::default(),
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
