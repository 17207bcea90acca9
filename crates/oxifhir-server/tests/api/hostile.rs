//! Hostile requests: nesting bombs, huge numbers, invalid UTF-8 in body, query and path, SQL
//! meta-characters in every parameter type, path traversal in job and file URLs, enormous
//! `_count`, stalled clients. Each gets a clear 4xx `OperationOutcome` (or, where the input
//! is a legitimate search value, an empty result) and the database is unchanged: the number of
//! stored versions, which every create, update and delete raises, is compared before and after.

use std::time::Duration;

use crate::support::*;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Every version of every resource (a write of any kind adds one).
async fn versions(s: &TestServer) -> u64 {
    let r = s.get("_history?_count=1").await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["total"].as_u64().expect("total")
}

/// A few resources for searches to run over, one with SQL meta-characters in its name.
async fn seed(s: &TestServer) -> u64 {
    let org = s
        .put(
            "Organization/o1",
            &json!({"resourceType": "Organization", "id": "o1", "name": "Acme"}),
        )
        .await;
    assert!(org.status < 300, "{}", org.text());
    s.put(
        "Patient/p1",
        &json!({"resourceType": "Patient", "id": "p1", "name": [{"family": "O'Brien"}],
            "gender": "female", "birthDate": "1980-01-01",
            "identifier": [{"system": "http://x", "value": "1"}],
            "managingOrganization": {"reference": "Organization/o1"}}),
    )
    .await;
    s.put(
        "Observation/x1",
        &json!({"resourceType": "Observation", "id": "x1", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "1"}]},
            "subject": {"reference": "Patient/p1"},
            "valueQuantity": {"value": 5, "system": "http://unitsofmeasure.org", "code": "kg"}}),
    )
    .await;
    versions(s).await
}

/// A `4xx` with an `OperationOutcome` body.
fn assert_4xx(r: &Reply, what: &str) {
    assert!(
        (400..500).contains(&r.status),
        "{what}: {} {}",
        r.status,
        r.text()
    );
    assert_eq!(r.json()["resourceType"], "OperationOutcome", "{what}");
}

fhir_test! {
    async fn nesting_bombs_in_every_json_body(s: &TestServer) {
        let before = seed(s).await;
        let deep = |open: &str, close: &str, n: usize| format!("{}1{}", open.repeat(n), close.repeat(n));
        let arrays = deep("[", "]", 100_000);
        let objects = deep("{\"a\":", "}", 100_000);
        let ct = [("content-type", "application/fhir+json")];
        for bomb in [&arrays, &objects] {
            let bodies = [
                ("POST", "Patient", format!("{{\"resourceType\":\"Patient\",\"extension\":{bomb}}}")),
                ("PUT", "Patient/p1", format!("{{\"resourceType\":\"Patient\",\"id\":\"p1\",\"x\":{bomb}}}")),
                ("POST", "", format!("{{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":{bomb}}}")),
                ("POST", "$export", format!("{{\"resourceType\":\"Parameters\",\"parameter\":{bomb}}}")),
            ];
            for (method, path, body) in bodies {
                let r = s.send(method, path, &ct, Some(body.into_bytes())).await;
                assert_4xx(&r, &format!("{method} {path}"));
            }
            let r = s.send("PATCH", "Patient/p1", &[("content-type", "application/json-patch+json")],
                Some(format!("[{{\"op\":\"add\",\"path\":\"/x\",\"value\":{bomb}}}]").into_bytes())).await;
            assert_4xx(&r, "PATCH");
        }
        // Nested just inside the parser's limit, the resource is still invalid R4.
        let r = s.send("POST", "Patient", &ct,
            Some(format!("{{\"resourceType\":\"Patient\",\"extension\":{}}}", deep("[", "]", 100)).into_bytes())).await;
        assert_4xx(&r, "100 levels");
        assert_eq!(versions(s).await, before, "nothing was written");
    }
}

fhir_test! {
    async fn huge_numbers(s: &TestServer) {
        let before = seed(s).await;
        let digits = "9".repeat(5000);
        for value in ["1e400", "-1e400", digits.as_str()] {
            let body = format!(
                "{{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{{\"text\":\"x\"}},\"valueQuantity\":{{\"value\":{value},\"unit\":\"kg\"}}}}"
            );
            let r = s.send("POST", "Observation", &[("content-type", "application/fhir+json")], Some(body.into_bytes())).await;
            assert_4xx(&r, value);
        }
        // An integer beyond 32 bits.
        let r = s.post("Patient", &serde_json::from_str::<Value>(
            "{\"resourceType\":\"Patient\",\"multipleBirthInteger\":99999999999999999999999}").expect("json")).await;
        assert_4xx(&r, "multipleBirthInteger");
        for query in [
            "Observation?value-quantity=1e400",
            "Observation?value-quantity=gt-1e400|http://unitsofmeasure.org|kg",
            &format!("Observation?value-quantity={digits}"),
            "RiskAssessment?probability=1e999",
            "Patient?birthdate=99999999999-01-01",
            "Patient?_lastUpdated=gt9999999999999999999",
            "Observation?date=1980-01-01T25:61:61Z",
        ] {
            let r = s.get(query).await;
            assert_4xx(&r, query);
        }
        assert_eq!(versions(s).await, before);
    }
}

fhir_test! {
    async fn invalid_utf8_in_body_query_and_path(s: &TestServer) {
        let before = seed(s).await;
        let mut body = b"{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"".to_vec();
        body.extend_from_slice(&[0xff, 0xfe, 0xc3, 0x28]);
        body.extend_from_slice(b"\"}]}");
        let ct = [("content-type", "application/fhir+json")];
        let r = s.send("POST", "Patient", &ct, Some(body.clone())).await;
        assert_4xx(&r, "body");
        let r = s.send("PUT", "Patient/p1", &ct, Some(body.clone())).await;
        assert_4xx(&r, "PUT body");
        let r = s.send("POST", "Patient/_search", &[("content-type", "application/x-www-form-urlencoded")],
            Some(b"name=\xff\xfe".to_vec())).await;
        assert_4xx(&r, "form body");
        for path in [
            "Patient?name=%FF%FE",
            "Patient?%C3%28=x",
            "Patient/%FF",
            "Patient/p1/_history/%C3%28",
            "%FFPatient",
            "_async/%FF%FE",
            "$export?_typeFilter=Patient%3Fname%3D%25FF",
        ] {
            let r = s.get(path).await;
            assert_4xx(&r, path);
        }
        let r = s.send("POST", "Patient?name=%FF", &ct, Some(br#"{"resourceType":"Patient"}"#.to_vec())).await;
        assert_4xx(&r, "query of a create");
        // Raw bytes that are not even a valid URL are refused before they reach the server's
        // code (by the HTTP parser), still with a 400.
        let (status, _) = raw(s, b"GET /fhir/Patient/\xff\xfe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
        assert_eq!(status, Some(400));
        assert_eq!(versions(s).await, before);
    }
}

/// Values with SQL (and LIKE) meta-characters.
const NASTY: &[&str] = &[
    "'",
    "\"",
    "' OR '1'='1",
    "'; DROP TABLE resources; --",
    "\"; DELETE FROM history; --",
    "%",
    "_",
    "\\",
    "%' OR 1=1 --",
    "1; SELECT pg_sleep(10)",
    "$1",
    "?",
    "\0",
    "*/ /*",
];

fhir_test! {
    async fn sql_meta_characters_in_every_parameter_type(s: &TestServer) {
        let before = seed(s).await;
        // (parameter, whether a meta-character value is a legal value of its type)
        let params = [
            ("Patient?name", true),                 // string
            ("Patient?name:exact", true),
            ("Patient?name:contains", true),
            ("Patient?gender", true),               // token
            ("Patient?identifier", true),
            ("Patient?identifier:text", true),
            ("Observation?code", true),
            ("Observation?subject", true),          // reference
            ("Patient?general-practitioner", true),
            ("ValueSet?url", true),                 // uri
            ("ValueSet?url:below", true),
            ("Patient?_id", true),
            ("Observation?subject.name", true),     // chains
            ("Observation?subject:Patient.organization.name", true),
            ("Patient?_has:Observation:subject:code", true),
            ("Patient?birthdate", false),           // date
            ("Patient?_lastUpdated", false),
            ("RiskAssessment?probability", false),  // number
            ("Observation?value-quantity", false),  // quantity
            ("Patient?_sort", false),
            ("Patient?_count", false),
            ("Patient?_include", false),
            ("Patient?_revinclude", false),
        ];
        // Strict handling: a parameter that cannot be honoured is an error, not ignored.
        let strict = [("prefer", "handling=strict")];
        for (param, legal) in params {
            for value in NASTY {
                let encoded: String = url_encode(value);
                let query = format!("{param}={encoded}");
                let r = s.send("GET", &query, &strict, None).await;
                if r.status == 200 {
                    assert!(legal, "{query} is not a valid value of its type: {}", r.text());
                    // Only resources holding the value literally may match (`'` is in O'Brien).
                    let bundle = r.json();
                    assert_eq!(bundle["resourceType"], "Bundle");
                    for entry in bundle["entry"].as_array().cloned().unwrap_or_default() {
                        assert!(entry["resource"].to_string().contains(&value.replace('"', "\\\"")),
                            "{query} matched {entry}");
                    }
                } else {
                    assert_4xx(&r, &query);
                }
                // The same as a name with modifiers and in a chain's path.
                let r = s.send("GET", &format!("Patient?name:{encoded}=x"), &strict, None).await;
                assert_4xx(&r, "modifier");
                let r = s.send("GET", &format!("Observation?subject.{encoded}=x"), &strict, None).await;
                assert_4xx(&r, "chained name");
            }
        }
        // A value with a quote matches literally.
        let r = s.get("Patient?name=O%27Brien").await;
        assert_eq!(r.json()["entry"].as_array().map_or(0, Vec::len), 1, "{}", r.text());
        for value in NASTY {
            let encoded = url_encode(value);
            for path in [
                format!("Patient/{encoded}"),
                format!("{encoded}?name=x"),
                format!("Patient?_sort={encoded}"),
                format!("?_type={encoded}"),
                format!("Patient?_elements={encoded}"),
                format!("$export?_type={encoded}"),
            ] {
                let r = s.send("GET", &path, &strict, None).await;
                assert!(r.status != 200 || path.contains("_elements"), "{path}: {}", r.text());
                assert!(r.status < 500, "{path}: {}", r.text());
                assert_eq!(r.json()["resourceType"], if r.status == 200 { "Bundle" } else { "OperationOutcome" });
            }
            let r = s.with_json("PUT", &format!("Patient?name={encoded}"),
                &json!({"resourceType": "Patient", "name": [{"family": value}]}), &[]).await;
            // A conditional update matching nothing creates; that is its job. Undo nothing,
            // but check it stored the value as data.
            if r.status == 201 {
                let id = r.json()["id"].as_str().expect("id").to_string();
                let back = s.get(&format!("Patient/{id}")).await.json();
                assert_eq!(back["name"][0]["family"], *value);
                assert_eq!(s.delete(&format!("Patient/{id}")).await.status, 204);
            } else {
                assert_4xx(&r, "conditional update");
            }
        }
        // The tables are all still there and whole.
        let p1 = s.get("Patient/p1").await;
        assert_eq!(p1.status, 200);
        let r = s.get("Observation?subject.name=O%27Brien").await;
        assert_eq!(r.json()["entry"].as_array().map_or(0, Vec::len), 1);
        let now = versions(s).await;
        assert!(now >= before, "versions never disappear");
    }
}

fn url_encode(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Sends raw bytes to the server (no URL normalisation, as a hostile client would) and reads
/// until the server closes the connection: the status and the body (`None` when the server
/// closed without answering). Gives up after 30 s.
async fn raw(s: &TestServer, request: &[u8]) -> (Option<u16>, String) {
    let addr = s
        .base
        .trim_start_matches("http://")
        .split('/')
        .next()
        .expect("addr");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("write");
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the server did not close the connection");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok());
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").into_bytes()
}

fhir_test! {
    async fn path_traversal_in_job_and_file_urls(s: &TestServer) {
        seed(s).await;
        let r = s.send("GET", "$export?_type=Patient", &[("prefer", "respond-async")], None).await;
        assert_eq!(r.status, 202, "{}", r.text());
        let status = r.header("content-location").expect("status url");
        let id = status.rsplit('/').next().expect("id").to_string();
        let manifest = loop {
            let r = s.get(&status).await;
            if r.status == 200 {
                break r.json();
            }
            assert_eq!(r.status, 202, "{}", r.text());
            tokio::time::sleep(Duration::from_millis(1100)).await;
        };
        let file = manifest["output"][0]["url"].as_str().expect("url").to_string();
        let name = file.rsplit('/').next().expect("name").to_string();
        assert_eq!(s.get(&file).await.status, 200);
        // A secret next to the export directory, and the database files, must stay out of reach.
        let secret = s.export_dir.parent().expect("parent").join("secret.ndjson");
        std::fs::write(&secret, "{\"secret\":true}\n").expect("secret");
        let base = "/fhir";
        let attempts = [
            format!("{base}/_async/../../../../etc/passwd"),
            format!("{base}/_async/%2e%2e/%2e%2e/etc/passwd"),
            format!("{base}/_async/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd"),
            format!("{base}/_async/{id}/../../secret.ndjson"),
            format!("{base}/_async/{id}/files/../../secret.ndjson"),
            format!("{base}/_async/{id}/files/..%2F..%2Fsecret.ndjson"),
            format!("{base}/_async/{id}/files/%2e%2e%2fsecret.ndjson"),
            format!("{base}/_async/{id}/files/..%5Csecret.ndjson"),
            format!("{base}/_async/{id}/files/{name}%2F..%2F..%2Fsecret.ndjson"),
            format!("{base}/_async/{id}/files/%2Fetc%2Fpasswd"),
            format!("{base}/_async/..%2F{id}/files/{name}"),
            format!("{base}/_async/{id}%2F..%2F{id}/files/{name}"),
            format!("{base}/_async/{id}/files/{name}%00.ndjson"),
            format!("{base}/_async/{id}/result/../files/{name}"),
            format!("{base}/../fhir/_async/{id}"),
            format!("{base}/_async/{id}/files/"),
        ];
        for path in &attempts {
            let (status, body) = raw(s, &get(path)).await;
            let status = status.unwrap_or_else(|| panic!("{path}: no answer"));
            assert!((400..500).contains(&status), "{path}: {status} {body}");
            assert!(body.contains("OperationOutcome"), "{path}: {body}");
            assert!(!body.contains("secret") && !body.contains("root:"), "{path}: {body}");
        }
        // DELETE through a traversal does not reach the job.
        let (status, _) = raw(s, format!("DELETE {base}/_async/x/../{id} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).await;
        assert!(status.is_some_and(|c| (400..500).contains(&c)));
        assert_eq!(s.get(&file).await.status, 200, "the export is still there");
    }
}

fhir_test! {
    async fn enormous_count(s: &TestServer) {
        let before = seed(s).await;
        for count in ["18446744073709551616", "99999999999999999999999999", "-1", "1e9", "0x10", ""] {
            let r = s.get(&format!("Patient?_count={count}")).await;
            assert_4xx(&r, count);
            let r = s.get(&format!("_history?_count={count}")).await;
            assert!(r.status == 400 || count.is_empty(), "_history?_count={count}: {}", r.text());
        }
        // A large but representable count is lowered to the server's largest page.
        let r = s.get("Patient?_count=4000000000").await;
        assert_eq!(r.status, 200, "{}", r.text());
        let r = s.get("Observation?_count=18446744073709551615&_include=Observation:subject").await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(versions(s).await, before);
    }
}

fhir_test! {
    options = TestOptions { read_timeout: Duration::from_secs(1), ..TestOptions::default() };
    async fn stalled_clients_are_cut_off(s: &TestServer) {
        let before = seed(s).await;
        // Headers, then half the body, then nothing: 408 once the read timeout passes.
        let body = br#"{"resourceType":"Patient","name":[{"family":"Slow"}]}"#;
        let mut request = format!(
            "POST /fhir/Patient HTTP/1.1\r\nHost: x\r\nContent-Type: application/fhir+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        ).into_bytes();
        request.extend_from_slice(&body[..body.len() / 2]);
        let (status, text) = raw(s, &request).await;
        assert_eq!(status, Some(408), "{text}");
        assert!(text.contains("OperationOutcome"), "{text}");
        // Headers that never end: the connection is closed.
        let (status, _) = raw(s, b"GET /fhir/metadata HTTP/1.1\r\nHost: x\r\nX-Slow: ").await;
        assert!(status.is_none_or(|c| c == 408), "{status:?}");
        // A client that connects and sends nothing is dropped too.
        let (status, _) = raw(s, b"").await;
        assert!(status.is_none_or(|c| c == 408), "{status:?}");
        assert_eq!(versions(s).await, before);
        assert_eq!(s.get("Patient?name=Slow").await.json()["entry"].as_array().map_or(0, Vec::len), 0);
    }
}
