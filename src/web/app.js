// The page's script: draw on a canvas (pointer events: mouse, touch, pen) or pick/drop a
// file, send it to POST /predict, and show the digit, the probabilities and what the
// model saw. Plain browser JavaScript served by torchlet itself: no build, no CDN.
// "In this browser" loads /web/inbrowser.js (the server's preprocessing and
// onnxruntime-web, bundled by the server) and the model's ONNX file once; from then on a
// prediction sends nothing.
const $ = (id) => document.getElementById(id);
const canvas = $('canvas');
const ctx = canvas.getContext('2d');
const pad = $('pad');
const modelSelect = $('model');
const tokenField = $('token-field');
const tokenInput = $('token');
const statusLine = $('status');
const whereInfo = $('where-info');

// Ink as thick as MNIST's strokes once the drawing is scaled to a 20-pixel box.
const INK = 20;
let drawing = false;
let dirty = false;
let last = null;

function resetCanvas() {
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.strokeStyle = '#000';
  ctx.fillStyle = '#000';
  ctx.lineWidth = INK;
  ctx.lineCap = 'round';
  ctx.lineJoin = 'round';
  dirty = false;
}

function point(e) {
  const r = canvas.getBoundingClientRect();
  return { x: ((e.clientX - r.left) * canvas.width) / r.width, y: ((e.clientY - r.top) * canvas.height) / r.height };
}

function dot(p) {
  ctx.beginPath();
  ctx.arc(p.x, p.y, INK / 2, 0, 2 * Math.PI);
  ctx.fill();
}

function line(from, to) {
  ctx.beginPath();
  ctx.moveTo(from.x, from.y);
  ctx.lineTo(to.x, to.y);
  ctx.stroke();
}

canvas.addEventListener('pointerdown', (e) => {
  if (e.button !== 0) return;
  e.preventDefault();
  canvas.setPointerCapture(e.pointerId);
  drawing = true;
  last = point(e);
  dot(last);
  dirty = true;
});
canvas.addEventListener('pointermove', (e) => {
  if (!drawing) return;
  // Coalesced events keep fast strokes smooth on touch screens and pens.
  const events = typeof e.getCoalescedEvents === 'function' ? e.getCoalescedEvents() : [e];
  for (const ev of events.length ? events : [e]) {
    const p = point(ev);
    line(last, p);
    last = p;
  }
});
const endStroke = () => {
  if (!drawing) return;
  drawing = false;
  last = null;
  void predictCanvas();
};
canvas.addEventListener('pointerup', endStroke);
canvas.addEventListener('pointercancel', endStroke);

$('clear').addEventListener('click', () => {
  resetCanvas();
  showEmpty();
});
$('predict').addEventListener('click', () => {
  if (!dirty) {
    say('Draw a digit first, or choose an image.');
    return;
  }
  void predictCanvas();
});
$('file').addEventListener('change', (e) => {
  const file = e.target.files && e.target.files[0];
  if (file) void predictFile(file);
  e.target.value = '';
});
modelSelect.addEventListener('change', () => {
  describeModel();
  if (where === 'browser') void prepareBrowser();
  else if (lastRequest) void send(lastRequest);
});

// Where the model runs: 'server' (POST /predict) or 'browser' (onnxruntime-web, here).
let where = 'server';
let browserModule = null;

function loadBrowserModule() {
  if (!browserModule) {
    browserModule = import('/web/inbrowser.js').then((m) => {
      m.configure('/web/ort/');
      return m;
    });
    browserModule.catch(() => (browserModule = null));
  }
  return browserModule;
}

for (const radio of document.querySelectorAll('input[name="where"]')) {
  radio.addEventListener('change', () => {
    if (!radio.checked) return;
    where = radio.value;
    if (where === 'browser') void prepareBrowser();
    else {
      whereInfo.textContent = 'Each prediction is a request to the server.';
      if (lastRequest) void send(lastRequest);
    }
  });
}

/** Loads the chosen model into this browser (one request for its ONNX file), then predicts again. */
async function prepareBrowser() {
  const model = modelSelect.value;
  whereInfo.textContent = `Loading ${model} into this browser…`;
  try {
    const m = await loadBrowserModule();
    await m.load(model);
    if (where !== 'browser' || modelSelect.value !== model) return;
    whereInfo.textContent = `${model} runs in this browser (onnxruntime-web, WebAssembly): predictions send nothing to the server.`;
    if (lastRequest) void send(lastRequest);
  } catch (err) {
    if (where !== 'browser') return;
    where = 'server';
    document.querySelector('input[name="where"][value="server"]').checked = true;
    whereInfo.textContent = 'Each prediction is a request to the server.';
    say(`The model could not be loaded into this browser (${err.message}); the server answers instead.`);
  }
}

let modelInfo = [];
function describeModel() {
  const m = modelInfo.find((x) => x.name === modelSelect.value);
  $('model-info').textContent = m ? `${m.description}; ${m.params.toLocaleString('en-US')} parameters` : '';
}

// Drag and drop onto the drawing area.
for (const type of ['dragenter', 'dragover']) {
  pad.addEventListener(type, (e) => {
    e.preventDefault();
    pad.classList.add('dragging');
  });
}
for (const type of ['dragleave', 'drop']) {
  pad.addEventListener(type, () => pad.classList.remove('dragging'));
}
pad.addEventListener('drop', (e) => {
  e.preventDefault();
  const file = e.dataTransfer && e.dataTransfer.files[0];
  if (file) void predictFile(file);
});

let lastRequest = null;
let generation = 0;

async function predictCanvas() {
  // The pixels for this browser, the PNG for the server: the same image either way.
  const pixels = ctx.getImageData(0, 0, canvas.width, canvas.height);
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, 'image/png'));
  if (!blob) return;
  await send({ body: blob, type: 'image/png', label: 'your drawing', pixels, format: 'drawing' });
}

async function predictFile(file) {
  const form = new FormData();
  form.append('file', file, file.name);
  await send({ body: form, label: file.name, file });
}

function say(text) {
  statusLine.textContent = text;
}

async function send(request) {
  lastRequest = request;
  const mine = ++generation;
  say('');
  if (where === 'browser') return predictHere(request, mine);
  const headers = {};
  if (request.type) headers['content-type'] = request.type;
  if (tokenInput.value) headers.authorization = `Bearer ${tokenInput.value}`;
  const model = modelSelect.value ? `?model=${encodeURIComponent(modelSelect.value)}` : '';
  $('predict').disabled = true;
  try {
    const res = await fetch(`/predict${model}`, { method: 'POST', body: request.body, headers });
    const json = await res.json().catch(() => null);
    if (mine !== generation) return;
    if (!res.ok) {
      say(json && json.message ? `Could not read ${request.label}: ${json.message}` : `The server answered ${res.status}.`);
      showEmpty();
      return;
    }
    show(json, request.label);
  } catch (err) {
    if (mine === generation) say(`The server could not be reached (${err.message}).`);
  } finally {
    if (mine === generation) $('predict').disabled = false;
  }
}

/** A file's pixels as the browser decodes it (EXIF orientation applied, as the server does). */
async function decodeFile(file) {
  const bitmap = await createImageBitmap(file);
  const c = document.createElement('canvas');
  c.width = bitmap.width;
  c.height = bitmap.height;
  const cx = c.getContext('2d');
  cx.drawImage(bitmap, 0, 0);
  bitmap.close();
  return cx.getImageData(0, 0, c.width, c.height);
}

function pixelsUrl(pixels) {
  const c = document.createElement('canvas');
  c.width = 28;
  c.height = 28;
  const cx = c.getContext('2d');
  const image = cx.createImageData(28, 28);
  for (let i = 0; i < 784; i++) {
    image.data.fill(pixels[i], 4 * i, 4 * i + 3);
    image.data[4 * i + 3] = 255;
  }
  cx.putImageData(image, 0, 0);
  return c.toDataURL('image/png');
}

async function predictHere(request, mine) {
  const model = modelSelect.value;
  let image;
  try {
    image = request.pixels ?? (await decodeFile(request.file));
  } catch {
    if (mine === generation) {
      say(`Could not read ${request.label}: this browser cannot decode it as an image.`);
      showEmpty();
    }
    return;
  }
  try {
    const m = await loadBrowserModule();
    const r = await m.predict(model, image);
    if (mine !== generation) return;
    const format = request.format ?? (request.file.type.replace(/^image\//, '') || 'image');
    show(
      { ...r, model, imageUrl: pixelsUrl(r.pixels), preprocessing: { width: image.width, height: image.height, format, inverted: r.inverted } },
      request.label,
      'in this browser',
    );
  } catch (err) {
    if (mine !== generation) return;
    say(`Could not read ${request.label}: ${err.message}`);
    showEmpty();
  }
}

function pct(p) {
  if (p > 0.999) return '>99.9%';
  if (p < 0.001) return '<0.1%';
  return `${(100 * p).toFixed(1)}%`;
}

function showEmpty() {
  $('digit').textContent = '–';
  $('confidence').textContent = 'Draw a digit to begin.';
  $('details').textContent = '';
  $('seen').hidden = true;
  renderBars(null);
}

function show(r, label, place = '') {
  $('digit').textContent = String(r.digit);
  $('confidence').textContent = `${pct(r.confidence)} sure it is a ${r.digit}`;
  const p = r.preprocessing;
  const parts = [`${label}: ${p.width}×${p.height} ${p.format}`];
  if (p.inverted) parts.push('inverted (light background)');
  parts.push(`${r.model}${place ? ` ${place}` : ''}, ${r.timeMs.toFixed(1)} ms`);
  $('details').textContent = parts.join(' · ');
  if (r.image || r.imageUrl) {
    $('seen').src = r.imageUrl ?? `data:image/png;base64,${r.image}`;
    $('seen').hidden = false;
  }
  renderBars(r.probabilities, r.digit);
}

function renderBars(probabilities, top) {
  const list = $('bars');
  list.replaceChildren();
  for (let d = 0; d < 10; d++) {
    const p = probabilities ? probabilities[d] : 0;
    const li = document.createElement('li');
    if (probabilities && d === top) li.className = 'top';
    if (probabilities) li.dataset.probability = String(p);
    li.setAttribute('aria-label', `${d}: ${probabilities ? pct(p) : 'no prediction yet'}`);
    const digit = document.createElement('span');
    digit.textContent = String(d);
    const track = document.createElement('span');
    track.className = 'track';
    const fill = document.createElement('span');
    fill.className = 'fill';
    fill.style.display = 'block';
    fill.style.width = `${(100 * p).toFixed(1)}%`;
    track.append(fill);
    const value = document.createElement('span');
    value.className = 'value';
    value.textContent = probabilities ? pct(p) : '';
    li.append(digit, track, value);
    list.append(li);
  }
}

async function loadModels() {
  try {
    const [models, health] = await Promise.all([fetch('/models').then((r) => r.json()), fetch('/healthz').then((r) => r.json())]);
    modelSelect.replaceChildren();
    modelInfo = models.models;
    for (const m of models.models) {
      const option = document.createElement('option');
      option.value = m.name;
      option.textContent = typeof m.accuracy === 'number' ? `${m.name} · ${(100 * m.accuracy).toFixed(2)}%` : m.name;
      option.selected = m.default;
      modelSelect.append(option);
    }
    describeModel();
    tokenField.hidden = !health.auth;
  } catch (err) {
    say(`Could not list the models (${err.message}).`);
  }
}

resetCanvas();
showEmpty();
whereInfo.textContent = 'Each prediction is a request to the server.';
void loadModels();
