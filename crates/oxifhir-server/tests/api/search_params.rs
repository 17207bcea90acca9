//! Search by every parameter type, with modifiers and prefixes, over the fixtures below;
//! each expected result was worked out by hand from them.

use crate::support::*;

use serde_json::{Value, json};

/// Patients pa, pb, pc and Organization org1; Observations o1..o4; RiskAssessments rs1..rs3;
/// ValueSets vs1..vs3. Ids are chosen, so results (ordered by id) are predictable.
pub async fn seed(s: &TestServer) {
    let resources = [
        json!({"resourceType": "Organization", "id": "org1", "name": "Acme Health"}),
        json!({"resourceType": "Patient", "id": "pa", "active": true, "gender": "female",
            "birthDate": "1980-05-01",
            "name": [{"family": "Müller", "given": ["Anna"]}],
            "identifier": [{"system": "urn:mrn", "value": "123", "type": {
                "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}],
                "text": "Medical record"}}],
            "managingOrganization": {"reference": "Organization/org1"}}),
        json!({"resourceType": "Patient", "id": "pb", "active": false, "gender": "male",
            "birthDate": "1990",
            "name": [{"family": "Smith", "given": ["John"]}],
            "identifier": [{"system": "urn:mrn", "value": "456"}]}),
        json!({"resourceType": "Patient", "id": "pc",
            "name": [{"family": "Smithson"}],
            "identifier": [{"value": "123"}],
            "managingOrganization": {"reference": "Organization/org1"}}),
        json!({"resourceType": "Observation", "id": "o1", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
            "subject": {"reference": "Patient/pa"},
            "effectiveDateTime": "2021-01-15T10:00:00Z",
            "valueQuantity": {"value": 72, "unit": "beats/minute", "system": "http://unitsofmeasure.org", "code": "/min"}}),
        json!({"resourceType": "Observation", "id": "o2", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}], "text": "Systolic blood pressure"},
            "subject": {"reference": "Patient/pb"},
            "effectiveDateTime": "2021-02-01",
            "valueQuantity": {"value": 120, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}),
        json!({"resourceType": "Observation", "id": "o3", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "subject": {"reference": "Patient/pc"},
            "effectivePeriod": {"start": "2020-12-30", "end": "2021-01-02"},
            "valueQuantity": {"value": 95.5, "unit": "/min"}}),
        json!({"resourceType": "Observation", "id": "o4", "status": "preliminary",
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "8867-4"}]},
            "subject": {"reference": "http://other.org/fhir/Patient/pa"}}),
        json!({"resourceType": "RiskAssessment", "id": "rs1", "status": "final",
            "subject": {"reference": "Patient/pa"}, "prediction": [{"probabilityDecimal": 0.8}]}),
        json!({"resourceType": "RiskAssessment", "id": "rs2", "status": "final",
            "subject": {"reference": "Patient/pb"}, "prediction": [{"probabilityDecimal": 0.25}]}),
        json!({"resourceType": "RiskAssessment", "id": "rs3", "status": "final",
            "subject": {"reference": "Patient/pc"}, "prediction": [{"probabilityDecimal": 0.83}]}),
        json!({"resourceType": "ValueSet", "id": "vs1", "status": "active", "url": "http://example.org/fhir/ValueSet/a"}),
        json!({"resourceType": "ValueSet", "id": "vs2", "status": "active", "url": "http://example.org/fhir/ValueSet/a/b"}),
        json!({"resourceType": "ValueSet", "id": "vs3", "status": "active", "url": "http://example.org/other"}),
    ];
    for r in resources {
        let path = format!(
            "{}/{}",
            r["resourceType"].as_str().unwrap(),
            r["id"].as_str().unwrap()
        );
        let reply = s.put(&path, &r).await;
        assert_eq!(reply.status, 201, "{path}: {}", reply.text());
    }
}

/// The ids of the `match` entries of a search, in order (panics unless `200`).
pub async fn found(s: &TestServer, path: &str) -> Vec<String> {
    let r = s
        .send("GET", path, &[("prefer", "handling=strict")], None)
        .await;
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    ids_of(&r.json(), "match")
}

/// The resource ids of the entries with `search.mode` = `mode`.
pub fn ids_of(bundle: &Value, mode: &str) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|e| e["search"]["mode"] == mode)
        .map(|e| e["resource"]["id"].as_str().unwrap_or("?").to_string())
        .collect()
}

macro_rules! expect {
    ($s:expr, $($path:expr => [$($id:expr),*]),+ $(,)?) => {$(
        assert_eq!(found($s, $path).await, Vec::<&str>::from([$($id),*]), "{}", $path);
    )+};
}

fhir_test! {
    async fn strings_tokens_and_modifiers(s: &TestServer) {
        seed(s).await;
        expect!(s,
            "Patient?name=smi" => ["pb", "pc"],
            "Patient?name=MÜL" => ["pa"],
            "Patient?family=mul" => ["pa"],
            "Patient?name:exact=Smith" => ["pb"],
            "Patient?name:exact=smith" => [],
            "Patient?name:contains=LL" => ["pa"],
            "Patient?name:contains=th" => ["pb", "pc"],
            "Patient?name=anna,john" => ["pa", "pb"],
            "Patient?name=smith&name=john" => ["pb"],
            "Patient?gender=female" => ["pa"],
            "Patient?gender=female,male" => ["pa", "pb"],
            "Patient?gender:not=female" => ["pb", "pc"],
            "Patient?gender:missing=true" => ["pc"],
            "Patient?gender:missing=false" => ["pa", "pb"],
            "Patient?active=true" => ["pa"],
            "Patient?identifier=123" => ["pa", "pc"],
            "Patient?identifier=urn:mrn|123" => ["pa"],
            "Patient?identifier=|123" => ["pc"],
            "Patient?identifier=urn:mrn|" => ["pa", "pb"],
            "Patient?identifier:text=medical" => ["pa"],
            "Observation?code=8867-4" => ["o1", "o3", "o4"],
            "Observation?code=http://loinc.org|8867-4" => ["o1", "o3"],
            "Observation?code=http://loinc.org|8867-4,http://loinc.org|8480-6" => ["o1", "o2", "o3"],
            "Observation?code:text=heart" => ["o1"],
            "Observation?code:text=BLOOD" => ["o2"],
            "Observation?code:not=http://loinc.org|8867-4" => ["o2", "o4"],
            "Observation?status=final&code=8867-4" => ["o1", "o3"],
        );
    }
}

fhir_test! {
    async fn references_chains_and_reverse_chains(s: &TestServer) {
        seed(s).await;
        let own = format!("Observation?subject={}", s.url("Patient/pa"));
        expect!(s,
            "Observation?subject=Patient/pa" => ["o1"],
            "Observation?subject=pa" => ["o1"],
            "Observation?subject:Patient=pa" => ["o1"],
            "Observation?subject=Patient/pa,Patient/pb" => ["o1", "o2"],
            &own => ["o1"],
            "Observation?subject=http://other.org/fhir/Patient/pa" => ["o4"],
            "Observation?patient=Patient/pc" => ["o3"],
            "Observation?subject:missing=true" => [],
            "Observation?subject:Patient.name=smi" => ["o2", "o3"],
            "Observation?subject.gender=male" => ["o2"],
            "Observation?subject:Patient._id=pc" => ["o3"],
            "Patient?organization.name=acme" => ["pa", "pc"],
            "Patient?organization:Organization.name:exact=Acme" => [],
            "Patient?_has:Observation:subject:code=8480-6" => ["pb"],
            "Patient?_has:Observation:patient:code=http://loinc.org|8867-4" => ["pa", "pc"],
            "Patient?_has:RiskAssessment:subject:probability=gt0.5&gender=female" => ["pa"],
        );
        assert_eq!(s.get("Observation?subject=Patient/not%20an%20id").await.status, 400);
        assert_eq!(s.get("Observation?subject:Medication=1").await.status, 400);
        assert_eq!(s.get("Observation?subject.name.given=x").await.status, 400);
    }
}

fhir_test! {
    async fn dates_numbers_quantities_and_uris(s: &TestServer) {
        seed(s).await;
        expect!(s,
            // o1 2021-01-15T10:00:00Z, o2 2021-02-01, o3 2020-12-30..2021-01-02, o4 none.
            "Observation?date=2021-01" => ["o1"],
            "Observation?date=2021" => ["o1", "o2"],
            "Observation?date=2021-01-15T10:00:00Z" => ["o1"],
            "Observation?date=2021-01-15T11:00:00%2B01:00" => ["o1"],
            "Observation?date=ne2021-01" => ["o2", "o3"],
            "Observation?date=gt2021-01" => ["o2"],
            "Observation?date=lt2021-01" => ["o3"],
            "Observation?date=ge2021-01" => ["o1", "o2"],
            "Observation?date=le2021-01" => ["o1", "o3"],
            "Observation?date=sa2021-01" => ["o2"],
            "Observation?date=eb2021-01-10" => ["o3"],
            "Observation?date=ge2021-01-01&date=lt2021-02-01" => ["o1", "o3"],
            "Observation?date:missing=true" => ["o4"],
            "Patient?birthdate=1980" => ["pa"],
            "Patient?birthdate=lt1985" => ["pa"],
            "Patient?birthdate=1990-06" => [],
            "Patient?birthdate=ge1990-06" => ["pb"],
            "Patient?birthdate=1980-05-01,1990" => ["pa", "pb"],
            // probability: rs1 0.8, rs2 0.25, rs3 0.83.
            "RiskAssessment?probability=0.8" => ["rs1", "rs3"],
            "RiskAssessment?probability=0.80" => ["rs1"],
            "RiskAssessment?probability=ne0.80" => ["rs2", "rs3"],
            "RiskAssessment?probability=gt0.5" => ["rs1", "rs3"],
            "RiskAssessment?probability=lt0.5" => ["rs2"],
            "RiskAssessment?probability=ge0.83" => ["rs3"],
            "RiskAssessment?probability=le0.8" => ["rs1", "rs2"],
            "RiskAssessment?probability=ap0.8" => ["rs1", "rs3"],
            // value-quantity: o1 72 UCUM /min, o2 120 UCUM mm[Hg], o3 95.5 unit "/min".
            "Observation?value-quantity=gt80" => ["o2", "o3"],
            "Observation?value-quantity=gt80||/min" => ["o3"],
            "Observation?value-quantity=le100|http://unitsofmeasure.org|/min" => ["o1"],
            "Observation?value-quantity=72|http://unitsofmeasure.org|/min" => ["o1"],
            "Observation?value-quantity:missing=true" => ["o4"],
            "ValueSet?url=http://example.org/fhir/ValueSet/a" => ["vs1"],
            "ValueSet?url:below=http://example.org/fhir/ValueSet/a" => ["vs1", "vs2"],
            "ValueSet?url:below=http://example.org/fhir" => ["vs1", "vs2"],
            "ValueSet?url:above=http://example.org/fhir/ValueSet/a/b/c" => ["vs1", "vs2"],
            "ValueSet?url:above=http://example.org/fhir/ValueSet/a" => ["vs1"],
        );
        for bad in [
            "Observation?date=2021-13",
            "Observation?date=yesterday",
            "RiskAssessment?probability=high",
            "Observation?value-quantity=5|mg",
            "Observation?value-quantity=abc",
            "Patient?gender:missing=perhaps",
        ] {
            let r = s.get(bad).await;
            assert_eq!(r.status, 400, "{bad}: {}", r.text());
            assert_eq!(r.json()["resourceType"], "OperationOutcome");
        }
    }
}

fhir_test! {
    async fn sorting_by_parameters(s: &TestServer) {
        seed(s).await;
        expect!(s,
            "Patient?_sort=birthdate" => ["pa", "pb", "pc"],
            "Patient?_sort=-birthdate" => ["pb", "pa", "pc"],
            "Patient?_sort=family" => ["pa", "pb", "pc"],
            "Patient?_sort=-family" => ["pc", "pb", "pa"],
            "Patient?_sort=gender,-_id" => ["pa", "pb", "pc"],
            "Observation?_sort=-date" => ["o2", "o1", "o3", "o4"],
            "Observation?_sort=code,-value-quantity" => ["o2", "o3", "o1", "o4"],
            "RiskAssessment?_sort=-probability" => ["rs3", "rs1", "rs2"],
        );
    }
}

fhir_test! {
    async fn includes_elements_post_and_system_search(s: &TestServer) {
        seed(s).await;
        let b = s.get("Observation?_id=o1,o2&_include=Observation:subject").await.json();
        assert_eq!(ids_of(&b, "match"), ["o1", "o2"]);
        assert_eq!(ids_of(&b, "include"), ["pa", "pb"]);
        assert_eq!(b["total"], 2, "includes are not counted");
        let b = s.get("Observation?_id=o1,o4&_include=Observation:subject:Group").await.json();
        assert!(ids_of(&b, "include").is_empty());
        let b = s
            .get("Observation?_id=o1&_include=Observation:subject&_include:iterate=Patient:organization")
            .await
            .json();
        assert_eq!(ids_of(&b, "include"), ["pa", "org1"]);
        let b = s.get("Patient?_id=pa&_revinclude=Observation:subject&_revinclude=RiskAssessment:subject").await.json();
        assert_eq!(ids_of(&b, "include"), ["o1", "rs1"]);
        let b = s.get("Organization?_revinclude=Patient:organization&_revinclude:iterate=Observation:subject").await.json();
        assert_eq!(ids_of(&b, "include"), ["pa", "pc", "o1", "o3"]);
        let b = s.get("Patient?_id=pa&_include=Patient:*").await.json();
        assert_eq!(ids_of(&b, "include"), ["org1"]);

        let b = s.get("Patient?_id=pa&_elements=gender,birthDate").await.json();
        let p = &b["entry"][0]["resource"];
        assert_eq!(p["gender"], "female");
        assert_eq!(p["birthDate"], "1980-05-01");
        assert!(p.get("name").is_none() && p.get("identifier").is_none());
        assert!(p["meta"]["tag"].as_array().unwrap().iter().any(|t| t["code"] == "SUBSETTED"));

        let r = s.send("POST", "Patient/_search", &[("content-type", "application/x-www-form-urlencoded")],
            Some(b"name=smi&_sort=-_id".to_vec())).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(ids_of(&r.json(), "match"), ["pc", "pb"]);
        let self_link = r.json()["link"][0]["url"].as_str().unwrap().to_string();
        assert!(self_link.contains("name=smi"), "{self_link}");

        expect!(s,
            "?_type=Patient,Observation&_id=pa,o1" => ["o1", "pa"],
            "?_type=Patient&name=smith" => ["pb", "pc"],
            "?_id=org1,vs1" => ["org1", "vs1"],
        );
        let r = s.send("GET", "?name=smith", &[("prefer", "handling=strict")], None).await;
        assert_eq!(r.status, 400, "name is not a parameter of every type");
    }
}

fhir_test! {
    async fn capability_statement_lists_what_works(s: &TestServer) {
        let c = s.get("metadata").await.json();
        let resources = c["rest"][0]["resource"].as_array().unwrap();
        let patient = resources.iter().find(|r| r["type"] == "Patient").unwrap();
        let names: Vec<&str> = patient["searchParam"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
        for name in ["_id", "_lastUpdated", "name", "birthdate", "identifier", "organization", "_tag"] {
            assert!(names.contains(&name), "{name} in {names:?}");
        }
        for name in ["_text", "_content", "_query"] {
            assert!(!names.contains(&name), "{name} is listed but not supported");
        }
        assert!(patient["searchInclude"].as_array().unwrap().iter().any(|i| i == "Patient:organization"));
        assert!(patient["searchRevInclude"].as_array().unwrap().iter().any(|i| i == "Observation:subject"));
        // Every listed parameter of these types is accepted, even in strict mode.
        for t in ["Patient", "Observation", "Encounter", "ValueSet", "RiskAssessment"] {
            let resource = resources.iter().find(|r| r["type"] == t).unwrap();
            for p in resource["searchParam"].as_array().unwrap() {
                let name = p["name"].as_str().unwrap();
                let value = match p["type"].as_str().unwrap() {
                    "date" => "ge2000-01-01",
                    "number" | "quantity" => "gt1",
                    // Every second component accepts `ge2000`: as a date, number, quantity,
                    // token, string, uri or reference id.
                    "composite" => "x$ge2000",
                    _ => "x",
                };
                let r = s.send("GET", &format!("{t}?{name}={value}"), &[("prefer", "handling=strict")], None).await;
                assert_eq!(r.status, 200, "{t}?{name}: {}", r.text());
            }
        }
    }
}
