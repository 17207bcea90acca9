//! Tests of `validation`: real resources, each kind of issue, and every R4 type's validator.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::*;

/// Parses like the server does (exact decimals), so numbers are arbitrary-precision ones.
fn parse(text: &str) -> Value {
    crate::json::parse(text.as_bytes()).unwrap()
}

fn issues(resource: &Value) -> Vec<(String, String)> {
    match validate(resource) {
        Ok(()) => Vec::new(),
        Err(issues) => issues.into_iter().map(|i| (i.path, i.message)).collect(),
    }
}

#[track_caller]
fn assert_valid(resource: &Value) {
    assert_eq!(issues(resource), Vec::<(String, String)>::new());
}

#[track_caller]
fn assert_one_issue(resource: &Value, path: &str, message_part: &str) {
    let found = issues(resource);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].0, path, "{found:#?}");
    assert!(found[0].1.contains(message_part), "{found:#?}");
}

const PATIENT: &str = r##"{
  "resourceType": "Patient",
  "id": "p1",
  "meta": {"versionId": "1", "lastUpdated": "2024-01-02T03:04:05.678Z",
           "tag": [{"system": "http://example.org/tags", "code": "test"}]},
  "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Jane</div>"},
  "contained": [
    {"resourceType": "Organization", "id": "org", "name": "Acme Clinic", "active": true},
    {"resourceType": "Practitioner", "id": "gp", "name": [{"family": "Who"}]}
  ],
  "extension": [
    {"url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex", "valueCode": "F"},
    {"url": "http://example.org/height", "valueQuantity": {"value": 1.50, "unit": "m"}}
  ],
  "identifier": [
    {"use": "usual", "system": "urn:oid:1.2.36.146.595.217.0.1", "value": "12345",
     "period": {"start": "2001-05-06"}}
  ],
  "active": true,
  "name": [
    {"use": "official", "family": "Chalmers", "given": ["Peter", "James"]},
    {"use": "usual", "given": ["Jim"], "_given": [{"extension": [{"url": "http://example.org/x", "valueBoolean": true}]}]}
  ],
  "telecom": [{"system": "phone", "value": "(03) 5555 6473", "use": "work", "rank": 1}],
  "gender": "female",
  "birthDate": "1974-12-25",
  "deceasedBoolean": false,
  "multipleBirthInteger": 2,
  "address": [{"line": ["534 Erewhon St"], "city": "PleasantVille", "postalCode": "3999"}],
  "generalPractitioner": [{"reference": "#gp"}],
  "managingOrganization": {"reference": "#org"}
}"##;

const OBSERVATION: &str = r#"{
  "resourceType": "Observation",
  "id": "o1",
  "status": "final",
  "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
  "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7", "display": "Body Weight"}]},
  "subject": {"reference": "Patient/p1"},
  "effectiveDateTime": "2016-03-28T09:30:00+01:00",
  "valueQuantity": {"value": 67.50, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"},
  "component": [
    {"code": {"text": "precise"}, "valueQuantity": {"value": 1.000000000000000000001, "comparator": "<"}}
  ]
}"#;

#[test]
fn a_full_patient_is_valid() {
    assert_valid(&parse(PATIENT));
}

#[test]
fn an_observation_with_value_quantity_is_valid() {
    assert_valid(&parse(OBSERVATION));
}

#[test]
fn decimals_keep_validating_with_arbitrary_precision() {
    for value in [
        "1.50",
        "0",
        "-0.5",
        "1e3",
        "12345678901234567890.123456789",
        "1.0",
    ] {
        let text = format!(
            r#"{{"resourceType":"Observation","status":"final","code":{{"text":"x"}},"valueQuantity":{{"value":{value}}}}}"#
        );
        assert_valid(&parse(&text));
    }
    let text = r#"{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":"1.50"}}"#;
    assert_one_issue(
        &parse(text),
        "Observation.valueQuantity.value",
        "Expected a number, found string \"1.50\"",
    );
}

#[test]
fn integers_are_whole_numbers_in_range() {
    let patient = |n: &str| {
        parse(&format!(
            r#"{{"resourceType":"Patient","multipleBirthInteger":{n}}}"#
        ))
    };
    assert_valid(&patient("3"));
    assert_valid(&patient("-2147483648"));
    assert_one_issue(
        &patient("2.5"),
        "Patient.multipleBirthInteger",
        "Expected an integer",
    );
    assert_one_issue(
        &patient("2147483648"),
        "Patient.multipleBirthInteger",
        "too large",
    );
    // unsignedInt and positiveInt.
    let study = |n: &str| {
        parse(&format!(
            r#"{{"resourceType":"ImagingStudy","status":"available","subject":{{"reference":"Patient/1"}},"numberOfSeries":{n}}}"#
        ))
    };
    assert_valid(&study("0"));
    assert_one_issue(
        &study("-1"),
        "ImagingStudy.numberOfSeries",
        "too small (the minimum is 0)",
    );
    let telecom = |n: &str| {
        parse(&format!(
            r#"{{"resourceType":"Patient","telecom":[{{"rank":{n}}}]}}"#
        ))
    };
    assert_valid(&telecom("1"));
    assert_one_issue(&telecom("0"), "Patient.telecom[0].rank", "minimum is 1");
}

#[test]
fn an_unknown_element_is_reported_at_its_path() {
    assert_one_issue(
        &json!({"resourceType": "Patient", "foo": 1}),
        "Patient.foo",
        "Unknown element 'foo'",
    );
    assert_one_issue(
        &json!({"resourceType": "Patient", "name": [{"family": "x"}, {"nickname": "y"}]}),
        "Patient.name[1].nickname",
        "Unknown element 'nickname'",
    );
}

#[test]
fn a_wrong_type_is_reported_at_its_path() {
    assert_one_issue(
        &json!({"resourceType": "Patient", "active": "yes"}),
        "Patient.active",
        "Expected a boolean, found string \"yes\"",
    );
    assert_one_issue(
        &json!({"resourceType": "Patient", "name": {"family": "x"}}),
        "Patient.name",
        "Expected an array, found an object",
    );
    assert_one_issue(
        &json!({"resourceType": "Patient", "name": [{"given": "Jim"}]}),
        "Patient.name[0].given",
        "Expected an array",
    );
}

#[test]
fn a_malformed_date_is_reported() {
    let found = issues(&json!({"resourceType": "Patient", "birthDate": "1990-13-45"}));
    assert_eq!(
        found,
        [(
            "Patient.birthDate".to_string(),
            "\"1990-13-45\" is not a valid FHIR date".to_string()
        )]
    );
    assert_one_issue(
        &json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                "effectiveDateTime": "2020-01-01T10:00:00"}),
        "Observation.effectiveDateTime",
        "is not a valid FHIR dateTime",
    );
    assert_valid(&json!({"resourceType": "Patient", "birthDate": "1990-12"}));
}

#[test]
fn codes_strings_and_required_elements() {
    assert_one_issue(
        &json!({"resourceType": "Patient", "gender": "woman"}),
        "Patient.gender",
        "\"woman\" is not one of the allowed codes: \"male\", \"female\", \"other\", \"unknown\"",
    );
    assert_one_issue(
        &json!({"resourceType": "Patient", "name": [{"family": ""}]}),
        "Patient.name[0].family",
        "Empty string",
    );
    // The R4 JSON schema marks only complex elements as required: a required primitive such
    // as `Observation.status` may be given as `_status` (extensions only), so it is not.
    let found = issues(&json!({"resourceType": "Observation", "status": "final"}));
    assert_eq!(
        found,
        [(
            "Observation".to_string(),
            "Missing required element 'code'".to_string()
        )]
    );
    assert_valid(&json!({"resourceType": "Observation", "code": {"text": "x"}}));
}

#[test]
fn a_transaction_bundle_is_validated_entry_by_entry() {
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a",
             "resource": {"resourceType": "Patient", "name": [{"family": "Doe"}]},
             "request": {"method": "POST", "url": "Patient"}},
            {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                          "subject": {"reference": "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"}},
             "request": {"method": "POST", "url": "Observation"}},
            {"request": {"method": "DELETE", "url": "Patient/old"}}
        ]
    });
    assert_valid(&bundle);

    let mut bad = bundle.clone();
    bad["entry"][1]["resource"]["status"] = json!("done");
    bad["entry"][0]["resource"]["colour"] = json!("blue");
    bad["entry"][2]["request"]["method"] = json!("FETCH");
    let found = issues(&bad);
    assert_eq!(
        found.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(),
        [
            "Bundle.entry[0].resource.colour",
            "Bundle.entry[1].resource.status",
            "Bundle.entry[2].request.method",
        ],
        "{found:#?}"
    );

    let mut unknown = bundle;
    unknown["entry"][0]["resource"]["resourceType"] = json!("Spaceship");
    assert_one_issue(
        &unknown,
        "Bundle.entry[0].resource.resourceType",
        "Unknown resource type \"Spaceship\"",
    );
}

#[test]
fn contained_resources_are_checked_against_their_own_type() {
    assert_one_issue(
        &json!({"resourceType": "Patient", "contained": [
            {"resourceType": "Organization", "active": "yes"}
        ]}),
        "Patient.contained[0].active",
        "Expected a boolean",
    );
    assert_one_issue(
        &json!({"resourceType": "Patient", "contained": [{"id": "x"}]}),
        "Patient.contained[0]",
        "Missing resourceType",
    );
    assert_one_issue(
        &json!({"resourceType": "Patient", "contained": [{"resourceType": "AsyncJob"}]}),
        "Patient.contained[0].resourceType",
        "Unknown resource type",
    );
    assert_one_issue(
        &json!({"resourceType": "Patient", "contained": ["Organization"]}),
        "Patient.contained[0]",
        "Expected an object, found string \"Organization\"",
    );
}

#[test]
fn nested_resources_are_found_where_the_schema_puts_them() {
    let nesting = &SCHEMA.nesting;
    let mut found: Vec<String> = nesting
        .edges
        .iter()
        .filter(|(name, _)| {
            !resource_type::is_r4(name) || *name == "Bundle" || *name == "Parameters"
        })
        .flat_map(|(name, edges)| {
            edges.iter().map(move |(element, target)| match target {
                Target::Resource => format!("{name}.{element} -> resource"),
                Target::Definition(d) => format!("{name}.{element} -> {d}"),
            })
        })
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            "Bundle.entry -> Bundle_Entry",
            "Bundle_Entry.resource -> resource",
            "Bundle_Entry.response -> Bundle_Response",
            "Bundle_Response.outcome -> resource",
            "Parameters.parameter -> Parameters_Parameter",
            "Parameters_Parameter.part -> Parameters_Parameter",
            "Parameters_Parameter.resource -> resource",
        ]
    );
    // Every domain resource (all but Bundle, Binary and Parameters) has `contained`.
    assert_eq!(
        nesting
            .edges
            .iter()
            .filter(|(_, e)| e.iter().any(|(el, _)| el == "contained"))
            .count(),
        resource_type::all().len() - 3
    );
}

#[test]
fn parameters_and_bundle_responses_hold_checked_resources() {
    let parameters = json!({
        "resourceType": "Parameters",
        "parameter": [
            {"name": "a", "valueString": "x"},
            {"name": "b", "part": [{"name": "c", "resource": {"resourceType": "Patient", "active": 1}}]}
        ]
    });
    assert_one_issue(
        &parameters,
        "Parameters.parameter[1].part[0].resource.active",
        "Expected a boolean",
    );
    let response = json!({
        "resourceType": "Bundle",
        "type": "transaction-response",
        "entry": [{"response": {"status": "400", "outcome": {"resourceType": "OperationOutcome", "issue": [{"severity": "fatal", "code": "invalid"}], "extra": true}}}]
    });
    assert_one_issue(
        &response,
        "Bundle.entry[0].response.outcome.extra",
        "Unknown element 'extra'",
    );
}

#[test]
fn deeply_nested_resources_stop_at_a_limit() {
    let mut resource = json!({"resourceType": "Basic", "code": {"text": "leaf"}, "oops": 1});
    for _ in 0..40 {
        resource = json!({"resourceType": "Basic", "code": {"text": "x"}, "contained": [resource]});
    }
    let text = serde_json::to_string(&resource).unwrap();
    let found = validate(&parse(&text)).unwrap_err();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].path.starts_with("Basic.contained[0].contained[0]"));
    assert!(found[0].message.contains("nested this deeply"));
}

#[test]
fn validators_are_shared_between_threads() {
    let handles: Vec<_> = ["Patient", "Organization", "Practitioner", "Patient"]
        .into_iter()
        .map(|t| {
            std::thread::spawn(move || {
                for _ in 0..50 {
                    assert!(validate(&json!({"resourceType": t, "id": "x"})).is_ok());
                    assert!(validate(&json!({"resourceType": t, "nope": true})).is_err());
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
}

#[test]
fn what_is_not_a_resource_gets_one_issue() {
    assert_one_issue(&json!([1, 2]), "Resource", "must be a JSON object");
    assert_one_issue(&json!({"id": "x"}), "resourceType", "Missing resourceType");
    assert_one_issue(
        &json!({"resourceType": 7}),
        "resourceType",
        "must be a string",
    );
    assert_one_issue(
        &json!({"resourceType": "Spaceship"}),
        "resourceType",
        "Unknown resource type",
    );
    assert_one_issue(
        &json!({"resourceType": "Project"}),
        "resourceType",
        "Unknown resource type",
    );
    assert_one_issue(
        &json!({"resourceType": "AsyncJob", "status": "accepted", "request": "x"}),
        "AsyncJob",
        "managed by the server",
    );
}

#[test]
fn medplum_additions_to_r4_types_are_not_accepted() {
    assert_one_issue(
        &json!({"resourceType": "Patient", "meta": {"project": "p"}}),
        "Patient.meta.project",
        "Unknown element",
    );
    assert_one_issue(
        &json!({"resourceType": "Patient", "managingOrganization": {"resource": {"resourceType": "Organization"}}}),
        "Patient.managingOrganization.resource",
        "Unknown element",
    );
}

#[test]
fn issues_are_capped_ordered_and_stable() {
    let mut patient = serde_json::Map::new();
    patient.insert("resourceType".into(), json!("Patient"));
    for i in 0..30 {
        patient.insert(format!("unknown{i:02}"), json!(i));
    }
    patient.insert("active".into(), json!("no"));
    let patient = Value::Object(patient);
    let first = validate(&patient).unwrap_err();
    assert_eq!(first.len(), MAX_ISSUES);
    assert_eq!(first[0].path, "Patient.unknown00");
    assert_eq!(first[18].path, "Patient.unknown18");
    assert_eq!(first[19].message, "12 more issues not shown");
    for _ in 0..5 {
        assert_eq!(validate(&patient).unwrap_err(), first);
    }
}

#[test]
fn long_values_are_cut_short() {
    let long = "x".repeat(10_000);
    let found = issues(&json!({"resourceType": "Patient", "gender": long}));
    assert_eq!(found.len(), 1);
    assert!(found[0].1.len() < 300, "{}", found[0].1);
    assert!(found[0].1.contains('…'));
    let found = issues(&json!({"resourceType": "Patient", long.clone(): 1}));
    assert!(
        found[0].0.len() < 100 && found[0].1.len() < 100,
        "{found:?}"
    );
}

#[test]
fn every_r4_type_compiles_and_validates() {
    let start = Instant::now();
    for t in resource_type::all() {
        let resource = json!({ "resourceType": t });
        let one = Instant::now();
        // Many types have required elements: only "no panic, an answer" is asserted.
        let result = validate(&resource);
        if let Err(issues) = &result {
            assert!(!issues.is_empty() && issues.len() <= MAX_ISSUES, "{t}");
            assert!(
                issues.iter().all(|i| i.path.starts_with(t)),
                "{t}: {issues:?}"
            );
        }
        assert!(
            one.elapsed() < Duration::from_secs(30),
            "{t} took {:?}",
            one.elapsed()
        );
    }
    println!(
        "compiled and ran the validators of {} types in {:?}",
        resource_type::all().len(),
        start.elapsed()
    );
}

#[test]
fn precompile_reports_unknown_types() {
    assert!(precompile(["Patient", "Observation"]).is_ok());
    assert!(precompile(["Spaceship"]).is_err());
}

/// Not a benchmark (timings are never asserted): prints what validating typical resources
/// costs after warm-up. Run with `cargo test -p oxifhir-model --release -- --nocapture timing`.
#[test]
fn timing_of_typical_resources() {
    for (name, text) in [("Patient", PATIENT), ("Observation", OBSERVATION)] {
        let resource = parse(text);
        let compile = Instant::now();
        assert!(validate(&resource).is_ok());
        let first = compile.elapsed();
        let rounds = 20_000u32;
        let start = Instant::now();
        for _ in 0..rounds {
            assert!(validate(std::hint::black_box(&resource)).is_ok());
        }
        println!(
            "validate {name}: first call {first:?}, then {:?} per resource",
            start.elapsed() / rounds
        );
    }
}

#[test]
fn element_names_and_required_elements_come_from_the_schema() {
    let names = element_names("Observation");
    for name in ["status", "code", "subject", "valueQuantity", "id", "meta"] {
        assert!(names.iter().any(|n| n == name), "{name}");
    }
    assert!(!names.iter().any(|n| n.starts_with('_')));
    assert_eq!(required_elements("Observation"), ["code", "resourceType"]);
    assert!(element_names("Nope").is_empty());
    assert!(required_elements("AsyncJob").is_empty());
}

#[test]
fn complex_types_must_be_objects() {
    let p = parse(r#"{"resourceType": "Patient", "name": [1]}"#);
    assert_one_issue(&p, "Patient.name[0]", "Expected an object, found number 1");
    let p = parse(r#"{"resourceType": "Patient", "extension": [[[]]]}"#);
    assert_one_issue(
        &p,
        "Patient.extension[0]",
        "Expected an object, found an array",
    );
    let p = parse(r#"{"resourceType": "Patient", "managingOrganization": "Organization/1"}"#);
    assert_one_issue(&p, "Patient.managingOrganization", "Expected an object");
}

#[test]
fn numbers_beyond_f64_and_nul_characters_are_refused() {
    let o = parse(
        r#"{"resourceType": "Observation", "status": "final", "code": {"text": "x"},
            "valueQuantity": {"value": 1e400}}"#,
    );
    assert_one_issue(&o, "Observation.valueQuantity.value", "beyond the range");
    let digits = "9".repeat(400);
    let o = parse(&format!(
        r#"{{"resourceType": "Observation", "status": "final", "code": {{"text": "x"}},
            "valueQuantity": {{"value": -{digits}}}}}"#
    ));
    assert_one_issue(&o, "Observation.valueQuantity.value", "beyond the range");
    // Tiny numbers round to zero; that is representable.
    let o = parse(
        r#"{"resourceType": "Observation", "status": "final", "code": {"text": "x"},
            "valueQuantity": {"value": 1e-400}}"#,
    );
    assert_valid(&o);
    let p = parse(r#"{"resourceType": "Patient", "name": [{"given": ["a", "b\u0000c"]}]}"#);
    assert_one_issue(&p, "Patient.name[0].given[1]", "NUL");
}
