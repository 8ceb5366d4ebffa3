/*
 * jaxcnn explore: the page's script. The browser only draws: every number on the page comes from
 * the server's API (docs/explore.md), arrays as base64 float32 decoded with Float32Array. Plain
 * JavaScript, no framework, no build step; Canvas2D for every picture.
 *
 * Test contract (tests/explore/test_browser_*.py and benchmarks/explore_latency.py rely on it).
 * Every number shown is also in a data-* attribute, written with String(x), which round-trips the
 * float32 (or JSON number) exactly.
 *   body[data-state]     "loading", "busy" (a request in flight), "ready" (the view has drawn),
 *                        "error" (the last request failed; its message is in #error)
 *   body[data-view]      kernels | pattern | model | backward | training
 *   #error               the failed request's {"error"} message; hidden when there is none
 *   window.explore       .last.<name>: the last drawn answer of kernel, match, slide, forward,
 *                        backward, run, upload, with every array as a nested plain Array;
 *                        .renders: count of finished renders; .timing: the last render's times
 *                        (t0 = the event's timeStamp, total/net/parse/draw in ms); .state()
 *   Kernels   #kernel-grid input[data-row][data-col][data-value]; #kernel-buttons
 *             button[data-kernel] (.active); #formula-h, #formula-w [data-n|p|k|s|out]
 *   Pattern   #match-pixel[data-row][data-col]; #best[data-row][data-col];
 *             #patch-grid span[data-row][data-col][data-value]; #play[data-pos][data-row]
 *             [data-col][data-count][data-playing]; #play-window, #play-kernel, #play-products
 *             span[data-row][data-col][data-value]; #play-sum[data-value]; #scrubber; #play-btn,
 *             #prev-btn, #next-btn
 *   Model     #probabilities[data-predicted][data-target] li[data-index][data-class][data-prob];
 *             #model-layers .layer[data-name][data-kind][data-shape]; #test-strip[data-start]
 *             (click a thumbnail), #test-index, #draw (pointer strokes), #draw-clear, #model-file
 *   Backward  #backward[data-label][data-loss][data-max-diff] (the section #view-backward);
 *             #label-select; #backward-steps .step[data-name][data-kind][data-diff]
 *             .param[data-name][data-shape][data-diff][data-max-abs]
 *   Training  #training[data-version][data-epoch][data-status]; #loss-curve, #acc-curve;
 *             #training-filters .layer[data-name]
 *   No run    .hint of the model, backward and training sections holds /api/info's no_run_hint.
 * The URL hash holds the state: view, image, kernel (a name or 9 numbers), stride, padding,
 * pixel (row,col), pos (Play position), input (test:i or upload:id), label.
 */
'use strict';

// ---- helpers: DOM, numbers, arrays --------------------------------------------------------------

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else node.setAttribute(key, String(value));
  }
  node.append(...children);
  return node;
}

/** A short form of a number for the eye; data-* attributes keep the exact one. */
function fmt(x) {
  if (typeof x !== 'number') return String(x);
  if (x === 0) return '0';
  const size = Math.abs(x);
  if (size >= 1e5 || size < 1e-3) return x.toExponential(2);
  return String(Number(x.toPrecision(4)));
}

/** {"shape", "f32"} -> {shape, data: Float32Array} (little-endian, as every browser here). */
function decode(message) {
  const text = atob(message.f32);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return { shape: message.shape, data: new Float32Array(bytes.buffer) };
}

function decodeAll(value) {
  if (Array.isArray(value)) return value.map(decodeAll);
  if (value && typeof value === 'object') {
    if (typeof value.f32 === 'string' && Array.isArray(value.shape)) return decode(value);
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, decodeAll(v)]));
  }
  return value;
}

const isTensor = (v) => v && v.data instanceof Float32Array;

/** A decoded answer with its arrays as nested plain Arrays (for window.explore.last). */
function plain(value) {
  if (isTensor(value)) {
    const { shape, data } = value;
    const build = (axis, offset) => {
      if (axis === shape.length) return data[offset];
      const step = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
      return Array.from({ length: shape[axis] }, (_, i) => build(axis + 1, offset + i * step));
    };
    return build(0, 0);
  }
  if (Array.isArray(value)) return value.map(plain);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  }
  return value;
}

// ---- the API, and the state the page is in --------------------------------------------------------

const explore = { last: {}, renders: 0, timing: null, state: () => state };
window.explore = explore;

/** Keep an answer for the tests; converted to plain arrays only when read. */
function remember(name, answer) {
  Object.defineProperty(explore.last, name, {
    get: () => plain(answer), configurable: true, enumerable: true,
  });
}

let trace = { net: 0, parse: 0 };

/**
 * GET (body undefined) or POST JSON (or bytes); resolves to the decoded answer, throws its error.
 * Its time counts in the current render's trace unless `quiet` (the run's poll).
 */
async function api(path, body, { bytes = false, quiet = false } = {}) {
  const options = body === undefined ? {} : {
    method: 'POST',
    headers: { 'Content-Type': bytes ? 'application/octet-stream' : 'application/json' },
    body: bytes ? body : JSON.stringify(body),
  };
  const start = performance.now();
  const response = await fetch(path, options);
  const text = await response.text();
  const fetched = performance.now();
  let answer;
  try {
    answer = JSON.parse(text);
  } catch (err) {
    throw new Error(`${path}: the server answered ${response.status} without JSON`);
  }
  if (!response.ok) throw new Error(answer.error || `${path}: HTTP ${response.status}`);
  answer = decodeAll(answer);
  if (!quiet) {
    trace.net += fetched - start;
    trace.parse += performance.now() - fetched;
  }
  return answer;
}

const DEFAULTS = {
  view: 'kernels', image: 'square', kernel: 'blur', stride: '1', padding: '0', pixel: '14,6',
  pos: null, input: 'test:0', label: null,
};
let state = { ...DEFAULTS };
let info = null; // /api/info
let runState = null; // the last changed /api/run answer
const drawn = {}; // view -> the key of the inputs it last drew

function readHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  state = { ...DEFAULTS };
  for (const key of Object.keys(DEFAULTS)) if (params.has(key)) state[key] = params.get(key);
  if (!$(`view-${state.view}`)) state.view = DEFAULTS.view;
}

function writeHash() {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(state)) if (value !== null) params.set(key, value);
  history.replaceState(null, '', `#${params}`);
}

const int = (text) => (/^-?\d+$/.test(String(text)) ? Number(text) : String(text));
const hasRun = () => Boolean(info && info.run && info.run.ready);

function imageRef(name) {
  const [source, key] = name.includes(':') ? name.split(/:(.*)/s) : ['builtin', name];
  return { [source]: source === 'test' ? int(key) : key };
}

function pixel() {
  return state.pixel.split(',').map(int);
}

// ---- busy / ready / error, and one render at a time ----------------------------------------------

let generation = 0;
const STALE = new Error('stale');

function setState(name) {
  document.body.dataset.state = name;
}

function showError(message) {
  $('error').textContent = message;
  $('error').hidden = !message;
}

/**
 * Draw the current view: `before` (an upload, say) runs first, then the view's renderer. A newer
 * render makes an older one stale: its answers are dropped, and only the newest sets the state.
 */
async function render(event, before) {
  const mine = ++generation;
  const guard = () => { if (mine !== generation) throw STALE; };
  trace = {
    action: event ? event.type : 'load', t0: event ? event.timeStamp : performance.now(),
    start: performance.now(), net: 0, parse: 0,
  };
  setState('busy');
  writeHash();
  try {
    if (before) { await before(guard); guard(); }
    await VIEWS[state.view](guard);
    guard();
    const end = performance.now();
    trace.total = end - trace.t0;
    trace.draw = end - trace.start - trace.net - trace.parse;
    explore.timing = trace;
    explore.renders += 1;
    writeHash();
    showError('');
    setState('ready');
    return true;
  } catch (err) {
    if (err === STALE) return false;
    explore.renders += 1;
    showError(err.message);
    setState('error');
    return false;
  }
}

// ---- colours and pictures -------------------------------------------------------------------------

const BLUE = [33, 102, 172];
const RED = [178, 24, 43];

/** A colour scale: grey from lo (black) to hi (white), or signed: blue, white at 0, red, to +-m. */
function greyScale(lo, hi) {
  const span = hi > lo ? hi - lo : 1;
  return { kind: 'grey', lo, hi, rgb: (v) => { const g = 255 * Math.min(1, Math.max(0, (v - lo) / span)); return [g, g, g]; } };
}

function signedScale(m) {
  const size = m > 0 ? m : 1;
  return {
    kind: 'signed', lo: -m, hi: m,
    rgb: (v) => {
      const t = Math.min(1, Math.abs(v) / size);
      const end = v < 0 ? BLUE : RED;
      return end.map((c) => 255 + (c - 255) * t);
    },
  };
}

function maxAbs(data) {
  let m = 0;
  for (const v of data) m = Math.max(m, Math.abs(v));
  return m;
}

/** Images in [0, 1] as grey; maps with negative values signed; other maps grey from 0. */
function autoScale(data, image = false) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of data) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  if (image) return greyScale(0, Math.max(1, hi));
  return lo < 0 ? signedScale(maxAbs(data)) : greyScale(0, Math.max(hi, 1));
}

const scratch = document.createElement('canvas');

/** Paint an h x w map, value at(i, j), at (x, y) with px (or [px_x, px_y]) screen pixels per value. */
function paint(ctx, x, y, px, h, w, at, scale) {
  const [pxX, pxY] = Array.isArray(px) ? px : [px, px];
  scratch.width = w;
  scratch.height = h;
  const sctx = scratch.getContext('2d');
  const image = sctx.createImageData(w, h);
  for (let i = 0; i < h; i++) {
    for (let j = 0; j < w; j++) {
      const [r, g, b] = at.rgb ? at.rgb(i, j) : scale.rgb(at(i, j));
      const k = 4 * (i * w + j);
      image.data[k] = r; image.data[k + 1] = g; image.data[k + 2] = b; image.data[k + 3] = 255;
    }
  }
  sctx.putImageData(image, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(scratch, x, y, w * pxX, h * pxY);
}

/** One [H, W] map (or [H, W, 3] colour image) on a canvas sized `size` px; returns px per value. */
function drawMap(canvas, tensor, scale, size = 224, margin = 0) {
  const [h, w, c] = tensor.shape;
  const px = Math.max(1, Math.floor(size / (Math.max(h, w) + 2 * margin)));
  canvas.width = (w + 2 * margin) * px;
  canvas.height = (h + 2 * margin) * px;
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#d9dde3';
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const d = tensor.data;
  const at = c === 3
    ? { rgb: (i, j) => [0, 1, 2].map((k) => 255 * Math.min(1, Math.max(0, d[(i * w + j) * 3 + k]))) }
    : (i, j) => d[i * w + j];
  paint(ctx, margin * px, margin * px, px, h, w, at, scale);
  legend(canvas.id, scale);
  return px;
}

/** Fill the legend under canvas `id` (or the given element) with the scale's colours and range. */
function legend(id, scale, node = document.querySelector(`.legend[data-for="${id}"]`)) {
  if (!node) return node;
  const bar = el('canvas', { width: 96, height: 10 });
  const ctx = bar.getContext('2d');
  for (let x = 0; x < 96; x++) {
    ctx.fillStyle = `rgb(${scale.rgb(scale.lo + ((scale.hi - scale.lo) * x) / 95).join(',')})`;
    ctx.fillRect(x, 0, 1, 10);
  }
  const words = scale.kind === 'signed' ? ['blue < 0 < red'] : ['black to white'];
  node.replaceChildren(el('span', { text: fmt(scale.lo) }), bar, el('span', { text: fmt(scale.hi) }),
    el('span', { class: 'muted', text: words[0] }));
  node.dataset.lo = scale.lo;
  node.dataset.hi = scale.hi;
  return node;
}

/** The C channels of an [H, W, C] tensor as a grid of small maps, one colour scale for all. */
function drawChannels(canvas, tensor, scale, width = 1120, cell = 112) {
  const [h, w, c] = tensor.shape;
  const px = Math.max(1, Math.min(6, Math.floor(cell / Math.max(h, w))));
  const gap = 6;
  const cols = Math.max(1, Math.min(c, Math.floor((width + gap) / (w * px + gap))));
  const rows = Math.ceil(c / cols);
  canvas.width = cols * (w * px + gap) - gap;
  canvas.height = rows * (h * px + gap) - gap;
  const ctx = canvas.getContext('2d');
  for (let k = 0; k < c; k++) {
    const x = (k % cols) * (w * px + gap);
    const y = Math.floor(k / cols) * (h * px + gap);
    paint(ctx, x, y, px, h, w, (i, j) => tensor.data[(i * w + j) * c + k], scale);
  }
}

/** Kernels [kh, kw, C_in, C_out]: one row per input channel, one column per filter. */
function drawKernels(canvas, tensor, scale, width = 1120) {
  const [kh, kw, cin, cout] = tensor.shape;
  const gap = 4;
  const px = Math.max(2, Math.min(24, Math.floor((width + gap) / cout / (kw + 1))));
  const rows = Math.min(cin, 16); // deep layers: the first 16 input channels
  canvas.width = cout * (kw * px + gap) - gap;
  canvas.height = rows * (kh * px + gap) - gap;
  const ctx = canvas.getContext('2d');
  for (let i = 0; i < rows; i++) {
    for (let o = 0; o < cout; o++) {
      paint(ctx, o * (kw * px + gap), i * (kh * px + gap), px, kh, kw,
        (r, s) => tensor.data[((r * kw + s) * cin + i) * cout + o], scale);
    }
  }
  return rows < cin ? `first 16 of ${cin} input channels` : '';
}

/** A vector as signed bars (up to 32 values) or as a wrapped strip of cells. */
function drawVector(canvas, data, scale, width = 560) {
  const ctx = () => canvas.getContext('2d');
  if (data.length > 32) {
    const cols = Math.min(data.length, 64);
    const px = Math.max(2, Math.floor(width / cols));
    canvas.width = cols * px;
    canvas.height = Math.ceil(data.length / cols) * px;
    const at = (i, j) => (i * cols + j < data.length ? data[i * cols + j] : 0);
    paint(ctx(), 0, 0, px, Math.ceil(data.length / cols), cols, at, scale);
    return;
  }
  const bar = Math.max(8, Math.min(48, Math.floor(width / data.length)));
  const labels = data.length <= 12;
  canvas.width = bar * data.length;
  canvas.height = labels ? 74 : 60;
  const c = ctx();
  const m = maxAbs(data) || 1;
  c.fillStyle = '#8a94a3';
  c.fillRect(0, 30, canvas.width, 1);
  c.font = '10px system-ui, sans-serif';
  c.textAlign = 'center';
  data.forEach((v, i) => {
    c.fillStyle = `rgb(${(v < 0 ? BLUE : RED).join(',')})`;
    const height = (28 * Math.abs(v)) / m;
    c.fillRect(i * bar + 2, v < 0 ? 31 : 30 - height, bar - 4, height);
    if (labels) { c.fillStyle = '#333'; c.fillText(fmt(v), i * bar + bar / 2, 70); }
  });
}

/** A dense matrix [n_in, n_out], one row of cells per output. */
function drawMatrix(canvas, tensor, scale, width = 560) {
  const [n, m] = tensor.shape;
  const pxX = Math.max(1, Math.min(8, Math.floor(width / n)));
  const pxY = Math.max(pxX, Math.min(24, Math.floor(160 / m)));
  canvas.width = n * pxX;
  canvas.height = m * pxY;
  paint(canvas.getContext('2d'), 0, 0, [pxX, pxY], m, n, (i, j) => tensor.data[j * m + i], scale);
}

/** Any tensor the model views send: vectors, [H, W, C] maps, HWIO kernels, dense matrices. */
function drawTensor(tensor, image = false) {
  const canvas = el('canvas');
  const scale = image ? autoScale(tensor.data, true) : signedScale(maxAbs(tensor.data));
  const rank = tensor.shape.length;
  let note = '';
  if (rank === 1) drawVector(canvas, tensor.data, scale);
  else if (rank === 3 && image) drawMap(canvas, tensor, scale, 112);
  else if (rank === 3) drawChannels(canvas, tensor, scale);
  else if (rank === 4) note = drawKernels(canvas, tensor, scale);
  else if (rank === 2) drawMatrix(canvas, tensor, scale);
  const box = el('div', { class: 'tensor' }, canvas, legend(null, scale, el('div', { class: 'legend' })));
  if (note) box.append(el('div', { class: 'muted', text: note }));
  return box;
}

/** Outline a cell rectangle on a canvas (in value coordinates times px). */
function outline(canvas, px, row, col, rows, cols, colour, line = 2) {
  const ctx = canvas.getContext('2d');
  ctx.strokeStyle = colour;
  ctx.lineWidth = line;
  ctx.strokeRect(col * px + line / 2, row * px + line / 2, cols * px - line, rows * px - line);
}

/** A cell's background: the value's colour, mixed half with white so the number stays readable. */
function tint(scale, v) {
  const [r, g, b] = scale.rgb(v).map((c) => Math.round(127 + c / 2));
  return `rgb(${r},${g},${b})`;
}

/** A 3x3 grid of numbers in `node`, each span holding its exact value. */
function numberGrid(node, values, scale) {
  node.replaceChildren(...Array.from(values, (v, i) => {
    const span = el('span', { 'data-row': Math.floor(i / 3), 'data-col': i % 3, 'data-value': v, text: fmt(v) });
    if (scale) span.style.background = tint(scale, v);
    return span;
  }));
}

// ---- view 1: kernels ------------------------------------------------------------------------------

const KERNEL_NOTES = {
  blur: 'Every weight is 1/9: each output pixel is the average of the 9 pixels under the kernel, so sharp edges soften.',
  sharpen: 'A large centre and negative neighbours: the pixel minus its surroundings is amplified, so edges get crisper.',
  'horizontal edges': 'Negative top row, positive bottom row: it answers where brightness changes from top to bottom.',
  'vertical edges': 'Negative left column, positive right column: it answers where brightness changes from left to right.',
  custom: 'Your own 9 numbers: the same sliding sum, a different picture.',
};

/** The kernel as 3 rows of numbers (cells that are not numbers go as typed: the server says why). */
function kernelRows() {
  const named = info.kernels[state.kernel];
  if (named) return named;
  const cells = state.kernel.split(',').map((t) => {
    const x = t.trim() === '' ? NaN : Number(t);
    return Number.isFinite(x) ? x : t;
  });
  return [cells.slice(0, 3), cells.slice(3, 6), cells.slice(6)];
}

/**
 * A cell edited: the kernel becomes custom; untouched cells keep their exact values. While typing,
 * only numbers are sent; on Enter or leaving the cell, whatever is there (the server says why not).
 */
function onKernelCell(event) {
  const cells = [...$('kernel-grid').querySelectorAll('input')];
  const texts = cells.map((c) => (c.value === c.dataset.shown ? c.dataset.value : c.value.trim()));
  if (event.type === 'input' && texts.some((t) => t === '' || !Number.isFinite(Number(t)))) return;
  state.kernel = texts.join(',');
  render(event);
}

async function renderKernels(guard) {
  const body = { image: imageRef(state.image), kernel: kernelRows(), stride: int(state.stride), padding: int(state.padding) };
  const key = JSON.stringify(body);
  for (const b of $('kernel-buttons').children) b.classList.toggle('active', b.dataset.kernel === state.kernel);
  if (drawn.kernels === key) return;
  const answer = await api('/api/kernel', body);
  guard();
  remember('kernel', answer);
  drawMap($('k-input'), answer.image, autoScale(answer.image.data, true));
  drawMap($('k-output'), answer.output, autoScale(answer.output.data));
  const scale = signedScale(maxAbs(answer.kernel.data));
  [...$('kernel-grid').querySelectorAll('input')].forEach((cell, i) => {
    const v = answer.kernel.data[i];
    cell.dataset.value = v;
    if (document.activeElement !== cell) {
      cell.value = fmt(v);
      cell.dataset.shown = cell.value;
    }
    cell.style.background = tint(scale, v);
  });
  $('kernel-note').textContent = KERNEL_NOTES[info.kernels[state.kernel] ? state.kernel : 'custom'];
  const size = answer.size;
  for (const [id, axis, n, out] of [['formula-h', 'H', size.n, size.out], ['formula-w', 'W', size.n_w, size.out_w]]) {
    Object.assign($(id).dataset, { n, p: size.p, k: size.k, s: size.s, out });
    $(id).textContent = `${axis}:  floor((${n} + 2·${size.p} − ${size.k}) / ${size.s}) + 1 = ${out}`;
  }
  drawn.kernels = key;
}

// ---- view 2: pattern matching and Play ------------------------------------------------------------

let match = null; // the last /api/match answer
let slide = null; // {key, answer, stride, padding} of the last /api/slide
let player = null; // the Play timer
const MARGIN = 2; // cells of padding drawn around the image, where windows may hang over

/** Play's request: the clicked patch as the kernel, with the page's stride and padding. */
function slideRequest() {
  return { image: imageRef(state.image), kernel: plain(match.patch), stride: int(state.stride), padding: int(state.padding) };
}

const slideIsCurrent = () => Boolean(slide && match && slide.key === JSON.stringify(slideRequest()));

async function renderPattern(guard) {
  const [row, col] = pixel();
  const body = { image: imageRef(state.image), row, col };
  const key = JSON.stringify(body);
  if (drawn.pattern !== key) {
    const answer = await api('/api/match', body);
    guard();
    remember('match', answer);
    match = answer;
    drawn.pattern = key;
  }
  if (state.pos !== null && !slideIsCurrent()) {
    const request = slideRequest();
    const answer = await api('/api/slide', request);
    guard();
    remember('slide', answer);
    slide = { key: JSON.stringify(request), answer, stride: request.stride, padding: request.padding };
  }
  if (state.pos === null) stopPlay();
  drawPattern();
}

function drawPattern() {
  const [br, bc] = match.best;
  Object.assign($('best').dataset, { row: br, col: bc });
  $('best').textContent = `best match (${br}, ${bc})`;
  numberGrid($('patch-grid'), match.patch.data, greyScale(0, 1));
  const [row, col] = pixel();
  for (const [id, tensor] of [['p-dot', match.dot], ['p-cos', match.cosine]]) {
    const px = drawMap($(id), tensor, signedScale(maxAbs(tensor.data)), 196);
    outline($(id), px, row, col, 1, 1, '#f5b700');
    outline($(id), px, br - 1, bc - 1, 3, 3, '#1a9e55');
  }
  drawFrame();
}

/** The image with the clicked patch, and Play's window where it is (it may hang over the border). */
function drawImageMarks(window) {
  const [row, col] = pixel();
  const canvas = $('p-image');
  const px = drawMap(canvas, match.image, autoScale(match.image.data, true), 256, MARGIN);
  outline(canvas, px, row + MARGIN - 1, col + MARGIN - 1, 3, 3, '#f5b700');
  outline(canvas, px, row + MARGIN, col + MARGIN, 1, 1, '#f5b700', 1);
  if (window) outline(canvas, px, window[0] + MARGIN, window[1] + MARGIN, 3, 3, '#e8590c', 3);
  Object.assign($('match-pixel').dataset, { row, col });
  $('match-pixel').textContent = `(row ${row}, col ${col})`;
}

/** Play's current position: the window on the image, its 9 products and sum, the output so far. */
function drawFrame() {
  const root = $('play');
  root.classList.toggle('idle', state.pos === null || !slideIsCurrent());
  if (state.pos === null || !slideIsCurrent()) {
    root.dataset.count = 0;
    delete root.dataset.pos;
    for (const id of ['play-window', 'play-kernel', 'play-products']) $(id).replaceChildren();
    $('play-sum').textContent = '';
    delete $('play-sum').dataset.value;
    $('play-out').getContext('2d').clearRect(0, 0, $('play-out').width, $('play-out').height);
    drawImageMarks(null);
    return;
  }
  const { windows, products, sums } = slide.answer;
  const [outH, outW] = sums.shape;
  const count = outH * outW;
  const pos = Math.max(0, Math.min(count - 1, Number(state.pos) || 0));
  state.pos = String(pos);
  const r = Math.floor(pos / outW);
  const c = pos % outW;
  Object.assign(root.dataset, { pos, row: r, col: c, count, playing: Boolean(player) });
  const nine = (t) => t.data.subarray(pos * 9, pos * 9 + 9);
  numberGrid($('play-window'), nine(windows), greyScale(0, 1));
  numberGrid($('play-kernel'), match.patch.data, greyScale(0, 1));
  numberGrid($('play-products'), nine(products), signedScale(maxAbs(products.data)));
  $('play-sum').dataset.value = sums.data[pos];
  $('play-sum').textContent = fmt(sums.data[pos]);
  $('scrubber').max = count - 1;
  $('scrubber').value = pos;
  $('play-pos').textContent = `position ${pos + 1} of ${count}: output (${r}, ${c}), stride ${slide.stride}, padding ${slide.padding}`;
  $('play-btn').textContent = player ? '❚❚ Pause' : '▶ Play';
  // the output so far, on the colour scale of the whole map; later positions are blank
  const scale = signedScale(maxAbs(sums.data));
  const blank = { ...scale, rgb: (v) => (Number.isNaN(v) ? [236, 239, 243] : scale.rgb(v)) };
  const masked = { shape: sums.shape, data: sums.data.map((v, i) => (i <= pos ? v : NaN)) };
  const px = drawMap($('play-out'), masked, blank, 196);
  legend('play-out', scale);
  outline($('play-out'), px, r, c, 1, 1, '#f5b700');
  drawImageMarks([r * slide.stride - slide.padding, c * slide.stride - slide.padding]);
}

function stopPlay() {
  if (player) clearInterval(player);
  player = null;
  $('play').dataset.playing = false;
  $('play-btn').textContent = '▶ Play';
}

/** Play or Pause: the first press asks for the whole sequence in one request, then animates it. */
async function onPlay(event) {
  if (player) { stopPlay(); writeHash(); return; }
  const count = slideIsCurrent() ? slide.answer.sums.data.length : 0;
  if (state.pos === null || Number(state.pos) >= count - 1) state.pos = '0';
  if (!(await render(event))) return;
  player = setInterval(() => {
    const next = Number(state.pos) + 1;
    if (next >= slide.answer.sums.data.length) { stopPlay(); writeHash(); return; }
    state.pos = String(next);
    drawFrame();
  }, 1000 / Number($('speed').value));
  drawFrame();
}

/** Step (delta -1 or +1) or scrub (to a position); asks for the sequence first if needed. */
function onStep(event, delta, to) {
  stopPlay();
  const pos = state.pos === null ? 0 : to !== undefined ? to : Number(state.pos) + delta;
  state.pos = String(Math.max(0, pos));
  if (slideIsCurrent()) { drawFrame(); writeHash(); } else render(event);
}

// ---- views 3 and 4: the model, forward and backward -----------------------------------------------

let strip = null; // the shown page of test images
const STRIP = 16;

function inputRef() {
  return imageRef(state.input);
}

/** The page of test thumbnails around the chosen test image. */
async function renderStrip(guard) {
  const ref = inputRef();
  const index = ref.test !== undefined ? ref.test : (strip ? strip.start : 0);
  const count = info.run.test_count;
  if (!count) return;
  const start = Math.max(0, Math.min(count - 1, Math.floor(index / STRIP) * STRIP));
  if (!strip || strip.start !== start) {
    const answer = await api(`/api/test-images?start=${start}&count=${STRIP}`);
    guard();
    strip = answer;
  }
  const canvas = $('test-strip');
  const [n, h, w, c] = strip.images.shape;
  const cell = 32;
  const px = Math.max(1, Math.floor((cell - 4) / Math.max(h, w)));
  canvas.width = STRIP * cell;
  canvas.height = cell;
  canvas.dataset.start = strip.start;
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  for (let k = 0; k < n; k++) {
    const off = k * h * w * c;
    const at = c === 3
      ? { rgb: (i, j) => [0, 1, 2].map((q) => 255 * strip.images.data[off + (i * w + j) * 3 + q]) }
      : (i, j) => strip.images.data[off + i * w + j];
    paint(ctx, k * cell + 2, 2, px, h, w, at, greyScale(0, 1));
    if (strip.start + k === ref.test) outline(canvas, 1, 0, k * cell, cell, cell, '#f5b700', 3);
  }
  $('test-index').max = count - 1;
  if (ref.test !== undefined) $('test-index').value = ref.test;
}

function showHints() {
  for (const name of ['model', 'backward', 'training']) {
    const section = $(`view-${name}`);
    const hint = section.querySelector('.hint');
    hint.hidden = hasRun();
    hint.textContent = info.run ? `The run is not ready: ${info.run.status}` : info.no_run_hint;
    section.querySelector('.needs-run').hidden = !hasRun();
  }
  $('input-bar').hidden = !hasRun() || !['model', 'backward'].includes(state.view);
}

async function renderModel(guard) {
  if (!hasRun()) return;
  await renderStrip(guard);
  const body = { input: inputRef(), target: null };
  const key = JSON.stringify(body) + runState.version;
  if (drawn.model === key) return;
  const answer = await api('/api/forward', body);
  guard();
  remember('forward', answer);
  drawForward(answer);
  drawn.model = key;
}

function drawForward(answer) {
  const classes = info.run.classes;
  drawMap($('m-input'), answer.input, autoScale(answer.input.data, true), 140);
  const list = $('probabilities');
  Object.assign(list.dataset, { predicted: answer.predicted, target: answer.target });
  list.replaceChildren(...answer.probabilities.map((p, i) => {
    const fill = el('span', { class: 'fill' });
    fill.style.width = `${(100 * p).toFixed(2)}%`;
    const mark = i === answer.label ? ' (label)' : '';
    return el('li', { 'data-index': i, 'data-class': classes[i], 'data-prob': p, class: i === answer.predicted ? 'predicted' : '' },
      el('span', { class: 'name', text: classes[i] + mark }), el('span', { class: 'pbar' }, fill), el('span', { class: 'value', text: fmt(p) }));
  }));
  const saliency = answer.saliency;
  drawChannels($('saliency'), saliency, signedScale(maxAbs(saliency.data)), 140, 140);
  legend('saliency', signedScale(maxAbs(saliency.data)));
  $('saliency-class').textContent = `of "${classes[answer.target]}"`;
  const filters = Object.fromEntries((runState.filters || []).map((f) => [f.layer, f.w]));
  const describe = Object.fromEntries(info.run.layers.map((l) => [l.name, l.summary]));
  $('model-layers').replaceChildren(...answer.layers.map((layer) => {
    const card = el('div', { class: 'layer', 'data-name': layer.name, 'data-kind': layer.kind, 'data-shape': layer.output.shape.join(',') },
      el('h3', { text: `${layer.name}` }, el('span', { class: 'muted', text: ` ${layer.kind} ${describe[layer.name] || ''} → ${layer.output.shape.join('×')}` })));
    const body = el('div', { class: 'layer-body' });
    if (filters[layer.name]) body.append(el('div', {}, el('div', { class: 'caption', text: 'kernels' }), drawTensor(filters[layer.name])));
    const what = layer.output.shape.length === 3 ? 'feature maps, one per channel' : 'outputs';
    body.append(el('div', {}, el('div', { class: 'caption', text: what }), drawTensor(layer.output)));
    card.append(body);
    return card;
  }));
}

async function renderBackward(guard) {
  if (!hasRun()) return;
  await renderStrip(guard);
  const body = { input: inputRef() };
  if (state.label !== null) body.label = int(state.label);
  else if (body.input.upload) body.label = 0; // a drawing has no label: the first class, until chosen
  const key = JSON.stringify(body) + runState.version;
  if (drawn.backward === key) return;
  const answer = await api('/api/backward', body);
  guard();
  remember('backward', answer);
  drawBackward(answer);
  drawn.backward = key;
}

function drawBackward(answer) {
  const section = $('view-backward');
  Object.assign(section.dataset, { label: answer.label, loss: answer.loss, maxDiff: answer.max_diff });
  $('label-select').value = answer.label;
  $('loss').textContent = fmt(answer.loss);
  $('max-diff').textContent = fmt(answer.max_diff);
  const diff = (d) => el('span', { class: d > 1e-3 ? 'diff bad' : 'diff', text: `largest difference to jax.grad: ${fmt(d)}` });
  $('backward-steps').replaceChildren(...answer.steps.map((step) => {
    const what = step.kind === 'loss' ? 'dL/dz, the gradient at the logits' : `dL/d(input of ${step.name})`;
    const card = el('div', { class: 'step', 'data-name': step.name, 'data-kind': step.kind, 'data-diff': step.diff },
      el('h3', { text: step.name }, el('span', { class: 'muted', text: ` ${step.kind}` })),
      el('code', { class: 'formula', text: step.formula }),
      el('div', { class: 'caption' }, `${what} [${step.grad.shape.join('×')}] `, diff(step.diff)),
      drawTensor(step.grad));
    for (const param of step.params) {
      const box = el('div', { class: 'param', 'data-name': param.name, 'data-shape': param.shape.join(','), 'data-diff': param.diff, 'data-max-abs': param.max_abs },
        el('div', { class: 'caption' }, `dL/d${param.name} [${param.shape.join('×')}], largest |value| ${fmt(param.max_abs)} `, diff(param.diff)));
      box.append(param.grad ? drawTensor(param.grad) : el('div', { class: 'muted', text: 'too large to send: its size and difference only' }));
      card.append(box);
    }
    return card;
  }));
  drawMap($('b-input'), lastInput(), greyScale(0, 1), 56);
}

/** The model input as the forward view last drew it, else the strip's thumbnail. */
function lastInput() {
  const ref = inputRef();
  if (strip && ref.test !== undefined && ref.test >= strip.start && ref.test < strip.start + STRIP) {
    const [, h, w, c] = strip.images.shape;
    const k = ref.test - strip.start;
    return { shape: [h, w, c], data: strip.images.data.subarray(k * h * w * c, (k + 1) * h * w * c) };
  }
  return uploads[ref.upload] || { shape: [1, 1, 1], data: new Float32Array(1) };
}

// ---- view 5: training ------------------------------------------------------------------------------

const COLOURS = ['#1f6fb2', '#d6452e', '#2f9e44', '#9c36b5'];

/** 1, 2 or 5 times a power of ten, at least `raw`: the spacing of an axis' ticks. */
function niceStep(raw) {
  const power = 10 ** Math.floor(Math.log10(raw || 1));
  return [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw);
}

/** Curves of several series over epochs, with axes; y from lo to hi. */
function drawCurves(canvas, series, lo, hi) {
  const ctx = canvas.getContext('2d');
  const [W, H, L, B, T] = [canvas.width, canvas.height, 44, 28, 26];
  ctx.clearRect(0, 0, W, H);
  ctx.font = '11px system-ui, sans-serif';
  ctx.strokeStyle = '#c5cbd3';
  ctx.fillStyle = '#4a5260';
  const epochs = Math.max(1, ...Object.values(series).map((v) => v.length));
  const x = (e) => L + ((W - L - 10) * (epochs === 1 ? 0.5 : e / (epochs - 1)));
  const y = (v) => H - B - ((H - B - T) * (v - lo)) / (hi - lo || 1);
  const step = niceStep((hi - lo) / 4);
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step) {
    ctx.beginPath(); ctx.moveTo(L, y(v)); ctx.lineTo(W - 10, y(v)); ctx.stroke();
    ctx.fillText(fmt(Number(v.toPrecision(6))), 4, y(v) + 4);
  }
  for (let e = 0; e < epochs; e += Math.ceil(epochs / 10)) ctx.fillText(String(e + 1), x(e) - 3, H - 12);
  ctx.fillText('epoch', W - 44, H - 2);
  Object.entries(series).forEach(([name, values], k) => {
    ctx.strokeStyle = ctx.fillStyle = COLOURS[k % COLOURS.length];
    ctx.lineWidth = 2;
    ctx.beginPath();
    values.forEach((v, e) => (e ? ctx.lineTo(x(e), y(v)) : ctx.moveTo(x(e), y(v))));
    ctx.stroke();
    values.forEach((v, e) => ctx.fillRect(x(e) - 2.5, y(v) - 2.5, 5, 5));
    ctx.fillRect(L + 130 * k, 8, 14, 3);
    ctx.fillText(name, L + 18 + 130 * k, 13);
  });
  ctx.lineWidth = 1;
}

async function renderTraining() {
  if (!hasRun()) return;
  const root = $('training');
  const history = runState.history || {};
  Object.assign(root.dataset, { version: runState.version, epoch: runState.epoch, status: runState.status });
  $('training-status').textContent = `${runState.status} · ${info.run.model} · ${info.run.path}`;
  const pick = (word) => Object.fromEntries(Object.entries(history).filter(([k, v]) => k.includes(word) && Array.isArray(v)));
  const losses = pick('loss');
  const accuracies = pick('accuracy');
  const all = Object.values(losses).flat();
  drawCurves($('loss-curve'), losses, 0, all.length ? Math.max(...all) * 1.05 : 1);
  const acc = Object.values(accuracies).flat();
  drawCurves($('acc-curve'), accuracies, acc.length ? Math.floor(Math.min(...acc) * 10) / 10 : 0, 1);
  $('training-filters').replaceChildren(...(runState.filters || []).map((f) => el('div', { class: 'layer', 'data-name': f.layer },
    el('h3', { text: `${f.layer} filters` }, el('span', { class: 'muted', text: ` ${f.w.shape.join('×')} (kh×kw×C_in×C_out)` })), drawTensor(f.w))));
}

/** A new checkpoint: keep it, and redraw the views that show the run. */
function applyRun(answer) {
  runState = answer;
  remember('run', answer);
  if (answer.run) info.run = answer.run;
  $('run-label').textContent = info.run ? `run: ${info.run.path} · ${info.run.status}` : 'no run';
  const select = $('label-select');
  const classes = hasRun() ? info.run.classes : [];
  if (select.options.length !== classes.length) {
    select.replaceChildren(...classes.map((name, i) => el('option', { value: i, text: `${i}: ${name}` })));
  }
  showHints();
}

let polling = false;

/** Every ~2 s: has the run saved a new checkpoint? */
async function pollRun() {
  if (!info || !info.run || polling) return;
  polling = true;
  try {
    const since = runState && runState.version ? `?since=${encodeURIComponent(runState.version)}` : '';
    const answer = await api(`/api/run${since}`, undefined, { quiet: true });
    if (answer.changed) {
      applyRun(answer);
      if (['model', 'backward', 'training'].includes(state.view)) render(null);
    } else if (runState && answer.status !== runState.status) {
      runState.status = answer.status;
      $('training-status').textContent = answer.status;
    }
  } catch (err) {
    // the server may be restarting: the next poll asks again
  } finally {
    polling = false;
  }
}

// ---- controls and start --------------------------------------------------------------------------

const VIEWS = {
  kernels: renderKernels, pattern: renderPattern, model: renderModel, backward: renderBackward, training: renderTraining,
};
const uploads = {}; // upload id -> its model-form image, for the backward view's thumbnail

/** Send image bytes; returns the upload's id. */
async function upload(blob) {
  const answer = await api('/api/upload', blob, { bytes: true });
  remember('upload', answer);
  uploads[answer.id] = answer.model;
  if (![...$('image-select').options].some((o) => o.value === `upload:${answer.id}`)) {
    $('image-select').append(el('option', { value: `upload:${answer.id}`, text: `upload ${Object.keys(uploads).length}` }));
  }
  return answer.id;
}

/** Set the controls from the state (after reading the URL). */
function syncControls() {
  document.body.dataset.view = state.view;
  for (const b of $('tabs').children) b.classList.toggle('active', b.dataset.view === state.view);
  for (const s of document.querySelectorAll('.view')) s.hidden = s.dataset.view !== state.view;
  $('image-bar').hidden = !['kernels', 'pattern'].includes(state.view);
  showHints();
  const select = $('image-select');
  if (state.image.startsWith('upload:') && ![...select.options].some((o) => o.value === state.image)) {
    select.append(el('option', { value: state.image, text: 'upload' }));
  }
  select.value = state.image.startsWith('test:') ? 'test' : state.image;
  $('image-test-label').hidden = select.value !== 'test';
  if (state.image.startsWith('test:')) $('image-test').value = state.image.slice(5);
  $('stride').value = state.stride;
  $('padding').value = state.padding;
  if (state.label !== null) $('label-select').value = state.label;
}

function change(event, update) {
  update();
  syncControls();
  render(event);
}

function buildControls() {
  const options = (select, values, text = String) => select.replaceChildren(...values.map((v) => el('option', { value: v, text: text(v) })));
  options($('stride'), info.strides);
  options($('padding'), info.paddings, (p) => (p === 0 ? '0 (valid)' : p === 1 ? '1 (same)' : String(p)));
  const images = [...info.images];
  if (info.run && info.run.test_count) images.push('test');
  options($('image-select'), images, (v) => (v === 'test' ? 'a test image of the run' : v));
  $('kernel-buttons').replaceChildren(...Object.keys(info.kernels).map((name) => el('button', { type: 'button', 'data-kernel': name, text: name })));
  $('kernel-grid').replaceChildren(...Array.from({ length: 9 }, (_, i) => el('input', {
    type: 'text', inputmode: 'decimal', 'data-row': Math.floor(i / 3), 'data-col': i % 3, 'aria-label': `kernel row ${Math.floor(i / 3)} column ${i % 3}`,
  })));

  $('tabs').addEventListener('click', (e) => e.target.dataset.view && change(e, () => { state.view = e.target.dataset.view; }));
  $('kernel-buttons').addEventListener('click', (e) => e.target.dataset.kernel && change(e, () => { state.kernel = e.target.dataset.kernel; }));
  $('kernel-grid').addEventListener('input', onKernelCell);
  $('kernel-grid').addEventListener('change', onKernelCell);
  $('image-select').addEventListener('change', (e) => change(e, () => {
    state.image = e.target.value === 'test' ? `test:${$('image-test').value || 0}` : e.target.value;
    state.pos = null;
  }));
  $('image-test').addEventListener('change', (e) => change(e, () => { state.image = `test:${e.target.value}`; state.pos = null; }));
  $('stride').addEventListener('change', (e) => change(e, () => { state.stride = e.target.value; }));
  $('padding').addEventListener('change', (e) => change(e, () => { state.padding = e.target.value; }));
  $('image-file').addEventListener('change', (e) => {
    const file = e.target.files[0];
    if (file) render(e, async () => { state.image = `upload:${await upload(file)}`; state.pos = null; syncControls(); });
  });
  $('p-image').addEventListener('click', (e) => {
    const [h, w] = match ? match.image.shape : [0, 0];
    const px = $('p-image').width / (w + 2 * MARGIN);
    const rect = $('p-image').getBoundingClientRect();
    const row = Math.floor(((e.clientY - rect.top) * ($('p-image').height / rect.height)) / px) - MARGIN;
    const col = Math.floor(((e.clientX - rect.left) * ($('p-image').width / rect.width)) / px) - MARGIN;
    if (row < 0 || col < 0 || row >= h || col >= w) return;
    stopPlay();
    change(e, () => { state.pixel = `${row},${col}`; state.pos = null; });
  });
  $('play-btn').addEventListener('click', onPlay);
  $('prev-btn').addEventListener('click', (e) => onStep(e, -1));
  $('next-btn').addEventListener('click', (e) => onStep(e, 1));
  $('scrubber').addEventListener('input', (e) => onStep(e, 0, Number(e.target.value)));
  $('speed').addEventListener('change', () => { if (player) { stopPlay(); onPlay(null); } });

  $('test-strip').addEventListener('click', (e) => {
    const rect = $('test-strip').getBoundingClientRect();
    const k = Math.floor(((e.clientX - rect.left) / rect.width) * STRIP);
    if (strip && k < strip.labels.length) change(e, () => { state.input = `test:${strip.start + k}`; state.label = null; });
  });
  $('strip-prev').addEventListener('click', (e) => change(e, () => { state.input = `test:${Math.max(0, (strip ? strip.start : 0) - STRIP)}`; state.label = null; }));
  $('strip-next').addEventListener('click', (e) => change(e, () => {
    state.input = `test:${Math.min(info.run.test_count - 1, (strip ? strip.start : 0) + STRIP)}`; state.label = null;
  }));
  $('test-index').addEventListener('change', (e) => change(e, () => { state.input = `test:${e.target.value}`; state.label = null; }));
  $('label-select').addEventListener('change', (e) => change(e, () => { state.label = e.target.value; }));
  $('model-file').addEventListener('change', (e) => {
    const file = e.target.files[0];
    if (file) render(e, async () => { state.input = `upload:${await upload(file)}`; state.label = null; });
  });
  setUpDrawing();
}

/** The digit canvas: white strokes on black; lifting the pen sends it as a PNG. */
function setUpDrawing() {
  const canvas = $('draw');
  const ctx = canvas.getContext('2d');
  const clear = () => { ctx.fillStyle = '#000'; ctx.fillRect(0, 0, canvas.width, canvas.height); };
  clear();
  let last = null;
  const point = (e) => {
    const rect = canvas.getBoundingClientRect();
    return [((e.clientX - rect.left) * canvas.width) / rect.width, ((e.clientY - rect.top) * canvas.height) / rect.height];
  };
  canvas.addEventListener('pointerdown', (e) => { canvas.setPointerCapture(e.pointerId); last = point(e); });
  canvas.addEventListener('pointermove', (e) => {
    if (!last) return;
    const next = point(e);
    Object.assign(ctx, { strokeStyle: '#fff', lineWidth: 11, lineCap: 'round', lineJoin: 'round' });
    ctx.beginPath(); ctx.moveTo(...last); ctx.lineTo(...next); ctx.stroke();
    last = next;
  });
  canvas.addEventListener('pointerup', (e) => {
    if (!last) return;
    last = null;
    render(e, async () => {
      const blob = await new Promise((resolve) => canvas.toBlob(resolve, 'image/png'));
      state.input = `upload:${await upload(blob)}`;
      state.label = null;
    });
  });
  $('draw-clear').addEventListener('click', clear);
}

async function start() {
  readHash();
  try {
    info = await api('/api/info');
    if (info.run) applyRun(await api('/api/run'));
    else applyRun({ version: null });
  } catch (err) {
    showError(err.message);
    setState('error');
    return;
  }
  buildControls();
  syncControls();
  render(null);
  setInterval(pollRun, 2000);
  window.addEventListener('hashchange', () => { readHash(); syncControls(); render(null); });
}

start();
