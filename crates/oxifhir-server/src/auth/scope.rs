//! SMART system scopes: parsing the v1 (`system/Patient.read`, `system/*.write`,
//! `system/*.*`) and v2 (`system/Observation.rs`, `system/*.cruds`) forms into one shape —
//! which resource types, which permissions — and intersecting them.

use std::fmt;

use oxifhir_model::resource_type;
use serde::{Deserialize, Serialize};

/// One SMART v2 permission letter; v1 `read` is `rs`, `write` is `cud`, `*` is all five.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// `c`: create.
    Create,
    /// `r`: read and vread of a known id, instance history.
    Read,
    /// `u`: update and patch.
    Update,
    /// `d`: delete.
    Delete,
    /// `s`: search and type/system history.
    Search,
}

impl Permission {
    /// The five permissions in the order SMART v2 writes them.
    pub const ALL: [Permission; 5] = [
        Permission::Create,
        Permission::Read,
        Permission::Update,
        Permission::Delete,
        Permission::Search,
    ];

    /// The v2 letter.
    pub fn letter(self) -> char {
        match self {
            Permission::Create => 'c',
            Permission::Read => 'r',
            Permission::Update => 'u',
            Permission::Delete => 'd',
            Permission::Search => 's',
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of [`Permission`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Permissions(u8);

impl Permissions {
    /// v1 `read`: read and search.
    pub const READ: Permissions = Permissions(0b10010);
    /// v1 `write`: create, update and delete.
    pub const WRITE: Permissions = Permissions(0b01101);
    /// v1 `*`: everything.
    pub const ALL: Permissions = Permissions(0b11111);

    /// True when `permission` is in the set.
    pub fn contains(self, permission: Permission) -> bool {
        self.0 & permission.bit() != 0
    }

    /// True when every permission of `other` is in the set.
    pub fn covers(self, other: Permissions) -> bool {
        self.0 & other.0 == other.0
    }

    /// The permissions in both sets.
    pub fn intersection(self, other: Permissions) -> Permissions {
        Permissions(self.0 & other.0)
    }

    /// True for the empty set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The v2 letters, in `cruds` order.
    pub fn letters(self) -> String {
        Permission::ALL
            .iter()
            .filter(|p| self.contains(**p))
            .map(|p| p.letter())
            .collect()
    }

    /// Parses v2 letters: a non-empty subsequence of `cruds`, in that order.
    fn parse_v2(text: &str) -> Option<Permissions> {
        let mut set = Permissions::default();
        let mut next = 0;
        for c in text.chars() {
            let offset = Permission::ALL[next..]
                .iter()
                .position(|p| p.letter() == c)?;
            set.0 |= Permission::ALL[next + offset].bit();
            next += offset + 1;
        }
        (!set.is_empty()).then_some(set)
    }
}

/// The resource types a scope names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ResourceSelector {
    /// `*`: every type.
    All,
    /// One resource type.
    Type(String),
}

impl ResourceSelector {
    /// True when `resource_type` is among the selected types.
    pub fn matches(&self, resource_type: &str) -> bool {
        match self {
            ResourceSelector::All => true,
            ResourceSelector::Type(t) => t == resource_type,
        }
    }

    fn intersection(&self, other: &ResourceSelector) -> Option<ResourceSelector> {
        match (self, other) {
            (ResourceSelector::All, o) | (o, ResourceSelector::All) => Some(o.clone()),
            (ResourceSelector::Type(a), ResourceSelector::Type(b)) => {
                (a == b).then(|| self.clone())
            }
        }
    }
}

/// A parsed `system/…` scope. It keeps the text it was parsed from, so a granted scope is
/// reported to the client exactly as it was asked for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Scope {
    text: String,
    resources: ResourceSelector,
    permissions: Permissions,
}

/// Why a scope string is not a supported SMART system scope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{scope}' is not a supported scope: {reason}")]
pub struct ScopeError {
    /// The scope as written.
    pub scope: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl Scope {
    /// Parses `system/<Type|*>.<read|write|*|cruds letters>`. Patient and user scopes,
    /// granular v2 scopes (`?param=value`) and unknown types are refused: a backend service
    /// acts for itself, and a scope this server cannot enforce exactly must not be granted.
    pub fn parse(text: &str) -> Result<Scope, ScopeError> {
        let fail = |reason| ScopeError {
            scope: text.to_string(),
            reason,
        };
        let rest = text
            .strip_prefix("system/")
            .ok_or_else(|| fail("only system/ scopes are supported (SMART Backend Services)"))?;
        if rest.contains('?') {
            return Err(fail(
                "granular scopes with search parameters are not supported",
            ));
        }
        let (resource, permission) = rest
            .split_once('.')
            .ok_or_else(|| fail("expected system/<type>.<permissions>"))?;
        let resources = match resource {
            "*" => ResourceSelector::All,
            t if resource_type::is_known(t) => ResourceSelector::Type(t.to_string()),
            _ => return Err(fail("unknown resource type")),
        };
        let permissions = match permission {
            "read" => Permissions::READ,
            "write" => Permissions::WRITE,
            "*" => Permissions::ALL,
            letters => Permissions::parse_v2(letters).ok_or_else(|| {
                fail("permissions must be read, write, * or letters of 'cruds' in that order")
            })?,
        };
        Ok(Scope {
            text: text.to_string(),
            resources,
            permissions,
        })
    }

    /// The scope as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The resource types it names.
    pub fn resources(&self) -> &ResourceSelector {
        &self.resources
    }

    /// The permissions it grants.
    pub fn permissions(&self) -> Permissions {
        self.permissions
    }

    /// True when the scope grants `permission` on `resource_type`.
    pub fn allows(&self, permission: Permission, resource_type: &str) -> bool {
        self.permissions.contains(permission) && self.resources.matches(resource_type)
    }

    /// What both scopes grant, or `None` when that is nothing. The result keeps the text of
    /// `self` (or of `other`) when it equals that scope, and is written in v2 form otherwise
    /// (`system/*.read` ∩ `system/Patient.cruds` = `system/Patient.rs`).
    pub fn intersection(&self, other: &Scope) -> Option<Scope> {
        let resources = self.resources.intersection(&other.resources)?;
        let permissions = self.permissions.intersection(other.permissions);
        if permissions.is_empty() {
            return None;
        }
        for s in [self, other] {
            if s.resources == resources && s.permissions == permissions {
                return Some(s.clone());
            }
        }
        let name = match &resources {
            ResourceSelector::All => "*",
            ResourceSelector::Type(t) => t.as_str(),
        };
        Some(Scope {
            text: format!("system/{name}.{}", permissions.letters()),
            resources,
            permissions,
        })
    }
}

impl TryFrom<String> for Scope {
    type Error = ScopeError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Scope::parse(&text)
    }
}

impl From<Scope> for String {
    fn from(scope: Scope) -> Self {
        scope.text
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The scopes to grant for a request: every non-empty intersection of a requested scope with
/// an allowed one, without duplicates, in request order. Requested scopes that are not
/// supported system scopes (`openid`, `patient/…`, typos) are left out.
pub fn grant(requested: &str, allowed: &[Scope]) -> Vec<Scope> {
    let mut granted: Vec<Scope> = Vec::new();
    for text in requested.split_whitespace() {
        let Ok(asked) = Scope::parse(text) else {
            continue;
        };
        for scope in allowed.iter().filter_map(|a| asked.intersection(a)) {
            let redundant = granted.iter().any(|g| {
                g.permissions.covers(scope.permissions)
                    && (g.resources == ResourceSelector::All || g.resources == scope.resources)
            });
            if !redundant {
                granted.push(scope);
            }
        }
    }
    granted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Scope {
        Scope::parse(text).unwrap()
    }

    #[test]
    fn parses_v1_and_v2() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("system/Patient.read", "rs", Some("Patient")),
            ("system/*.read", "rs", None),
            ("system/*.write", "cud", None),
            ("system/*.*", "cruds", None),
            ("system/Observation.rs", "rs", Some("Observation")),
            ("system/Patient.cruds", "cruds", Some("Patient")),
            ("system/*.cud", "cud", None),
            ("system/Patient.s", "s", Some("Patient")),
        ];
        for (text, letters, t) in cases {
            let scope = s(text);
            assert_eq!(scope.permissions().letters(), *letters, "{text}");
            let expected = t.map_or(ResourceSelector::All, |t| {
                ResourceSelector::Type(t.to_string())
            });
            assert_eq!(scope.resources(), &expected, "{text}");
        }
    }

    #[test]
    fn refuses_what_it_cannot_enforce() {
        for text in [
            "patient/Patient.read",
            "user/*.read",
            "openid",
            "system/Patient",
            "system/Foo.read",
            "system/Patient.sr",
            "system/Patient.rr",
            "system/Patient.x",
            "system/Patient.",
            "system/Observation.rs?category=laboratory",
        ] {
            assert!(Scope::parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn allows_by_type_and_permission() {
        let read = s("system/Patient.read");
        assert!(read.allows(Permission::Read, "Patient"));
        assert!(read.allows(Permission::Search, "Patient"));
        assert!(!read.allows(Permission::Update, "Patient"));
        assert!(!read.allows(Permission::Read, "Observation"));
        assert!(s("system/*.write").allows(Permission::Delete, "Observation"));
    }

    #[test]
    fn intersections() {
        let check = |a: &str, b: &str, expected: Option<&str>| {
            let got = s(a).intersection(&s(b)).map(|x| x.to_string());
            assert_eq!(got.as_deref(), expected, "{a} ∩ {b}");
        };
        check(
            "system/Patient.read",
            "system/*.read",
            Some("system/Patient.read"),
        );
        check(
            "system/*.read",
            "system/Patient.read",
            Some("system/Patient.read"),
        );
        check("system/*.*", "system/*.rs", Some("system/*.rs"));
        check(
            "system/*.read",
            "system/Patient.cruds",
            Some("system/Patient.rs"),
        );
        check("system/Patient.read", "system/Observation.read", None);
        check("system/*.read", "system/*.write", None);
    }

    #[test]
    fn grants_the_intersection_with_the_allowed_scopes() {
        let allowed = [s("system/Patient.read"), s("system/Observation.rs")];
        let names = |g: Vec<Scope>| g.iter().map(Scope::to_string).collect::<Vec<_>>();
        assert_eq!(
            names(grant(
                "system/Patient.read system/Encounter.read openid",
                &allowed
            )),
            ["system/Patient.read"]
        );
        assert_eq!(
            names(grant("system/*.read", &allowed)),
            ["system/Patient.read", "system/Observation.rs"]
        );
        assert!(grant("system/*.write", &allowed).is_empty());
        assert_eq!(
            names(grant("system/*.* system/Patient.rs", &[s("system/*.read")])),
            ["system/*.read"]
        );
    }

    #[test]
    fn serializes_as_its_text() {
        let json = serde_json::to_string(&s("system/*.rs")).unwrap();
        assert_eq!(json, r#""system/*.rs""#);
        assert_eq!(
            serde_json::from_str::<Scope>(&json).unwrap(),
            s("system/*.rs")
        );
        assert!(serde_json::from_str::<Scope>(r#""openid""#).is_err());
    }
}
