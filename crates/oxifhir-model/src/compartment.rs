//! The Patient compartment (generated from `compartmentdefinition-patient.json` into
//! `data/compartment-patient.json`): for each resource type, the search parameters whose
//! references to a Patient put a resource in that Patient's compartment.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use crate::resource_type;

static PARAMS: LazyLock<BTreeMap<String, Vec<String>>> = LazyLock::new(|| {
    resource_type::parse_embedded(
        "compartment-patient.json",
        include_str!("../data/compartment-patient.json"),
    )
});

static TYPES: LazyLock<Vec<&'static str>> =
    LazyLock::new(|| PARAMS.keys().map(String::as_str).collect());

/// The search parameters (codes) that link a `resource_type` resource to a Patient's
/// compartment, in the order the definition lists them (`Observation` → `subject`,
/// `performer`; `Patient` → `link`). Empty if the type is not in the compartment.
pub fn patient_compartment_params(resource_type: &str) -> &'static [String] {
    PARAMS
        .get(resource_type)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// The resource types that can be in a Patient compartment (those with at least one
/// parameter), sorted; includes `Patient` itself.
pub fn patient_compartment_types() -> &'static [&'static str] {
    &TYPES
}

/// True if `resource_type` can be in a Patient compartment.
pub fn in_patient_compartment(resource_type: &str) -> bool {
    PARAMS.contains_key(resource_type)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search_param;

    #[test]
    fn the_compartment_loads() {
        let types = patient_compartment_types();
        assert_eq!(types.len(), 67);
        assert!(types.windows(2).all(|w| w[0] < w[1]));
        assert!(types.contains(&"Patient") && types.contains(&"Observation"));
        assert!(!types.contains(&"Practitioner") && !types.contains(&"Organization"));
    }

    #[test]
    fn params_by_type() {
        assert_eq!(
            patient_compartment_params("Observation"),
            ["subject", "performer"]
        );
        assert_eq!(patient_compartment_params("Patient"), ["link"]);
        assert_eq!(
            patient_compartment_params("AllergyIntolerance"),
            ["patient", "recorder", "asserter"]
        );
        assert_eq!(patient_compartment_params("Group"), ["member"]);
        assert!(patient_compartment_params("Practitioner").is_empty());
        assert!(patient_compartment_params("Nope").is_empty());
        assert!(in_patient_compartment("Encounter") && !in_patient_compartment("Medication"));
    }

    #[test]
    fn every_param_is_a_reference_search_parameter_of_its_type() {
        for t in patient_compartment_types() {
            assert!(resource_type::is_r4(t), "{t}");
            for code in patient_compartment_params(t) {
                let def = search_param::lookup(t, code)
                    .unwrap_or_else(|| panic!("{t}.{code} is not a search parameter"));
                assert_eq!(
                    def.kind,
                    search_param::SearchParamType::Reference,
                    "{t}.{code}"
                );
            }
        }
    }
}
