//! Tests of `oxifhir synth` as a whole: determinism, R4 validity (schema and the required
//! elements the schema does not check), referential integrity, shape and size.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde_json::Value;

use super::output::{Batch, Output};
use super::{Kind, Plan, admin, generate};

/// Every file's bytes, by resource type.
fn files(dir: &Path) -> Vec<(Kind, Vec<u8>)> {
    Kind::ALL
        .iter()
        .map(|&kind| {
            let path = dir.join(format!("{}.ndjson", kind.name()));
            (kind, std::fs::read(&path).unwrap())
        })
        .collect()
}

/// Generates `plan` into a fresh directory; returns every resource, by type.
fn resources(plan: &Plan) -> Vec<(Kind, Vec<Value>)> {
    let dir = tempfile::tempdir().unwrap();
    let counts = generate(plan, dir.path(), 2).unwrap();
    files(dir.path())
        .into_iter()
        .zip(counts)
        .map(|((kind, bytes), (counted_kind, count))| {
            assert_eq!(kind, counted_kind);
            let text = String::from_utf8(bytes).unwrap();
            assert!(text.is_empty() || text.ends_with('\n'));
            let values: Vec<Value> = text
                .lines()
                .map(|line| serde_json::from_str(line).unwrap())
                .collect();
            assert_eq!(values.len() as u64, count, "{}", kind.name());
            (kind, values)
        })
        .collect()
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let write = |patients, seed, threads| {
        let dir = tempfile::tempdir().unwrap();
        generate(&Plan::new(patients, seed, 50), dir.path(), threads).unwrap();
        files(dir.path())
    };
    let first = write(15, 7, 1);
    assert_eq!(first, write(15, 7, 1));
    let other = write(15, 8, 1);
    for ((kind, a), (_, b)) in first.iter().zip(&other) {
        assert_ne!(a, b, "{} is the same for seeds 7 and 8", kind.name());
    }
    // Several chunks of patients, on one thread or on three, in the same order.
    assert_eq!(write(250, 7, 1), write(250, 7, 3));
}

/// The elements R4 requires (1..1 or 1..*) that the JSON schema does not enforce.
fn required(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Observation => &["status", "code"],
        Kind::Condition => &["subject"],
        Kind::MedicationRequest => &["status", "intent", "subject", "medicationCodeableConcept"],
        Kind::Encounter => &["status", "class"],
        Kind::Appointment => &["status", "participant"],
        Kind::Slot => &["schedule", "status", "start", "end"],
        Kind::Schedule => &["actor"],
        Kind::Group => &["type", "actual"],
        Kind::Patient | Kind::Practitioner | Kind::Organization => &[],
    }
}

#[test]
fn every_resource_is_valid_r4_and_every_reference_resolves() {
    let all = resources(&Plan::new(20, 42, 50));
    let mut ids = HashSet::new();
    for (kind, values) in &all {
        assert!(!values.is_empty(), "no {}", kind.name());
        for value in values {
            assert_eq!(value["resourceType"], kind.name());
            if let Err(issues) = oxifhir_model::validation::validate(value) {
                panic!(
                    "invalid {}: {issues:?}",
                    serde_json::to_string(value).unwrap()
                );
            }
            for element in required(*kind) {
                assert!(
                    value.get(element).is_some(),
                    "{} without {element}: {value}",
                    kind.name()
                );
            }
            let id = value["id"].as_str().unwrap();
            assert!(oxifhir_model::id::is_valid(id), "{id}");
            assert!(
                ids.insert(format!("{}/{id}", kind.name())),
                "duplicate {id}"
            );
        }
    }
    let mut references = 0;
    for (_, values) in &all {
        for value in values {
            visit_references(value, &mut |reference| {
                references += 1;
                assert!(ids.contains(reference), "dangling reference {reference}");
            });
        }
    }
    assert!(references > 1000, "only {references} references");
}

/// Calls `check` with every `reference` string inside `value`.
fn visit_references(value: &Value, check: &mut dyn FnMut(&str)) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                match (key.as_str(), inner) {
                    ("reference", Value::String(reference)) => check(reference),
                    _ => visit_references(inner, check),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| visit_references(item, check)),
        _ => {}
    }
}

#[test]
fn shape_and_size_are_realistic() {
    let patients = 200;
    let all: HashMap<&str, Vec<Value>> = resources(&Plan::new(patients, 3, 50))
        .into_iter()
        .map(|(kind, values)| (kind.name(), values))
        .collect();
    let total: usize = all.values().map(Vec::len).sum();
    let per_patient = total as f64 / f64::from(patients);
    assert!(
        (42.0..=58.0).contains(&per_patient),
        "{per_patient} resources per patient"
    );
    assert_eq!(all["Patient"].len(), patients as usize);
    assert_eq!(all["Practitioner"].len(), 10);
    assert_eq!(all["Organization"].len(), 10);
    assert_eq!(all["Schedule"].len(), 10);

    // Observations of both categories, with the codes asked for, spread over years.
    let codes: HashSet<&str> = all["Observation"]
        .iter()
        .map(|o| o["code"]["coding"][0]["code"].as_str().unwrap())
        .collect();
    for code in ["8867-4", "85354-9", "29463-7", "8310-5", "2339-0", "718-7"] {
        assert!(codes.contains(code), "no Observation {code}");
    }
    let years: HashSet<&str> = all["Observation"]
        .iter()
        .map(|o| &o["effectiveDateTime"].as_str().unwrap()[..4])
        .collect();
    assert!(years.len() >= 10, "observations in {years:?}");

    // Every Appointment sits in a busy Slot with the same times; busy Slots have one each.
    let slots: HashMap<String, &Value> = all["Slot"]
        .iter()
        .map(|slot| (format!("Slot/{}", slot["id"].as_str().unwrap()), slot))
        .collect();
    for appointment in &all["Appointment"] {
        let slot = slots[appointment["slot"][0]["reference"].as_str().unwrap()];
        assert_eq!(slot["status"], "busy");
        assert_eq!(
            (&slot["start"], &slot["end"]),
            (&appointment["start"], &appointment["end"])
        );
    }
    let busy = all["Slot"]
        .iter()
        .filter(|slot| slot["status"] == "busy")
        .count();
    assert_eq!(busy, all["Appointment"].len());
    assert!(busy > 0 && busy < all["Slot"].len());

    // Some names are not ASCII.
    assert!(
        all["Patient"]
            .iter()
            .any(|p| !p["name"][0]["family"].as_str().unwrap().is_ascii())
    );
    let group_all = all["Group"].iter().find(|g| g["id"] == "grp-all").unwrap();
    assert_eq!(
        group_all["member"].as_array().unwrap().len(),
        patients as usize
    );
}

#[test]
fn groups_stop_at_the_cap() {
    let plan = Plan::new(10_005, 1, 50);
    let dir = tempfile::tempdir().unwrap();
    let mut batch = Batch::default();
    admin::groups(&plan, &admin::Cohorts::default(), &mut batch).unwrap();
    let mut out = Output::create(dir.path()).unwrap();
    out.append(&mut batch).unwrap();
    out.finish().unwrap();
    let text = std::fs::read_to_string(dir.path().join("Group.ndjson")).unwrap();
    let all: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(all["id"], "grp-all");
    assert_eq!(all["quantity"], admin::GROUP_CAP);
    let members = all["member"].as_array().unwrap();
    assert_eq!(members.len(), admin::GROUP_CAP);
    assert_eq!(
        members[admin::GROUP_CAP - 1]["entity"]["reference"],
        "Patient/pat-010000"
    );
}
