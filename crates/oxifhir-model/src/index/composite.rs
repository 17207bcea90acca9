//! Composite parameters (`code-value-quantity=http://loinc.org|8480-6$gt100`): both parts
//! must hold for the same value of the composite's expression (the same `Observation.component`).
//!
//! Every R4 composite whose first component is a token and which has two components is
//! supported (all but the three-part `MolecularSequence` coordinates and
//! `DocumentReference-relationship`, whose first component is a reference). Its entries are
//! the second component's values, stored in that component's table under a parameter name
//! that carries the first component's token, code first: [`key`]
//! `{param}${code}|{system}` (`{param}${code}|` for a token without system). A search naming
//! the system, or naming none (`|code`), reads one parameter name; a search for the code in
//! any system reads the names that start with [`any_system`] `{param}${code}|`. In the code,
//! `\` and `|` are escaped with `\`, so that no code's prefix stands for another code.

use crate::fhirpath::{Item, Subject};
use crate::search_param::{self, SearchParamDef, SearchParamType};

use super::{CompiledParam, IndexEntries, TokenEntry, convert};

/// The types of a supported composite's two components (token first).
pub fn parts(def: &SearchParamDef) -> Option<[SearchParamType; 2]> {
    let [first, second] = def.components.as_slice() else {
        return None;
    };
    let kind = |url: &str| search_param::by_url(url).map(|d| d.kind);
    let (first, second) = (kind(&first.definition)?, kind(&second.definition)?);
    let indexable = matches!(
        second,
        SearchParamType::Token
            | SearchParamType::String
            | SearchParamType::Date
            | SearchParamType::Number
            | SearchParamType::Quantity
            | SearchParamType::Uri
            | SearchParamType::Reference
    );
    (first == SearchParamType::Token && indexable).then_some([first, second])
}

/// The parameter name of the entries of composite `param` whose first component is the
/// token `system|code` (`system` `None`: a token without system).
pub fn key(param: &str, system: Option<&str>, code: &str) -> String {
    let mut key = any_system(param, code);
    key.push_str(system.unwrap_or(""));
    key
}

/// The start of the parameter names of the entries of composite `param` whose first
/// component has `code`, in any system or none: every [`key`] of `code` starts with it, and
/// no key of another code does.
pub fn any_system(param: &str, code: &str) -> String {
    let mut key = String::with_capacity(param.len() + code.len() + 2);
    key.push_str(param);
    key.push('$');
    for c in code.chars() {
        if matches!(c, '\\' | '|') {
            key.push('\\');
        }
        key.push(c);
    }
    key.push('|');
    key
}

/// Adds the entries of one value (`item`) of composite `param`'s expression.
pub(super) fn add(
    param: &CompiledParam,
    subject: &Subject<'_>,
    item: Item<'_>,
    out: &mut IndexEntries,
) {
    let [(_, first), (second_kind, second)] = param.components.as_slice() else {
        return;
    };
    // Most values have nothing for most composites (an Observation has one `value[x]`):
    // the second component is read first, and the token only when it gives something.
    let values = second.evaluate_at(subject, item);
    if values.is_empty() {
        return;
    }
    let mut tokens = IndexEntries::default();
    for value in first.evaluate_at(subject, item) {
        convert::add_as("", SearchParamType::Token, value, &mut tokens);
    }
    let mut keys: Vec<String> = Vec::new();
    for TokenEntry { system, code, .. } in tokens.tokens {
        let Some(code) = code else { continue };
        keys.push(key(&param.code, system.as_deref(), &code));
    }
    keys.sort();
    keys.dedup();
    if keys.is_empty() {
        return;
    }
    for value in values {
        let mut converted = IndexEntries::default();
        convert::add_as("", *second_kind, value, &mut converted);
        for key in &keys {
            convert::extend_named(&converted, key, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::index::extract;

    #[test]
    fn supported_shapes() {
        let def = |url: &str| search_param::by_url(url).unwrap();
        let base = "http://hl7.org/fhir/SearchParameter/";
        for supported in [
            "Observation-code-value-quantity",
            "Observation-component-code-value-concept",
            "Observation-code-value-date",
            "Observation-code-value-string",
            "Group-characteristic-value",
        ] {
            assert!(
                parts(def(&format!("{base}{supported}"))).is_some(),
                "{supported}"
            );
        }
        for unsupported in [
            "MolecularSequence-chromosome-variant-coordinate",
            "DocumentReference-relationship",
            "Patient-name",
        ] {
            assert!(
                parts(def(&format!("{base}{unsupported}"))).is_none(),
                "{unsupported}"
            );
        }
    }

    #[test]
    fn components_pair_within_one_value() {
        let bp = json!({
            "resourceType": "Observation", "id": "bp", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
            "component": [
                {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
                 "valueQuantity": {"value": 120, "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},
                {"code": {"coding": [{"code": "8462-4"}]},
                 "valueQuantity": {"value": 80, "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}
            ]
        });
        let entries = extract("Observation", &bp);
        let mut found: Vec<(String, f64)> = entries
            .quantities
            .iter()
            .filter(|q| q.param.starts_with("component-code-value-quantity$"))
            .map(|q| (q.param.clone(), q.value))
            .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            found,
            [
                ("component-code-value-quantity$8462-4|".to_string(), 80.0),
                (
                    "component-code-value-quantity$8480-6|http://loinc.org".to_string(),
                    120.0
                ),
            ]
        );
        // The Observation itself has no value: no code-value-quantity entries.
        assert!(
            !entries
                .quantities
                .iter()
                .any(|q| q.param.starts_with("code-value-quantity$"))
        );
    }

    #[test]
    fn keys_of_a_code_share_a_prefix_no_other_code_has() {
        let loinc = key("code-value-quantity", Some("http://loinc.org"), "8480-6");
        let none = key("code-value-quantity", None, "8480-6");
        let any = any_system("code-value-quantity", "8480-6");
        assert_eq!(loinc, "code-value-quantity$8480-6|http://loinc.org");
        assert_eq!(none, "code-value-quantity$8480-6|");
        assert!(loinc.starts_with(&any) && none.starts_with(&any));
        // A code that contains `|` or `\\` cannot pass for a shorter code with a system.
        let piped = key("p", Some("s"), "a|b");
        assert_eq!(piped, "p$a\\|b|s");
        assert!(!piped.starts_with(&any_system("p", "a")));
        assert!(piped.starts_with(&any_system("p", "a|b")));
        let slashed = key("p", None, "a\\");
        assert_eq!(slashed, "p$a\\\\|");
        assert!(!slashed.starts_with(&any_system("p", "a\\|")));
        // Nor can a code that another code begins with.
        assert!(!key("p", None, "8480-6").starts_with(&any_system("p", "8480")));
    }
}
