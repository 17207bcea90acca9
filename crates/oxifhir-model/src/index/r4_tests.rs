//! Tests over the whole R4 table: every expression parses, every parameter of every type
//! compiles and evaluates; and how long extraction takes.

use serde_json::json;

use super::tests::{check, observation, patient};
use super::*;
use crate::resource_type;

#[test]
fn every_r4_expression_compiles() {
    // Parameters whose expression the FHIRPath subset cannot evaluate. None today.
    const KNOWN_UNSUPPORTED: &[&str] = &[];
    let mut parsed = 0;
    let mut failed = Vec::new();
    for def in crate::search_param::all() {
        for base in &def.base {
            let target = match base.as_str() {
                "Resource" | "DomainResource" => "Patient",
                other => other,
            };
            let Some(text) = def.expression_for(target) else {
                continue;
            };
            match crate::fhirpath::Expression::parse(&text) {
                Ok(_) => parsed += 1,
                Err(e) => failed.push(format!("{} for {base}: {text}: {e}", def.url)),
            }
        }
    }
    println!("{parsed} expressions parsed, {} failed", failed.len());
    assert_eq!(failed, KNOWN_UNSUPPORTED);
    assert!(parsed > 1000, "{parsed}");

    // And every parameter of every type compiles, composites and specials aside.
    let mut compiled = 0;
    for t in resource_type::all() {
        for def in crate::search_param::for_type(t) {
            let result = CompiledParam::compile(def, t);
            assert!(result.is_ok(), "{t} {}: {result:?}", def.code);
            compiled += usize::from(matches!(result, Ok(Some(_))));
        }
        assert_eq!(
            compiled_params(t).len(),
            crate::search_param::for_type(t)
                .iter()
                .filter(|d| !NOT_EXTRACTED.contains(&d.code.as_str()))
                .filter(|d| crate::search_param::union_parts(t, &d.code).is_none())
                .filter(|d| CompiledParam::compile(d, t).is_ok_and(|c| c.is_some()))
                .count()
        );
    }
    println!("{compiled} (type, parameter) pairs compiled");
}

#[test]
fn every_parameter_evaluates_on_an_empty_resource() {
    for t in resource_type::all() {
        let resource = json!({"resourceType": t, "id": "x"});
        let entries = extract(t, &resource);
        // Nothing panics; the id is not extracted (searches read it from the version).
        assert!(!entries.tokens.iter().any(|e| e.param == "_id"), "{t}");
    }
    assert!(extract("NotAType", &json!({"resourceType": "NotAType"})).is_empty());
    let job = json!({"resourceType": "AsyncJob", "id": "j1", "status": "accepted", "meta": {"lastUpdated": "2024-01-01T00:00:00Z"}});
    check(&job, "_id", &[]);
    check(&job, "_lastUpdated", &[]);
}

/// Prints how long extraction takes for a typical Patient and Observation (never asserted;
/// run with `--release -- --nocapture` for figures worth quoting).
#[test]
fn timing() {
    let (patient, observation) = (patient(), observation());
    // Cold (schema read, Patient parameters parsed) only when this test runs alone.
    let started = std::time::Instant::now();
    let _ = extract("Patient", &patient);
    println!("first Patient extraction: {:?}", started.elapsed());
    let started = std::time::Instant::now();
    let count: usize = resource_type::all()
        .iter()
        .map(|t| compiled_params(t).len())
        .sum();
    println!(
        "{count} parameters of every type compiled: {:?}",
        started.elapsed()
    );
    for (name, resource) in [("Patient", &patient), ("Observation", &observation)] {
        let _ = extract(name, resource);
        let runs = 2_000;
        let started = std::time::Instant::now();
        let mut total = 0;
        for _ in 0..runs {
            total += extract(name, resource).len();
        }
        let each = started.elapsed() / runs;
        println!(
            "extract {name}: {each:?} per resource, {} entries",
            total / runs as usize
        );
    }
}
