//! The part of the FHIR R4 type model that FHIRPath navigation needs, read once from the
//! embedded R4 JSON schema (`data/fhir.schema.json`): every type and backbone element (named
//! as the schema names them, `Patient_Contact`), its elements with their types, and which
//! elements are choices (`value[x]`, stored as `valueQuantity`, `valueString`, ...).
//!
//! The schema does not mark choice elements, so they are recognised by their shape: a
//! property `valueQuantity` whose type is `Quantity` makes `value` a choice element of its
//! type when the type has no property called `value` itself. That keeps real elements that
//! merely look like a choice (`Coverage.subscriber` next to `Coverage.subscriberId`,
//! `DiagnosticReport.conclusion` next to `conclusionCode`) apart.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::LazyLock;

use serde::Deserialize;
use serde_json::Value;

use crate::resource_type::{self, ASYNC_JOB};

/// Index of a type in the [`TypeTable`].
pub(crate) type TypeId = u16;

/// How an element of a type is stored in JSON.
#[derive(Debug)]
pub(crate) enum Element {
    /// An ordinary element: the JSON key is its name.
    Single(TypeId),
    /// A choice element: one of these JSON keys (`valueQuantity`, ...), each with its type.
    Choice(Vec<(&'static str, TypeId)>),
}

/// FNV-1a: the table's keys are short element and type names looked up on every path step,
/// where SipHash costs more than the rest of the step. The keys come from the schema, not
/// from input, so there is no flooding to defend against.
pub(crate) struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        for b in bytes {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<Fnv>>;

/// Every type of the schema with its elements.
pub(crate) struct TypeTable {
    names: Vec<&'static str>,
    by_name: FastMap<&'static str, TypeId>,
    elements: Vec<FastMap<&'static str, Element>>,
    /// Whether each type is a resource type.
    resources: Vec<bool>,
    /// The schema's stand-in for "any resource" (`contained`, `Bundle.entry.resource`): a
    /// node of this type takes the type its `resourceType` names.
    resource_list: TypeId,
}

/// The table, built on first use.
pub(crate) static TYPES: LazyLock<TypeTable> = LazyLock::new(|| {
    let schema: Schema<'static> = resource_type::parse_embedded(
        "fhir.schema.json",
        include_str!("../../data/fhir.schema.json"),
    );
    TypeTable::from_schema(schema)
});

/// What the table needs of the schema; names borrow from the embedded text.
#[derive(Deserialize)]
struct Schema<'a> {
    #[serde(borrow)]
    definitions: BTreeMap<&'a str, Definition<'a>>,
}

#[derive(Deserialize)]
struct Definition<'a> {
    #[serde(default, borrow)]
    properties: BTreeMap<&'a str, Property<'a>>,
}

#[derive(Deserialize)]
struct Property<'a> {
    #[serde(rename = "$ref")]
    reference: Option<&'a str>,
    #[serde(borrow)]
    items: Option<Box<Property<'a>>>,
    #[serde(rename = "enum")]
    enumeration: Option<serde::de::IgnoredAny>,
}

impl Property<'static> {
    /// The name of the property's type: the definition it refers to (directly or for its
    /// items), `code` for an enumeration; `None` for `resourceType`'s constant.
    fn type_name(&self) -> Option<&'static str> {
        if let Some(reference) = self.reference {
            return reference.rsplit('/').next();
        }
        if self.enumeration.is_some() {
            return Some("code");
        }
        self.items.as_ref().and_then(|items| items.type_name())
    }
}

impl TypeTable {
    fn from_schema(schema: Schema<'static>) -> TypeTable {
        let mut names: Vec<&'static str> = schema.definitions.keys().copied().collect();
        if !names.contains(&ASYNC_JOB) {
            names.push(ASYNC_JOB);
        }
        let by_name: FastMap<&'static str, TypeId> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (*n, i as TypeId))
            .collect();
        let elements = names
            .iter()
            .map(|name| match schema.definitions.get(name) {
                Some(def) => elements_of(def, &by_name),
                None => FastMap::default(),
            })
            .collect();
        let resources = names.iter().map(|n| resource_type::is_known(n)).collect();
        let resource_list = by_name.get("ResourceList").copied().unwrap_or(TypeId::MAX);
        TypeTable {
            names,
            by_name,
            elements,
            resources,
            resource_list,
        }
    }

    /// The type called `name` (`Patient`, `HumanName`, `dateTime`, `Patient_Contact`).
    pub(crate) fn id(&self, name: &str) -> Option<TypeId> {
        self.by_name.get(name).copied()
    }

    /// The name of type `id`.
    pub(crate) fn name(&self, id: TypeId) -> &'static str {
        self.names.get(usize::from(id)).copied().unwrap_or("")
    }

    /// The element `name` of type `id`, if the type has one.
    pub(crate) fn element(&self, id: TypeId, name: &str) -> Option<&Element> {
        self.elements.get(usize::from(id))?.get(name)
    }

    /// The type a node of static type `ty` really has: for "any resource", the type its
    /// `resourceType` names (`None` if that is not a known type); otherwise `ty`.
    pub(crate) fn concrete(&self, ty: Option<TypeId>, value: &Value) -> Option<TypeId> {
        match ty {
            Some(t) if t == self.resource_list => self.of_resource(value),
            other => other,
        }
    }

    /// True if a node of type `id` is of type `wanted` ([`type_matches`]).
    pub(crate) fn is_a(&self, id: TypeId, wanted: &str) -> bool {
        if self
            .resources
            .get(usize::from(id))
            .copied()
            .unwrap_or(false)
        {
            let name = self.name(id);
            return name == wanted
                || wanted == "Resource"
                || (wanted == "DomainResource"
                    && !matches!(name, "Bundle" | "Binary" | "Parameters"));
        }
        type_matches(self.name(id), wanted)
    }

    /// The type of a resource object, from its `resourceType`.
    pub(crate) fn of_resource(&self, value: &Value) -> Option<TypeId> {
        value
            .get("resourceType")
            .and_then(Value::as_str)
            .and_then(|name| self.id(name))
    }
}

/// The elements of one schema definition, choices included.
fn elements_of(
    def: &Definition<'static>,
    by_name: &FastMap<&'static str, TypeId>,
) -> FastMap<&'static str, Element> {
    let mut out: FastMap<&'static str, Element> = FastMap::default();
    for (&key, property) in &def.properties {
        if key.starts_with('_') {
            continue;
        }
        let Some(ty) = property.type_name().and_then(|n| by_name.get(n).copied()) else {
            continue;
        };
        out.insert(key, Element::Single(ty));
    }
    for (&key, property) in &def.properties {
        let Some(type_name) = property.type_name() else {
            continue;
        };
        let Some(&ty) = by_name.get(type_name) else {
            continue;
        };
        let Some(base) = choice_base(key, type_name) else {
            continue;
        };
        if def.properties.contains_key(base) {
            continue;
        }
        match out
            .entry(base)
            .or_insert_with(|| Element::Choice(Vec::new()))
        {
            Element::Choice(options) => options.push((key, ty)),
            Element::Single(_) => {}
        }
    }
    out
}

/// `value` for (`valueQuantity`, `Quantity`) and (`valueDateTime`, `dateTime`): the key
/// without its type suffix, when the key ends with the type's name capitalised.
fn choice_base<'k>(key: &'k str, type_name: &str) -> Option<&'k str> {
    let mut chars = type_name.chars();
    let first = chars.next()?;
    let rest = chars.as_str();
    let base = key.strip_suffix(rest)?;
    let base = base.strip_suffix(first.to_ascii_uppercase())?;
    (!base.is_empty() && !base.starts_with('_')).then_some(base)
}

/// True if a node of type `actual` is of type `wanted` (unqualified: `Quantity`, not
/// `FHIR.Quantity`) in the sense of FHIRPath `is`: the same name (the first letter's case
/// aside, so `DateTime` matches `dateTime`), or a type it derives from (`Age` is a
/// `Quantity`, `code` a `string`, every resource a `Resource`).
pub(crate) fn type_matches(actual: &str, wanted: &str) -> bool {
    if same_name(actual, wanted) {
        return true;
    }
    let base = match actual {
        "Age" | "Count" | "Distance" | "Duration" | "MoneyQuantity" | "SimpleQuantity" => {
            "Quantity"
        }
        "code" | "id" | "markdown" => "string",
        "url" | "canonical" | "oid" | "uuid" => "uri",
        "positiveInt" | "unsignedInt" => "integer",
        _ => {
            return match wanted {
                "Resource" => resource_type::is_known(actual),
                "DomainResource" => {
                    resource_type::is_known(actual)
                        && !matches!(actual, "Bundle" | "Binary" | "Parameters")
                }
                _ => false,
            };
        }
    };
    type_matches(base, wanted)
}

fn same_name(a: &str, b: &str) -> bool {
    let (mut a_chars, mut b_chars) = (a.chars(), b.chars());
    match (a_chars.next(), b_chars.next()) {
        (Some(x), Some(y)) => x.eq_ignore_ascii_case(&y) && a_chars.as_str() == b_chars.as_str(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn element(ty: &str, name: &str) -> Option<String> {
        let t = TYPES.id(ty)?;
        Some(match TYPES.element(t, name)? {
            Element::Single(id) => TYPES.name(*id).to_string(),
            Element::Choice(options) => {
                let mut keys: Vec<&str> = options.iter().map(|(k, _)| *k).collect();
                keys.sort();
                keys.join(",")
            }
        })
    }

    #[test]
    fn elements_and_choices() {
        assert_eq!(element("Patient", "name").as_deref(), Some("HumanName"));
        assert_eq!(element("Patient", "gender").as_deref(), Some("code"));
        assert_eq!(
            element("Patient", "contact").as_deref(),
            Some("Patient_Contact")
        );
        assert_eq!(
            element("Patient", "contained").as_deref(),
            Some("ResourceList")
        );
        assert_eq!(
            element("Patient", "deceased").as_deref(),
            Some("deceasedBoolean,deceasedDateTime")
        );
        assert_eq!(
            element("Observation", "effective").as_deref(),
            Some("effectiveDateTime,effectiveInstant,effectivePeriod,effectiveTiming")
        );
        // Real elements that look like choices stay what they are.
        assert_eq!(
            element("Coverage", "subscriber").as_deref(),
            Some("Reference")
        );
        assert_eq!(
            element("Coverage", "subscriberId").as_deref(),
            Some("string")
        );
        assert_eq!(
            element("NutritionOrder", "instantiates").as_deref(),
            Some("uri")
        );
        assert!(element("Patient", "nonsense").is_none());
        assert!(TYPES.id(ASYNC_JOB).is_some());
    }

    #[test]
    fn table_types_match_like_names() {
        let id = |n: &str| TYPES.id(n).unwrap();
        assert!(TYPES.is_a(id("Patient"), "Patient"));
        assert!(TYPES.is_a(id("Patient"), "Resource"));
        assert!(TYPES.is_a(id("Patient"), "DomainResource"));
        assert!(!TYPES.is_a(id("Bundle"), "DomainResource"));
        assert!(!TYPES.is_a(id("Patient"), "Observation"));
        assert!(TYPES.is_a(id("Age"), "Quantity"));
        assert!(TYPES.is_a(id("dateTime"), "DateTime"));
    }

    #[test]
    fn type_names_match_with_derivation() {
        assert!(type_matches("dateTime", "dateTime"));
        assert!(type_matches("dateTime", "DateTime"));
        assert!(type_matches("Age", "Quantity"));
        assert!(type_matches("code", "string"));
        assert!(type_matches("canonical", "uri"));
        assert!(type_matches("Patient", "Resource"));
        assert!(type_matches("Patient", "DomainResource"));
        assert!(!type_matches("Bundle", "DomainResource"));
        assert!(!type_matches("Quantity", "Age"));
        assert!(!type_matches("Period", "dateTime"));
    }
}
