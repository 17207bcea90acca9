//! Parameters whose values are exactly those of other parameters of the same type, taken
//! together: R4's `Observation` `combo-*` parameters (`combo-code` is `code` and
//! `component-code`; `combo-code-value-quantity` is `code-value-quantity` and
//! `component-code-value-quantity`).
//!
//! Such a parameter is not indexed: a search by it is a search by any of its parts. Indexed,
//! its entries repeated those of its parts — for the synthetic data set, a quarter of all
//! index rows, and the widest ones.
//!
//! A parameter `P` of a type is the union of parameters `Q₁ … Qₙ` of that type when each
//! `Qᵢ` is of the same kind (for composites: with the same components), each of `Qᵢ`'s
//! top-level `|` parts is one of `P`'s, has fewer of them than `P`, and together they have
//! all of `P`'s. The entries of `P` are then the entries of the `Qᵢ` together, since a
//! parameter's entries are those of each part of its expression.

use std::collections::HashMap;
use std::sync::LazyLock;

use super::{SearchParamDef, SearchParamType, by_url, for_type, split_union};
use crate::resource_type;

/// The codes of each type's unions, with the codes of their parts, sorted.
type Unions = HashMap<&'static str, HashMap<&'static str, Vec<&'static str>>>;

static UNIONS: LazyLock<Unions> = LazyLock::new(|| {
    resource_type::all()
        .iter()
        .map(|t| (*t, unions_of(t).into_iter().collect::<HashMap<_, _>>()))
        .filter(|(_, unions)| !unions.is_empty())
        .collect()
});

/// The codes of the parameters that R4 parameter `code` of `resource_type` is the union of
/// (see the module's documentation), sorted; `None` when it is not such a union.
pub fn union_parts(resource_type: &str, code: &str) -> Option<&'static [&'static str]> {
    UNIONS.get(resource_type)?.get(code).map(Vec::as_slice)
}

/// What a parameter is compared by: its kind, and for a composite each component's kind and
/// expression.
fn shape(def: &SearchParamDef) -> (SearchParamType, Vec<(Option<SearchParamType>, &str)>) {
    let components = def
        .components
        .iter()
        .map(|c| (by_url(&c.definition).map(|d| d.kind), c.expression.as_str()))
        .collect();
    (def.kind, components)
}

/// The unions among the R4 parameters of `resource_type`, with their parts.
fn unions_of(resource_type: &str) -> Vec<(&'static str, Vec<&'static str>)> {
    let params: Vec<(&'static SearchParamDef, Vec<String>)> = for_type(resource_type)
        .into_iter()
        .filter(|def| def.kind != SearchParamType::Special)
        .filter_map(|def| {
            let expression = def.expression_for(resource_type)?;
            let parts = split_union(&expression)
                .into_iter()
                .map(str::to_owned)
                .collect();
            Some((def, parts))
        })
        .collect();
    let covering = |def: &SearchParamDef, parts: &[String], exclude: &[&str]| {
        let found: Vec<&(&SearchParamDef, Vec<String>)> = params
            .iter()
            .filter(|(q, q_parts)| {
                q.code != def.code
                    && !exclude.contains(&q.code.as_str())
                    && q_parts.len() < parts.len()
                    && shape(q) == shape(def)
                    && q_parts.iter().all(|p| parts.contains(p))
            })
            .collect();
        let covered = parts
            .iter()
            .all(|p| found.iter().any(|(_, q_parts)| q_parts.contains(p)));
        covered.then(|| {
            let mut codes: Vec<&'static str> = found.iter().map(|(q, _)| q.code.as_str()).collect();
            codes.sort_unstable();
            codes
        })
    };
    let candidates: Vec<&'static str> = params
        .iter()
        .filter(|(def, parts)| parts.len() > 1 && covering(def, parts, &[]).is_some())
        .map(|(def, _)| def.code.as_str())
        .collect();
    // A union's parts are indexed parameters, never unions themselves.
    params
        .iter()
        .filter(|(def, _)| candidates.contains(&def.code.as_str()))
        .filter_map(|(def, parts)| Some((def.code.as_str(), covering(def, parts, &candidates)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_r4_unions_are_the_observation_combo_parameters() {
        let mut found: Vec<(&str, &str, Vec<&str>)> = UNIONS
            .iter()
            .flat_map(|(t, unions)| {
                unions
                    .iter()
                    .map(|(code, parts)| (*t, *code, parts.clone()))
            })
            .collect();
        found.sort();
        assert_eq!(
            found,
            vec![
                ("Observation", "combo-code", vec!["code", "component-code"]),
                (
                    "Observation",
                    "combo-code-value-concept",
                    vec!["code-value-concept", "component-code-value-concept"]
                ),
                (
                    "Observation",
                    "combo-code-value-quantity",
                    vec!["code-value-quantity", "component-code-value-quantity"]
                ),
                (
                    "Observation",
                    "combo-data-absent-reason",
                    vec!["component-data-absent-reason", "data-absent-reason"]
                ),
                (
                    "Observation",
                    "combo-value-concept",
                    vec!["component-value-concept", "value-concept"]
                ),
                (
                    "Observation",
                    "combo-value-quantity",
                    vec!["component-value-quantity", "value-quantity"]
                ),
            ]
        );
    }

    #[test]
    fn other_parameters_are_not_unions() {
        assert_eq!(union_parts("Observation", "code"), None);
        assert_eq!(union_parts("Patient", "name"), None);
        assert_eq!(union_parts("Nothing", "combo-code"), None);
    }
}
