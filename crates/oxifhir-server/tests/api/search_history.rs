//! The search and history subset of the foundation: `_id`, `_lastUpdated`, `_count`,
//! `_summary=count`, `_sort`, paging with `next` links, and history at three levels.

use crate::support::*;
use std::collections::HashSet;

use serde_json::{Value, json};

async fn create_patients(s: &TestServer, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let p = s
            .create(&json!({"resourceType": "Patient", "name": [{"family": format!("P{i}")}]}))
            .await;
        ids.push(p["id"].as_str().unwrap().to_string());
    }
    ids
}

/// Follows `next` links from `first` and returns every entry's resource id.
async fn all_pages(s: &TestServer, first: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut url = s.url(first);
    loop {
        let r = s.client.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let page: Value = r.json().await.unwrap();
        for e in page["entry"].as_array().cloned().unwrap_or_default() {
            if e["search"]["mode"] == "match" {
                ids.push(e["resource"]["id"].as_str().unwrap().to_string());
            }
        }
        let next = page["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == "next")
            .map(|l| l["url"].as_str().unwrap().to_string());
        match next {
            Some(n) => url = n,
            None => return ids,
        }
    }
}

fhir_test! {
    async fn search_by_id_and_count(s: &TestServer) {
        let ids = create_patients(s, 5).await;
        let r = s.get(&format!("Patient?_id={},{}", ids[0], ids[3])).await;
        let b = r.json();
        assert_eq!(b["resourceType"], "Bundle");
        assert_eq!(b["type"], "searchset");
        assert_eq!(b["total"], 2);
        let found: HashSet<&str> = b["entry"].as_array().unwrap().iter().map(|e| e["resource"]["id"].as_str().unwrap()).collect();
        assert_eq!(found, HashSet::from([ids[0].as_str(), ids[3].as_str()]));
        assert_eq!(b["entry"][0]["fullUrl"].as_str().unwrap(), s.url(&format!("Patient/{}", b["entry"][0]["resource"]["id"].as_str().unwrap())));
        let count = s.get("Patient?_summary=count").await.json();
        assert_eq!(count["total"], 5);
        assert!(count.get("entry").is_none());
    }
}

fhir_test! {
    async fn paging_visits_every_match_once(s: &TestServer) {
        let ids = create_patients(s, 23).await;
        let seen = all_pages(s, "Patient?_count=5").await;
        assert_eq!(seen.len(), 23);
        assert_eq!(seen.iter().collect::<HashSet<_>>(), ids.iter().collect::<HashSet<_>>());
        let sorted = all_pages(s, "Patient?_count=4&_sort=_id").await;
        let mut expected = ids.clone();
        expected.sort();
        assert_eq!(sorted, expected);
        let desc = all_pages(s, "Patient?_count=7&_sort=-_id").await;
        expected.reverse();
        assert_eq!(desc, expected);
    }
}

fhir_test! {
    async fn paging_stays_correct_while_data_changes(s: &TestServer) {
        create_patients(s, 10).await;
        let first = s.get("Patient?_count=4&_sort=_lastUpdated").await.json();
        let next = first["link"].as_array().unwrap().iter().find(|l| l["relation"] == "next").unwrap()["url"].as_str().unwrap().to_string();
        let mut seen: Vec<String> = first["entry"].as_array().unwrap().iter().map(|e| e["resource"]["id"].as_str().unwrap().to_string()).collect();
        create_patients(s, 3).await;
        let rest = all_pages(s, next.strip_prefix(&format!("{}/", s.base)).unwrap()).await;
        seen.extend(rest);
        let unique: HashSet<&String> = seen.iter().collect();
        assert_eq!(unique.len(), seen.len(), "no duplicates");
        assert_eq!(seen.len(), 13, "new rows after the cursor are visited too");
    }
}

fhir_test! {
    async fn last_updated_ranges(s: &TestServer) {
        create_patients(s, 2).await;
        assert_eq!(s.get("Patient?_lastUpdated=gt2000-01-01").await.json()["total"], 2);
        assert_eq!(s.get("Patient?_lastUpdated=lt2000-01-01").await.json()["total"], 0);
        assert_eq!(s.get("Patient?_lastUpdated=ge2000-01-01&_lastUpdated=lt2999").await.json()["total"], 2);
        let r = s.get("Patient?_lastUpdated=not-a-date").await;
        assert_eq!(r.status, 400);
        assert_eq!(r.json()["resourceType"], "OperationOutcome");
    }
}

fhir_test! {
    async fn unknown_parameters_warn_or_fail_when_strict(s: &TestServer) {
        create_patients(s, 1).await;
        let b = s.get("Patient?unknown-thing=1").await.json();
        let outcome = b["entry"].as_array().unwrap().iter().find(|e| e["search"]["mode"] == "outcome").expect("a warning entry");
        assert_eq!(outcome["resource"]["issue"][0]["severity"], "warning");
        let r = s.send("GET", "Patient?unknown-thing=1", &[("prefer", "handling=strict")], None).await;
        assert_eq!(r.status, 400);
    }
}

fhir_test! {
    async fn post_search_and_system_search(s: &TestServer) {
        let ids = create_patients(s, 2).await;
        s.create(&json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}})).await;
        let r = s.send("POST", "Patient/_search", &[("content-type", "application/x-www-form-urlencoded")], Some(format!("_id={}", ids[1]).into_bytes())).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["total"], 1);
        assert_eq!(s.get("?_type=Patient,Observation&_summary=count").await.json()["total"], 3);
        assert_eq!(s.get("?_type=Observation").await.json()["total"], 1);
    }
}

fhir_test! {
    async fn history_at_every_level(s: &TestServer) {
        let p = s.create(&json!({"resourceType": "Patient", "active": true})).await;
        let id = p["id"].as_str().unwrap();
        let mut p2 = p.clone();
        p2["active"] = json!(false);
        assert_eq!(s.put(&format!("Patient/{id}"), &p2).await.status, 200);
        assert_eq!(s.delete(&format!("Patient/{id}")).await.status, 204);
        s.create(&json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}})).await;

        let h = s.get(&format!("Patient/{id}/_history")).await.json();
        assert_eq!(h["type"], "history");
        assert_eq!(h["total"], 3);
        let methods: Vec<&str> = h["entry"].as_array().unwrap().iter().map(|e| e["request"]["method"].as_str().unwrap()).collect();
        assert_eq!(methods, ["DELETE", "PUT", "POST"], "newest first");
        assert!(h["entry"][0].get("resource").is_none(), "a deletion has no resource");
        assert_eq!(h["entry"][1]["resource"]["meta"]["versionId"], "2");

        assert_eq!(s.get("Patient/_history").await.json()["total"], 3);
        assert_eq!(s.get("_history").await.json()["total"], 4);
        let paged = s.get("_history?_count=2").await.json();
        assert_eq!(paged["entry"].as_array().unwrap().len(), 2);
        assert!(paged["link"].as_array().unwrap().iter().any(|l| l["relation"] == "next"));
        assert_eq!(s.get("_history?_since=2999-01-01T00:00:00Z").await.json()["total"], 0);
        assert_eq!(s.get("_history?_since=yesterday").await.status, 400);
        assert_eq!(s.get("Patient/nope/_history").await.status, 404);
    }
}
