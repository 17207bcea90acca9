//! Scenario: direct import of the data set into the backend's database, beside a raw insert
//! of the same NDJSON lines (one `body` column, batches of the same size) through the same
//! driver. Both read the files as they go, so the row's peak memory is the import's, not the
//! data set's.

use std::io::BufRead;

use oxifhir_store::StoreConfig;

use super::{Env, Row};
use crate::cli::DatabaseArgs;
use crate::import::{DeferIndexes, ImportArgs};

/// Lines per raw-insert transaction, as the import's batches.
const BATCH: usize = 2000;

/// Imports the data set into the backend's database (filling [`Env::patients`]) and measures
/// the raw insert of its lines; one row.
pub async fn run(env: &mut Env) -> anyhow::Result<Vec<Row>> {
    let db = match &env.config {
        StoreConfig::Sqlite { dir } => DatabaseArgs {
            data: dir.clone(),
            database: None,
            database_schema: None,
        },
        StoreConfig::Postgres { url, schema } => DatabaseArgs {
            data: env.scratch.clone(),
            database: Some(url.clone()),
            database_schema: schema.clone(),
        },
    };
    let args = ImportArgs {
        paths: vec![env.data.clone()],
        db,
        server: None,
        upsert: false,
        batch_size: BATCH,
        state: Some(env.scratch.join("import-state.json")),
        restart: true,
        quiet: true,
        defer_indexes: DeferIndexes::Auto,
        fail_after_batches: None,
    };
    let report = crate::import::import(&args).await?;
    env.patients = patient_ids(&env.data)?;
    let lines = LineBatches::open(&env.data)?;
    let raw = match &env.config {
        StoreConfig::Sqlite { .. } => {
            let path = env.scratch.join("raw.db");
            let rate = tokio::task::spawn_blocking({
                let path = path.clone();
                move || raw_sqlite(&path, lines)
            })
            .await??;
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
            rate
        }
        StoreConfig::Postgres { url, schema } => {
            let schema = format!("{}_raw", schema.as_deref().unwrap_or("bench"));
            raw_postgres(url, &schema, lines).await?
        }
    };
    let row = Row::new(
        env.backend,
        "import (direct, data set)",
        1,
        (report.summary.written + report.summary.unchanged) as usize,
        report.rate(),
    )
    .beside("raw insert of the lines", Some(raw));
    Ok(vec![row])
}

/// The non-empty lines of the `.ndjson` files of a directory, [`BATCH`] at a time, read as
/// they are asked for.
struct LineBatches {
    files: std::vec::IntoIter<std::path::PathBuf>,
    current: Option<std::io::Split<std::io::BufReader<std::fs::File>>>,
}

impl LineBatches {
    fn open(dir: &std::path::Path) -> anyhow::Result<Self> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "ndjson") {
                files.push(path);
            }
        }
        files.sort();
        Ok(LineBatches {
            files: files.into_iter(),
            current: None,
        })
    }

    /// The next batch; empty at the end.
    fn next_batch(&mut self) -> anyhow::Result<Vec<Vec<u8>>> {
        let mut batch = Vec::with_capacity(BATCH);
        while batch.len() < BATCH {
            let Some(lines) = &mut self.current else {
                match self.files.next() {
                    Some(path) => {
                        let file = std::fs::File::open(&path)?;
                        self.current = Some(std::io::BufReader::new(file).split(b'\n'));
                        continue;
                    }
                    None => break,
                }
            };
            match lines.next() {
                Some(line) => {
                    let line = line?;
                    if !line.is_empty() {
                        batch.push(line);
                    }
                }
                None => self.current = None,
            }
        }
        Ok(batch)
    }
}

/// Ids of the data set's Patients.
fn patient_ids(dir: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let path = dir.join("Patient.ndjson");
    let reader = std::io::BufReader::new(std::fs::File::open(&path)?);
    let mut ids = Vec::new();
    for line in reader.lines() {
        let value: serde_json::Value = serde_json::from_str(&line?)?;
        if let Some(id) = value.get("id").and_then(|v| v.as_str()) {
            ids.push(id.to_owned());
        }
    }
    anyhow::ensure!(!ids.is_empty(), "the data set has no Patient");
    Ok(ids)
}

/// Lines per second read and inserted by rusqlite into a fresh database set up as the store's.
fn raw_sqlite(path: &std::path::Path, mut lines: LineBatches) -> anyhow::Result<f64> {
    let mut conn = rusqlite::Connection::open(path)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
         CREATE TABLE raw (seq INTEGER PRIMARY KEY, body BLOB NOT NULL);",
    )?;
    let started = std::time::Instant::now();
    let mut inserted = 0;
    loop {
        let chunk = lines.next_batch()?;
        if chunk.is_empty() {
            break;
        }
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached("INSERT INTO raw (body) VALUES (?1)")?;
            for line in &chunk {
                stmt.execute([line])?;
            }
        }
        tx.commit()?;
        inserted += chunk.len();
    }
    Ok(inserted as f64 / started.elapsed().as_secs_f64().max(1e-9))
}

/// Lines per second read and inserted by tokio-postgres (`INSERT … SELECT unnest($1)` per
/// batch).
async fn raw_postgres(url: &str, schema: &str, mut lines: LineBatches) -> anyhow::Result<f64> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    client
        .batch_execute(&format!(
            "CREATE SCHEMA {schema}; \
             CREATE TABLE {schema}.raw (seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \
             body BYTEA NOT NULL)"
        ))
        .await?;
    let insert = client
        .prepare(&format!(
            "INSERT INTO {schema}.raw (body) SELECT * FROM unnest($1::bytea[])"
        ))
        .await?;
    let started = std::time::Instant::now();
    let mut inserted = 0;
    loop {
        let chunk = lines.next_batch()?;
        if chunk.is_empty() {
            break;
        }
        let bodies: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
        client.execute(&insert, &[&bodies]).await?;
        inserted += chunk.len();
    }
    let rate = inserted as f64 / started.elapsed().as_secs_f64().max(1e-9);
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await?;
    Ok(rate)
}
