//! What the process tests share: an `oxifhir serve` child process on a free loopback port,
//! killed with SIGKILL on drop, and test data loaded through its API.

// Each test binary uses a part of this module.
#![allow(dead_code)]

use std::ffi::OsString;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;

/// A running `oxifhir serve` process.
pub struct Node {
    pub child: Child,
    pub base: String,
}

impl Node {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL (what `Child::kill` sends on Unix) and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `$OXIFHIR_TEST_POSTGRES` and a fresh schema name for one test, or `None` (after a notice)
/// when the variable is not set.
pub fn postgres_schema() -> Option<(String, String)> {
    let Ok(url) = std::env::var("OXIFHIR_TEST_POSTGRES") else {
        eprintln!("OXIFHIR_TEST_POSTGRES is not set; skipping");
        return None;
    };
    Some((url, format!("t_{}", uuid::Uuid::new_v4().simple())))
}

pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// Starts `oxifhir serve` with `args` and `env`, its log in `log`, and waits until it answers
/// `GET /metadata`.
pub async fn serve(args: &[OsString], env: &[(&str, String)], log: &Path) -> Node {
    let port = free_port();
    let log = std::fs::File::create(log).expect("log file");
    let child = Command::new(env!("CARGO_BIN_EXE_oxifhir"))
        .arg("serve")
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn oxifhir serve");
    let node = Node {
        child,
        base: format!("http://127.0.0.1:{port}/fhir"),
    };
    let client = reqwest::Client::new();
    for _ in 0..400 {
        if let Ok(r) = client.get(format!("{}/metadata", node.base)).send().await
            && r.status().is_success()
        {
            return node;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("oxifhir serve did not come up");
}

/// `count` Patients (`p000`, `p001`, …) with an Observation each (`o000`, …), in one
/// transaction.
pub async fn load_patients(base: &str, count: usize) {
    let mut entries = Vec::new();
    for i in 0..count {
        entries.push(
            json!({"resource": {"resourceType": "Patient", "id": format!("p{i:03}"),
            "name": [{"family": format!("F{i}")}]},
            "request": {"method": "PUT", "url": format!("Patient/p{i:03}")}}),
        );
        entries.push(
            json!({"resource": {"resourceType": "Observation", "id": format!("o{i:03}"),
            "status": "final", "code": {"text": "x"},
            "subject": {"reference": format!("Patient/p{i:03}")}},
            "request": {"method": "PUT", "url": format!("Observation/o{i:03}")}}),
        );
    }
    transaction(base, entries).await;
}

/// Posts a transaction Bundle of `entries` to `base` (panics unless `200`).
pub async fn transaction(base: &str, entries: Vec<serde_json::Value>) {
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": entries});
    let r = reqwest::Client::new()
        .post(base)
        .header("content-type", "application/fhir+json")
        .body(serde_json::to_vec(&bundle).expect("json"))
        .send()
        .await
        .expect("transaction");
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
}
