//! Any `GET` the HTTP edge lets through, dispatched by a real server on a SQLite store holding
//! a few linked resources: reads, searches (every parameter type, chains, `_has`, includes,
//! sorts, cursors), histories, status URLs, operations. Whatever the URL, the answer is never a
//! `5xx`: a bad request is the client's error, and a search value never breaks the SQL.

#![no_main]

use std::sync::{Arc, LazyLock};

use libfuzzer_sys::fuzz_target;
use oxifhir_server::{FhirRequest, FhirServer, Method, ServerConfig};
use serde_json::json;

struct World {
    runtime: tokio::runtime::Runtime,
    server: FhirServer,
    _dir: tempfile::TempDir,
}

static WORLD: LazyLock<World> = LazyLock::new(|| {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    // OXIFHIR_FUZZ_POSTGRES=postgres://… runs against a fresh schema of that database
    // instead (slower; meant for replaying a corpus with -runs=0).
    let store: Arc<dyn oxifhir_store::Store> = match std::env::var("OXIFHIR_FUZZ_POSTGRES") {
        Ok(url) => runtime
            .block_on(oxifhir_store::open(&oxifhir_store::StoreConfig::Postgres {
                url,
                schema: Some(format!("fuzz_{}", std::process::id())),
            }))
            .expect("postgres store"),
        Err(_) => Arc::new(
            runtime
                .block_on(oxifhir_store::sqlite::SqliteStore::open(dir.path()))
                .expect("store")
                .with_probe_from(1),
        ),
    };
    let server = FhirServer::new(store, ServerConfig::default());
    let resources = [
        json!({"resourceType": "Organization", "id": "o1", "name": "Acme"}),
        json!({"resourceType": "Patient", "id": "p1", "name": [{"family": "O'Brien", "given": ["Ann"]}],
            "gender": "female", "birthDate": "1980-02-29", "identifier": [{"system": "http://x", "value": "1"}],
            "managingOrganization": {"reference": "Organization/o1"}}),
        json!({"resourceType": "Patient", "id": "p2", "name": [{"family": "Smith"}], "birthDate": "2001",
            "link": [{"other": {"reference": "Patient/p1"}, "type": "seealso"}]}),
        json!({"resourceType": "Observation", "id": "x1", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
            "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2024-01-01T10:00:00Z",
            "valueQuantity": {"value": 72.5, "system": "http://unitsofmeasure.org", "code": "kg"}}),
        json!({"resourceType": "Encounter", "id": "e1", "status": "finished", "class": {"code": "AMB"},
            "subject": {"reference": "Patient/p2"}, "period": {"start": "2020-01-01"}}),
    ];
    runtime.block_on(async {
        for resource in resources {
            let path = format!(
                "{}/{}",
                resource["resourceType"].as_str().unwrap_or(""),
                resource["id"].as_str().unwrap_or("")
            );
            let mut request = FhirRequest::new(Method::Put, &path);
            request.headers.content_type = Some("application/fhir+json".into());
            request.body = serde_json::to_vec(&resource).unwrap_or_default();
            let response = server.dispatch(request).await;
            assert!(response.status < 300, "seeding {path}: {}", response.status);
        }
    });
    World {
        runtime,
        server,
        _dir: dir,
    }
});

/// What the HTTP edge refuses before `dispatch`: percent-encoded bytes that are not UTF-8, NUL.
fn edge_accepts(url: &str) -> bool {
    url.split(['/', '&', '?']).all(|piece| {
        percent_encoding::percent_decode_str(piece)
            .decode_utf8()
            .is_ok_and(|text| !text.contains('\0'))
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(url) = std::str::from_utf8(data) else {
        return;
    };
    if !edge_accepts(url) || url.contains(['#', ' ', '\n', '\r']) {
        return;
    }
    let world = &*WORLD;
    let request = FhirRequest::new(Method::Get, url);
    let response = world.runtime.block_on(world.server.dispatch(request));
    assert!(
        response.status < 500,
        "GET {url}: {} {}",
        response.status,
        String::from_utf8_lossy(&response.body)
    );
});
