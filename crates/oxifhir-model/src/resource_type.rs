//! The R4 resource types (generated list in `data/resource-types.json`), oxifhir's own
//! server-managed types, and the one helper that reads the crate's embedded data files.

use std::sync::LazyLock;

use serde::Deserialize;

/// oxifhir's record of an asynchronous request (not an R4 type; the server manages it).
pub const ASYNC_JOB: &str = "AsyncJob";

static R4_TYPES: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    parse_embedded::<Vec<&'static str>>(
        "resource-types.json",
        include_str!("../data/resource-types.json"),
    )
});

/// True if `name` is a resource type this server stores: every R4 4.0.1 resource type, plus
/// `AsyncJob` (oxifhir's record of an asynchronous request). Case-sensitive.
pub fn is_known(name: &str) -> bool {
    name == ASYNC_JOB || is_r4(name)
}

/// True if `name` is a concrete R4 4.0.1 resource type (not `AsyncJob`, not the abstract
/// `Resource`/`DomainResource`). Case-sensitive.
pub fn is_r4(name: &str) -> bool {
    R4_TYPES.binary_search(&name).is_ok()
}

/// Every concrete R4 4.0.1 resource type (146 of them), sorted, without `AsyncJob`.
pub fn all() -> &'static [&'static str] {
    &R4_TYPES
}

/// Parses one of the crate's embedded data files (`data/*.json`, written by
/// `tools/gen_fhir_data.py`).
///
/// This is the only place where the crate panics on its own data: the files are compiled
/// into the binary, so a broken one is a build defect, not an input error, and every module's
/// tests force its data through here so that such a defect fails `cargo test`.
pub(crate) fn parse_embedded<T: Deserialize<'static>>(file: &str, text: &'static str) -> T {
    match serde_json::from_str(text) {
        Ok(value) => value,
        Err(e) => panic!(
            "embedded data file data/{file} is broken ({e}); regenerate it with \
             `python3 tools/gen_fhir_data.py ../shared/fhir-r4`"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_sorted_complete_and_abstract_free() {
        let all = all();
        assert_eq!(all.len(), 146);
        assert!(all.windows(2).all(|w| w[0] < w[1]), "sorted and unique");
        for name in [
            "Patient",
            "Observation",
            "Bundle",
            "Binary",
            "Parameters",
            "VerificationResult",
        ] {
            assert!(all.contains(&name), "{name}");
        }
        for name in [
            "Resource",
            "DomainResource",
            "AsyncJob",
            "Project",
            "Bot",
            "ViewDefinition",
        ] {
            assert!(!all.contains(&name), "{name}");
        }
    }

    #[test]
    fn known_types() {
        assert!(is_known("Patient"));
        assert!(is_known("AsyncJob"));
        assert!(!is_r4("AsyncJob"));
        assert!(is_r4("Appointment"));
        assert!(!is_known("patient"));
        assert!(!is_known("Resource"));
        assert!(!is_known(""));
        assert!(!is_known("AccessPolicy"));
    }
}
