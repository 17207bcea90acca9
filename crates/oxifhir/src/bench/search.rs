//! Scenario: search latency on the imported data set, one client at a time (the latency a
//! user sees), beside `GET` by id of Patients in the same run.
//!
//! Queries: a token (`Observation?code=`), a date range, a token and a date range together, a
//! chain (`subject:Patient.name=`), and the first and the thousandth page (or the last one a
//! smaller data set has) of a broad token search, reached by following `next` links. Every
//! query asks for pages of 50 and `_total=none`, as a paging client would.

use std::sync::Arc;

use anyhow::Context;
use serde_json::Value;

use super::driver::{self, Req};
use super::{Env, Row};

/// Rows of pages followed to reach the deep page.
const DEEP_PAGE: usize = 1000;

/// `(scenario name, query after the base URL)` of the first-page queries.
const QUERIES: &[(&str, &str)] = &[
    (
        "search token (Observation?code)",
        "Observation?code=http://loinc.org|8867-4&_count=50&_total=none",
    ),
    (
        "search date range (one month)",
        "Observation?date=ge2021-03-01&date=lt2021-04-01&_count=50&_total=none",
    ),
    (
        "search token + date range",
        "Observation?code=http://loinc.org|8867-4&date=ge2021-01-01&date=lt2022-01-01&_count=50&_total=none",
    ),
    (
        "search chain (subject:Patient.name)",
        "Observation?subject:Patient.name=Smith&_count=50&_total=none",
    ),
];

/// The broad query whose first and deep pages are compared.
const PAGED: &str = "Observation?category=vital-signs&_count=50&_total=none";

/// Measures each query `requests / 10` times (at least 50) from one client, each row beside
/// `GET` by id measured in the same run.
pub async fn run(env: &mut Env) -> anyhow::Result<Vec<Row>> {
    let base = env.base().await?;
    let ids = Arc::new(env.patients.clone());
    anyhow::ensure!(!ids.is_empty(), "no Patient to read");
    let repeat = (env.requests / 10).max(50);

    let read = {
        let (base, ids) = (base.clone(), ids.clone());
        driver::drive(&env.client, repeat, 1, move |i| {
            Req::Get(format!(
                "{base}/Patient/{}",
                ids[i.wrapping_mul(7919) % ids.len()]
            ))
        })
        .await?
    };
    let baseline = ("GET Patient by id".to_owned(), read.per_sec);

    let mut rows = Vec::new();
    for (name, query) in QUERIES {
        let url = format!("{base}/{query}");
        let matched = first_page_size(&env.client, &url).await?;
        let stats = driver::drive(&env.client, repeat, 1, move |_| Req::Get(url.clone())).await?;
        rows.push(row(
            env,
            &format!("{name}, {matched} on page 1"),
            &stats,
            &baseline,
        ));
    }

    let first = format!("{base}/{PAGED}");
    let (deep, reached) = follow_next(&env.client, &first, DEEP_PAGE)
        .await
        .context("following next links")?;
    for (name, url) in [
        ("search paging: page 1".to_owned(), first),
        (format!("search paging: page {reached}"), deep),
    ] {
        let stats = driver::drive(&env.client, repeat, 1, move |_| Req::Get(url.clone())).await?;
        rows.push(row(env, &name, &stats, &baseline));
    }
    Ok(rows)
}

fn row(env: &Env, name: &str, stats: &driver::Stats, baseline: &(String, f64)) -> Row {
    let mut row = Row::new(env.backend, name, 1, stats.requests, stats.per_sec)
        .beside(&baseline.0, Some(baseline.1));
    row.latency = Some(stats.percentiles());
    row
}

/// The number of entries on the first page of `url`.
async fn first_page_size(client: &reqwest::Client, url: &str) -> anyhow::Result<usize> {
    let bundle = fetch(client, url).await?;
    Ok(bundle["entry"].as_array().map_or(0, Vec::len))
}

/// Follows `next` links from `url` up to page `pages`; the URL of the last page reached and
/// its number.
async fn follow_next(
    client: &reqwest::Client,
    url: &str,
    pages: usize,
) -> anyhow::Result<(String, usize)> {
    let mut current = url.to_owned();
    let mut page = 1;
    while page < pages {
        let bundle = fetch(client, &current).await?;
        let next = bundle["link"].as_array().and_then(|links| {
            links
                .iter()
                .find(|l| l["relation"] == "next")
                .and_then(|l| l["url"].as_str())
        });
        match next {
            Some(next) => {
                current = next.to_owned();
                page += 1;
            }
            None => break,
        }
    }
    Ok((current, page))
}

async fn fetch(client: &reqwest::Client, url: &str) -> anyhow::Result<Value> {
    let response = client.get(url).send().await?;
    let status = response.status();
    let body = response.bytes().await?;
    anyhow::ensure!(status.is_success(), "GET {url} answered {status}");
    Ok(serde_json::from_slice(&body)?)
}
