// The dashboard's three pages, over the run API (/runs, /runs/{id}, /runs/{id}/events);
// common.js, loaded before, has the helpers.
'use strict';

const pct = (x) => (typeof x === 'number' ? `${(100 * x).toFixed(2)}%` : '–');
const num = (x, digits = 4) => (typeof x === 'number' ? x.toFixed(digits) : '–');

function duration(run) {
  if (!run.startedAt) return undefined;
  const end = run.endedAt ? Date.parse(run.endedAt) : Date.now();
  return (end - Date.parse(run.startedAt)) / 1000;
}
const fmtDuration = (s) => (s === undefined ? '–' : s < 120 ? `${s.toFixed(0)}s` : `${(s / 60).toFixed(1)}m`);

/** POSTs (or DELETEs) with the bearer token the server asked for, prompting once for it. */
async function write(method, url) {
  for (let attempt = 0; attempt < 2; attempt++) {
    const token = localStorage.getItem('torchlet-token');
    const res = await fetch(url, { method, headers: token ? { authorization: `Bearer ${token}` } : {} });
    if (res.status === 401 && attempt === 0) {
      const given = prompt('This server needs its token (TORCHLET_TOKEN) for changes:');
      if (!given) return undefined;
      localStorage.setItem('torchlet-token', given);
      continue;
    }
    if (!res.ok && res.status !== 204) throw new Error((await res.json()).message);
    return res;
  }
  return undefined;
}

// ---- the runs table -------------------------------------------------------------------

function runsPage() {
  const state = { runs: [], sort: { key: 'created', dir: -1 }, selected: new Set() };
  const params = new URLSearchParams(location.search);
  $('#filter').value = params.get('q') || '';
  $('#status').value = params.get('status') || '';

  const value = (run, key) => {
    switch (key) {
      case 'model': return String(run.config.model ?? run.params.model ?? '');
      case 'epochs': return run.final ? run.final.epoch : 0;
      case 'best': return run.best ? run.best.accuracy : undefined;
      case 'testAccuracy': return run.final ? run.final.testAccuracy : undefined;
      case 'testLoss': return run.final ? run.final.testLoss : undefined;
      case 'duration': return duration(run);
      case 'created': return run.createdAt;
      default: return run[key];
    }
  };

  function render() {
    const q = $('#filter').value.trim().toLowerCase();
    const experiment = $('#experiment').value;
    const status = $('#status').value;
    const rows = state.runs.filter((r) =>
      (!experiment || r.experiment === experiment) &&
      (!status || r.status === status) &&
      (!q || [r.name, r.id, r.experiment, value(r, 'model'), r.status].some((s) => String(s).toLowerCase().includes(q))),
    );
    const { key, dir } = state.sort;
    rows.sort((a, b) => {
      const x = value(a, key);
      const y = value(b, key);
      if (x === undefined || y === undefined) return x === y ? 0 : x === undefined ? 1 : -1;
      return (x < y ? -1 : x > y ? 1 : 0) * dir;
    });
    document.querySelectorAll('th[data-key]').forEach((th) => {
      th.classList.toggle('sorted-asc', th.dataset.key === key && dir === 1);
      th.classList.toggle('sorted-desc', th.dataset.key === key && dir === -1);
    });
    const tbody = $('#runs tbody');
    tbody.replaceChildren(
      ...rows.map((r) => {
        const box = el('input', { type: 'checkbox', 'aria-label': `select ${r.name}` });
        box.checked = state.selected.has(r.id);
        box.addEventListener('change', () => {
          if (box.checked) state.selected.add(r.id);
          else state.selected.delete(r.id);
          updateCompare();
        });
        return el('tr', { 'data-id': r.id },
          el('td', {}, box),
          el('td', {}, el('a', { href: `/dashboard/runs/${r.id}` }, r.name)),
          el('td', { class: 'muted' }, r.id.slice(0, 8)),
          el('td', {}, r.experiment),
          el('td', {}, el('span', { class: `status ${r.status}` }, r.status)),
          el('td', {}, value(r, 'model')),
          el('td', { class: 'num' }, `${value(r, 'epochs')}/${r.config.epochs ?? '?'}`),
          el('td', { class: 'num' }, pct(value(r, 'best'))),
          el('td', { class: 'num' }, pct(value(r, 'testAccuracy'))),
          el('td', { class: 'num' }, num(value(r, 'testLoss'))),
          el('td', { class: 'num' }, fmtDuration(value(r, 'duration'))),
          el('td', { class: 'muted' }, r.createdAt.replace('T', ' ').slice(0, 19)),
        );
      }),
    );
    $('#count').textContent = `${rows.length} of ${state.runs.length} runs`;
    $('#empty').hidden = state.runs.length > 0;
  }

  function updateCompare() {
    const n = state.selected.size;
    $('#compare').disabled = n < 2 || n > 10;
    $('#compare').textContent = n > 10 ? 'compare: 10 runs at most' : `compare selected (${n})`;
  }

  document.querySelectorAll('th[data-key]').forEach((th) =>
    th.addEventListener('click', () => {
      const key = th.dataset.key;
      state.sort = { key, dir: state.sort.key === key ? -state.sort.dir : ['name', 'id', 'experiment', 'status', 'model', 'testLoss', 'duration'].includes(key) ? 1 : -1 };
      render();
    }),
  );
  for (const id of ['#filter', '#experiment', '#status']) $(id).addEventListener('input', render);
  $('#compare').addEventListener('click', () => (location.href = `/dashboard/compare?ids=${[...state.selected].join(',')}`));

  async function load() {
    const { runs, experiments } = await getJson('/runs');
    state.runs = runs;
    const select = $('#experiment');
    const current = select.value || params.get('experiment') || '';
    select.replaceChildren(el('option', { value: '' }, 'all experiments'), ...experiments.map((e) => el('option', { value: e }, e)));
    select.value = experiments.includes(current) ? current : '';
    render();
  }
  load();
  setInterval(load, 5000);
  updateCompare();
}

// ---- charts ---------------------------------------------------------------------------

function curveSpec(values, field, title, colorField, sort) {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    width: 380,
    height: 240,
    data: { values },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'epoch', type: 'quantitative', axis: { tickMinStep: 1, format: 'd' } },
      y: { field, type: 'quantitative', title: null, scale: { zero: false } },
      color: { field: colorField, type: 'nominal', sort, title: null },
      tooltip: [{ field: colorField }, { field: 'epoch' }, { field, format: '.4f' }],
    },
  };
}

// ---- one run, live --------------------------------------------------------------------

function runPage() {
  const id = location.pathname.split('/').pop();
  let epochs = [];
  let run;

  const drawCurves = () => {
    const values = epochs.flatMap((r) => [
      { epoch: r.epoch, split: 'train', loss: r.trainLoss, accuracy: 100 * r.trainAccuracy },
      { epoch: r.epoch, split: 'test', loss: r.testLoss, accuracy: 100 * r.testAccuracy },
      ...(r.valAccuracy !== undefined ? [{ epoch: r.epoch, split: 'val', loss: r.valLoss, accuracy: 100 * r.valAccuracy }] : []),
    ]);
    draw('#loss-chart', curveSpec(values, 'loss', 'loss', 'split', ['train', 'test', 'val']));
    draw('#accuracy-chart', curveSpec(values, 'accuracy', 'accuracy (%)', 'split', ['train', 'test', 'val']));
    $('#epochs tbody').replaceChildren(
      ...epochs.map((e) => el('tr', {},
        ...[e.epoch, num(e.trainLoss), pct(e.trainAccuracy), num(e.testLoss), pct(e.testAccuracy), pct(e.valAccuracy), e.lr.toExponential(3), e.seconds.toFixed(1)].map((v) => el('td', { class: 'num' }, v)),
      )),
    );
  };

  const showRun = (r) => {
    run = r;
    document.title = `${r.name}: torchlet run`;
    $('#name').textContent = r.name;
    $('#status').textContent = r.status;
    $('#status').className = `status ${r.status}`;
    $('#id').textContent = r.id;
    $('#experiment').textContent = r.experiment;
    $('#error').hidden = !r.error;
    $('#error').textContent = r.error || '';
    $('#cancel').hidden = !(r.status === 'queued' || r.status === 'running') || r.cancelRequested;
    if (r.status !== 'running') $('#progress').hidden = true;
    $('#config').replaceChildren(...Object.entries(r.config).map(([k, v]) => el('tr', {}, el('td', {}, k), el('td', {}, JSON.stringify(v)))));
    const facts = [
      ['started', r.startedAt || '–'], ['ended', r.endedAt || '–'], ['duration', fmtDuration(duration(r))],
      ['best', r.best ? `${pct(r.best.accuracy)} (${r.best.by}, epoch ${r.best.epoch})` : '–'],
      ['git', r.git.commit ? `${r.git.commit.slice(0, 12)}${r.git.dirty ? ' (dirty)' : ''}` : '–'],
      ['versions', `torchlet ${r.versions.torchlet || '–'}, libtorch ${r.versions.libtorch || '–'}`],
      ['machine', `${r.host || '–'}, ${r.device || '–'}, ${r.threads ?? '–'} threads`],
      ['worker', r.worker ? `${r.worker} (attempt ${r.attempts})` : '–'],
    ];
    $('#facts').replaceChildren(...facts.map(([k, v]) => el('tr', {}, el('td', {}, k), el('td', {}, v))));
  };

  const showProgress = (p) => {
    if (!run || run.status !== 'running') return;
    $('#progress').hidden = false;
    $('#progress .bar').style.width = `${(100 * p.step) / p.steps}%`;
    $('#progress .label').textContent = `epoch ${p.epoch}/${run.config.epochs ?? '?'}: step ${p.step}/${p.steps}, loss ${p.loss.toFixed(4)}, accuracy ${pct(p.accuracy)}`;
  };

  const showArtifacts = async () => {
    const { artifacts } = await getJson(`/runs/${id}`);
    $('#artifacts').replaceChildren(...artifacts.map((a) => el('li', {}, el('a', { href: `/runs/${id}/artifacts/${a.name}` }, a.name), ` ${(a.size / 1024).toFixed(1)} KiB`)));
  };

  $('#cancel').addEventListener('click', async () => {
    try {
      await write('POST', `/runs/${id}/cancel`);
    } catch (err) {
      $('#error').hidden = false;
      $('#error').textContent = err.message;
    }
  });

  getJson(`/runs/${id}`).then(
    ({ run: r, epochs: e }) => {
      showRun(r);
      epochs = e;
      drawCurves();
      showArtifacts();
      if (['finished', 'failed', 'cancelled'].includes(r.status)) return;
      const events = new EventSource(`/runs/${id}/events`);
      events.addEventListener('epoch', (ev) => {
        const record = JSON.parse(ev.data);
        epochs = [...epochs.filter((x) => x.epoch !== record.epoch), record].sort((a, b) => a.epoch - b.epoch);
        drawCurves();
        showArtifacts();
      });
      events.addEventListener('progress', (ev) => showProgress(JSON.parse(ev.data)));
      events.addEventListener('status', (ev) => showRun(JSON.parse(ev.data).run));
      events.addEventListener('run', (ev) => showRun(JSON.parse(ev.data)));
      events.addEventListener('end', () => {
        events.close();
        getJson(`/runs/${id}`).then(({ run: last }) => showRun(last));
        showArtifacts();
      });
    },
    (err) => {
      $('#error').hidden = false;
      $('#error').textContent = err.message;
    },
  );
}

// ---- compare --------------------------------------------------------------------------

async function comparePage() {
  const ids = (new URLSearchParams(location.search).get('ids') || '').split(',').filter(Boolean).slice(0, 10);
  try {
    const all = await Promise.all(ids.map((id) => getJson(`/runs/${id}`)));
    $('#n').textContent = String(all.length);
    const label = (r) => `${r.name} (${r.id.slice(0, 8)})`;
    const labels = all.map(({ run }) => label(run));
    const values = all.flatMap(({ run, epochs }) => epochs.map((e) => ({ epoch: e.epoch, run: label(run), loss: e.testLoss, accuracy: 100 * e.testAccuracy })));
    draw('#loss-chart', curveSpec(values, 'loss', 'test loss', 'run', labels));
    draw('#accuracy-chart', curveSpec(values, 'accuracy', 'test accuracy (%)', 'run', labels));
    const head = el('tr', {}, el('th', {}, ''), ...all.map(({ run }) => el('th', {}, el('a', { href: `/dashboard/runs/${run.id}` }, label(run)))));
    const metrics = [
      ['status', (r) => r.status],
      ['best accuracy', (r) => pct(r.best && r.best.accuracy)],
      ['final test accuracy', (r) => pct(r.final && r.final.testAccuracy)],
      ['final test loss', (r) => num(r.final && r.final.testLoss)],
      ['epochs', (r) => (r.final ? r.final.epoch : 0)],
      ['duration', (r) => fmtDuration(duration(r))],
    ];
    $('#metrics').replaceChildren(head.cloneNode(true), ...metrics.map(([name, f]) => el('tr', {}, el('td', {}, name), ...all.map(({ run }) => el('td', {}, f(run))))));
    const keys = [...new Set(all.flatMap(({ run }) => Object.keys(run.config)))].sort();
    const differing = keys.filter((k) => new Set(all.map(({ run }) => JSON.stringify(run.config[k]))).size > 1);
    $('#params').replaceChildren(
      head.cloneNode(true),
      ...differing.map((k) => el('tr', {}, el('td', {}, k), ...all.map(({ run }) => el('td', {}, run.config[k] === undefined ? '–' : JSON.stringify(run.config[k]))))),
    );
    if (differing.length === 0) $('#params').replaceChildren(el('tr', {}, el('td', { class: 'muted' }, 'all the same')));
  } catch (err) {
    $('#error').hidden = false;
    $('#error').textContent = err.message;
  }
}

({ runs: runsPage, run: runPage, compare: comparePage })[document.body.dataset.page]();
