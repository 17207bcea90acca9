// Drives oxifhir's jobs page (/_admin/jobs) in a headless Chromium through playwright-core,
// against a running `oxifhir serve` without authentication whose data makes an export take
// several seconds (crates/oxifhir/tests/browser.rs starts one and runs this script):
//
//   node jobs_page.mjs http://127.0.0.1:8080 [--screenshots DIR]
//
// It kicks off an asynchronous search and two exports, then, through the page only: sees the
// long export's progress advance (two different readings), cancels it with the page's button
// (two clicks; the row goes away and the status URL answers 404), waits for the other export
// to finish, downloads its file from the page's link (NDJSON, one resource a line) and opens
// its detail page. With --screenshots, saves jobs-list.png (exports running) and
// job-detail.png there.
// The browser is $CHROMIUM, or /usr/bin/chromium (Debian's package); nothing is downloaded.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { chromium } from 'playwright-core';

const root = (process.argv[2] || '').replace(/\/$/, '');
if (!root) {
  console.error('usage: node jobs_page.mjs SERVER_ROOT_URL [--screenshots DIR]');
  process.exit(2);
}
const shotsAt = process.argv.indexOf('--screenshots');
const shots = shotsAt > 0 ? process.argv[shotsAt + 1] : null;
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';

function check(condition, message) {
  if (!condition) {
    throw new Error(message);
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Calls `probe` until it returns something truthy (every 100 ms, at most `seconds`).
async function until(what, probe, seconds = 60) {
  const end = Date.now() + seconds * 1000;
  while (Date.now() < end) {
    const value = await probe();
    if (value) {
      return value;
    }
    await sleep(100);
  }
  throw new Error('timed out waiting for ' + what);
}

const listing = await (await fetch(root + '/_admin/api/jobs')).json();
const base = listing.fhirBase;
check(base, 'the listing names the FHIR base');

async function kickoff(relative) {
  const response = await fetch(base + '/' + relative, { headers: { prefer: 'respond-async' } });
  check(response.status === 202, `kick-off of ${relative}: ${response.status} ${await response.text()}`);
  return response.headers.get('content-location').split('/').pop();
}

const browser = await chromium.launch({
  executablePath,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
const problems = [];
try {
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1360, height: 640 } });
  const page = await context.newPage();
  page.on('pageerror', (error) => problems.push('page error: ' + error.message));
  page.on('console', (message) => {
    if (message.type() === 'error') {
      problems.push('console error: ' + message.text());
    }
  });

  await page.goto(root + '/_admin/jobs');
  await page.waitForSelector('#empty:not([hidden])');
  console.log('the page lists no jobs before any were started');

  const search = await kickoff('Patient?_count=3');
  const long = await kickoff('$export?_type=Patient,Observation');
  const short = await kickoff('$export?_type=Patient');
  console.log(`started: search ${search}, export to cancel ${long}, export to finish ${short}`);

  // Reads a cell of a job's row (null while the row is not there).
  const cell = (id, selector) =>
    page.evaluate(
      ([id, selector]) => {
        const node = document.querySelector(`tr[data-job-id="${id}"] ${selector}`);
        return node ? node.textContent : null;
      },
      [id, selector],
    );
  const exported = async (id) => {
    const match = /Exported (\d+) of (\d+) resources/.exec((await cell(id, '.progress-text')) || '');
    return match ? { done: Number(match[1]), total: Number(match[2]) } : null;
  };

  // The progress of the long export advances on the page.
  const first = await until('the export to show progress', async () => {
    const p = await exported(long);
    return p && p.done > 0 && p.done < p.total ? p : null;
  });
  const second = await until('the export progress to advance', async () => {
    const p = await exported(long);
    return p && p.done > first.done ? p : null;
  });
  console.log(`progress advanced on the page: ${first.done} → ${second.done} of ${second.total}`);
  check((await cell(long, '.state')) === 'running', 'the long export is running');
  const width = await page.$eval(`tr[data-job-id="${long}"] .bar > div`, (bar) => bar.style.width);
  check(/^\d+(\.\d+)?%$/.test(width) && parseFloat(width) > 0, 'the progress bar has a width: ' + width);
  check(/resources\/s$/.test((await cell(long, '.throughput')) || ''), 'throughput is shown in resources/s');
  check(/s$/.test((await cell(long, '.elapsed')) || ''), 'elapsed time is shown');
  const searchState = await until('the search to complete', async () =>
    (await cell(search, '.state')) === 'completed' ? 'completed' : null,
  );
  check((await cell(search, '.job-link')).startsWith('GET Patient?_count=3'), 'the search row shows its request');
  check((await cell(search, '.kind')) === 'interaction', 'the search row shows its kind: ' + searchState);
  if (shots) {
    await page.screenshot({ path: path.join(shots, 'jobs-list.png') });
    console.log('saved ' + path.join(shots, 'jobs-list.png'));
  }

  // Cancel from the page: the row goes, the status URL answers 404.
  const statusUrl = `${base}/_async/${long}`;
  const cancel = `tr[data-job-id="${long}"] button.cancel`;
  await page.click(cancel);
  await page.waitForSelector(`${cancel}[data-armed]`);
  check((await page.textContent(cancel)) === 'Really cancel?', 'a first click asks for a second one');
  check((await fetch(statusUrl)).status === 202, 'one click does not cancel');
  await page.click(cancel);
  await page.waitForSelector(`tr[data-job-id="${long}"]`, { state: 'detached', timeout: 30000 });
  const notice = await page.textContent('#notice');
  check(notice.includes(`Job ${long} cancelled`), 'the page says the job was cancelled: ' + notice);
  const gone = await fetch(statusUrl);
  check(gone.status === 404, `the cancelled job's status URL answers ${gone.status}`);
  console.log('cancelled from the page; its status URL answers 404');

  // The other export finishes; its file downloads from the page.
  await until('the export to complete', async () => (await cell(short, '.state')) === 'completed', 120);
  const link = `tr[data-job-id="${short}"] a.file`;
  await page.waitForSelector(link);
  const [download] = await Promise.all([page.waitForEvent('download'), page.click(link)]);
  const text = await readFile(await download.path(), 'utf8');
  const lines = text.split('\n').filter((line) => line.length > 0);
  check(lines.length > 0, 'the downloaded file has lines');
  for (const line of lines) {
    check(JSON.parse(line).resourceType === 'Patient', 'every line is a Patient: ' + line.slice(0, 80));
  }
  const listed = Number(/\((\d[\d,]*)\)/.exec(await page.textContent(link))[1].replace(/,/g, ''));
  check(listed === lines.length, `the link says ${listed} resources, the file has ${lines.length}`);
  console.log(`downloaded ${download.suggestedFilename()} from the page: ${lines.length} NDJSON lines`);

  // The detail page of the finished export.
  await page.click(`tr[data-job-id="${short}"] a.job-link`);
  await page.waitForURL(`**/_admin/jobs/${short}`);
  await page.waitForSelector('#output-box:not([hidden])');
  check((await page.textContent('#state')) === 'completed', 'the detail page shows the state');
  check((await page.textContent('#output')).includes('"output"'), 'the detail page shows the manifest');
  check((await page.locator('#files a.file').count()) > 0, 'the detail page lists the files');
  console.log('the detail page shows the manifest and the files');
  if (shots) {
    await page.screenshot({ path: path.join(shots, 'job-detail.png'), fullPage: true });
    console.log('saved ' + path.join(shots, 'job-detail.png'));
  }
  check(problems.length === 0, 'the page logged errors:\n' + problems.join('\n'));
  console.log('jobs page: all checks passed');
} finally {
  await browser.close();
}
