//! Bulk Data export driven end to end by a mainstream third-party client: the Cumulus
//! project's `smart-fetch` (PyPI) against the real `oxifhir serve` binary. It kicks off with
//! its own parameter spelling (`_typeFilter` with escaped inner commas), polls, downloads with
//! and without gzip, and writes the files it got; the test compares them with the data it
//! loaded.
//!
//! `smart-fetch` is found through `OXIFHIR_SMART_FETCH` (a path) or on `PATH`. Without it the
//! test prints a notice and passes, unless `OXIFHIR_TEST_CLIENTS=required` (set by `.ci/run`,
//! which installs it), in which case it fails.

mod common;

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

/// The `smart-fetch` program, or `None` (after a notice) when it is not installed and not
/// required.
fn smart_fetch() -> Option<PathBuf> {
    let candidate = std::env::var_os("OXIFHIR_SMART_FETCH")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("smart-fetch"));
    let runs = Command::new(&candidate)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if runs {
        return Some(candidate);
    }
    if std::env::var("OXIFHIR_TEST_CLIENTS").as_deref() == Ok("required") {
        panic!(
            "OXIFHIR_TEST_CLIENTS=required but {} does not run",
            candidate.display()
        );
    }
    eprintln!("smart-fetch is not installed; skipping the third-party client test");
    None
}

/// Runs `smart-fetch bulk` against `base` into `out` with `args`.
fn bulk(program: &Path, base: &str, out: &Path, args: &[&str]) {
    let output = Command::new(program)
        .arg("bulk")
        .args(["--fhir-url", base])
        .args(args)
        .arg(out)
        .output()
        .expect("run smart-fetch");
    assert!(
        output.status.success(),
        "smart-fetch bulk {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `type -> ids` of every resource in the NDJSON files (`*.ndjson`, or `*.ndjson.gz` through
/// `gzip -dc`) that `smart-fetch` wrote to `out`; each line's `resourceType` must match its
/// file's.
fn downloaded(out: &Path) -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    for entry in std::fs::read_dir(out).expect("read output") {
        let path = entry.expect("entry").path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = if name.ends_with(".ndjson.gz") {
            let output = Command::new("gzip")
                .arg("-dc")
                .arg(&path)
                .output()
                .expect("gzip");
            assert!(output.status.success(), "{name} is not gzip");
            String::from_utf8(output.stdout).expect("utf-8")
        } else if name.ends_with(".ndjson") && name != "log.ndjson" {
            std::fs::read_to_string(&path).expect("read file")
        } else {
            continue;
        };
        let file_type = name.split('.').next().unwrap().to_owned();
        for line in text.lines() {
            let resource: Value = serde_json::from_str(line).expect("an NDJSON line");
            assert_eq!(
                resource["resourceType"],
                file_type.as_str(),
                "{name}: {line}"
            );
            let id = resource["id"].as_str().expect("id").to_owned();
            assert!(
                found.insert((file_type.clone(), id)),
                "{name}: repeated {line}"
            );
        }
    }
    found
}

fn set(items: &[(&str, String)]) -> BTreeSet<(String, String)> {
    items
        .iter()
        .map(|(t, id)| ((*t).to_owned(), id.clone()))
        .collect()
}

async fn put(client: &reqwest::Client, base: &str, resource: Value) {
    let url = format!(
        "{base}/{}/{}",
        resource["resourceType"].as_str().unwrap(),
        resource["id"].as_str().unwrap()
    );
    let response = client
        .put(url)
        .header("Content-Type", "application/fhir+json")
        .body(resource.to_string())
        .send()
        .await
        .expect("PUT");
    assert!(response.status().is_success(), "{}", response.status());
}

/// Six Patients, each with a vital-signs Observation (kept by `smart-fetch`'s default
/// Observation filter), an uncategorised one (filtered out) and a Condition; a Group of three.
async fn load(base: &str) {
    let client = reqwest::Client::new();
    for i in 0..6 {
        put(
            &client,
            base,
            json!({"resourceType": "Patient", "id": format!("p{i}"),
            "name": [{"family": format!("Family{i}")}]}),
        )
        .await;
        put(&client, base, json!({"resourceType": "Observation", "id": format!("vital{i}"),
            "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "subject": {"reference": format!("Patient/p{i}")}}))
        .await;
        put(
            &client,
            base,
            json!({"resourceType": "Observation", "id": format!("other{i}"),
            "status": "final", "code": {"text": "note"},
            "subject": {"reference": format!("Patient/p{i}")}}),
        )
        .await;
        put(
            &client,
            base,
            json!({"resourceType": "Condition", "id": format!("c{i}"),
            "subject": {"reference": format!("Patient/p{i}")}}),
        )
        .await;
    }
    put(
        &client,
        base,
        json!({"resourceType": "Group", "id": "g1", "type": "person",
        "actual": true, "member": [
            {"entity": {"reference": "Patient/p0"}},
            {"entity": {"reference": "Patient/p1"}},
            {"entity": {"reference": "Patient/p2"}}]}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smart_fetch_exports_system_group_and_since() {
    let Some(program) = smart_fetch() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let args: Vec<OsString> = vec!["--data".into(), data.into()];
    let node = common::serve(&args, &[], &dir.path().join("serve.log")).await;
    load(&node.base).await;
    let ids = |prefix: &str, range: std::ops::Range<usize>| -> Vec<String> {
        range.map(|i| format!("{prefix}{i}")).collect()
    };
    let expect = |parts: &[(&str, Vec<String>)]| -> BTreeSet<(String, String)> {
        let mut all = Vec::new();
        for (t, ids) in parts {
            all.extend(ids.iter().map(|id| (*t, id.clone())));
        }
        set(&all)
    };

    // System level, gzip (smart-fetch's default): its default Observation filter keeps the
    // vital signs only.
    let system = dir.path().join("system");
    bulk(
        &program,
        &node.base,
        &system,
        &["--type", "Patient,Observation"],
    );
    assert_eq!(
        downloaded(&system),
        expect(&[
            ("Patient", ids("p", 0..6)),
            ("Observation", ids("vital", 0..6))
        ])
    );

    // Group level, uncompressed, without the default filters: the members' compartments.
    let group = dir.path().join("group");
    bulk(
        &program,
        &node.base,
        &group,
        &[
            "--group",
            "g1",
            "--type",
            "Patient,Observation,Condition",
            "--no-compression",
            "--no-default-filters",
        ],
    );
    let mut observations = ids("vital", 0..3);
    observations.extend(ids("other", 0..3));
    assert_eq!(
        downloaded(&group),
        expect(&[
            ("Patient", ids("p", 0..3)),
            ("Observation", observations),
            ("Condition", ids("c", 0..3)),
        ])
    );

    // `--since`: only what changed after it.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let since = time_now();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let client = reqwest::Client::new();
    put(&client, &node.base, json!({"resourceType": "Condition", "id": "c4",
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "resolved"}]},
        "subject": {"reference": "Patient/p4"}}))
    .await;
    let changed = dir.path().join("since");
    bulk(
        &program,
        &node.base,
        &changed,
        &[
            "--since",
            &since,
            "--since-mode",
            "updated",
            "--type",
            "Patient,Condition",
            "--no-compression",
        ],
    );
    assert_eq!(
        downloaded(&changed),
        expect(&[("Condition", vec!["c4".to_owned()])])
    );
}

/// Now as an RFC 3339 instant with milliseconds (what `--since` takes).
fn time_now() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}
