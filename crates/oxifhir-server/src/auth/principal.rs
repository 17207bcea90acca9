//! [`Principal`]: the authenticated client a request acts for, carried as data inside the
//! [`FhirRequest`](crate::FhirRequest) so that a request stored by an asynchronous job is
//! checked again, on the worker, with the same rights.

use serde::{Deserialize, Serialize};

use super::scope::{Permission, Scope};

/// The authenticated client of a request and what it was granted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// The registered `client_id`; also the owner of the jobs the client starts.
    pub client_id: String,
    /// The scopes of its access token.
    pub scopes: Vec<Scope>,
    /// Whether the client is registered as an administrator (`$reindex`, `$expunge`).
    pub admin: bool,
}

impl Principal {
    /// True when some scope grants `permission` on `resource_type`.
    pub fn allows(&self, permission: Permission, resource_type: &str) -> bool {
        self.scopes
            .iter()
            .any(|s| s.allows(permission, resource_type))
    }

    /// True when one scope grants `permission` on every resource type (`system/*.…`).
    pub fn allows_every_type(&self, permission: Permission) -> bool {
        self.scopes.iter().any(|s| {
            s.permissions().contains(permission)
                && *s.resources() == super::scope::ResourceSelector::All
        })
    }

    /// True when the client may run administrative operations (`$reindex`, `$expunge`).
    pub fn is_admin(&self) -> bool {
        self.admin
    }

    /// The granted scopes, space-separated as in an OAuth `scope` parameter.
    pub fn scope_text(&self) -> String {
        self.scopes
            .iter()
            .map(Scope::as_str)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_json_and_answers_by_scope() {
        let p = Principal {
            client_id: "bulk".into(),
            scopes: vec![
                Scope::parse("system/Patient.read").unwrap(),
                Scope::parse("system/*.s").unwrap(),
            ],
            admin: false,
        };
        let text = serde_json::to_string(&p).unwrap();
        assert_eq!(
            text,
            r#"{"client_id":"bulk","scopes":["system/Patient.read","system/*.s"],"admin":false}"#
        );
        let back: Principal = serde_json::from_str(&text).unwrap();
        assert_eq!(back, p);
        assert!(back.allows(Permission::Read, "Patient"));
        assert!(!back.allows(Permission::Read, "Observation"));
        assert!(back.allows(Permission::Search, "Observation"));
        assert!(back.allows_every_type(Permission::Search));
        assert!(!back.allows_every_type(Permission::Read));
        assert!(!back.is_admin());
        assert_eq!(back.scope_text(), "system/Patient.read system/*.s");
    }
}
