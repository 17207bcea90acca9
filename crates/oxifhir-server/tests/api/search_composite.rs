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

        // A code another code begins with, a code without system, a code holding a `|`.
        let blood_pressure = |id: &str, system: Option<&str>, code: &str, value: f64| {
            let mut coding = json!({"code": code});
            if let Some(system) = system {
                coding["system"] = json!(system);
            }
            json!({"resourceType": "Observation", "id": id, "status": "final",
                "code": {"coding": [{"system": LOINC, "code": "85354-9"}]},
                "component": [{"code": {"coding": [coding]},
                    "valueQuantity": {"value": value, "system": UCUM, "code": "mm[Hg]"}}]})
        };
        for r in [
            blood_pressure("bp3", Some(LOINC), "8480", 130.0),
            blood_pressure("bp4", None, "8480-6", 150.0),
            blood_pressure("bp5", Some("urn:x"), "a|b", 5.0),
        ] {
            let path = format!("Observation/{}", r["id"].as_str().unwrap());
            assert_eq!(s.put(&path, &r).await.status, 201, "{path}");
        }
        expect!(s,
            "Observation?component-code-value-quantity=8480-6$gt90" => ["bp1", "bp2", "bp4"],
            "Observation?component-code-value-quantity=|8480-6$gt90" => ["bp4"],
            "Observation?component-code-value-quantity=http://loinc.org|8480-6$gt90" => ["bp1", "bp2"],
            "Observation?component-code-value-quantity=8480$gt90" => ["bp3"],
            "Observation?component-code-value-quantity=http://loinc.org|8480$gt90" => ["bp3"],
            "Observation?component-code-value-quantity=a\\|b$lt10" => ["bp5"],
            "Observation?component-code-value-quantity=urn:x|a\\|b$lt10" => ["bp5"],
            "Observation?component-code-value-quantity=a$lt10" => [],
            "Observation?combo-code-value-quantity=8480-6$gt140" => ["bp4"],
        );
    }
}

fhir_test! {
    /// `Observation`'s `combo-*` parameters are not indexed: each is searched (and sorted) as
    /// its two parts, `code` and `component-code` for `combo-code` and so on.
    async fn combo_parameters_are_their_parts(s: &TestServer) {
        seed(s).await;
        // sa: value 30; sb: a component of 20; sc: value 25 and a component of 40.
        let sorted = |id: &str, value: Option<f64>, part: Option<f64>| {
            let mut r = json!({"resourceType": "Observation", "id": id, "status": "final",
                "code": {"coding": [{"system": LOINC, "code": "55284-4"}]}});
            if let Some(v) = value {
                r["valueQuantity"] = json!({"value": v, "system": UCUM, "code": "mm[Hg]"});
            }
            if let Some(v) = part {
                r["component"] = json!([component("8462-4", v)]);
            }
            r
        };
        for r in [
            sorted("sa", Some(30.0), None),
            sorted("sb", None, Some(20.0)),
            sorted("sc", Some(25.0), Some(40.0)),
        ] {
            let path = format!("Observation/{}", r["id"].as_str().unwrap());
            assert_eq!(s.put(&path, &r).await.status, 201, "{path}");
        }
        expect!(s,
            "Observation?combo-code=8480-6" => ["bp1", "bp2"],
            "Observation?combo-code=http://loinc.org|85354-9" => ["bp1", "bp2"],
            "Observation?combo-code=29463-7,72166-2" => ["c1", "w1", "w2", "w3"],
            "Observation?combo-code:not=8462-4" => ["c1", "sa", "w1", "w2", "w3"],
            "Observation?combo-code:missing=true" => [],
            "Observation?combo-value-quantity:missing=true" => ["c1"],
            "Observation?combo-value-quantity:missing=false&combo-code=55284-4" => ["sa", "sb", "sc"],
            "Observation?combo-value-quantity=gt99|http://unitsofmeasure.org|mm[Hg]" => ["bp1", "bp2"],
            "Observation?combo-value-quantity=lt22|http://unitsofmeasure.org|mm[Hg]" => ["sb"],
            "Observation?combo-value-concept=8517006" => ["c1"],
            "Observation?combo-code-value-concept=72166-2$8517006" => ["c1"],
            "Observation?combo-code-value-quantity=http://loinc.org|8462-4$gt35" => ["bp1", "bp2", "sc"],
            "Observation?combo-code-value-quantity=55284-4$lt26" => ["sc"],
            "Observation?combo-code=55284-4&_sort=combo-value-quantity" => ["sb", "sc", "sa"],
            "Observation?combo-code=55284-4&_sort=-combo-value-quantity" => ["sc", "sa", "sb"],
            "Observation?combo-code=55284-4&_sort=value-quantity" => ["sc", "sa", "sb"],
        );
        // Listed, and searchable, like any other parameter.
        let statement = s.get("metadata").await.json();
        let observation = statement["rest"][0]["resource"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["type"] == "Observation")
            .cloned()
            .unwrap();
        let listed: Vec<&str> = observation["searchParam"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        for code in ["combo-code", "combo-value-quantity", "combo-code-value-quantity"] {
            assert!(listed.contains(&code), "{code} in {listed:?}");
        }
        // Reindexing one means reindexing its parts.
        let r = s
            .send(
                "POST",
                "Observation/$reindex?url=http://hl7.org/fhir/SearchParameter/Observation-combo-code",
                &[("prefer", "respond-async")],
                None,
            )
            .await;
        assert_eq!(r.status, 400, "{}", r.text());
        assert!(r.text().contains("code, component-code"), "{}", r.text());
    }
}
