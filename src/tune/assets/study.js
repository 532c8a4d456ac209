// The study pages: the list of studies, and one study's charts and trials table, over
// GET /studies and GET /studies/{name}; the dashboard's common.js, loaded before, has the
// helpers.
'use strict';

const fmt = (x) => (typeof x !== 'number' ? '–' : Math.abs(x) >= 1000 || (Math.abs(x) < 0.001 && x !== 0) ? x.toExponential(3) : Number(x.toPrecision(5)).toString());

async function studiesPage() {
  const studies = await getJson('/studies');
  $('#empty').hidden = studies.length > 0;
  const body = $('#studies tbody');
  for (const s of studies) {
    const states = Object.entries(s.counts).map(([k, v]) => `${v} ${k}`).join(', ');
    body.append(el('tr', {}, el('td', {}, el('a', { href: `/dashboard/studies/${encodeURIComponent(s.name)}` }, s.name)), el('td', {}, s.direction), el('td', { class: 'num' }, s.trials), el('td', {}, states), el('td', { class: 'num' }, fmt(s.best)), el('td', {}, s.createdAt.slice(0, 19).replace('T', ' '))));
  }
}

async function studyPage() {
  const name = decodeURIComponent(location.pathname.split('/').pop());
  $('#name').textContent = name;
  let study;
  try {
    study = await getJson(`/studies/${encodeURIComponent(name)}`);
  } catch (err) {
    $('#error').textContent = err.message;
    $('#error').hidden = false;
    return;
  }
  const max = study.direction === 'maximize';
  const counts = {};
  for (const t of study.trials) counts[t.state] = (counts[t.state] || 0) + 1;
  const best = study.trials.find((t) => t.number === study.best);
  const test = study.bestTest && best && study.bestTest.trial === best.number ? `; its test accuracy, measured once after the search: ${(100 * study.bestTest.accuracy).toFixed(2)}%` : '';
  $('#summary').textContent = `${study.direction} · ${study.trials.length} trials (${Object.entries(counts).map(([k, v]) => `${v} ${k}`).join(', ')})` + (best ? ` · best: trial #${best.number}, value ${fmt(best.value)}${test}` : '');

  // Optimization history: every finished trial's value, and the best so far.
  const history = [];
  let bestSoFar;
  for (const t of study.trials) {
    if (t.value === null || (t.state !== 'complete' && t.state !== 'pruned')) continue;
    history.push({ trial: t.number, value: t.value, series: t.state === 'complete' ? 'complete' : 'pruned (last value)' });
    if (t.state === 'complete') {
      bestSoFar = bestSoFar === undefined ? t.value : max ? Math.max(bestSoFar, t.value) : Math.min(bestSoFar, t.value);
      history.push({ trial: t.number, value: bestSoFar, series: 'best so far' });
    }
  }
  await draw('#history-chart', {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: 'optimization history',
    width: 440, height: 260, data: { values: history },
    layer: [
      { mark: { type: 'point', filled: true }, transform: [{ filter: "datum.series !== 'best so far'" }], encoding: { x: { field: 'trial', type: 'quantitative' }, y: { field: 'value', type: 'quantitative', scale: { zero: false } }, color: { field: 'series', type: 'nominal' } } },
      { mark: { type: 'line', interpolate: 'step-after' }, transform: [{ filter: "datum.series === 'best so far'" }], encoding: { x: { field: 'trial', type: 'quantitative' }, y: { field: 'value', type: 'quantitative' }, color: { field: 'series', type: 'nominal' } } },
    ],
  });

  // Intermediate values: one line per trial, pruned trials dashed and marked where they stopped.
  const steps = [];
  for (const t of study.trials) for (const [step, v] of t.intermediate) if (v !== null) steps.push({ trial: `#${t.number}`, step, value: v, state: t.state });
  await draw('#intermediate-chart', {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: 'intermediate values (pruned trials dashed, x where they stopped)',
    width: 440, height: 260, data: { values: steps },
    layer: [
      { mark: { type: 'line', opacity: 0.7 }, encoding: { x: { field: 'step', type: 'quantitative' }, y: { field: 'value', type: 'quantitative', scale: { zero: false } }, detail: { field: 'trial' }, color: { field: 'state', type: 'nominal' }, strokeDash: { field: 'state', type: 'nominal', legend: null } } },
      { mark: { type: 'point', shape: 'cross', size: 80 }, transform: [{ filter: "datum.state === 'pruned'" }, { joinaggregate: [{ op: 'max', field: 'step', as: 'last' }], groupby: ['trial'] }, { filter: 'datum.step === datum.last' }], encoding: { x: { field: 'step', type: 'quantitative' }, y: { field: 'value', type: 'quantitative' }, color: { value: '#d62728' } } },
    ],
  });

  // Parallel coordinates over complete trials: each parameter scaled to [0, 1] (choices by index), coloured by value.
  const done = study.trials.filter((t) => t.state === 'complete' && t.value !== null);
  const names = [...new Set(done.flatMap((t) => Object.keys(t.params)))].sort();
  const axis = {};
  for (const n of names) {
    const vals = done.map((t) => t.params[n]);
    const numeric = vals.every((v) => typeof v === 'number');
    const choices = numeric ? null : [...new Set(vals.map(String))];
    const nums = numeric ? vals : vals.map((v) => choices.indexOf(String(v)));
    const lo = Math.min(...nums), hi = Math.max(...nums);
    axis[n] = (v) => { const x = numeric ? v : choices.indexOf(String(v)); return hi > lo ? (x - lo) / (hi - lo) : 0.5; };
  }
  const parallel = [];
  for (const t of done) {
    for (const n of names) parallel.push({ trial: t.number, param: n, scaled: axis[n](t.params[n]), raw: String(t.params[n]), value: t.value });
    parallel.push({ trial: t.number, param: 'objective', scaled: null, raw: fmt(t.value), value: t.value });
  }
  const vs = done.map((t) => t.value);
  const vlo = Math.min(...vs), vhi = Math.max(...vs);
  for (const p of parallel) if (p.param === 'objective') p.scaled = vhi > vlo ? (p.value - vlo) / (vhi - vlo) : 0.5;
  await draw('#parallel-chart', {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: 'parallel coordinates (complete trials, each axis scaled to its range)',
    width: 440, height: 260, data: { values: parallel },
    mark: { type: 'line', opacity: 0.6 },
    encoding: {
      x: { field: 'param', type: 'nominal', sort: [...names, 'objective'], title: null },
      y: { field: 'scaled', type: 'quantitative', title: 'scaled value' },
      detail: { field: 'trial' },
      color: { field: 'value', type: 'quantitative', scale: { scheme: max ? 'viridis' : 'viridis', reverse: !max } },
      tooltip: [{ field: 'trial' }, { field: 'param' }, { field: 'raw', title: 'value' }],
    },
  });

  const importance = Object.entries(study.importance.values).map(([param, share]) => ({ param, share }));
  $('#importance-method').textContent = `Parameter importance: ${study.importance.method}.` + (importance.length === 0 ? ' (Needs at least 4 complete trials.)' : '');
  await draw('#importance-chart', {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: 'parameter importance',
    width: 440, height: 260, data: { values: importance },
    mark: 'bar',
    encoding: { y: { field: 'param', type: 'nominal', sort: '-x', title: null }, x: { field: 'share', type: 'quantitative', axis: { format: '.0%' }, title: 'share' } },
  });

  // The trials table.
  const allNames = [...new Set(study.trials.flatMap((t) => Object.keys(t.params)))].sort();
  const head = $('#trials thead tr');
  for (const h of ['#', 'state', 'value', 'epochs', ...allNames, 'run']) head.append(el('th', h === '#' || h === 'value' || h === 'epochs' ? { class: 'num' } : {}, h));
  const body = $('#trials tbody');
  for (const t of study.trials) {
    const row = el('tr', { class: `state-${t.state}` }, el('td', { class: 'num' }, t.number), el('td', {}, t.state), el('td', { class: 'num' }, fmt(t.value)), el('td', { class: 'num' }, t.intermediate.length));
    for (const n of allNames) row.append(el('td', {}, t.params[n] === undefined ? '–' : typeof t.params[n] === 'number' ? fmt(t.params[n]) : String(t.params[n])));
    row.append(el('td', {}, t.runId ? el('a', { href: `/dashboard/runs/${t.runId}` }, t.runId.slice(0, 8)) : '–'));
    body.append(row);
  }
}

const page = document.body.dataset.page;
if (page === 'studies') studiesPage();
else if (page === 'study') studyPage();
