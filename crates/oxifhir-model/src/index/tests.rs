//! Extraction tests: a resource, a parameter, and the entries expected for it, each written
//! as one line (`system|code|text`, `Type/id @ url`, `start..end`, `value [low, high]`).

use serde_json::{Value, json};

use super::*;
use crate::Instant;

fn millis(ms: i64) -> String {
    match ms {
        i64::MIN => "-inf".to_string(),
        i64::MAX => "+inf".to_string(),
        ms => Instant::from_millis(ms).to_string(),
    }
}

fn num(v: f64) -> String {
    match v {
        f64::MIN => "-inf".to_string(),
        f64::MAX => "+inf".to_string(),
        v => v.to_string(),
    }
}

fn opt(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("-")
}

/// Every entry of parameter `param`, one line each, in the order extracted.
fn render(entries: &IndexEntries, param: &str) -> Vec<String> {
    let mut out = Vec::new();
    let p = |name: &String| name == param;
    for e in entries.strings.iter().filter(|e| p(&e.param)) {
        out.push(format!("{} / {}", e.normalized, e.exact));
    }
    for e in entries.tokens.iter().filter(|e| p(&e.param)) {
        out.push(format!(
            "{}|{}|{}",
            opt(&e.system),
            opt(&e.code),
            opt(&e.text)
        ));
    }
    for e in entries.references.iter().filter(|e| p(&e.param)) {
        out.push(format!(
            "{}/{} @ {}",
            opt(&e.target_type),
            opt(&e.target_id),
            e.url
        ));
    }
    for e in entries.dates.iter().filter(|e| p(&e.param)) {
        out.push(format!("{}..{}", millis(e.start), millis(e.end)));
    }
    for e in entries.numbers.iter().filter(|e| p(&e.param)) {
        out.push(format!(
            "{} [{}, {}]",
            num(e.value),
            num(e.low),
            num(e.high)
        ));
    }
    for e in entries.quantities.iter().filter(|e| p(&e.param)) {
        out.push(format!(
            "{} [{}, {}] {}|{}|{}",
            num(e.value),
            num(e.low),
            num(e.high),
            opt(&e.system),
            opt(&e.code),
            opt(&e.unit)
        ));
    }
    for e in entries.uris.iter().filter(|e| p(&e.param)) {
        out.push(e.value.clone());
    }
    out
}

pub(super) fn check(resource: &Value, param: &str, expected: &[&str]) {
    let resource_type = resource["resourceType"].as_str().unwrap();
    let entries = extract(resource_type, resource);
    assert_eq!(render(&entries, param), expected, "{resource_type} {param}");
}

pub(super) fn patient() -> Value {
    json!({
        "resourceType": "Patient",
        "id": "p1",
        "meta": {
            "lastUpdated": "2024-05-06T07:08:09.123Z",
            "profile": ["http://example.org/StructureDefinition/p"],
            "tag": [{"system": "http://example.org/tags", "code": "vip", "display": "VIP"}]
        },
        "identifier": [
            {"system": "http://example.org/mrn", "value": "123", "type": {"text": "Medical Record"}},
            {"value": "456"}
        ],
        "name": [
            {"family": "Müller", "given": ["Anna", "Zoë"], "prefix": ["Dr."]},
            {"text": "Anna Müller", "given": ["Anna"]}
        ],
        "telecom": [
            {"system": "phone", "value": "+41 555"},
            {"system": "email", "value": "anna@example.org", "use": "work"}
        ],
        "gender": "female",
        "birthDate": "1980-02",
        "address": [{"line": ["Hauptstraße 1"], "city": "Zürich", "postalCode": "8000"}],
        "generalPractitioner": [
            {"reference": "Practitioner/d1"},
            {"reference": "http://other.org/fhir/Organization/o2/_history/7"},
            {"reference": "urn:uuid:3f2504e0-4f89-11d3-9a0c-0305e82c3301"},
            {"display": "no reference"}
        ]
    })
}

#[test]
fn patient_parameters() {
    let p = patient();
    check(
        &p,
        "name",
        &[
            "muller / Müller",
            "anna / Anna",
            "zoe / Zoë",
            "dr. / Dr.",
            "anna muller / Anna Müller",
        ],
    );
    check(&p, "family", &["muller / Müller"]);
    check(&p, "given", &["anna / Anna", "zoe / Zoë"]);
    check(
        &p,
        "birthdate",
        &["1980-02-01T00:00:00.000Z..1980-02-29T23:59:59.999Z"],
    );
    check(&p, "gender", &["-|female|-"]);
    check(
        &p,
        "identifier",
        &["http://example.org/mrn|123|medical record", "-|456|-"],
    );
    check(
        &p,
        "telecom",
        &["phone|+41 555|-", "email|anna@example.org|-"],
    );
    check(&p, "phone", &["phone|+41 555|-"]);
    check(&p, "email", &["email|anna@example.org|-"]);
    check(&p, "address-city", &["zurich / Zürich"]);
    check(
        &p,
        "address",
        &[
            "hauptstraße 1 / Hauptstraße 1",
            "zurich / Zürich",
            "8000 / 8000",
        ],
    );
    check(
        &p,
        "general-practitioner",
        &[
            "Practitioner/d1 @ Practitioner/d1",
            "Organization/o2 @ http://other.org/fhir/Organization/o2/_history/7",
            "-/- @ urn:uuid:3f2504e0-4f89-11d3-9a0c-0305e82c3301",
        ],
    );
    check(&p, "deceased", &["-|false|-"]);
    check(&p, "_id", &[]);
    check(&p, "_lastUpdated", &[]);
    check(
        &p,
        "_profile",
        &["http://example.org/StructureDefinition/p"],
    );
    check(&p, "_tag", &["http://example.org/tags|vip|vip"]);
    check(&p, "_security", &[]);
    check(&p, "active", &[]);
}

pub(super) fn observation() -> Value {
    let mut o = json!({
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "category": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "vital-signs",
            "display": "Vital Signs"
        }]}],
        "code": {
            "coding": [
                {"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"},
                {"system": "http://snomed.info/sct", "code": "364075005"}
            ],
            "text": "Pulse"
        },
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2024-03-01T10:00:00+01:00",
        "valueQuantity": {
            "value": 72.50,
            "unit": "beats/min",
            "system": "http://unitsofmeasure.org",
            "code": "/min"
        },
        "component": [
            {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
             "valueQuantity": {"value": 120}},
            {"code": {"text": "free text only"}, "valueString": "x"}
        ]
    });
    // `json!` would write 72.50 as 72.5; the precision is the point.
    o["valueQuantity"]["value"] = Value::Number("72.50".parse().unwrap());
    o
}

#[test]
fn observation_parameters() {
    let o = observation();
    check(
        &o,
        "code",
        &[
            "http://loinc.org|8867-4|pulse",
            "http://snomed.info/sct|364075005|pulse",
        ],
    );
    check(
        &o,
        "category",
        &["http://terminology.hl7.org/CodeSystem/observation-category|vital-signs|vital signs"],
    );
    check(&o, "subject", &["Patient/p1 @ Patient/p1"]);
    check(&o, "patient", &["Patient/p1 @ Patient/p1"]);
    check(
        &o,
        "date",
        &["2024-03-01T09:00:00.000Z..2024-03-01T09:00:00.999Z"],
    );
    check(
        &o,
        "value-quantity",
        &["72.5 [72.495, 72.505] http://unitsofmeasure.org|/min|beats/min"],
    );
    check(
        &o,
        "component-code",
        &["http://loinc.org|8480-6|-", "-|-|free text only"],
    );
    check(
        &o,
        "component-value-quantity",
        &["120 [119.5, 120.5] -|-|-"],
    );
    check(&o, "value-string", &[]);
    check(&o, "status", &["-|final|-"]);

    // A subject that is a Group is a subject, not a patient.
    let mut group = o.clone();
    group["subject"] = json!({"reference": "http://example.org/fhir/Group/g1"});
    check(
        &group,
        "subject",
        &["Group/g1 @ http://example.org/fhir/Group/g1"],
    );
    check(&group, "patient", &[]);

    // The effective period of a choice element.
    let mut period = o.clone();
    let map = period.as_object_mut().unwrap();
    map.remove("effectiveDateTime");
    map.insert("effectivePeriod".into(), json!({"start": "2024-03-01"}));
    check(&period, "date", &["2024-03-01T00:00:00.000Z..+inf"]);
}

#[test]
fn condition_encounter_and_medication_parameters() {
    let condition = json!({
        "resourceType": "Condition",
        "clinicalStatus": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
            "code": "active"
        }]},
        "subject": {"reference": "Patient/p1"},
        "onsetDateTime": "2023"
    });
    check(
        &condition,
        "clinical-status",
        &["http://terminology.hl7.org/CodeSystem/condition-clinical|active|-"],
    );
    check(
        &condition,
        "onset-date",
        &["2023-01-01T00:00:00.000Z..2023-12-31T23:59:59.999Z"],
    );
    let aged = json!({
        "resourceType": "Condition",
        "onsetAge": {"value": 40, "unit": "a", "system": "http://unitsofmeasure.org", "code": "a"},
        "abatementRange": {"low": {"value": 50, "code": "a"}}
    });
    check(&aged, "onset-date", &[]);
    check(
        &aged,
        "onset-age",
        &[
            "40 [39.5, 40.5] http://unitsofmeasure.org|a|a",
            // Again in the canonical UCUM unit of time, for searches in other units.
            "1262304000 [1246525200, 1278082800] http://unitsofmeasure.org|s|-",
        ],
    );
    check(&aged, "abatement-age", &["50 [49.5, +inf] -|a|-"]);

    let encounter = json!({
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "period": {"start": "2024-01-01T08:00:00Z", "end": "2024-01-01T09:30:00Z"},
        "length": {"value": 90, "unit": "min"}
    });
    check(
        &encounter,
        "date",
        &["2024-01-01T08:00:00.000Z..2024-01-01T09:30:00.999Z"],
    );
    check(
        &encounter,
        "class",
        &["http://terminology.hl7.org/CodeSystem/v3-ActCode|AMB|-"],
    );
    check(&encounter, "length", &["90 [89.5, 90.5] -|-|min"]);

    let coded = json!({
        "resourceType": "MedicationRequest",
        "medicationCodeableConcept": {"coding": [{
            "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
            "code": "1049502",
            "display": "Acetaminophen"
        }]},
        "subject": {"reference": "Patient/p1"}
    });
    check(
        &coded,
        "code",
        &["http://www.nlm.nih.gov/research/umls/rxnorm|1049502|acetaminophen"],
    );
    check(&coded, "medication", &[]);
    let referenced = json!({
        "resourceType": "MedicationRequest",
        "medicationReference": {"reference": "Medication/m1"}
    });
    check(&referenced, "code", &[]);
    check(
        &referenced,
        "medication",
        &["Medication/m1 @ Medication/m1"],
    );
}

#[test]
fn numbers_keep_their_precision() {
    let risk: Value = crate::json::parse(
        br#"{"resourceType":"RiskAssessment","prediction":[
            {"probabilityDecimal":0.50},{"probabilityDecimal":3},{"probabilityDecimal":1.0e2},
            {"probabilityDecimal":0.50},{"probabilityRange":{"low":{"value":0.1},"high":{"value":0.2}}}
        ]}"#,
    )
    .unwrap();
    check(
        &risk,
        "probability",
        &[
            "0.5 [0.495, 0.505]",
            "3 [2.5, 3.5]",
            "100 [95, 105]",
            "0.1 [0.05, 0.25]",
        ],
    );
    let invoice: Value = crate::json::parse(
        br#"{"resourceType":"Invoice","status":"issued","totalGross":{"value":12.30,"currency":"EUR"}}"#,
    )
    .unwrap();
    check(
        &invoice,
        "totalgross",
        &["12.3 [12.295, 12.305] urn:iso:std:iso:4217|EUR|-"],
    );
}

#[test]
fn other_shapes() {
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "document",
        "entry": [{"resource": {"resourceType": "Composition", "id": "c1"}}]
    });
    check(&bundle, "composition", &["Composition/c1 @ Composition/c1"]);
    check(&bundle, "type", &["-|document|-"]);
    let response = json!({
        "resourceType": "QuestionnaireResponse",
        "questionnaire": "http://example.org/Questionnaire/q1|2.0"
    });
    check(
        &response,
        "questionnaire",
        &["-/- @ http://example.org/Questionnaire/q1|2.0"],
    );
    let plan = json!({
        "resourceType": "CarePlan",
        "activity": [{"detail": {"scheduledTiming": {
            "event": ["2024-02-01", "2024-01-15T10:00:00Z"],
            "repeat": {"boundsPeriod": {"start": "2024-01-20", "end": "2024-03-01"}}
        }}}]
    });
    check(
        &plan,
        "activity-date",
        &["2024-01-15T10:00:00.000Z..2024-03-01T23:59:59.999Z"],
    );
    let group = json!({
        "resourceType": "Group",
        "characteristic": [
            {"code": {"text": "smoker"}, "valueBoolean": true, "exclude": false},
            {"code": {"text": "smoker"}, "valueBoolean": true, "exclude": false}
        ]
    });
    check(&group, "value", &["-|true|-"]);
    check(&group, "characteristic", &["-|-|smoker"]);
}

#[test]
fn normalization() {
    for (input, expected) in [
        ("Müller", "muller"),
        ("ÉLODIE", "elodie"),
        ("Ångström", "angstrom"),
        ("plain ASCII", "plain ascii"),
        ("Straße", "straße"),
        ("Dvořák", "dvorak"),
        ("Ελένη", "ελενη"),
        // Not accents: the voicing mark of が and Devanagari vowel signs stay.
        ("が", "\u{304B}\u{3099}"),
        ("हिन्दी", "हिन्दी"),
    ] {
        assert_eq!(normalize(input), expected, "{input}");
    }
}

#[test]
fn many_repeats_are_removed() {
    let names: Vec<Value> = (0..500)
        .map(|i| json!({"family": format!("F{}", i % 50)}))
        .collect();
    let p = json!({"resourceType": "Patient", "name": names});
    assert_eq!(render(&extract("Patient", &p), "family").len(), 50);
}
