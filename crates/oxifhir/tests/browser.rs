//! The jobs page (`/_admin/jobs`) in a real headless browser: a real `oxifhir serve` with
//! enough data (and a throttled export) that an export runs for several seconds, and
//! `tests/browser/jobs_page.mjs` (playwright-core driving Debian's `chromium`) watching its
//! progress advance, cancelling it from the page, and downloading another export's file from
//! the page's link.
//!
//! Needs `node`, `chromium` (or `$OXIFHIR_CHROMIUM`) and `npm ci` run in `tests/browser/`.
//! Without them the test prints why and passes, unless `OXIFHIR_TEST_BROWSER=required` (as
//! `.ci/run` sets), which makes a missing piece a failure. `OXIFHIR_TEST_SCREENSHOTS=DIR`
//! saves the page's screenshots there (the README's come from `docs/images`).

mod common;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The browser test's directory (`package.json`, `jobs_page.mjs`, `node_modules`).
fn script_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

fn chromium() -> PathBuf {
    std::env::var_os("OXIFHIR_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// What is missing to run the browser test, if anything.
fn missing() -> Option<String> {
    let chromium = chromium();
    if !chromium.is_file() {
        return Some(format!(
            "{} is missing (apt-get install chromium, or set OXIFHIR_CHROMIUM)",
            chromium.display()
        ));
    }
    let node = std::process::Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        return Some("node is not installed".into());
    }
    let module = script_dir().join("node_modules/playwright-core/package.json");
    if !module.is_file() {
        return Some(format!(
            "playwright-core is not installed (run npm ci in {})",
            script_dir().display()
        ));
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jobs_page_in_a_headless_browser() {
    let required = std::env::var("OXIFHIR_TEST_BROWSER").as_deref() == Ok("required");
    if let Some(what) = missing() {
        assert!(!required, "OXIFHIR_TEST_BROWSER=required, but {what}");
        eprintln!(
            "skipping the browser test of the jobs page: {what} (OXIFHIR_TEST_BROWSER=required makes this a failure)"
        );
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("serve.log");
    let mut args: Vec<OsString> = vec!["--data".into(), dir.path().join("db").into()];
    // Two workers (two exports at once); files of 20 resources, batches of 10 with a pause
    // after each: exporting the 600 resources takes about 9 s.
    for arg in [
        "--workers",
        "2",
        "--export-part-size",
        "20",
        "--export-batch",
        "10",
        "--export-throttle",
        "150ms",
        "--export-settle",
        "50ms",
    ] {
        args.push(arg.into());
    }
    let node = common::serve(&args, &[], &log).await;
    common::load_patients(&node.base, 300).await;
    let root = node.base.trim_end_matches("/fhir").to_string();

    let mut script = tokio::process::Command::new("node");
    script
        .arg(script_dir().join("jobs_page.mjs"))
        .arg(&root)
        .env("CHROMIUM", chromium())
        .current_dir(script_dir())
        .kill_on_drop(true);
    if let Some(shots) = std::env::var_os("OXIFHIR_TEST_SCREENSHOTS") {
        script.arg("--screenshots").arg(shots);
    }
    let output = tokio::time::timeout(Duration::from_secs(300), script.output())
        .await
        .expect("the browser script did not finish within 5 minutes")
        .expect("running node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("{stdout}{stderr}");
    assert!(
        output.status.success(),
        "the browser script failed ({}):\n{stdout}\n{stderr}\nserver log:\n{}",
        output.status,
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(
        stdout.contains("jobs page: all checks passed"),
        "the script did not get to its end:\n{stdout}"
    );
}
