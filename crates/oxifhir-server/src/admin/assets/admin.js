// The jobs page (/_admin/jobs) and a job's page (/_admin/jobs/{id}) of oxifhir.
//
// Both pages fetch their data from /_admin/api/jobs[/{id}] every second. With --auth smart
// that data needs a bearer token: a token typed into the page is kept in sessionStorage (this
// tab only) and sent as "Authorization: Bearer" on every fetch, including cancel (DELETE on
// the job's status URL) and file downloads. Everything is written with textContent, never as
// HTML, because request URLs come from clients.
'use strict';

const REFRESH_MS = 1000;
// File links a row of the jobs page shows; the job's page lists them all.
const FILE_LINKS = 3;
const TOKEN_KEY = 'oxifhir.accessToken';
const ADMIN = new URL('/_admin/', location.href);
// The id of /_admin/jobs/{id}; null on the list, /_admin/jobs.
const JOB_ID = (() => {
  const match = /\/_admin\/jobs\/([^/]+)$/.exec(location.pathname);
  return match ? decodeURIComponent(match[1]) : null;
})();

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

function authHeaders() {
  const t = token();
  return t ? { Authorization: 'Bearer ' + t } : {};
}

// A URL the server handed out (absolute, built from its --base-url) as a path on this origin,
// so that the page works through a proxy that rewrites the host.
function local(url) {
  const u = new URL(url, location.href);
  return u.pathname + u.search;
}

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props || {});
  for (const child of children) {
    if (child !== null && child !== undefined) {
      node.append(child);
    }
  }
  return node;
}

function notice(text, kind) {
  const p = document.getElementById('notice');
  p.textContent = text || '';
  p.className = kind || '';
  p.hidden = !text;
}

// The diagnostics of an OperationOutcome body, or the status line.
async function problem(response) {
  try {
    const body = await response.json();
    const issue = (body.issue || [])[0] || {};
    return (issue.details && issue.details.text) || issue.diagnostics || response.statusText;
  } catch (_) {
    return response.status + ' ' + response.statusText;
  }
}

function setupToken(auth) {
  const form = document.getElementById('token-form');
  if (auth === 'smart' || token()) {
    form.hidden = false;
  }
}

function bindTokenForm(refresh) {
  const form = document.getElementById('token-form');
  const input = document.getElementById('token');
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const value = input.value.trim().replace(/^Bearer\s+/i, '');
    if (value) {
      sessionStorage.setItem(TOKEN_KEY, value);
    }
    input.value = '';
    notice('');
    refresh();
  });
  document.getElementById('forget-token').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    refresh();
  });
}

// A 401 from the data endpoint: say how to get a token and show the field.
async function needToken(response) {
  document.getElementById('token-form').hidden = false;
  const reason = await problem(response);
  notice(
    (token() ? 'The access token was refused: ' : 'This server requires authentication (--auth smart). ') +
      reason +
      ' Paste an access token from the token endpoint ([base]/auth/token) above; it is kept for this tab only.',
    'error',
  );
}

// "1 min 05 s", "12.3 s".
function duration(seconds) {
  if (seconds === null || seconds === undefined) {
    return '—';
  }
  if (seconds < 60) {
    return seconds.toFixed(1) + ' s';
  }
  const s = Math.floor(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h} h ${String(m).padStart(2, '0')} min` : `${m} min ${rest} s`;
}

function throughput(job) {
  if (job.perSecond === null || job.perSecond === undefined) {
    return '—';
  }
  const unit = (job.counts && job.counts.unit) || 'units';
  const rate = job.perSecond >= 100 ? Math.round(job.perSecond).toLocaleString('en') : job.perSecond.toFixed(1);
  return `${rate} ${unit}/s`;
}

function when(text) {
  return text ? new Date(text).toLocaleString() : '—';
}

// The request relative to the FHIR base: "GET $export?_type=Patient".
function requestText(job, base) {
  const url = base && job.request.startsWith(base + '/') ? job.request.slice(base.length + 1) : job.request;
  return (job.method ? job.method + ' ' : '') + readable(url);
}

// A URL with its percent-escapes decoded, for reading only ("_type=Patient,Observation").
function readable(url) {
  try {
    return decodeURIComponent(url);
  } catch (_) {
    return url;
  }
}

function updateBar(bar, job) {
  const inner = bar.firstElementChild;
  bar.className = 'bar ' + job.state;
  if (job.percent === null || job.percent === undefined) {
    bar.classList.add('indeterminate');
    bar.removeAttribute('aria-valuenow');
    inner.style.width = job.state === 'running' || job.state === 'queued' ? '' : '0';
  } else {
    bar.setAttribute('aria-valuenow', String(Math.round(job.percent)));
    inner.style.width = job.percent.toFixed(1) + '%';
  }
}

// DELETE on the status URL: cancels a running job, or lets go of a finished one's result.
async function release(job, after) {
  const response = await fetch(local(job.statusUrl), { method: 'DELETE', headers: authHeaders() });
  if (response.status === 401) {
    await needToken(response);
    return;
  }
  if (!response.ok) {
    notice(`Could not ${actionName(job).toLowerCase()} job ${job.id}: ${await problem(response)}`, 'error');
    return;
  }
  const done = job.status === 'accepted' ? 'cancelled' : 'deleted';
  notice(`Job ${job.id} ${done}.`, 'ok');
  after();
}

function actionName(job) {
  return job.status === 'accepted' ? 'Cancel' : 'Delete';
}

// The cancel/delete button of `job()`: a first click asks "Really …?" for a few seconds, a
// second one sends the DELETE (no modal dialog; work is not thrown away by one stray click).
function bindAction(button, job, after) {
  let disarm = null;
  button.addEventListener('click', () => {
    const current = job();
    if (!current) {
      return;
    }
    if (!button.dataset.armed) {
      button.dataset.armed = 'yes';
      button.textContent = `Really ${actionName(current).toLowerCase()}?`;
      disarm = setTimeout(() => {
        delete button.dataset.armed;
        button.textContent = actionName(job() || current);
      }, 4000);
      return;
    }
    clearTimeout(disarm);
    delete button.dataset.armed;
    button.textContent = actionName(current);
    release(current, after);
  });
}

// Labels the button for `job` unless it is waiting for its confirming click.
function labelAction(button, job) {
  if (!button.dataset.armed) {
    button.textContent = actionName(job);
  }
  button.title =
    job.status === 'accepted'
      ? 'Stop the job (DELETE on its status URL); click twice'
      : 'Delete the result and its files (DELETE on its status URL); click twice';
  button.hidden = job.state === 'cancelled';
}

// File links: plain links without auth; with a token, fetched with it and saved from a blob.
function fileLink(file) {
  const name = file.url.split('/').pop();
  const a = el('a', { href: local(file.url), className: 'file', download: name });
  a.textContent = `${name} (${file.count.toLocaleString('en')})`;
  a.title = `${file.list}: ${file.count} ${file.type}`;
  a.addEventListener('click', async (event) => {
    if (!token()) {
      return;
    }
    event.preventDefault();
    const response = await fetch(a.href, { headers: authHeaders() });
    if (!response.ok) {
      notice(`Download of ${name} failed: ${await problem(response)}`, 'error');
      return;
    }
    const blob = URL.createObjectURL(await response.blob());
    const save = el('a', { href: blob, download: name });
    document.body.append(save);
    save.click();
    save.remove();
    setTimeout(() => URL.revokeObjectURL(blob), 10000);
  });
  return a;
}

// Calls `load` now and every REFRESH_MS after it finishes, while it returns true.
function poll(load) {
  let timer = null;
  let running = false;
  const run = async () => {
    clearTimeout(timer);
    if (running) {
      return;
    }
    running = true;
    let again = true;
    try {
      again = await load();
    } catch (error) {
      notice('The server cannot be reached: ' + error.message, 'error');
    } finally {
      running = false;
    }
    if (again) {
      timer = setTimeout(run, REFRESH_MS);
    }
  };
  run();
  return run;
}

// ---- the jobs page ----

function jobsPage() {
  document.getElementById('list-page').hidden = false;
  const tbody = document.querySelector('#jobs tbody');
  const rows = new Map();
  const filter = document.getElementById('filter');

  function row(job) {
    const tr = el('tr');
    tr.dataset.jobId = job.id;
    const bar = el('div', { className: 'bar', role: 'progressbar' }, el('div'));
    bar.setAttribute('aria-valuemin', '0');
    bar.setAttribute('aria-valuemax', '100');
    const action = el('button', { type: 'button', className: 'cancel' });
    bindAction(action, () => tr.job, () => refresh());
    tr.append(
      el('td', { className: 'request' }, el('a', { className: 'job-link' }), el('span', { className: 'kind' })),
      el('td', {}, el('span', { className: 'state' })),
      el('td', { className: 'progress-col' }, bar, el('span', { className: 'progress-text' })),
      el('td', { className: 'elapsed num' }),
      el('td', { className: 'throughput num' }),
      el('td', { className: 'files' }),
      el('td', { className: 'actions' }, action),
    );
    return tr;
  }

  function update(tr, job, base) {
    tr.job = job;
    const link = tr.querySelector('.job-link');
    link.href = new URL('jobs/' + encodeURIComponent(job.id), ADMIN).pathname;
    link.textContent = requestText(job, base);
    link.title = job.request;
    tr.querySelector('.kind').textContent = job.kind;
    const state = tr.querySelector('.state');
    state.textContent = job.state;
    state.className = 'state ' + job.state;
    updateBar(tr.querySelector('.bar'), job);
    tr.querySelector('.progress-text').textContent = job.progress;
    tr.querySelector('.elapsed').textContent = duration(job.elapsedSeconds);
    tr.querySelector('.throughput').textContent = throughput(job);
    const files = tr.querySelector('.files');
    const shown = files.dataset.count || '0';
    if (shown !== String(job.files.length)) {
      const links = job.files.slice(0, FILE_LINKS).map(fileLink);
      if (job.files.length > FILE_LINKS) {
        links.push(el('a', { href: link.href, className: 'more', textContent: `+${job.files.length - FILE_LINKS} more` }));
      }
      files.replaceChildren(...links);
      files.dataset.count = String(job.files.length);
    }
    const action = tr.querySelector('.actions button');
    labelAction(action, job);
  }

  async function load() {
    const query = filter.value ? '?status=' + encodeURIComponent(filter.value) : '';
    const response = await fetch(new URL('api/jobs' + query, ADMIN), { headers: authHeaders(), cache: 'no-store' });
    if (response.status === 401) {
      await needToken(response);
      return false;
    }
    if (!response.ok) {
      notice('Could not list the jobs: ' + (await problem(response)), 'error');
      return true;
    }
    const listing = await response.json();
    setupToken(listing.auth);
    const seen = new Set();
    listing.jobs.forEach((job, index) => {
      seen.add(job.id);
      let tr = rows.get(job.id);
      if (!tr) {
        tr = row(job);
        rows.set(job.id, tr);
      }
      if (tbody.children[index] !== tr) {
        tbody.insertBefore(tr, tbody.children[index] || null);
      }
      update(tr, job, listing.fhirBase);
    });
    for (const [id, tr] of rows) {
      if (!seen.has(id)) {
        tr.remove();
        rows.delete(id);
      }
    }
    document.getElementById('empty').hidden = listing.jobs.length > 0;
    document.getElementById('updated').textContent = 'updated ' + new Date(listing.serverTime).toLocaleTimeString();
    return true;
  }

  const refresh = poll(load);
  filter.addEventListener('change', refresh);
  bindTokenForm(refresh);
}

// ---- a job's page ----

function jobPage(id) {
  document.getElementById('back').hidden = false;
  document.getElementById('page-name').textContent = 'job';
  document.getElementById('job-id').textContent = id;
  document.title = `Job ${id} · oxifhir`;
  const cancel = document.getElementById('cancel');
  let current = null;
  bindAction(cancel, () => current, () => refresh());

  function fact(list, name, value) {
    list.append(el('dt', { textContent: name }), el('dd', { textContent: value }));
  }

  function show(job, base) {
    current = job;
    document.getElementById('job').hidden = false;
    document.getElementById('request').textContent = requestText(job, base);
    document.getElementById('request').title = job.request;
    const state = document.getElementById('state');
    state.textContent = job.state;
    state.className = 'state ' + job.state;
    labelAction(cancel, job);
    updateBar(document.getElementById('bar'), job);
    document.getElementById('progress').textContent = job.progress;
    const facts = document.getElementById('facts');
    facts.replaceChildren();
    fact(facts, 'Request', `${job.method || ''} ${readable(job.request)}`.trim());
    fact(facts, 'Kind', job.kind);
    fact(facts, 'Status (AsyncJob)', job.status);
    fact(facts, 'Requested', when(job.requestTime));
    fact(facts, 'Started', when(job.startedTime));
    fact(facts, 'Finished', when(job.finishedTime));
    if (job.transactionTime) {
      fact(facts, 'Transaction time', when(job.transactionTime));
    }
    fact(facts, 'Elapsed', duration(job.elapsedSeconds));
    fact(facts, 'Throughput', throughput(job));
    fact(facts, 'Attempts', `${job.attempt} (failed: ${job.failures})`);
    fact(facts, 'Expires', when(job.expiresTime));
    fact(facts, 'Status URL', job.statusUrl);
    document.getElementById('error-box').hidden = !job.error;
    document.getElementById('error').textContent = job.error || '';
    document.getElementById('files-box').hidden = job.files.length === 0;
    document.getElementById('files').replaceChildren(...job.files.map((f) => el('li', {}, fileLink(f))));
    const out = job.output;
    document.getElementById('output-box').hidden = !out;
    if (out) {
      document.getElementById('output-head').textContent =
        `${out.status} ${out.contentType || ''} — ${out.url}` + (out.truncated ? ' (too large to show here)' : '');
      document.getElementById('output').textContent =
        out.body === null ? '' : typeof out.body === 'string' ? out.body : JSON.stringify(out.body, null, 2);
    }
  }

  async function load() {
    const response = await fetch(new URL('api/jobs/' + encodeURIComponent(id), ADMIN), {
      headers: authHeaders(),
      cache: 'no-store',
    });
    if (response.status === 401) {
      await needToken(response);
      return false;
    }
    if (response.status === 404) {
      document.getElementById('job').hidden = true;
      if (!document.getElementById('notice').classList.contains('ok')) {
        notice('No such job: ' + (await problem(response)), 'error');
      }
      return false;
    }
    if (!response.ok) {
      notice('Could not read the job: ' + (await problem(response)), 'error');
      return true;
    }
    const job = await response.json();
    const base = job.statusUrl.slice(0, job.statusUrl.length - ('/_async/' + job.id).length);
    setupToken(token() ? 'smart' : 'none');
    show(job, base);
    // A finished job changes no more (except by a DELETE, which refreshes).
    return job.status === 'accepted';
  }

  const refresh = poll(load);
  bindTokenForm(refresh);
}

if (JOB_ID) {
  jobPage(JOB_ID);
} else {
  jobsPage();
}
