//! Bulk Data `$export` (DESIGN.md §4): kick-off rules at each level, the manifest, the files,
//! which resources each parameter selects (expected sets computed here, independently of the
//! server), the consistent cut, file splitting, cancellation and the CapabilityStatement.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use oxifhir_server::ExportConfig;
use serde_json::{Value, json};

use crate::support::{Reply, TestOptions, TestServer, outcome_text};

const ASYNC: (&str, &str) = ("prefer", "respond-async");

/// Type → sorted ids, as found in export files or as expected.
type Found = BTreeMap<String, BTreeSet<String>>;

fn expected(items: &[(&str, &str)]) -> Found {
    let mut out = Found::new();
    for (t, id) in items {
        out.entry((*t).to_owned())
            .or_default()
            .insert((*id).to_owned());
    }
    out
}

/// Kicks off an export by GET and returns the status URL.
pub(crate) async fn kickoff(s: &TestServer, path: &str) -> String {
    let r = s.send("GET", path, &[ASYNC], None).await;
    assert_eq!(r.status, 202, "kick-off {path}: {}", r.text());
    r.header("content-location").expect("Content-Location")
}

/// Polls as a client that honours `Retry-After` until the export is done.
pub(crate) async fn wait(s: &TestServer, status_url: &str) -> Reply {
    for _ in 0..120 {
        let r = s.get(status_url).await;
        if r.status != 202 {
            return r;
        }
        assert!(r.header("x-progress").is_some(), "X-Progress");
        let wait: u64 = r
            .header("retry-after")
            .expect("Retry-After")
            .parse()
            .expect("int");
        tokio::time::sleep(Duration::from_secs(wait)).await;
    }
    panic!("{status_url} did not finish");
}

/// Runs an export by GET to completion and returns the manifest.
async fn export(s: &TestServer, path: &str) -> Value {
    let status_url = kickoff(s, path).await;
    manifest_of(s, &status_url).await
}

async fn manifest_of(s: &TestServer, status_url: &str) -> Value {
    let done = wait(s, status_url).await;
    assert_eq!(done.status, 200, "final poll: {}", done.text());
    assert_eq!(
        done.header("content-type").as_deref(),
        Some("application/json")
    );
    assert!(done.header("expires").is_some(), "Expires");
    let manifest = done.json();
    for key in [
        "transactionTime",
        "request",
        "requiresAccessToken",
        "output",
        "error",
    ] {
        assert!(
            manifest.get(key).is_some(),
            "manifest has {key}: {manifest}"
        );
    }
    assert_eq!(manifest["requiresAccessToken"], false);
    manifest
}

/// Downloads a file: status 200, NDJSON content type, every line JSON.
async fn download(s: &TestServer, url: &str) -> Vec<Value> {
    assert!(
        url.starts_with(&s.base),
        "absolute URL under the base: {url}"
    );
    let r = s.get(url).await;
    assert_eq!(r.status, 200, "{url}: {}", r.text());
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/fhir+ndjson")
    );
    let text = r.text();
    assert!(text.is_empty() || text.ends_with('\n'));
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

/// Every resource in a manifest list, checking that each line matches its file's type and
/// that each count equals the file's lines.
async fn contents(s: &TestServer, items: &Value) -> (Found, Vec<Value>) {
    let mut found = Found::new();
    let mut all = Vec::new();
    for item in items.as_array().expect("array") {
        let t = item["type"].as_str().expect("type");
        let lines = download(s, item["url"].as_str().expect("url")).await;
        assert_eq!(
            item["count"].as_u64(),
            Some(lines.len() as u64),
            "count of {item}"
        );
        for line in lines {
            assert_eq!(line["resourceType"], t, "line of a {t} file");
            let id = line["id"].as_str().unwrap_or_default().to_owned();
            let fresh = found.entry(t.to_owned()).or_default().insert(id.clone());
            assert!(fresh || id.is_empty(), "{t} repeated: {line}");
            all.push(line);
        }
    }
    (found, all)
}

async fn output(s: &TestServer, manifest: &Value) -> Found {
    contents(s, &manifest["output"]).await.0
}

/// `Type/id` of every DELETE entry in the manifest's `deleted` files.
async fn deleted(s: &TestServer, manifest: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for item in manifest["deleted"].as_array().expect("deleted") {
        assert_eq!(item["type"], "Bundle");
        let lines = download(s, item["url"].as_str().expect("url")).await;
        assert_eq!(item["count"].as_u64(), Some(lines.len() as u64));
        for bundle in lines {
            assert_eq!(bundle["type"], "transaction");
            for entry in bundle["entry"].as_array().expect("entries") {
                assert_eq!(entry["request"]["method"], "DELETE");
                out.insert(entry["request"]["url"].as_str().expect("url").to_owned());
            }
        }
    }
    out
}

async fn put(s: &TestServer, body: Value) {
    let path = format!(
        "{}/{}",
        body["resourceType"].as_str().unwrap(),
        body["id"].as_str().unwrap()
    );
    let r = s.put(&path, &body).await;
    assert!(
        r.status == 200 || r.status == 201,
        "PUT {path}: {}",
        r.text()
    );
}

fn observation(id: &str, patient: &str) -> Value {
    json!({"resourceType": "Observation", "id": id, "status": "final",
           "code": {"text": "weight"}, "subject": {"reference": format!("Patient/{patient}")}})
}

/// p1..p3 with an Observation each (o1..o3), an Encounter of p1, an Organization, and a
/// Group with members p1 and p2.
async fn seed(s: &TestServer) {
    for p in ["p1", "p2", "p3"] {
        put(
            s,
            json!({"resourceType": "Patient", "id": p, "gender": "female",
                      "name": [{"family": format!("F{p}")}]}),
        )
        .await;
    }
    for (o, p) in [("o1", "p1"), ("o2", "p2"), ("o3", "p3")] {
        put(s, observation(o, p)).await;
    }
    put(
        s,
        json!({"resourceType": "Encounter", "id": "e1", "status": "finished",
                  "class": {"code": "AMB"}, "subject": {"reference": "Patient/p1"}}),
    )
    .await;
    put(
        s,
        json!({"resourceType": "Organization", "id": "org1", "name": "Acme"}),
    )
    .await;
    put(
        s,
        json!({"resourceType": "Group", "id": "g1", "type": "person", "actual": true,
                  "member": [{"entity": {"reference": "Patient/p1"}},
                             {"entity": {"reference": "Patient/p2"}}]}),
    )
    .await;
}

fhir_test! {
    async fn system_export_writes_every_resource_once(s: &TestServer) {
        seed(s).await;
        let manifest = export(s, "$export").await;
        assert_eq!(manifest["request"], format!("{}/$export", s.base));
        assert_eq!(manifest["error"], json!([]));
        assert_eq!(manifest["deleted"], json!([]));
        assert_eq!(
            output(s, &manifest).await,
            expected(&[("Patient", "p1"), ("Patient", "p2"), ("Patient", "p3"),
                       ("Observation", "o1"), ("Observation", "o2"), ("Observation", "o3"),
                       ("Encounter", "e1"), ("Organization", "org1"), ("Group", "g1")])
        );
        // Stored bytes, byte for byte.
        let url = manifest["output"].as_array().unwrap().iter()
            .find(|i| i["type"] == "Organization").unwrap()["url"].as_str().unwrap().to_owned();
        let line = s.get(&url).await.text();
        assert_eq!(line.trim_end(), s.get("Organization/org1").await.text());
        // gzip when accepted.
        let gz = s.send("GET", &url, &[("accept-encoding", "gzip")], None).await;
        assert_eq!(gz.status, 200);
        assert_eq!(gz.header("content-encoding").as_deref(), Some("gzip"));
        assert_eq!(&gz.body[..2], &[0x1f, 0x8b]);
        // The transaction time is an instant no later than now.
        let t = manifest["transactionTime"].as_str().unwrap();
        assert!(oxifhir_model::Instant::parse(t).is_some_and(|i| i <= oxifhir_model::Instant::now()));
    }
}

fhir_test! {
    async fn kickoff_rules(s: &TestServer) {
        seed(s).await;
        for path in ["$export", "Patient/$export", "Group/g1/$export"] {
            let r = s.get(path).await;
            assert_eq!(r.status, 400, "{path} without respond-async");
            assert!(outcome_text(&r).contains("respond-async"));
            for format in ["application/fhir+ndjson", "application/ndjson", "ndjson"] {
                let url = format!("{path}?_outputFormat={}", format.replace('+', "%2B"));
                let r = s.send("GET", &url, &[ASYNC], None).await;
                assert_eq!(r.status, 202, "{url}: {}", r.text());
                assert_eq!(s.delete(&r.header("content-location").unwrap()).await.status, 202);
            }
            for bad in ["_outputFormat=text/csv", "_type=Nope", "_since=yesterday", "foo=bar",
                        "includeAssociatedData=_custom", "_elements=a.b.c",
                        "_typeFilter=Patient%3F_sort%3D_id", "patient=Patient/p1"] {
                let r = s.send("GET", &format!("{path}?{bad}"), &[ASYNC], None).await;
                assert_eq!(r.status, 400, "{path}?{bad}: {}", r.text());
                assert_eq!(r.json()["resourceType"], "OperationOutcome");
            }
            // An empty-body POST with the parameters in the query.
            let r = s.send("POST", &format!("{path}?_type=Patient"), &[ASYNC], None).await;
            assert_eq!(r.status, 202, "{}", r.text());
            s.delete(&r.header("content-location").unwrap()).await;
            // POST bodies must be Parameters.
            let r = s.send("POST", path, &[ASYNC, ("content-type", "application/json")],
                           Some(b"{}".to_vec())).await;
            assert_eq!(r.status, 400);
        }
        let r = s.send("GET", "Group/nope/$export", &[ASYNC], None).await;
        assert_eq!(r.status, 404, "{}", r.text());
        assert_eq!(s.send("GET", "Observation/$export", &[ASYNC], None).await.status, 400);
        let r = s.send("GET", "Patient/$export?_type=Organization", &[ASYNC], None).await;
        assert_eq!(r.status, 400, "non-compartment type at Patient level");
        // patient at system level, and patients not in the Group.
        let params = |refs: &[&str]| {
            let parameter: Vec<Value> = refs.iter()
                .map(|r| json!({"name": "patient", "valueReference": {"reference": r}}))
                .collect();
            serde_json::to_vec(&json!({"resourceType": "Parameters", "parameter": parameter})).unwrap()
        };
        let json_headers = [ASYNC, ("content-type", "application/fhir+json")];
        let r = s.send("POST", "$export", &json_headers, Some(params(&["Patient/p1"]))).await;
        assert_eq!(r.status, 400);
        let r = s.send("POST", "Group/g1/$export", &json_headers, Some(params(&["Patient/p3"]))).await;
        assert_eq!(r.status, 400, "p3 is not a member");
        let r = s.send("POST", "Patient/$export", &json_headers, Some(params(&["Patient/zz"]))).await;
        assert_eq!(r.status, 400, "zz does not exist");
    }
}

fhir_test! {
    async fn lenient_handling_reports_ignored_parameters(s: &TestServer) {
        seed(s).await;
        let r = s.send("GET", "Patient/$export?_type=Patient,Organization&foo=bar",
                       &[("prefer", "respond-async, handling=lenient")], None).await;
        assert_eq!(r.status, 202, "{}", r.text());
        let manifest = manifest_of(s, &r.header("content-location").unwrap()).await;
        assert_eq!(output(s, &manifest).await,
                   expected(&[("Patient", "p1"), ("Patient", "p2"), ("Patient", "p3")]));
        let (found, outcomes) = contents(s, &manifest["error"]).await;
        assert_eq!(found.keys().collect::<Vec<_>>(), ["OperationOutcome"]);
        assert_eq!(outcomes.len(), 2, "{outcomes:?}");
        let text = serde_json::to_string(&outcomes).unwrap();
        assert!(text.contains("Organization") && text.contains("foo"), "{text}");
    }
}

fhir_test! {
    async fn patient_and_group_levels_follow_the_compartment(s: &TestServer) {
        seed(s).await;
        let manifest = export(s, "Patient/$export").await;
        assert_eq!(
            output(s, &manifest).await,
            expected(&[("Patient", "p1"), ("Patient", "p2"), ("Patient", "p3"),
                       ("Observation", "o1"), ("Observation", "o2"), ("Observation", "o3"),
                       ("Encounter", "e1"), ("Group", "g1")])
        );
        let manifest = export(s, "Group/g1/$export?_type=Patient,Observation,Encounter").await;
        assert_eq!(manifest["request"],
                   format!("{}/Group/g1/$export?_type=Patient%2CObservation%2CEncounter", s.base));
        assert_eq!(
            output(s, &manifest).await,
            expected(&[("Patient", "p1"), ("Patient", "p2"), ("Observation", "o1"),
                       ("Observation", "o2"), ("Encounter", "e1")])
        );
        // `patient` narrows a Group export, and a Patient export, to the listed Patients.
        let body = serde_json::to_vec(&json!({"resourceType": "Parameters", "parameter": [
            {"name": "patient", "valueReference": {"reference": "Patient/p2"}},
            {"name": "_type", "valueString": "Patient,Observation"}]})).unwrap();
        for path in ["Group/g1/$export", "Patient/$export"] {
            let r = s.send("POST", path, &[ASYNC, ("content-type", "application/json")],
                           Some(body.clone())).await;
            assert_eq!(r.status, 202, "{}", r.text());
            let manifest = manifest_of(s, &r.header("content-location").unwrap()).await;
            assert_eq!(manifest["request"], format!("{}/{path}", s.base));
            assert_eq!(output(s, &manifest).await,
                       expected(&[("Patient", "p2"), ("Observation", "o2")]), "{path}");
        }
    }
}

fhir_test! {
    async fn since_until_and_deleted(s: &TestServer) {
        seed(s).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let t1 = oxifhir_model::Instant::now();
        tokio::time::sleep(Duration::from_millis(20)).await;
        put(s, json!({"resourceType": "Patient", "id": "p2", "gender": "male"})).await;
        assert!(s.delete("Observation/o3").await.status < 300);
        put(s, observation("o4", "p1")).await;
        let since = t1.to_string();
        let manifest = export(s, &format!("$export?_since={since}")).await;
        assert_eq!(output(s, &manifest).await,
                   expected(&[("Patient", "p2"), ("Observation", "o4")]));
        assert_eq!(deleted(s, &manifest).await, BTreeSet::from(["Observation/o3".to_owned()]));
        // At Patient level a deleted resource is listed when it was in the compartment.
        let manifest = export(s, &format!("Group/g1/$export?_since={since}")).await;
        assert_eq!(output(s, &manifest).await,
                   expected(&[("Patient", "p2"), ("Observation", "o4")]));
        assert!(deleted(s, &manifest).await.is_empty(), "o3 belonged to p3, not a member");
        // `_until` exports the data as it stood then, and caps the transaction time.
        let manifest = export(s, &format!("$export?_until={since}&_type=Patient,Observation")).await;
        assert_eq!(manifest["transactionTime"], since);
        let (found, lines) = contents(s, &manifest["output"]).await;
        assert_eq!(found, expected(&[("Patient", "p1"), ("Patient", "p2"), ("Patient", "p3"),
                                     ("Observation", "o1"), ("Observation", "o2"), ("Observation", "o3")]));
        let p2 = lines.iter().find(|l| l["id"] == "p2").unwrap();
        assert_eq!(p2["gender"], "female", "p2 as it stood at _until");
        assert_eq!(manifest["deleted"], json!([]), "no _since, no deleted list");
    }
}

fhir_test! {
    async fn type_and_type_filter_select_exactly(s: &TestServer) {
        seed(s).await;
        let manifest = export(s, "$export?_type=Observation&_type=Encounter").await;
        assert_eq!(output(s, &manifest).await,
                   expected(&[("Observation", "o1"), ("Observation", "o2"), ("Observation", "o3"),
                              ("Encounter", "e1")]));
        // Two filters on one type are OR-ed; the inner comma of `_id=o1,o2` arrives escaped
        // once more (%252C), as real clients send it.
        let manifest = export(
            s,
            "$export?_type=Observation,Patient&_typeFilter=Observation%3F_id%3Do1%252Co2,Observation%3F_id%3Do3\
             &_typeFilter=Patient%3F_id%3Dp2",
        ).await;
        assert_eq!(output(s, &manifest).await,
                   expected(&[("Observation", "o1"), ("Observation", "o2"), ("Observation", "o3"),
                              ("Patient", "p2")]));
        let manifest = export(s, "Patient/$export?_type=Observation&_typeFilter=Observation%3F_id%3Do2").await;
        assert_eq!(output(s, &manifest).await, expected(&[("Observation", "o2")]));
    }
}

fhir_test! {
    async fn elements_are_subsetted_and_tagged(s: &TestServer) {
        seed(s).await;
        let manifest = export(s, "$export?_type=Patient,Observation&_elements=Patient.gender,status").await;
        let (found, lines) = contents(s, &manifest["output"]).await;
        assert_eq!(found.len(), 2);
        for line in lines {
            let keys: BTreeSet<&str> = line.as_object().unwrap().keys().map(String::as_str).collect();
            let tag = &line["meta"]["tag"][0];
            assert_eq!(tag["code"], "SUBSETTED");
            assert_eq!(tag["system"], "http://terminology.hl7.org/CodeSystem/v3-ObservationValue");
            if line["resourceType"] == "Patient" {
                assert_eq!(keys, BTreeSet::from(["resourceType", "id", "meta", "gender"]));
            } else {
                // `code` is required by the schema; `subject` was not asked for.
                assert_eq!(keys, BTreeSet::from(["resourceType", "id", "meta", "status", "code"]));
            }
        }
    }
}

fhir_test! {
    options = TestOptions {
        export: ExportConfig { file_resources: 2, batch: 1, ..TestOptions::default().export },
        ..TestOptions::default()
    };
    async fn files_are_split_by_count(s: &TestServer) {
        for i in 0..5 {
            put(s, json!({"resourceType": "Patient", "id": format!("s{i}")})).await;
        }
        let manifest = export(s, "$export?_type=Patient").await;
        let counts: Vec<u64> = manifest["output"].as_array().unwrap().iter()
            .map(|i| i["count"].as_u64().unwrap()).collect();
        assert_eq!(counts, [2, 2, 1]);
        let found = output(s, &manifest).await;
        assert_eq!(found["Patient"].len(), 5);
    }
}

/// The names and counts of a manifest's output files, in order.
fn names_and_counts(manifest: &Value) -> Vec<(String, u64)> {
    manifest["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["url"]
                    .as_str()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_owned(),
                i["count"].as_u64().unwrap(),
            )
        })
        .collect()
}

fhir_test! {
    options = TestOptions {
        export: ExportConfig { file_resources: 2, batch: 1, ..TestOptions::default().export },
        ..TestOptions::default()
    };
    async fn a_large_type_is_cut_into_slices_read_side_by_side(s: &TestServer) {
        for i in 0..9 {
            put(s, json!({"resourceType": "Patient", "id": format!("s{i}")})).await;
        }
        // Nine Patients, two a file: five slices of two ids each at most, in id order,
        // listed in slice order whichever finished first.
        let manifest = export(s, "$export?_type=Patient").await;
        let expected: Vec<(String, u64)> = [2, 2, 2, 2, 1].into_iter().enumerate()
            .map(|(n, count)| (format!("Patient-{}-1.ndjson", n + 1), count)).collect();
        assert_eq!(names_and_counts(&manifest), expected);
        let all: BTreeSet<String> = (0..9).map(|i| format!("s{i}")).collect();
        assert_eq!(output(s, &manifest).await["Patient"], all);
    }
}

fhir_test! {
    options = TestOptions {
        export: ExportConfig { file_resources: 2, batch: 1, parallel: 1,
                               ..TestOptions::default().export },
        ..TestOptions::default()
    };
    async fn one_at_a_time_a_type_is_read_whole(s: &TestServer) {
        for i in 0..5 {
            put(s, json!({"resourceType": "Patient", "id": format!("s{i}")})).await;
        }
        let manifest = export(s, "$export?_type=Patient").await;
        let expected: Vec<(String, u64)> = [2, 2, 1].into_iter().enumerate()
            .map(|(n, count)| (format!("Patient-{}.ndjson", n + 1), count)).collect();
        assert_eq!(names_and_counts(&manifest), expected);
    }
}

fhir_test! {
    options = TestOptions {
        export: ExportConfig { file_resources: 1, batch: 1, throttle: Duration::from_millis(100),
                               ..TestOptions::default().export },
        ..TestOptions::default()
    };
    async fn the_cut_is_consistent_and_cancel_removes_files(s: &TestServer) {
        for i in 0..8 {
            put(s, json!({"resourceType": "Patient", "id": format!("c{i}"), "gender": "female"})).await;
        }
        let status_url = kickoff(s, "$export?_type=Patient").await;
        let id = status_url.rsplit('/').next().unwrap().to_owned();
        // Written while the export runs, after its cut: invisible to it.
        tokio::time::sleep(Duration::from_millis(400)).await;
        put(s, json!({"resourceType": "Patient", "id": "c7", "gender": "male"})).await;
        put(s, json!({"resourceType": "Patient", "id": "c9"})).await;
        assert!(s.delete("Patient/c6").await.status < 300);
        let running = s.get(&status_url).await;
        assert_eq!(running.status, 202);
        assert!(running.header("x-progress").unwrap().starts_with("Exported "), "{running:?}");
        tokio::time::sleep(Duration::from_secs(1)).await;
        let manifest = manifest_of(s, &status_url).await;
        let (found, lines) = contents(s, &manifest["output"]).await;
        let ids: Vec<String> = (0..8).map(|i| format!("c{i}")).collect();
        assert_eq!(found["Patient"], ids.into_iter().collect::<BTreeSet<_>>());
        assert!(lines.iter().all(|l| l["gender"] == "female"));
        assert_eq!(manifest["output"].as_array().unwrap().len(), 8);
        assert!(s.export_dir.join(&id).exists());
        // DELETE after completion releases the files.
        assert_eq!(s.delete(&status_url).await.status, 202);
        assert_eq!(s.get(&status_url).await.status, 404);
        assert_eq!(s.get(manifest["output"][0]["url"].as_str().unwrap()).await.status, 404);

        // Cancelled mid-export: it stops and its partial files go.
        let status_url = kickoff(s, "$export?_type=Patient").await;
        let id = status_url.rsplit('/').next().unwrap().to_owned();
        let dir = s.export_dir.join(&id);
        let mut seen = false;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if files_in(&dir) > 0 {
                seen = true;
                break;
            }
        }
        assert!(seen, "the export wrote a first file");
        assert_eq!(s.delete(&status_url).await.status, 202);
        let r = s.get(&status_url).await;
        assert_eq!(r.status, 404);
        assert_eq!(r.json()["resourceType"], "OperationOutcome");
        let mut gone = false;
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if files_in(&dir) == 0 {
                gone = true;
                break;
            }
        }
        assert!(gone, "partial files removed");
    }
}

fn files_in(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.path().is_file())
                .count()
        })
        .unwrap_or(0)
}

fhir_test! {
    async fn file_urls_serve_only_the_exports_files(s: &TestServer) {
        seed(s).await;
        let manifest = export(s, "$export?_type=Patient").await;
        let url = manifest["output"][0]["url"].as_str().unwrap().to_owned();
        let (dir, _) = url.rsplit_once('/').unwrap();
        for name in ["..%2F..%2Fetc%2Fpasswd", "Patient-9.ndjson", "a%2Fb.ndjson", "x.json"] {
            let r = s.get(&format!("{dir}/{name}")).await;
            assert_eq!(r.status, 404, "{name}");
            assert_eq!(r.json()["resourceType"], "OperationOutcome");
        }
        assert_eq!(s.get(&format!("{}/_async/unknown/files/Patient-1.ndjson", s.base)).await.status, 404);
        assert_eq!(s.send("POST", &url, &[], None).await.status, 405);
    }
}

fhir_test! {
    async fn a_range_from_an_offset_resumes_a_file(s: &TestServer) {
        seed(s).await;
        let manifest = export(s, "$export?_type=Patient").await;
        let url = manifest["output"][0]["url"].as_str().unwrap().to_owned();
        let whole = s.get(&url).await;
        assert_eq!(whole.status, 200);
        assert_eq!(whole.header("accept-ranges").as_deref(), Some("bytes"));
        let total = whole.body.len();
        assert!(total > 20, "{}", whole.text());
        // A resumed download, also when the client accepts gzip: the end of the file as it
        // is stored, never compressed.
        for encoding in ["identity", "gzip"] {
            let r = s.send("GET", &url, &[("range", "bytes=10-"), ("accept-encoding", encoding)], None).await;
            assert_eq!(r.status, 206, "{encoding}: {}", r.text());
            assert_eq!(r.header("content-range"), Some(format!("bytes 10-{}/{total}", total - 1)));
            assert_eq!(r.header("content-length"), Some((total - 10).to_string()));
            assert_eq!(r.header("content-encoding"), None);
            assert_eq!(r.body, whole.body[10..]);
        }
        // Ranges a resuming client does not send, and offsets at or past the end, get the
        // whole file (HTTP lets a server ignore any Range).
        let past = format!("bytes={total}-");
        for range in ["bytes=0-", "bytes=0-4", "bytes=-5", "bytes=1-,4-", past.as_str()] {
            let r = s.send("GET", &url, &[("range", range)], None).await;
            assert_eq!(r.status, 200, "{range}");
            assert_eq!(r.header("content-range"), None, "{range}");
            assert_eq!(r.body, whole.body, "{range}");
        }
        let (dir, _) = url.rsplit_once('/').unwrap();
        let r = s.send("GET", &format!("{dir}/Patient-9.ndjson"), &[("range", "bytes=3-")], None).await;
        assert_eq!(r.status, 404);
    }
}

fhir_test! {
    async fn capability_statement_declares_bulk_data(s: &TestServer) {
        let cs = s.get("metadata").await.json();
        assert_eq!(cs["instantiates"][0], "http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data");
        let rest = &cs["rest"][0];
        let op = |ops: &Value| -> Vec<String> {
            ops.as_array().into_iter().flatten()
                .filter(|o| o["name"] == "export")
                .map(|o| o["definition"].as_str().unwrap().to_owned()).collect()
        };
        assert_eq!(op(&rest["operation"]), ["http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"]);
        let resource = |t: &str| rest["resource"].as_array().unwrap().iter()
            .find(|r| r["type"] == t).cloned().unwrap();
        assert_eq!(op(&resource("Patient")["operation"]),
                   ["http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export"]);
        assert_eq!(op(&resource("Group")["operation"]),
                   ["http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export"]);
        // Every R4 type is exportable; AsyncJob (the server's job view) is listed too, but is
        // not exported.
        let types: Vec<&serde_json::Value> = rest["resource"].as_array().unwrap().iter()
            .filter(|r| r["type"] != "AsyncJob").collect();
        assert_eq!(types.len(), oxifhir_model::resource_type::all().len());
        for r in types {
            assert!(r["searchParam"].as_array().unwrap().iter().any(|p| p["name"] == "_lastUpdated"), "{}", r["type"]);
        }
        // The supported includeAssociatedData values are documented.
        let docs = rest["operation"].as_array().unwrap().iter()
            .find(|o| o["name"] == "export").unwrap()["documentation"].as_str().unwrap().to_owned();
        for value in ["LatestProvenanceResources", "RelevantProvenanceResources", "_typeFilter"] {
            assert!(docs.contains(value), "{docs}");
        }
        let definition = s.get("OperationDefinition/group-export").await.json();
        assert!(definition["description"].as_str().unwrap().contains("LatestProvenanceResources"));
    }
}

fn provenance(id: &str, targets: &[&str], recorded: &str) -> Value {
    let target: Vec<Value> = targets.iter().map(|t| json!({"reference": t})).collect();
    json!({"resourceType": "Provenance", "id": id, "target": target, "recorded": recorded,
           "agent": [{"who": {"display": "a clerk"}}]})
}

/// [`seed`] plus Provenance: two of o1 (recorded at different times), one of o2 (a versioned
/// reference), one of Patient p3, one of Organization org1 (outside every compartment), one of
/// both o3 and e1, and an older one of e1.
async fn seed_provenance(s: &TestServer) {
    seed(s).await;
    for body in [
        provenance("pv-o1-old", &["Observation/o1"], "2024-01-01T00:00:00Z"),
        provenance("pv-o1-new", &["Observation/o1"], "2024-06-01T00:00:00Z"),
        provenance(
            "pv-o2",
            &["Observation/o2/_history/1"],
            "2024-02-01T00:00:00Z",
        ),
        provenance("pv-p3", &["Patient/p3"], "2024-03-01T00:00:00Z"),
        provenance("pv-org", &["Organization/org1"], "2024-01-01T00:00:00Z"),
        provenance(
            "pv-multi",
            &["Observation/o3", "Encounter/e1"],
            "2024-04-01T00:00:00Z",
        ),
        provenance("pv-e1-old", &["Encounter/e1"], "2023-01-01T00:00:00Z"),
    ] {
        put(s, body).await;
    }
}

/// The Provenance ids an export returned.
async fn provenance_ids(s: &TestServer, path: &str) -> BTreeSet<String> {
    let manifest = export(s, path).await;
    assert_eq!(manifest["error"], json!([]), "{path}");
    output(s, &manifest)
        .await
        .remove("Provenance")
        .unwrap_or_default()
}

fn ids(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|i| (*i).to_owned()).collect()
}

fhir_test! {
    async fn provenance_by_default_follows_the_compartments(s: &TestServer) {
        seed_provenance(s).await;
        let all = ids(&["pv-o1-old", "pv-o1-new", "pv-o2", "pv-p3", "pv-org", "pv-multi", "pv-e1-old"]);
        // System level: every Provenance, as any other type.
        assert_eq!(provenance_ids(s, "$export").await, all);
        assert_eq!(provenance_ids(s, "$export?_type=Observation").await, ids(&[]));
        // Patient level: every Provenance with a target in a compartment, whatever the
        // target's type or the other types asked for; not pv-org.
        let compartments = ids(&["pv-o1-old", "pv-o1-new", "pv-o2", "pv-p3", "pv-multi", "pv-e1-old"]);
        assert_eq!(provenance_ids(s, "Patient/$export").await, compartments);
        assert_eq!(provenance_ids(s, "Patient/$export?_type=Patient,Provenance").await, compartments);
        assert_eq!(provenance_ids(s, "Patient/$export?_type=Patient,Observation").await, ids(&[]));
        // Group level (p1 and p2): pv-multi counts through e1, p3's own Provenance does not.
        let members = ids(&["pv-o1-old", "pv-o1-new", "pv-o2", "pv-multi", "pv-e1-old"]);
        assert_eq!(provenance_ids(s, "Group/g1/$export").await, members);
        assert_eq!(provenance_ids(s, "Group/g1/$export?_type=Provenance").await, members);
        // The Provenance's own _typeFilter applies.
        assert_eq!(
            provenance_ids(s, "Group/g1/$export?_type=Provenance&_typeFilter=Provenance%3Frecorded%3Dlt2024-03-01").await,
            ids(&["pv-o1-old", "pv-o2", "pv-e1-old"])
        );
    }
}

fhir_test! {
    async fn latest_and_relevant_provenance(s: &TestServer) {
        seed_provenance(s).await;
        let latest = "includeAssociatedData=LatestProvenanceResources";
        let relevant = "includeAssociatedData=RelevantProvenanceResources";
        // System level, Observations only: the newest of o1's two; pv-multi once although it
        // also targets e1 (not exported here).
        assert_eq!(provenance_ids(s, &format!("$export?_type=Observation&{latest}")).await,
                   ids(&["pv-o1-new", "pv-o2", "pv-multi"]));
        assert_eq!(provenance_ids(s, &format!("$export?_type=Observation&{relevant}")).await,
                   ids(&["pv-o1-old", "pv-o1-new", "pv-o2", "pv-multi"]));
        // Both values: the least restrictive, in one parameter or repeated.
        assert_eq!(provenance_ids(s, &format!("$export?_type=Observation&{latest}&{relevant}")).await,
                   ids(&["pv-o1-old", "pv-o1-new", "pv-o2", "pv-multi"]));
        assert_eq!(provenance_ids(s, "$export?_type=Observation&includeAssociatedData=LatestProvenanceResources,RelevantProvenanceResources").await,
                   ids(&["pv-o1-old", "pv-o1-new", "pv-o2", "pv-multi"]));
        // Every type: the latest of each resource (e1's is pv-multi); no other Provenance,
        // also when Provenance is named in _type.
        let every = ids(&["pv-o1-new", "pv-o2", "pv-p3", "pv-org", "pv-multi"]);
        assert_eq!(provenance_ids(s, &format!("$export?{latest}")).await, every);
        assert_eq!(provenance_ids(s, &format!("$export?_type=Provenance,Observation&{latest}")).await,
                   ids(&["pv-o1-new", "pv-o2", "pv-multi"]));
        assert_eq!(provenance_ids(s, &format!("$export?_type=Provenance&{relevant}")).await, ids(&[]));
        // Patient and Group level: only resources the export returns count.
        assert_eq!(provenance_ids(s, &format!("Patient/$export?{latest}")).await,
                   ids(&["pv-o1-new", "pv-o2", "pv-p3", "pv-multi"]));
        assert_eq!(provenance_ids(s, &format!("Group/g1/$export?_type=Observation&{latest}")).await,
                   ids(&["pv-o1-new", "pv-o2"]));
        assert_eq!(provenance_ids(s, &format!("Group/g1/$export?_type=Observation,Encounter&{relevant}")).await,
                   ids(&["pv-o1-old", "pv-o1-new", "pv-o2", "pv-multi", "pv-e1-old"]));
        assert_eq!(provenance_ids(s, &format!("Group/g1/$export?_type=Encounter&{latest}")).await,
                   ids(&["pv-multi"]));
        // _typeFilter of the targets, and of the Provenance (the latest among those it
        // matches).
        let o1_only = "_type=Observation&_typeFilter=Observation%3F_id%3Do1";
        assert_eq!(provenance_ids(s, &format!("$export?{o1_only}&{relevant}")).await,
                   ids(&["pv-o1-old", "pv-o1-new"]));
        assert_eq!(provenance_ids(s, &format!("$export?{o1_only}&{latest}")).await, ids(&["pv-o1-new"]));
        assert_eq!(
            provenance_ids(s, &format!("$export?_type=Observation&{latest}&_typeFilter=Provenance%3Frecorded%3Dlt2024-05-01")).await,
            ids(&["pv-o1-old", "pv-o2", "pv-multi"])
        );
        // The resources themselves are exported as without the parameter.
        let manifest = export(s, &format!("Group/g1/$export?_type=Patient,Observation&{latest}")).await;
        let mut found = output(s, &manifest).await;
        found.remove("Provenance");
        assert_eq!(found, expected(&[("Patient", "p1"), ("Patient", "p2"),
                                     ("Observation", "o1"), ("Observation", "o2")]));
    }
}

fhir_test! {
    async fn associated_provenance_respects_since(s: &TestServer) {
        seed_provenance(s).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let since = oxifhir_model::Instant::now().to_string();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut o2 = observation("o2", "p2");
        o2["status"] = json!("amended");
        put(s, o2).await;
        put(s, observation("o4", "p1")).await;
        put(s, provenance("pv-o4", &["Observation/o4"], "2020-01-01T00:00:00Z")).await;
        assert!(s.delete("Provenance/pv-e1-old").await.status < 300);
        // Returned resources changed after _since bring their Provenance, however old.
        for value in ["LatestProvenanceResources", "RelevantProvenanceResources"] {
            assert_eq!(
                provenance_ids(s, &format!("$export?_since={since}&_type=Observation&includeAssociatedData={value}")).await,
                ids(&["pv-o2", "pv-o4"]),
                "{value}"
            );
        }
        // By default _since applies to the Provenance themselves; a deleted one of the
        // compartments is listed as deleted.
        assert_eq!(provenance_ids(s, &format!("$export?_since={since}")).await, ids(&["pv-o4"]));
        let manifest = export(s, &format!("Group/g1/$export?_since={since}")).await;
        assert_eq!(output(s, &manifest).await["Provenance"], ids(&["pv-o4"]));
        assert_eq!(deleted(s, &manifest).await, BTreeSet::from(["Provenance/pv-e1-old".to_owned()]));
    }
}

fhir_test! {
    async fn unknown_associated_data_values(s: &TestServer) {
        seed_provenance(s).await;
        for bad in ["_custom", "Nope", "LatestProvenanceResources,Other"] {
            let path = format!("Patient/$export?includeAssociatedData={bad}");
            let r = s.send("GET", &path, &[ASYNC], None).await;
            assert_eq!(r.status, 400, "{path}: {}", r.text());
            assert_eq!(r.json()["resourceType"], "OperationOutcome");
            assert!(outcome_text(&r).contains("includeAssociatedData"), "{}", r.text());
        }
        // Lenient: the unknown value is reported, the known one applies.
        let r = s.send("GET", "$export?_type=Observation&includeAssociatedData=Nope,LatestProvenanceResources",
                       &[("prefer", "respond-async, handling=lenient")], None).await;
        assert_eq!(r.status, 202, "{}", r.text());
        let manifest = manifest_of(s, &r.header("content-location").unwrap()).await;
        assert_eq!(output(s, &manifest).await["Provenance"], ids(&["pv-o1-new", "pv-o2", "pv-multi"]));
        let (_, outcomes) = contents(s, &manifest["error"]).await;
        assert_eq!(outcomes.len(), 1, "{outcomes:?}");
        assert!(serde_json::to_string(&outcomes).unwrap().contains("Nope"));
        // Lenient with only an unknown value: the default rule.
        let r = s.send("GET", "Group/g1/$export?_type=Provenance&includeAssociatedData=_custom",
                       &[("prefer", "respond-async, handling=lenient")], None).await;
        assert_eq!(r.status, 202, "{}", r.text());
        let manifest = manifest_of(s, &r.header("content-location").unwrap()).await;
        assert_eq!(output(s, &manifest).await["Provenance"],
                   ids(&["pv-o1-old", "pv-o1-new", "pv-o2", "pv-multi", "pv-e1-old"]));
    }
}

fhir_test! {
    options = TestOptions {
        export: ExportConfig { file_resources: 2, batch: 1, ..TestOptions::default().export },
        ..TestOptions::default()
    };
    async fn associated_provenance_in_small_batches(s: &TestServer) {
        // Batches of one: the competitors of each Provenance are in other batches, and
        // pv-multi's two targets are exported in different files.
        seed_provenance(s).await;
        let manifest = export(s, "$export?includeAssociatedData=LatestProvenanceResources").await;
        let found = output(s, &manifest).await;
        assert_eq!(found["Provenance"], ids(&["pv-o1-new", "pv-o2", "pv-p3", "pv-org", "pv-multi"]));
        let files: Vec<&Value> = manifest["output"].as_array().unwrap().iter()
            .filter(|i| i["type"] == "Provenance").collect();
        assert_eq!(files.iter().map(|f| f["count"].as_u64().unwrap()).sum::<u64>(), 5);
        assert!(files.iter().all(|f| f["url"].as_str().unwrap().contains("/Provenance-")));
        let found = output(s, &export(s, "Patient/$export?_type=Provenance").await).await;
        assert_eq!(found["Provenance"],
                   ids(&["pv-o1-old", "pv-o1-new", "pv-o2", "pv-p3", "pv-multi", "pv-e1-old"]));
    }
}
