//! Search index entries and their extraction from a resource: each R4 search parameter that
//! applies to the resource's type is evaluated ([`crate::fhirpath`]) and its values turned
//! into entries by parameter type, as FHIR R4 search defines them (a `HumanName` gives
//! strings for each of its parts, a `CodeableConcept` a token per coding, a `Period` one date
//! range, `1.50` the number range `[1.495, 1.505]`, ...). See `convert.rs` for the rules.
//!
//! The expressions are parsed once per resource type, on the first resource of that type.
//! Composites are extracted as `composite.rs` describes; special parameters are not.

pub mod composite;
mod convert;
#[cfg(test)]
mod r4_tests;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{LazyLock, OnceLock};

use serde_json::Value;

use crate::fhirpath::{Expression, ParseError, Subject};
use crate::resource_type::{self, ASYNC_JOB};
use crate::search_param::{self, SearchParamDef, SearchParamType};

pub use convert::normalize;

/// The search index values extracted from one resource version, by parameter type.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IndexEntries {
    pub strings: Vec<StringEntry>,
    pub tokens: Vec<TokenEntry>,
    pub references: Vec<ReferenceEntry>,
    pub dates: Vec<DateEntry>,
    pub numbers: Vec<NumberEntry>,
    pub quantities: Vec<QuantityEntry>,
    pub uris: Vec<UriEntry>,
}

impl IndexEntries {
    /// Total number of entries of every type.
    pub fn len(&self) -> usize {
        self.strings.len()
            + self.tokens.len()
            + self.references.len()
            + self.dates.len()
            + self.numbers.len()
            + self.quantities.len()
            + self.uris.len()
    }

    /// True when there is no entry at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A `string` parameter value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StringEntry {
    pub param: String,
    /// Lower-cased, accents removed: what default and `:contains` searches compare.
    pub normalized: String,
    /// The value as written, for `:exact`.
    pub exact: String,
}

/// A `token` parameter value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenEntry {
    pub param: String,
    pub system: Option<String>,
    pub code: Option<String>,
    /// Display text, normalized like [`StringEntry::normalized`], for `:text`.
    pub text: Option<String>,
}

/// A `reference` parameter value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferenceEntry {
    pub param: String,
    /// Resource type of a literal `Type/id` (relative or under the server's base), if any.
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    /// The reference as written (absolute URLs, canonicals).
    pub url: String,
}

/// A `date` parameter value as the range it covers, in milliseconds since the epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateEntry {
    pub param: String,
    /// First millisecond covered.
    pub start: i64,
    /// Last millisecond covered (inclusive).
    pub end: i64,
}

/// A `number` parameter value with the range its precision implies.
#[derive(Debug, Clone, PartialEq)]
pub struct NumberEntry {
    pub param: String,
    pub value: f64,
    pub low: f64,
    pub high: f64,
}

/// A `quantity` parameter value.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantityEntry {
    pub param: String,
    pub value: f64,
    pub low: f64,
    pub high: f64,
    pub system: Option<String>,
    pub code: Option<String>,
    pub unit: Option<String>,
}

/// A `uri` parameter value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriEntry {
    pub param: String,
    pub value: String,
}

/// A search parameter ready to be extracted from resources of one type: its code, its type
/// and its expression for that type, parsed.
#[derive(Debug, Clone)]
pub struct CompiledParam {
    /// The parameter's code (`name`, `value-quantity`), the `param` of its entries.
    pub code: String,
    pub kind: SearchParamType,
    pub expression: Expression,
    /// For a composite: the type and parsed expression (relative to each value of
    /// `expression`) of its two components; empty otherwise.
    pub components: Vec<(SearchParamType, Expression)>,
}

impl CompiledParam {
    /// Compiles `def` for `resource_type` ([`SearchParamDef::expression_for`]). `Ok(None)`
    /// when there is nothing to extract: no expression for the type, a special parameter, or
    /// a composite of another shape than [`composite::parts`] supports. `Err` when an
    /// expression is outside the FHIRPath subset that [`crate::fhirpath`] supports.
    pub fn compile(
        def: &SearchParamDef,
        resource_type: &str,
    ) -> Result<Option<CompiledParam>, ParseError> {
        if def.kind == SearchParamType::Special {
            return Ok(None);
        }
        let components = if def.kind == SearchParamType::Composite {
            let Some(kinds) = composite::parts(def) else {
                return Ok(None);
            };
            let mut components = Vec::with_capacity(2);
            for (kind, component) in kinds.into_iter().zip(&def.components) {
                components.push((kind, Expression::parse(&component.expression)?));
            }
            components
        } else {
            Vec::new()
        };
        let Some(text) = def.expression_for(resource_type) else {
            return Ok(None);
        };
        Ok(Some(CompiledParam {
            code: def.code.clone(),
            kind: def.kind,
            expression: Expression::parse(&text)?,
            components,
        }))
    }
}

/// The compiled R4 parameters of each known type, each list built on first use.
static COMPILED: LazyLock<HashMap<&'static str, OnceLock<Vec<CompiledParam>>>> =
    LazyLock::new(|| {
        resource_type::all()
            .iter()
            .copied()
            .chain([ASYNC_JOB])
            .map(|t| (t, OnceLock::new()))
            .collect()
    });

/// Parameters whose values every stored version carries outside the index (its id and
/// `meta.lastUpdated`): searches read those directly, so they are not extracted.
pub const NOT_EXTRACTED: [&str; 2] = ["_id", "_lastUpdated"];

/// The R4 parameters of `resource_type` that can be extracted, compiled once and kept for
/// the life of the process (empty for an unknown type). A parameter whose expression does
/// not parse is left out (the tests list every such parameter; today there is none), and so
/// are [`NOT_EXTRACTED`] and the unions of other parameters ([`search_param::union_parts`]),
/// which searches answer from their parts' entries.
pub fn compiled_params(resource_type: &str) -> &'static [CompiledParam] {
    let Some(cell) = COMPILED.get(resource_type) else {
        return &[];
    };
    cell.get_or_init(|| {
        search_param::for_type(resource_type)
            .into_iter()
            .filter(|def| !NOT_EXTRACTED.contains(&def.code.as_str()))
            .filter(|def| search_param::union_parts(resource_type, &def.code).is_none())
            .filter_map(|def| CompiledParam::compile(def, resource_type).ok().flatten())
            .collect()
    })
}

/// A decimal search value (`100`, `1.50`, `-2e3`) and the range `[low, high]` its written
/// precision implies, exactly as extraction computes it for stored numbers. `None` when the
/// text is not a JSON number or is not finite.
pub fn precision_range(text: &str) -> Option<(f64, f64, f64)> {
    let number: serde_json::Number = text.parse().ok()?;
    convert::number_range(&number)
}

/// The index entries of `resource` (a resource of type `resource_type`) for every R4 search
/// parameter of the type, each parameter's entries without repeats.
pub fn extract(resource_type: &str, resource: &Value) -> IndexEntries {
    let mut out = IndexEntries::default();
    extract_into(compiled_params(resource_type), resource, &mut out);
    out
}

/// Adds the entries of `resource` for `params` to `out` (for parameters compiled by the
/// caller, such as those of `SearchParameter` resources).
pub fn extract_into(params: &[CompiledParam], resource: &Value, out: &mut IndexEntries) {
    let subject = Subject::new(resource);
    for param in params {
        let marks = convert::Marks::of(out);
        for item in param.expression.evaluate_on(&subject) {
            if param.components.is_empty() {
                convert::add(param, item, out);
            } else {
                composite::add(param, &subject, item, out);
            }
        }
        marks.dedupe(out);
    }
}
