//! Keyset paging through `next` and `previous` links: every match once, the same pages
//! backwards, and stability while resources are created and deleted between page fetches.

use crate::support::*;
use std::collections::HashSet;

use serde_json::{Value, json};

fn link(bundle: &Value, relation: &str) -> Option<String> {
    bundle["link"]
        .as_array()?
        .iter()
        .find(|l| l["relation"] == relation)
        .and_then(|l| l["url"].as_str())
        .map(str::to_string)
}

fn match_ids(bundle: &Value) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|e| e["search"]["mode"] == "match")
        .map(|e| e["resource"]["id"].as_str().unwrap().to_string())
        .collect()
}

async fn get_url(s: &TestServer, url: &str) -> Value {
    let r = s.client.get(url).send().await.unwrap();
    assert_eq!(r.status(), 200, "{url}");
    r.json().await.unwrap()
}

/// Creates patients `{prefix}{n}` for `n` in `range`, with a birth date that repeats every
/// four patients (ties for `_sort=birthdate`).
async fn patients(s: &TestServer, prefix: &str, range: std::ops::Range<usize>) {
    for n in range {
        let id = format!("{prefix}{n:02}");
        let body = json!({"resourceType": "Patient", "id": id,
            "birthDate": format!("19{:02}", 70 + n % 4)});
        assert_eq!(s.put(&format!("Patient/{id}"), &body).await.status, 201);
    }
}

/// Every page from `first` by `next`, then back by `previous`: the pages must be the same.
async fn pages_both_ways(s: &TestServer, first: &str) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut bundle = get_url(s, &s.url(first)).await;
    assert!(
        link(&bundle, "previous").is_none(),
        "the first page has no previous page"
    );
    loop {
        pages.push(match_ids(&bundle));
        match link(&bundle, "next") {
            Some(next) => bundle = get_url(s, &next).await,
            None => break,
        }
        assert!(pages.len() < 100);
    }
    let mut back = vec![match_ids(&bundle)];
    while let Some(previous) = link(&bundle, "previous") {
        bundle = get_url(s, &previous).await;
        back.push(match_ids(&bundle));
        assert!(back.len() <= pages.len(), "previous links do not end");
    }
    back.reverse();
    assert_eq!(back, pages, "{first} backwards");
    pages
}

fhir_test! {
    async fn next_and_previous_links_agree(s: &TestServer) {
        patients(s, "p", 0..23).await;
        let mut all: Vec<String> = (0..23).map(|n| format!("p{n:02}")).collect();
        let pages = pages_both_ways(s, "Patient?_count=5").await;
        assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [5, 5, 5, 5, 3]);
        assert_eq!(pages.concat(), all);
        let by_birth = pages_both_ways(s, "Patient?_count=4&_sort=-birthdate").await.concat();
        let mut expected = all.clone();
        expected.sort_by_key(|id| {
            let n: usize = id[1..].parse().unwrap();
            (std::cmp::Reverse(n % 4), id.clone())
        });
        assert_eq!(by_birth, expected);
        all.reverse();
        assert_eq!(pages_both_ways(s, "Patient?_count=6&_sort=-_id").await.concat(), all);
        let single = pages_both_ways(s, "Patient?_count=50").await;
        assert_eq!(single.len(), 1);
    }
}

fhir_test! {
    async fn paging_is_stable_while_data_changes(s: &TestServer) {
        patients(s, "m", 0..20).await;
        for first in ["Patient?_count=4", "Patient?_count=4&_sort=birthdate", "Patient?_count=3&_sort=-_id"] {
            let mut seen: Vec<String> = Vec::new();
            let mut deleted: HashSet<String> = HashSet::new();
            let mut bundle = get_url(s, &s.url(first)).await;
            let mut round = 0;
            loop {
                seen.extend(match_ids(&bundle));
                round += 1;
                // Between pages: new patients sorting before and after any position, and one
                // not yet seen deleted.
                let tag = first.len() % 7;
                for id in [format!("a{tag}{round:02}"), format!("z{tag}{round:02}")] {
                    let body = json!({"resourceType": "Patient", "id": id, "birthDate": "1972"});
                    assert_eq!(s.put(&format!("Patient/{id}"), &body).await.status, 201);
                }
                let unseen = (0..20).map(|n| format!("m{n:02}")).find(|id| !seen.contains(id) && !deleted.contains(id));
                if let Some(id) = unseen.filter(|_| round % 2 == 0) {
                    assert_eq!(s.delete(&format!("Patient/{id}")).await.status, 204);
                    deleted.insert(id);
                }
                match link(&bundle, "next") {
                    Some(next) => bundle = get_url(s, &next).await,
                    None => break,
                }
            }
            let unique: HashSet<&String> = seen.iter().collect();
            assert_eq!(unique.len(), seen.len(), "{first}: duplicates in {seen:?}");
            for n in 0..20 {
                let id = format!("m{n:02}");
                assert!(seen.contains(&id) || deleted.contains(&id), "{first}: {id} was skipped");
                assert!(!(seen.contains(&id) && deleted.contains(&id)), "{first}: deleted {id} returned");
            }
            // Put the fixture back for the next order.
            for id in deleted {
                let body = json!({"resourceType": "Patient", "id": id, "birthDate": "1970"});
                assert_eq!(s.put(&format!("Patient/{id}"), &body).await.status, 201);
            }
        }
    }
}

fhir_test! {
    async fn updates_do_not_repeat_a_resource(s: &TestServer) {
        patients(s, "u", 0..9).await;
        let first = s.get("Patient?_count=3").await.json();
        let mut seen = match_ids(&first);
        // Updating a resource already seen must not bring it back on a later page.
        let body = json!({"resourceType": "Patient", "id": seen[0], "active": true});
        assert_eq!(s.put(&format!("Patient/{}", seen[0]), &body).await.status, 200);
        let mut next = link(&first, "next");
        while let Some(url) = next {
            let page = get_url(s, &url).await;
            seen.extend(match_ids(&page));
            next = link(&page, "next");
        }
        assert_eq!(seen.len(), 9, "{seen:?}");
        assert_eq!(s.get("Patient?_cursor=garbage").await.status, 400);
    }
}
