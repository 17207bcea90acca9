//! Import into a running server: each batch becomes a `batch` Bundle of `PUT`s (`POST` for
//! resources without an id); entries fail one by one, and their line numbers are reported.

use anyhow::Context;
use serde_json::{Value, json};

use super::source::Batch;
use super::{BadLine, Summary};

/// A server being imported into.
pub struct RemoteImport {
    base: String,
    client: reqwest::Client,
}

impl RemoteImport {
    /// Imports into the FHIR server at `base`.
    pub fn new(base: &str) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder().build()?;
        Ok(RemoteImport {
            base: base.trim_end_matches('/').to_string(),
            client,
        })
    }

    /// Imports one batch.
    pub async fn import(
        &mut self,
        batch: &Batch,
        upsert: bool,
    ) -> anyhow::Result<(Summary, Vec<BadLine>)> {
        if let Some(bundle) = &batch.bundle {
            let (status, body) = self.post(bundle.clone()).await?;
            return Ok(bundle_outcome(status, &body));
        }
        let mut bad = Vec::new();
        let mut entries = Vec::with_capacity(batch.items.len());
        let mut lines = Vec::with_capacity(batch.items.len());
        for item in &batch.items {
            let resource: Value = match serde_json::from_slice(&item.raw) {
                Ok(v) => v,
                Err(e) => {
                    bad.push(BadLine {
                        line: item.line,
                        message: format!("malformed JSON: {e}"),
                    });
                    continue;
                }
            };
            let t = resource
                .get("resourceType")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let request = match resource.get("id").and_then(Value::as_str) {
                Some(id) if upsert => json!({"method": "PUT", "url": format!("{t}/{id}")}),
                Some(id) => {
                    json!({"method": "PUT", "url": format!("{t}/{id}"), "ifNoneMatch": "*"})
                }
                None => json!({"method": "POST", "url": t}),
            };
            entries.push(json!({"resource": resource, "request": request}));
            lines.push(item.line);
        }
        let bundle = json!({"resourceType": "Bundle", "type": "batch", "entry": entries});
        let (status, body) = self.post(serde_json::to_vec(&bundle)?).await?;
        anyhow::ensure!(
            status == 200,
            "the server answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
        let response: Value =
            serde_json::from_slice(&body).context("reading the batch-response")?;
        let (mut summary, failed) = tally(&response, lines);
        bad.extend(failed);
        summary.bad = bad.len() as u64;
        Ok((summary, bad))
    }

    /// Posts a Bundle, retrying on connection errors, `429` and `5xx` with backoff (honouring
    /// `Retry-After`).
    async fn post(&self, body: Vec<u8>) -> anyhow::Result<(u16, Vec<u8>)> {
        let mut delay = std::time::Duration::from_millis(200);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let response = self
                .client
                .post(&self.base)
                .header("content-type", "application/fhir+json")
                .header("prefer", "return=minimal")
                .body(body.clone())
                .send()
                .await;
            match response {
                Ok(r) if r.status().as_u16() != 429 && r.status().as_u16() < 500 => {
                    let status = r.status().as_u16();
                    return Ok((status, r.bytes().await?.to_vec()));
                }
                Ok(r) if attempt >= 5 => anyhow::bail!("the server answered {}", r.status()),
                Err(e) if attempt >= 5 => return Err(e).context("sending a batch"),
                Ok(r) => {
                    let advised = r
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                    if let Some(secs) = advised {
                        delay = std::time::Duration::from_secs(secs);
                    }
                }
                Err(_) => {}
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(std::time::Duration::from_secs(30));
        }
    }
}

/// The summary of a batch or transaction Bundle's response.
pub fn bundle_outcome(status: u16, body: &[u8]) -> (Summary, Vec<BadLine>) {
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    if status != 200 {
        let bad = vec![BadLine {
            line: 1,
            message: format!("{status}: {}", outcome_text(Some(&value))),
        }];
        return (
            Summary {
                bad: 1,
                ..Default::default()
            },
            bad,
        );
    }
    tally(&value, 1..)
}

/// Counts the 2xx entries of a batch or transaction response and reports the others, entry
/// by entry, at the lines `lines` yields in order.
fn tally(response: &Value, lines: impl IntoIterator<Item = u64>) -> (Summary, Vec<BadLine>) {
    let mut summary = Summary::default();
    let mut bad = Vec::new();
    let entries = response
        .get("entry")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    for (entry, line) in entries.zip(lines) {
        let status = entry
            .pointer("/response/status")
            .and_then(Value::as_str)
            .unwrap_or("");
        if status.starts_with('2') {
            summary.written += 1;
        } else {
            let outcome = outcome_text(entry.pointer("/response/outcome"));
            bad.push(BadLine {
                line,
                message: format!("{status}: {outcome}"),
            });
        }
    }
    summary.bad = bad.len() as u64;
    (summary, bad)
}

fn outcome_text(outcome: Option<&Value>) -> String {
    outcome
        .and_then(|o| o.get("issue"))
        .and_then(Value::as_array)
        .map(|issues| {
            issues
                .iter()
                .filter_map(|i| {
                    i.pointer("/details/text")
                        .or_else(|| i.get("diagnostics"))
                        .and_then(Value::as_str)
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default()
}
