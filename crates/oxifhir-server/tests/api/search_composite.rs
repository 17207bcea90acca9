//! Composite parameters (both parts on the same component), quantities across UCUM units and
//! `:of-type`, over the fixtures below; expected results worked out by hand.

use crate::search_params::found;
use crate::support::*;

use serde_json::json;

const LOINC: &str = "http://loinc.org";
const UCUM: &str = "http://unitsofmeasure.org";

fn component(code: &str, value: f64) -> serde_json::Value {
    json!({"code": {"coding": [{"system": LOINC, "code": code}]},
        "valueQuantity": {"value": value, "system": UCUM, "code": "mm[Hg]"}})
}

fn weight(id: &str, value: f64, unit: &str) -> serde_json::Value {
    json!({"resourceType": "Observation", "id": id, "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "29463-7"}]},
        "valueQuantity": {"value": value, "system": UCUM, "code": unit}})
}

/// bp1 (systolic 120, diastolic 80), bp2 (100, 95); weights w1 70000 g, w2 72 kg,
/// w3 150 [lb_av] (68.04 kg); c1 smoking status "former smoker"; Patient pa with a typed
/// identifier.
async fn seed(s: &TestServer) {
    let resources = [
        json!({"resourceType": "Observation", "id": "bp1", "status": "final",
            "code": {"coding": [{"system": LOINC, "code": "85354-9"}]},
            "component": [component("8480-6", 120.0), component("8462-4", 80.0)]}),
        json!({"resourceType": "Observation", "id": "bp2", "status": "final",
            "code": {"coding": [{"system": LOINC, "code": "85354-9"}]},
            "component": [component("8480-6", 100.0), component("8462-4", 95.0)]}),
        weight("w1", 70000.0, "g"),
        weight("w2", 72.0, "kg"),
        weight("w3", 150.0, "[lb_av]"),
        json!({"resourceType": "Observation", "id": "c1", "status": "final",
            "code": {"coding": [{"system": LOINC, "code": "72166-2"}]},
            "valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct", "code": "8517006"}]}}),
        json!({"resourceType": "Patient", "id": "pa",
            "identifier": [
                {"system": "urn:mrn", "value": "123", "type": {"coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}},
                {"system": "urn:ssn", "value": "999", "type": {"coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "SS"}]}}]}),
    ];
    for r in resources {
        let path = format!(
            "{}/{}",
            r["resourceType"].as_str().unwrap(),
            r["id"].as_str().unwrap()
        );
        assert_eq!(s.put(&path, &r).await.status, 201, "{path}");
    }
}

macro_rules! expect {
    ($s:expr, $($path:expr => [$($id:expr),*]),+ $(,)?) => {$(
        assert_eq!(found($s, $path).await, Vec::<&str>::from([$($id),*]), "{}", $path);
    )+};
}

fhir_test! {
    async fn composites_units_and_identifier_types(s: &TestServer) {
        seed(s).await;
        expect!(s,
            "Observation?component-code-value-quantity=http://loinc.org|8480-6$gt110" => ["bp1"],
            "Observation?component-code-value-quantity=8462-4$gt90" => ["bp2"],
            "Observation?component-code-value-quantity=8480-6$gt90" => ["bp1", "bp2"],
            // 80 belongs to the diastolic component of bp1, not to its systolic one.
            "Observation?component-code-value-quantity=8480-6$lt90" => [],
            "Observation?component-code-value-quantity=|8480-6$gt90" => [],
            "Observation?component-code-value-quantity=8480-6$gt110,8462-4$gt90" => ["bp1", "bp2"],
            "Observation?combo-code-value-quantity=8480-6$lt110" => ["bp2"],
            "Observation?code-value-quantity=http://loinc.org|29463-7$ge68|http://unitsofmeasure.org|kg" => ["w1", "w2", "w3"],
            "Observation?combo-code-value-quantity=29463-7$gt71000|http://unitsofmeasure.org|g" => ["w2"],
            "Observation?value-quantity=70|http://unitsofmeasure.org|kg" => ["w1"],
            "Observation?value-quantity=70000|http://unitsofmeasure.org|g" => ["w1"],
            "Observation?value-quantity=lt69000|http://unitsofmeasure.org|g" => ["w3"],
            "Observation?value-quantity=gt0.15|http://unitsofmeasure.org|[lb_av]" => ["w1", "w2", "w3"],
            "Observation?code-value-concept=http://loinc.org|72166-2$http://snomed.info/sct|8517006" => ["c1"],
            "Observation?code-value-concept=72166-2$8517006" => ["c1"],
            "Observation?code-value-concept=72166-2$8517007" => [],
            "Patient?identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|123" => ["pa"],
            "Patient?identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|999" => [],
            "Patient?identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|SS|999" => ["pa"],
        );
        for bad in [
            "Observation?component-code-value-quantity=8480-6",
            "Observation?component-code-value-quantity=8480-6$abc",
            "Observation?component-code-value-quantity=http://loinc.org|$gt1",
            "Observation?component-code-value-quantity:missing=true",
            "Patient?identifier:of-type=MR|123",
        ] {
            assert_eq!(s.get(bad).await.status, 400, "{bad}");
        }
    }
}
