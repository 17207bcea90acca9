//! The R4 search-parameter table (generated from `search-parameters.json` into
//! `data/search-parameters.json`): which parameters a resource type has, their types, and the
//! FHIRPath expression that extracts each one's values from a resource of a given type.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use serde::Deserialize;
use serde_json::Value;

use crate::resource_type;

mod unions;

pub use unions::union_parts;

/// `SearchParameter.type`: how a parameter's values are indexed and compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchParamType {
    Number,
    Date,
    String,
    Token,
    Reference,
    Composite,
    Quantity,
    Uri,
    Special,
}

impl SearchParamType {
    /// Every type, in the order of the R4 value set.
    pub const ALL: [SearchParamType; 9] = [
        SearchParamType::Number,
        SearchParamType::Date,
        SearchParamType::String,
        SearchParamType::Token,
        SearchParamType::Reference,
        SearchParamType::Composite,
        SearchParamType::Quantity,
        SearchParamType::Uri,
        SearchParamType::Special,
    ];

    /// The FHIR code (`number`, `date`, `string`, ...).
    pub fn code(self) -> &'static str {
        match self {
            SearchParamType::Number => "number",
            SearchParamType::Date => "date",
            SearchParamType::String => "string",
            SearchParamType::Token => "token",
            SearchParamType::Reference => "reference",
            SearchParamType::Composite => "composite",
            SearchParamType::Quantity => "quantity",
            SearchParamType::Uri => "uri",
            SearchParamType::Special => "special",
        }
    }
}

impl fmt::Display for SearchParamType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// The error of parsing a [`SearchParamType`] from a string that is not one of its codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown search parameter type '{0}'")]
pub struct UnknownSearchParamType(pub String);

impl FromStr for SearchParamType {
    type Err = UnknownSearchParamType;

    /// Parses a FHIR code exactly (case-sensitive, as FHIR codes are).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SearchParamType::ALL
            .into_iter()
            .find(|t| t.code() == s)
            .ok_or_else(|| UnknownSearchParamType(s.to_string()))
    }
}

/// One part of a composite parameter: the component parameter's canonical URL and the
/// FHIRPath expression, relative to the composite's own expression, that yields its value.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Component {
    pub definition: String,
    pub expression: String,
}

/// A search parameter definition: what oxifhir needs of a `SearchParameter` resource.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SearchParamDef {
    /// The name used in URLs (`name`, `_lastUpdated`, `code-value-quantity`).
    pub code: String,
    /// The canonical URL (`http://hl7.org/fhir/SearchParameter/Patient-name`).
    pub url: String,
    /// The resource types it applies to; may be `Resource` or `DomainResource`.
    pub base: Vec<String>,
    /// How values are indexed and compared.
    #[serde(rename = "type")]
    pub kind: SearchParamType,
    /// The FHIRPath expression over all of `base` (one `|` part per type for multi-base
    /// parameters; see [`SearchParamDef::expression_for`]). `None` for `_text`, `_content`
    /// and `_query`, which have none.
    #[serde(default)]
    pub expression: Option<String>,
    /// For reference parameters, the resource types a reference may point to.
    #[serde(default)]
    pub target: Vec<String>,
    /// For composite parameters, their components in order; empty otherwise.
    #[serde(default, rename = "component")]
    pub components: Vec<Component>,
}

impl SearchParamDef {
    /// The parts of [`expression`](Self::expression) that apply to `resource_type`, joined by
    /// ` | `: the top-level `|` parts that start with `resource_type` (`Type.x`, `(Type.x as
    /// T)`, or `Type` alone), plus generic `Resource.`/`DomainResource.` parts, kept as they
    /// are. A part that starts with an element name instead of a type (R4's `InsurancePlan-name`
    /// is `name | alias`) is relative to the resource and comes back as `Type.part`. `None` if
    /// the parameter has no expression or no part applies.
    pub fn expression_for(&self, resource_type: &str) -> Option<String> {
        let expression = self.expression.as_deref()?;
        let parts: Vec<String> = split_union(expression)
            .into_iter()
            .filter_map(|part| {
                let subject = part.trim_start_matches('(').trim_start();
                if subject.starts_with(|c: char| c.is_ascii_lowercase()) {
                    return Some(format!("{resource_type}.{part}"));
                }
                ["Resource", "DomainResource", resource_type]
                    .iter()
                    .any(|name| starts_with_type(subject, name))
                    .then(|| part.to_string())
            })
            .collect();
        if parts.is_empty() {
            None
        } else {
            Some(parts.join(" | "))
        }
    }

    /// True if this parameter applies to `resource_type`: its `base` names the type, or names
    /// `Resource` and the type is known, or names `DomainResource` and the type is a known
    /// type other than `Bundle`, `Binary` and `Parameters` (which are not domain resources).
    pub fn applies_to(&self, resource_type: &str) -> bool {
        self.base.iter().any(|b| b == resource_type)
            || (resource_type::is_known(resource_type)
                && (self.base.iter().any(|b| b == "Resource")
                    || (self.base.iter().any(|b| b == "DomainResource")
                        && is_domain_resource(resource_type))))
    }

    /// Reads a `SearchParameter` resource (as posted to the server) into a definition.
    /// Requires `code`, `url`, `base` (non-empty) and a known `type`; reads `expression`,
    /// `target` and `component` when present.
    pub fn from_resource(resource: &Value) -> Result<SearchParamDef, String> {
        let string = |name: &str| -> Result<String, String> {
            resource
                .get(name)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| format!("SearchParameter.{name} is required and must be a string"))
        };
        let strings = |name: &str| -> Result<Vec<String>, String> {
            match resource.get(name) {
                None => Ok(Vec::new()),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .map(str::to_string)
                            .ok_or_else(|| format!("SearchParameter.{name} must hold strings"))
                    })
                    .collect(),
                Some(_) => Err(format!("SearchParameter.{name} must be an array")),
            }
        };
        if resource.get("resourceType").and_then(Value::as_str) != Some("SearchParameter") {
            return Err("not a SearchParameter resource".to_string());
        }
        let kind: SearchParamType = string("type")?
            .parse()
            .map_err(|e: UnknownSearchParamType| e.to_string())?;
        let base = strings("base")?;
        if base.is_empty() {
            return Err("SearchParameter.base must name at least one resource type".to_string());
        }
        let mut components = Vec::new();
        if let Some(items) = resource.get("component") {
            let Some(items) = items.as_array() else {
                return Err("SearchParameter.component must be an array".to_string());
            };
            for item in items {
                let field = |name: &str| {
                    item.get(name)
                        .and_then(Value::as_str)
                        .map(str::to_string)
                        .ok_or_else(|| format!("SearchParameter.component.{name} must be a string"))
                };
                components.push(Component {
                    definition: field("definition")?,
                    expression: field("expression")?,
                });
            }
        }
        Ok(SearchParamDef {
            code: string("code")?,
            url: string("url")?,
            base,
            kind,
            expression: resource
                .get("expression")
                .and_then(Value::as_str)
                .filter(|s| !s.trim().is_empty())
                .map(str::to_string),
            target: strings("target")?,
            components,
        })
    }
}

/// `Bundle`, `Binary` and `Parameters` derive from `Resource` directly; every other R4 type
/// (and oxifhir's `AsyncJob`) is a `DomainResource`.
fn is_domain_resource(resource_type: &str) -> bool {
    !matches!(resource_type, "Bundle" | "Binary" | "Parameters")
}

/// True if `subject` starts with the type name `name` followed by a path step, a space, a
/// closing parenthesis, an index or nothing.
fn starts_with_type(subject: &str, name: &str) -> bool {
    subject
        .strip_prefix(name)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', ' ', ')', '[']))
}

/// Splits a FHIRPath expression on its top-level `|` operators (not inside parentheses,
/// brackets, braces, string literals or backquoted identifiers), trimming each part.
fn split_union(expression: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut start = 0;
    for (i, c) in expression.char_indices() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '`' | '"' => quote = Some(c),
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            '|' if depth == 0 => {
                parts.push(expression[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(expression[start..].trim());
    parts.retain(|p| !p.is_empty());
    parts
}

/// The table with its indexes, built once from the embedded data.
struct Table {
    /// Every definition, sorted by url.
    defs: Vec<SearchParamDef>,
    by_url: HashMap<String, usize>,
    /// Definition indexes by each name in their `base` (including `Resource` and
    /// `DomainResource`), each list sorted by code.
    by_base: HashMap<String, Vec<usize>>,
}

/// The canonical URL of `Slot?end=`, a parameter this server defines beyond R4 (R4 has
/// `Slot.start` as a search parameter but not `Slot.end`): with it, the Slots overlapping a
/// time range are one search (`start=lt…&end=gt…`), which scheduling needs.
pub const SLOT_END_URL: &str = "http://oxifhir.dev/fhir/SearchParameter/Slot-end";

/// Search parameters this server defines beyond R4, in the table with R4's own so that
/// every write path indexes them. Stores written before one was added need their
/// resources of its types reindexed once (scheduling does it for `Slot-end` at start).
const SERVER_DEFINED: &str = r#"[
    {"code": "end", "url": "http://oxifhir.dev/fhir/SearchParameter/Slot-end", "base": ["Slot"],
     "type": "date", "expression": "Slot.end"}
]"#;

static TABLE: LazyLock<Table> = LazyLock::new(|| {
    let mut defs: Vec<SearchParamDef> = resource_type::parse_embedded(
        "search-parameters.json",
        include_str!("../data/search-parameters.json"),
    );
    defs.extend(resource_type::parse_embedded::<Vec<SearchParamDef>>(
        "server-defined search parameters",
        SERVER_DEFINED,
    ));
    defs.sort_by(|a, b| a.url.cmp(&b.url));
    let by_url = defs
        .iter()
        .enumerate()
        .map(|(i, d)| (d.url.clone(), i))
        .collect();
    let mut by_base: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, def) in defs.iter().enumerate() {
        for base in &def.base {
            by_base.entry(base.clone()).or_default().push(i);
        }
    }
    for list in by_base.values_mut() {
        list.sort_by(|&a, &b| defs[a].code.cmp(&defs[b].code));
    }
    Table {
        defs,
        by_url,
        by_base,
    }
});

/// Every R4 search parameter and the few this server defines ([`SLOT_END_URL`]), sorted by
/// url.
pub fn all() -> &'static [SearchParamDef] {
    &TABLE.defs
}

/// The R4 parameter `code` of `resource_type` (see [`SearchParamDef::applies_to`]), if any.
/// A parameter defined for the type itself wins over a `Resource`/`DomainResource` one.
pub fn lookup(resource_type: &str, code: &str) -> Option<&'static SearchParamDef> {
    let table = &*TABLE;
    [resource_type, "Resource", "DomainResource"]
        .into_iter()
        .filter_map(|base| table.by_base.get(base))
        .flatten()
        .map(|&i| &table.defs[i])
        .find(|def| def.code == code && def.applies_to(resource_type))
}

/// Every R4 parameter that applies to `resource_type`, sorted by code (one per code).
/// Empty for a type that is not known.
pub fn for_type(resource_type: &str) -> Vec<&'static SearchParamDef> {
    let table = &*TABLE;
    let mut out: Vec<&'static SearchParamDef> = Vec::new();
    for base in [resource_type, "Resource", "DomainResource"] {
        for &i in table
            .by_base
            .get(base)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let def = &table.defs[i];
            if def.applies_to(resource_type) && !out.iter().any(|d| d.code == def.code) {
                out.push(def);
            }
        }
    }
    out.sort_by(|a, b| a.code.cmp(&b.code));
    out
}

/// The R4 parameter with canonical URL `url`, if any.
pub fn by_url(url: &str) -> Option<&'static SearchParamDef> {
    let table = &*TABLE;
    table.by_url.get(url).map(|&i| &table.defs[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_loads() {
        assert_eq!(all().len(), 1379);
        let end = lookup("Slot", "end").unwrap();
        assert_eq!(end.url, SLOT_END_URL);
        assert_eq!(end.kind, SearchParamType::Date);
        assert!(all().windows(2).all(|w| w[0].url < w[1].url));
        for def in all() {
            assert!(!def.base.is_empty(), "{}", def.url);
            assert_eq!(
                def.kind == SearchParamType::Composite,
                !def.components.is_empty()
            );
        }
    }

    #[test]
    fn type_codes_round_trip() {
        for t in SearchParamType::ALL {
            assert_eq!(t.code().parse::<SearchParamType>(), Ok(t));
            assert_eq!(t.to_string(), t.code());
        }
        assert!("Token".parse::<SearchParamType>().is_err());
        assert!("".parse::<SearchParamType>().is_err());
    }

    #[test]
    fn lookup_finds_type_and_resource_level_parameters() {
        let name = lookup("Patient", "name").unwrap();
        assert_eq!(name.url, "http://hl7.org/fhir/SearchParameter/Patient-name");
        assert_eq!(name.kind, SearchParamType::String);

        let id = lookup("Observation", "_id").unwrap();
        assert_eq!(id.base, ["Resource"]);
        assert_eq!(id.kind, SearchParamType::Token);
        assert!(lookup("Bundle", "_lastUpdated").is_some());
        assert!(lookup("AsyncJob", "_id").is_some());

        // `_text` is a DomainResource parameter: not for Bundle, Binary or Parameters.
        assert!(lookup("Patient", "_text").is_some());
        assert!(lookup("Bundle", "_text").is_none());
        assert!(lookup("Binary", "_text").is_none());
        assert!(lookup("Parameters", "_text").is_none());

        let code = lookup("Condition", "code").unwrap();
        assert_eq!(
            code.url,
            "http://hl7.org/fhir/SearchParameter/clinical-code"
        );
        assert!(lookup("Condition", "nonsense").is_none());
        assert!(lookup("NotAType", "_id").is_none());
        assert!(lookup("Patient", "value-quantity").is_none());
    }

    #[test]
    fn for_type_is_sorted_and_complete() {
        let params = for_type("Patient");
        let codes: Vec<&str> = params.iter().map(|d| d.code.as_str()).collect();
        assert!(codes.windows(2).all(|w| w[0] < w[1]), "{codes:?}");
        for code in [
            "_content",
            "_id",
            "_lastUpdated",
            "_profile",
            "_query",
            "_security",
            "_source",
            "_tag",
            "_text",
            "active",
            "birthdate",
            "family",
            "general-practitioner",
            "identifier",
            "link",
            "name",
            "organization",
            "phone",
        ] {
            assert!(codes.contains(&code), "{code}");
        }
        let bundle: Vec<&str> = for_type("Bundle").iter().map(|d| d.code.as_str()).collect();
        assert!(bundle.contains(&"composition") && !bundle.contains(&"_text"));
        assert!(for_type("Nope").is_empty());
        for t in resource_type::all() {
            assert!(for_type(t).iter().any(|d| d.code == "_id"), "{t}");
        }
    }

    #[test]
    fn by_url_finds_definitions() {
        let def =
            by_url("http://hl7.org/fhir/SearchParameter/Observation-code-value-quantity").unwrap();
        assert_eq!(def.kind, SearchParamType::Composite);
        assert_eq!(def.components.len(), 2);
        assert_eq!(
            def.components[0].definition,
            "http://hl7.org/fhir/SearchParameter/clinical-code"
        );
        assert_eq!(def.components[1].expression, "value.as(Quantity)");
        let reference = by_url("http://hl7.org/fhir/SearchParameter/clinical-patient").unwrap();
        assert_eq!(reference.target, ["Patient"]);
        assert!(by_url("http://example.org/nope").is_none());
    }

    fn check(url: &str, resource_type: &str, expected: Option<&str>) {
        let def = by_url(&format!("http://hl7.org/fhir/SearchParameter/{url}"))
            .unwrap_or_else(|| panic!("no parameter {url}"));
        assert_eq!(
            def.expression_for(resource_type).as_deref(),
            expected,
            "{url} for {resource_type}"
        );
    }

    #[test]
    fn expression_for_picks_the_parts_of_the_type() {
        check("clinical-code", "Condition", Some("Condition.code"));
        check(
            "clinical-code",
            "AllergyIntolerance",
            Some("AllergyIntolerance.code | AllergyIntolerance.reaction.substance"),
        );
        check(
            "clinical-code",
            "MedicationRequest",
            Some("(MedicationRequest.medication as CodeableConcept)"),
        );
        // `Medication.code` must not match `MedicationRequest`, nor the reverse.
        check("clinical-code", "Medication", Some("Medication.code"));
        check("clinical-code", "Patient", None);
        check("Patient-name", "Patient", Some("Patient.name"));
        check(
            "individual-phone",
            "Practitioner",
            Some("Practitioner.telecom.where(system='phone')"),
        );
        check(
            "clinical-patient",
            "Observation",
            Some("Observation.subject.where(resolve() is Patient)"),
        );
        check(
            "Observation-value-quantity",
            "Observation",
            Some("(Observation.value as Quantity) | (Observation.value as SampledData)"),
        );
        check(
            "clinical-date",
            "RiskAssessment",
            Some("(RiskAssessment.occurrence as dateTime)"),
        );
        check(
            "Observation-code-value-quantity",
            "Observation",
            Some("Observation"),
        );
        check(
            "Bundle-composition",
            "Bundle",
            Some("Bundle.entry[0].resource"),
        );
        check(
            "InsurancePlan-name",
            "InsurancePlan",
            Some("InsurancePlan.name | InsurancePlan.alias"),
        );
        check("Resource-id", "Patient", Some("Resource.id"));
        check(
            "Resource-lastUpdated",
            "Observation",
            Some("Resource.meta.lastUpdated"),
        );
        check("DomainResource-text", "Patient", None);
        check(
            "PlanDefinition-depends-on",
            "PlanDefinition",
            Some(
                "PlanDefinition.relatedArtifact.where(type='depends-on').resource | PlanDefinition.library",
            ),
        );
    }

    #[test]
    fn split_union_respects_nesting_and_quotes() {
        let cases: [(&str, &[&str]); 6] = [
            ("A.b", &["A.b"]),
            ("A.b | C.d", &["A.b", "C.d"]),
            ("(A.b as X) | (A.c | A.d)", &["(A.b as X)", "(A.c | A.d)"]),
            ("A.where(x = 'a|b') | B", &["A.where(x = 'a|b')", "B"]),
            (
                "A.where(x = 'it\\'s|') | B",
                &["A.where(x = 'it\\'s|')", "B"],
            ),
            ("A.`odd|name` | B[0]", &["A.`odd|name`", "B[0]"]),
        ];
        for (input, expected) in cases {
            assert_eq!(split_union(input), expected, "{input}");
        }
    }

    #[test]
    fn every_expression_has_a_part_for_each_base() {
        for def in all() {
            if def.expression.is_none() {
                continue;
            }
            for base in &def.base {
                let target = if base == "Resource" || base == "DomainResource" {
                    "Patient"
                } else {
                    base
                };
                assert!(
                    def.expression_for(target).is_some(),
                    "{} for {base}",
                    def.url
                );
            }
        }
    }

    #[test]
    fn reads_a_posted_search_parameter() {
        let resource = serde_json::json!({
            "resourceType": "SearchParameter",
            "url": "http://example.org/SearchParameter/patient-eye-colour",
            "code": "eye-colour",
            "base": ["Patient"],
            "type": "token",
            "expression": "Patient.extension('http://example.org/eye-colour').value",
        });
        let def = SearchParamDef::from_resource(&resource).unwrap();
        assert_eq!(def.code, "eye-colour");
        assert_eq!(def.kind, SearchParamType::Token);
        assert_eq!(
            def.expression_for("Patient").as_deref(),
            Some("Patient.extension('http://example.org/eye-colour').value")
        );
        assert!(def.applies_to("Patient") && !def.applies_to("Observation"));

        let mut bad = resource.clone();
        bad["type"] = "fuzzy".into();
        assert!(
            SearchParamDef::from_resource(&bad)
                .unwrap_err()
                .contains("fuzzy")
        );
        let mut bad = resource;
        bad["base"] = serde_json::json!([]);
        assert!(SearchParamDef::from_resource(&bad).is_err());
        assert!(
            SearchParamDef::from_resource(&serde_json::json!({"resourceType": "Patient"})).is_err()
        );
    }
}
