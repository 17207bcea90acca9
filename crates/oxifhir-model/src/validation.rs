//! Validation of resource JSON against the R4 JSON schema (`data/fhir.schema.json`).
//!
//! Each resource is checked against its own type's definition (`#/definitions/Patient`, ...),
//! never against the schema's root `oneOf`, whose failures only say "not valid under any of
//! the schemas". A validator is compiled once per resource type, on first use, from one parsed
//! copy of the schema shared through a `jsonschema` registry, and kept for the life of the
//! process.
//!
//! Resources nested in other resources (`contained`, `Bundle.entry.resource`,
//! `Bundle.entry.response.outcome`, `Parameters.parameter.resource`: wherever the schema says
//! `ResourceList`) are validated here, each against its own type, not by the schema's
//! `ResourceList` (a `oneOf` of every type). Compiled through that `oneOf`, every type's
//! validator held a copy of all 146 types (about 15 MB and 150 ms each, 2 GB for all of them)
//! and an invalid nested resource cost the errors of 146 branches; with `ResourceList` reduced
//! to "an object with a known `resourceType`" a type's validator is under 1 MB and compiles in
//! a few milliseconds, and nested issues are reported at their own paths.
//!
//! Beyond the schema, every value is checked for what storage cannot hold faithfully: numbers
//! outside the range of a 64-bit float (`1e400` could be neither indexed nor compared) and
//! strings or names containing U+0000 (PostgreSQL text cannot hold it).
//!
//! What the R4 JSON schema cannot check is not checked here: invariants (FHIRPath
//! constraints), calendar validity beyond the pattern (`2023-02-30` passes), required
//! primitive elements (the schema lets `_status` stand for `status`, so it requires neither),
//! terminology bindings, profiles, and references.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, PoisonError, RwLock};

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::paths::LocationSegment;
use jsonschema::{Draft, PatternCache, Registry, ValidationError, Validator};
use serde_json::{Map, Value};

use crate::resource_type::{self, ASYNC_JOB};

/// At most this many issues are reported for one resource (the last one says how many more
/// there were when there were more).
pub const MAX_ISSUES: usize = 20;

/// Issues gathered before sorting and cutting to [`MAX_ISSUES`]; past it, no more nested
/// resources are checked.
const MAX_RAW_ISSUES: usize = 200;

/// Nested resources deeper than this are not checked (parsed JSON is at most 128 deep).
const MAX_NESTING: usize = 32;

/// Longest rendering of an instance value or element name in a message, in characters.
const MAX_VALUE_CHARS: usize = 60;

/// The URI the schema document is registered under (its own `id`).
const SCHEMA_URI: &str = "http://hl7.org/fhir/json-schema/4.0";

/// The schema definition that stands for "any resource".
const RESOURCE_LIST: &str = "ResourceList";

/// One problem found in a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationIssue {
    /// Where: a FHIRPath-like location such as `Patient.name[0].given` or
    /// `Bundle.entry[2].resource.status`, or the resource type alone for the resource as a
    /// whole.
    pub path: String,
    /// What is wrong, in one short English sentence (long values are cut short).
    pub message: String,
}

impl ValidationIssue {
    fn new(path: impl Into<String>, message: impl Into<String>) -> ValidationIssue {
        ValidationIssue {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// The parsed schema, with `ResourceList` reduced to a shallow check, and where nested
/// resources can be found.
struct Schema {
    document: Value,
    nesting: Nesting,
}

static SCHEMA: LazyLock<Schema> = LazyLock::new(|| {
    let mut document: Value =
        resource_type::parse_embedded("fhir.schema.json", include_str!("../data/fhir.schema.json"));
    let nesting = Nesting::of(&document);
    if let Some(definitions) = document
        .get_mut("definitions")
        .and_then(Value::as_object_mut)
    {
        // The R4 schema describes resources and complex types by their `properties` alone,
        // which any non-object satisfies (`"name": [1]`, `"extension": [[[]]]` would pass);
        // a definition with properties describes an object.
        for definition in definitions.values_mut() {
            if let Some(definition) = definition.as_object_mut()
                && definition.contains_key("properties")
                && !definition.contains_key("type")
            {
                definition.insert("type".into(), Value::String("object".into()));
            }
        }
        let types: Vec<Value> = resource_type::all()
            .iter()
            .map(|t| Value::String((*t).to_string()))
            .collect();
        definitions.insert(
            RESOURCE_LIST.to_string(),
            serde_json::json!({
                "type": "object",
                "required": ["resourceType"],
                "properties": {"resourceType": {"enum": types}},
            }),
        );
    }
    Schema { document, nesting }
});

static REGISTRY: LazyLock<Result<Registry<'static>, String>> = LazyLock::new(|| {
    Registry::new()
        .draft(Draft::Draft6)
        .add(SCHEMA_URI, &SCHEMA.document)
        .and_then(|builder| builder.prepare())
        .map_err(|e| e.to_string())
});

/// Compiled regular expressions shared by every type's validator.
static PATTERNS: LazyLock<PatternCache> = LazyLock::new(PatternCache::new);

static VALIDATORS: LazyLock<RwLock<HashMap<String, Arc<Validator>>>> =
    LazyLock::new(|| RwLock::new(HashMap::new()));

/// Checks `resource`, and every resource nested in it, against the R4 JSON schema definition
/// of its `resourceType`.
///
/// `Err` holds at most [`MAX_ISSUES`] issues, in the order of the resource's own elements
/// (then by message), the same for the same input. A resource that is not an object, has no
/// string `resourceType`, or names a type that is not R4 gets one issue. `AsyncJob` resources
/// are refused: the server manages them and never validates them through here.
pub fn validate(resource: &Value) -> Result<(), Vec<ValidationIssue>> {
    let Some(object) = resource.as_object() else {
        return Err(vec![ValidationIssue::new(
            "Resource",
            format!(
                "A resource must be a JSON object, not {}",
                describe(resource)
            ),
        )]);
    };
    let resource_type = match object.get("resourceType") {
        Some(Value::String(name)) => name.as_str(),
        Some(other) => {
            return Err(vec![ValidationIssue::new(
                "resourceType",
                format!("resourceType must be a string, not {}", describe(other)),
            )]);
        }
        None => {
            return Err(vec![ValidationIssue::new(
                "resourceType",
                "Missing resourceType",
            )]);
        }
    };
    if resource_type == ASYNC_JOB {
        return Err(vec![ValidationIssue::new(
            ASYNC_JOB,
            "AsyncJob resources are managed by the server",
        )]);
    }
    if !resource_type::is_r4(resource_type) {
        return Err(vec![ValidationIssue::new(
            "resourceType",
            format!(
                "Unknown resource type {}",
                short(&Value::String(resource_type.into()))
            ),
        )]);
    }
    let mut issues = Vec::new();
    check(resource, resource_type, resource_type, 0, &mut issues);
    check_values(resource, resource_type, &mut issues);
    if issues.is_empty() {
        Ok(())
    } else {
        Err(finish(resource, issues))
    }
}

/// The JSON property names of `resource_type` in the R4 schema, without the `_name`
/// properties of primitive extensions (choice elements appear once per type: `valueQuantity`,
/// `valueString`, …). Empty for a type that is not R4.
pub fn element_names(resource_type: &str) -> Vec<String> {
    definition(resource_type)
        .and_then(|d| d.get("properties"))
        .and_then(Value::as_object)
        .map(|properties| {
            properties
                .keys()
                .filter(|k| !k.starts_with('_'))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// The properties the R4 schema requires of `resource_type` (complex elements with a minimum
/// of one, and `resourceType`); required primitives are not listed by the schema.
pub fn required_elements(resource_type: &str) -> Vec<String> {
    definition(resource_type)
        .and_then(|d| d.get("required"))
        .and_then(Value::as_array)
        .map(|required| {
            required
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn definition(resource_type: &str) -> Option<&'static Value> {
    if !resource_type::is_r4(resource_type) {
        return None;
    }
    SCHEMA.document.get("definitions")?.get(resource_type)
}

/// Compiles the validators of the given types now, so that the first requests do not pay
/// for it (a few milliseconds each; a server may do this at start for its common types).
/// Returns the first error: a type that is not R4, or a schema that does not compile.
pub fn precompile<'a>(resource_types: impl IntoIterator<Item = &'a str>) -> Result<(), String> {
    for resource_type in resource_types {
        validator_for(resource_type)?;
    }
    Ok(())
}

/// Validates one resource (an object) of R4 type `resource_type` found at `path`, then the
/// resources nested in it, adding issues to `out`.
fn check(
    resource: &Value,
    resource_type: &str,
    path: &str,
    depth: usize,
    out: &mut Vec<ValidationIssue>,
) {
    let validator = match validator_for(resource_type) {
        Ok(validator) => validator,
        Err(e) => {
            out.push(ValidationIssue::new(
                path,
                format!("The R4 schema of {resource_type} could not be compiled: {e}"),
            ));
            return;
        }
    };
    if !validator.is_valid(resource) {
        for error in validator.iter_errors(resource) {
            if out.len() >= MAX_RAW_ISSUES {
                return;
            }
            issues_of(path, &error, out);
        }
    }
    walk_nested(resource, resource_type, path, depth, out);
}

/// Reports numbers beyond the range of an `f64` and strings (and names) containing U+0000,
/// anywhere in `resource`, at most [`MAX_RAW_ISSUES`] of them. The walk keeps its own stack,
/// so no nesting depth makes it recurse.
fn check_values(resource: &Value, resource_type: &str, out: &mut Vec<ValidationIssue>) {
    enum Step<'a> {
        Property(&'a str),
        Index(usize),
    }
    let path_of = |steps: &[Step<'_>]| {
        let mut path = resource_type.to_string();
        for step in steps {
            match step {
                Step::Property(name) => {
                    path.push('.');
                    path.push_str(&short_name(name));
                }
                Step::Index(i) => path.push_str(&format!("[{i}]")),
            }
        }
        path
    };
    // Each entry: the value, and how many steps of `steps` lead to it.
    let mut stack: Vec<(&Value, usize, Option<Step<'_>>)> = vec![(resource, 0, None)];
    let mut steps: Vec<Step<'_>> = Vec::new();
    while let Some((value, depth, step)) = stack.pop() {
        if out.len() >= MAX_RAW_ISSUES {
            return;
        }
        steps.truncate(depth.saturating_sub(1));
        if let Some(step) = step {
            steps.push(step);
        }
        match value {
            Value::Number(n) if n.as_f64().is_none_or(|f| !f.is_finite()) => {
                out.push(ValidationIssue::new(
                    path_of(&steps),
                    format!(
                        "The number {} is beyond the range this server can store",
                        short(value)
                    ),
                ))
            }
            Value::String(text) if text.contains('\0') => out.push(ValidationIssue::new(
                path_of(&steps),
                "A string may not contain the NUL character (U+0000)",
            )),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate().rev() {
                    stack.push((item, depth + 1, Some(Step::Index(i))));
                }
            }
            Value::Object(map) => {
                for (name, item) in map.iter().rev() {
                    if name.contains('\0') {
                        out.push(ValidationIssue::new(
                            path_of(&steps),
                            "An element name may not contain the NUL character (U+0000)",
                        ));
                        continue;
                    }
                    stack.push((item, depth + 1, Some(Step::Property(name))));
                }
            }
            _ => {}
        }
    }
}

/// Looks for nested resources in the elements of `value`, an instance of schema definition
/// `definition`, and checks each one.
fn walk_nested(
    value: &Value,
    definition: &str,
    path: &str,
    depth: usize,
    out: &mut Vec<ValidationIssue>,
) {
    let Some(edges) = SCHEMA.nesting.edges.get(definition) else {
        return;
    };
    for (element, target) in edges {
        let (items, in_array): (&[Value], bool) = match value.get(element) {
            None => continue,
            Some(Value::Array(items)) => (items, true),
            Some(item) => (std::slice::from_ref(item), false),
        };
        for (i, item) in items.iter().enumerate() {
            if out.len() >= MAX_RAW_ISSUES {
                return;
            }
            // Anything but an object was reported by the schema check of the enclosing resource,
            // and so were nested resources of no known type.
            if !item.is_object() {
                continue;
            }
            let item_path = || {
                if in_array {
                    format!("{path}.{element}[{i}]")
                } else {
                    format!("{path}.{element}")
                }
            };
            match target {
                Target::Resource => {
                    let Some(nested_type) = item.get("resourceType").and_then(Value::as_str) else {
                        continue;
                    };
                    if !resource_type::is_r4(nested_type) {
                        continue;
                    }
                    if depth >= MAX_NESTING {
                        out.push(ValidationIssue::new(
                            item_path(),
                            "Resources nested this deeply are not accepted",
                        ));
                        return;
                    }
                    check(item, nested_type, &item_path(), depth + 1, out);
                }
                Target::Definition(name) => walk_nested(item, name, &item_path(), depth, out),
            }
        }
    }
}

/// Where nested resources can be: for each schema definition whose instances may hold one,
/// the elements that lead to it, in the schema's order.
struct Nesting {
    edges: HashMap<String, Vec<(String, Target)>>,
}

enum Target {
    /// The element holds resources (`ResourceList`).
    Resource,
    /// The element holds instances of this definition, which may hold resources.
    Definition(String),
}

impl Nesting {
    /// Reads the schema: the elements that reference `ResourceList`, and those that reference
    /// definitions from which such an element can be reached.
    fn of(document: &Value) -> Nesting {
        let empty = Map::new();
        let definitions = document
            .get("definitions")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        // Each definition's elements with the definition they reference (directly or as
        // array items).
        let references: Vec<(&str, Vec<(&str, &str)>)> = definitions
            .iter()
            .map(|(name, definition)| {
                let elements = definition
                    .get("properties")
                    .and_then(Value::as_object)
                    .map(|properties| {
                        properties
                            .iter()
                            .filter_map(|(element, schema)| {
                                let target = schema
                                    .get("$ref")
                                    .or_else(|| schema.get("items").and_then(|i| i.get("$ref")))
                                    .and_then(Value::as_str)?
                                    .strip_prefix("#/definitions/")?;
                                Some((element.as_str(), target))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                (name.as_str(), elements)
            })
            .collect();
        // Definitions that can lead to a resource, found by growing the set to a fixed point.
        let mut leads: std::collections::HashSet<&str> = std::collections::HashSet::new();
        loop {
            let before = leads.len();
            for (name, elements) in &references {
                if elements
                    .iter()
                    .any(|(_, target)| *target == RESOURCE_LIST || leads.contains(target))
                {
                    leads.insert(name);
                }
            }
            if leads.len() == before {
                break;
            }
        }
        let mut edges = HashMap::new();
        for (name, elements) in &references {
            if !leads.contains(name) || *name == RESOURCE_LIST {
                continue;
            }
            let targets: Vec<(String, Target)> = elements
                .iter()
                .filter_map(|(element, target)| {
                    if *target == RESOURCE_LIST {
                        Some((element.to_string(), Target::Resource))
                    } else if leads.contains(target) && !resource_type::is_r4(target) {
                        Some((element.to_string(), Target::Definition(target.to_string())))
                    } else {
                        None
                    }
                })
                .collect();
            edges.insert(name.to_string(), targets);
        }
        Nesting { edges }
    }
}

/// The compiled validator of an R4 type, compiling and caching it on first use.
fn validator_for(resource_type: &str) -> Result<Arc<Validator>, String> {
    if let Some(validator) = VALIDATORS
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(resource_type)
    {
        return Ok(Arc::clone(validator));
    }
    if !resource_type::is_r4(resource_type) {
        return Err(format!("{resource_type} is not an R4 resource type"));
    }
    // Compiled without holding the lock; if two threads race, the first one stored wins.
    let compiled = Arc::new(compile(resource_type)?);
    let mut validators = VALIDATORS.write().unwrap_or_else(PoisonError::into_inner);
    Ok(Arc::clone(
        validators
            .entry(resource_type.to_string())
            .or_insert(compiled),
    ))
}

fn compile(resource_type: &str) -> Result<Validator, String> {
    let registry = REGISTRY
        .as_ref()
        .map_err(|e| format!("schema registry: {e}"))?;
    let schema = serde_json::json!({
        "$schema": "http://json-schema.org/draft-06/schema#",
        "$ref": format!("{SCHEMA_URI}#/definitions/{resource_type}"),
    });
    jsonschema::options()
        .with_draft(Draft::Draft6)
        .with_registry(registry)
        .with_pattern_cache(PATTERNS.clone())
        .should_validate_formats(false)
        .build(&schema)
        .map_err(|e| e.to_string())
}

/// Turns one validator error into issues (one per unknown element), their paths under
/// `prefix`, the path of the resource being validated.
fn issues_of(prefix: &str, error: &ValidationError<'_>, out: &mut Vec<ValidationIssue>) {
    let path = fhir_path(prefix, error.instance_path().segments());
    match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            for name in unexpected {
                let name = short_name(name);
                out.push(ValidationIssue::new(
                    format!("{path}.{name}"),
                    format!("Unknown element '{name}'"),
                ));
            }
        }
        kind => out.push(ValidationIssue::new(path, message(error, kind))),
    }
}

/// Sorts issues into the order of the resource's elements (then by message), removes
/// duplicates and cuts the list to [`MAX_ISSUES`].
fn finish(resource: &Value, issues: Vec<ValidationIssue>) -> Vec<ValidationIssue> {
    let mut keyed: Vec<(Vec<usize>, ValidationIssue)> = issues
        .into_iter()
        .map(|issue| (document_position(resource, &issue.path), issue))
        .collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.message.cmp(&b.1.message)));
    keyed.dedup_by(|a, b| a.1 == b.1);
    let total = keyed.len();
    let mut out: Vec<ValidationIssue> = keyed.into_iter().map(|(_, issue)| issue).collect();
    if total > MAX_ISSUES {
        out.truncate(MAX_ISSUES - 1);
        let root = resource
            .get("resourceType")
            .and_then(Value::as_str)
            .unwrap_or("Resource");
        out.push(ValidationIssue::new(
            root,
            format!("{} more issues not shown", total - (MAX_ISSUES - 1)),
        ));
    }
    out
}

/// The position of the element at `path` (as [`fhir_path`] writes it) in the resource: for
/// each step, the index of the key among its object's keys, or the array index. A step that
/// is not in the resource (a missing element) sorts after its siblings.
fn document_position(resource: &Value, path: &str) -> Vec<usize> {
    let mut position = Vec::new();
    let mut current = Some(resource);
    // Skip the resource type, then walk the `.name` and `[index]` steps.
    let rest = path.find(['.', '[']).map_or("", |i| &path[i..]);
    for step in steps(rest) {
        let (index, next) = match (step, current) {
            (Step::Key(key), Some(Value::Object(map))) => match map.keys().position(|k| k == key) {
                Some(i) => (i, map.get(key)),
                None => (usize::MAX, None),
            },
            (Step::Index(i), Some(Value::Array(items))) => (i, items.get(i)),
            (Step::Index(i), _) => (i, None),
            (Step::Key(_), _) => (usize::MAX, None),
        };
        position.push(index);
        current = next;
    }
    position
}

enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// The steps of a path suffix such as `.name[0].given`.
fn steps(mut rest: &str) -> Vec<Step<'_>> {
    let mut out = Vec::new();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']').unwrap_or(after.len());
            out.push(Step::Index(after[..end].parse().unwrap_or(usize::MAX)));
            rest = after.get(end + 1..).unwrap_or("");
        } else {
            let after = rest.strip_prefix('.').unwrap_or(rest);
            let end = after.find(['.', '[']).unwrap_or(after.len());
            out.push(Step::Key(&after[..end]));
            rest = &after[end..];
        }
    }
    out
}

/// `Patient.name[0].given` for the instance location `/name/0/given` under `Patient`.
fn fhir_path<'a>(prefix: &str, segments: impl Iterator<Item = LocationSegment<'a>>) -> String {
    let mut path = String::from(prefix);
    for segment in segments {
        match segment {
            LocationSegment::Property(name) => {
                path.push('.');
                path.push_str(&name);
            }
            LocationSegment::Index(i) => {
                path.push('[');
                path.push_str(&i.to_string());
                path.push(']');
            }
        }
    }
    path
}

/// The message of an error other than unknown elements.
fn message(error: &ValidationError<'_>, kind: &ValidationErrorKind) -> String {
    let instance: &Value = error.instance();
    match kind {
        ValidationErrorKind::Required { property } => match property.as_str() {
            Some("resourceType") => "Missing resourceType".to_string(),
            Some(name) => format!("Missing required element '{name}'"),
            None => format!("Missing required element {}", short(property)),
        },
        ValidationErrorKind::Type { kind } => {
            let expected = match kind {
                TypeKind::Single(t) => t.as_str().to_string(),
                TypeKind::Multiple(set) => set
                    .iter()
                    .map(|t| t.as_str())
                    .collect::<Vec<_>>()
                    .join(" or "),
            };
            let expected = match expected.as_str() {
                "object" => "an object".to_string(),
                "array" => "an array".to_string(),
                "integer" => "an integer".to_string(),
                other => format!("a {other}"),
            };
            format!("Expected {expected}, found {}", describe(instance))
        }
        ValidationErrorKind::Pattern { .. } => {
            if instance.as_str() == Some("") {
                return "Empty string: a FHIR value must have content (leave the element out \
                        instead)"
                    .to_string();
            }
            match primitive_of(error) {
                Some(primitive) => format!("{} is not a valid FHIR {primitive}", short(instance)),
                None => format!("{} does not have the required format", short(instance)),
            }
        }
        ValidationErrorKind::Enum { .. }
            if error.instance_path().as_str().ends_with("/resourceType") =>
        {
            format!("Unknown resource type {}", short(instance))
        }
        ValidationErrorKind::Enum { options } => {
            let options = options.as_array().map(Vec::as_slice).unwrap_or_default();
            let mut list: Vec<String> = options.iter().take(12).map(short).collect();
            if options.len() > 12 {
                list.push(format!("and {} more", options.len() - 12));
            }
            format!(
                "{} is not one of the allowed codes: {}",
                short(instance),
                list.join(", ")
            )
        }
        ValidationErrorKind::Constant { expected_value } => {
            format!(
                "Expected {}, found {}",
                short(expected_value),
                short(instance)
            )
        }
        ValidationErrorKind::Minimum { limit }
        | ValidationErrorKind::ExclusiveMinimum { limit } => {
            format!("{} is too small (the minimum is {limit})", short(instance))
        }
        ValidationErrorKind::Maximum { limit }
        | ValidationErrorKind::ExclusiveMaximum { limit } => {
            format!("{} is too large (the maximum is {limit})", short(instance))
        }
        other => format!(
            "{} is not valid here (rule '{}')",
            short(instance),
            other.keyword()
        ),
    }
}

/// The FHIR primitive type whose `pattern` an error comes from (`date` for
/// `/definitions/date/pattern`).
fn primitive_of(error: &ValidationError<'_>) -> Option<String> {
    let mut parts = error.schema_path().as_str().rsplit('/');
    let keyword = parts.next()?;
    let name = parts.next()?;
    (keyword == "pattern" && parts.next() == Some("definitions")).then(|| name.to_string())
}

/// `string "yes"`, `number 12`, `an object`, ... for messages.
fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(_) => format!("number {}", short(value)),
        Value::String(_) => format!("string {}", short(value)),
        Value::Array(_) => "an array".to_string(),
        Value::Object(_) => "an object".to_string(),
    }
}

/// An element name as given, or cut to [`MAX_VALUE_CHARS`] characters if longer.
fn short_name(name: &str) -> String {
    cut(name.to_string())
}

/// The JSON of `value` (`"text"`, `12`, `true`; `an object`, `an array`), cut to
/// [`MAX_VALUE_CHARS`] characters.
fn short(value: &Value) -> String {
    match value {
        Value::Array(_) => "an array".to_string(),
        Value::Object(_) => "an object".to_string(),
        other => cut(other.to_string()),
    }
}

fn cut(text: String) -> String {
    if text.chars().count() <= MAX_VALUE_CHARS {
        return text;
    }
    let mut cut: String = text.chars().take(MAX_VALUE_CHARS - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests;
