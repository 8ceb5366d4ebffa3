/*
 * jaxcnn explore: the page's script. The browser only draws: every number on the page comes from
 * the server's API (docs/explore.md), arrays as base64 float32 decoded with Float32Array. Plain
 * JavaScript, no framework, no build step; Canvas2D for every picture.
 *
 * Test contract (tests/explore/test_browser_*.py and benchmarks/explore_latency.py rely on it).
 * Every number shown is also in a data-* attribute, written with String(x), which round-trips the
 * float32 (or JSON number) exactly.
 *   body[data-state]   "loading"; "busy" (a request in flight); "ready" (the view has drawn);
 *                      "error" (the last request failed: its message is in #error)
 *   body[data-view]    kernels | pattern | model | backward | training
 *   #error             the failed request's {"error"} message; hidden when there is none
 *   window.explore     .last.<name>: the last drawn answer of kernel, match, slide, forward,
 *                      backward, run, upload, each array as a nested plain Array;
 *                      .renders: how many renders have finished (an action adds one);
 *                      .timing: the last render's {action, t0 (the event's timeStamp), total,
 *                      net (requests), parse (JSON + base64), encode (the drawn PNG), draw} in ms
 *   Kernels   #kernel-grid input[data-row][data-col][data-value]; #kernel-buttons
 *             button[data-kernel] (.active); #formula-h, #formula-w [data-n|p|k|s|out]
 *   Pattern   #p-image (click a pixel; the image is drawn with MARGIN cells around it);
 *             #match-pixel[data-row][data-col]; #best[data-row][data-col];
 *             #patch-grid span[data-row][data-col][data-value];
 *             #play[data-pos][data-row][data-col][data-count][data-playing];
 *             #play-window, #play-kernel, #play-products span[data-row][data-col][data-value];
 *             #play-sum[data-value]; #scrubber; #play-btn (Play / Pause), #prev-btn, #next-btn
 *   Model     #probabilities[data-predicted][data-target] li[data-index][data-class][data-prob];
 *             #model-layers .layer[data-name][data-kind][data-shape]; #test-strip[data-start]
 *             (click a thumbnail), #test-index, #draw (pointer strokes), #draw-clear, #model-file
 *   Backward  #view-backward[data-label][data-loss][data-max-diff]; #label-select;
 *             #backward-steps .step[data-name][data-kind][data-diff]
 *             .param[data-name][data-shape][data-diff][data-max-abs]
 *   Training  #training[data-version][data-epoch][data-status]; #loss-curve, #acc-curve;
 *             #training-filters .layer[data-name]
 *   No run    the .hint of the model, backward and training sections: /api/info's no_run_hint
 * The URL hash holds the state: view, image, kernel (a name or 9 numbers), stride, padding,
 * pixel (row,col), pos (Play's position), input (test:i or upload:id), label.
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

/** A short form of a number for the eye; the data-* attributes keep the exact one. */
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

/** A decoded answer with its arrays as nested plain Arrays (for window.explore.last). */
function plain(value) {
  if (value && value.data instanceof Float32Array) {
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

// ---- the API ------------------------------------------------------------------------------------

const explore = { last: {}, renders: 0, timing: null };
window.explore = explore;

/** Keep an answer for the tests; it becomes plain arrays only when read. */
function remember(name, answer) {
  Object.defineProperty(explore.last, name, {
    get: () => plain(answer), configurable: true, enumerable: true,
  });
}

let trace = { net: 0, parse: 0, encode: 0 }; // the current render's times

/**
 * GET (no body) or POST JSON (or bytes); resolves to the decoded answer, throws the server's
 * {"error"}. Its time counts in the current render's trace unless `quiet` (the run's poll).
 */
async function api(path, body, { bytes = false, quiet = false } = {}) {
  const times = quiet ? { net: 0, parse: 0 } : trace;
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
  times.net += fetched - start;
  times.parse += performance.now() - fetched;
  return answer;
}

// ---- the state, and the URL hash that holds it --------------------------------------------------

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

/** Integers as numbers; anything else as typed, for the server to refuse with a message. */
const int = (text) => (/^-?\d+$/.test(String(text)) ? Number(text) : String(text));
const hasRun = () => Boolean(info && info.run && info.run.ready);
const pixel = () => state.pixel.split(',').map(int);

/** 'square' -> {builtin: 'square'}; 'test:3' -> {test: 3}; 'upload:u12' -> {upload: 'u12'}. */
function imageRef(name) {
  const [source, key] = name.includes(':') ? name.split(/:(.*)/s) : ['builtin', name];
  return { [source]: source === 'test' ? int(key) : key };
}

// ---- busy / ready / error: one render at a time ------------------------------------------------

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
 * Resolves to whether this render drew.
 */
async function render(event, before) {
  const mine = ++generation;
  const guard = () => { if (mine !== generation) throw STALE; };
  const now = performance.now();
  trace = { action: event ? event.type : 'load', t0: event ? event.timeStamp : now, start: now,
    net: 0, parse: 0, encode: 0 };
  setState('busy');
  try {
    if (before) { await before(guard); guard(); }
    await VIEWS[state.view](guard);
    guard();
    const end = performance.now();
    trace.total = end - trace.t0;
    trace.draw = end - trace.start - trace.net - trace.parse - trace.encode;
    explore.timing = trace;
    explore.renders += 1;
    writeHash();
    showError('');
    setState('ready');
    return true;
  } catch (err) {
    if (err === STALE) return false;
    explore.renders += 1;
    writeHash();
    showError(err.message);
    setState('error');
    return false;
  }
}

// ---- colours and pictures -----------------------------------------------------------------------

const BLUE = [33, 102, 172];
const RED = [178, 24, 43];

/** Grey from lo (black) to hi (white): images. */
function greyScale(lo, hi) {
  const span = hi > lo ? hi - lo : 1;
  const rgb = (v) => { const g = 255 * Math.min(1, Math.max(0, (v - lo) / span)); return [g, g, g]; };
  return { kind: 'grey', lo, hi, rgb };
}

/** Blue below 0, white at 0, red above, saturating at +-m: signed maps. */
function signedScale(m) {
  const size = m > 0 ? m : 1;
  const rgb = (v) => {
    const t = Math.min(1, Math.abs(v) / size);
    return (v < 0 ? BLUE : RED).map((c) => 255 + (c - 255) * t);
  };
  return { kind: 'signed', lo: -m, hi: m, rgb };
}

function maxAbs(data) {
  let m = 0;
  for (const v of data) m = Math.max(m, Math.abs(v));
  return m;
}

/** Images in [0, 1] grey; a map with negative values signed; other maps grey from 0. */
function autoScale(data, image = false) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of data) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  if (image || lo >= 0) return greyScale(0, Math.max(1, hi));
  return signedScale(maxAbs(data));
}

/** A cell's background: the value's colour, mixed half with white so the number stays readable. */
function tint(scale, v) {
  const [r, g, b] = scale.rgb(v).map((c) => Math.round(127 + c / 2));
  return `rgb(${r},${g},${b})`;
}

const scratch = document.createElement('canvas');
const GAP = (0xff << 24 | 0xd6 << 16 | 0xce << 8 | 0xc9) >>> 0; // the grey between maps (RGBA, LE)
const BLANK = [236, 239, 243]; // a value that is not there (NaN): Play's positions to come

/** A scale's 256 colours, built once, so that painting a value is a table look-up. */
function colours(scale) {
  if (!scale.table) {
    scale.table = new Uint8ClampedArray(256 * 3);
    for (let i = 0; i < 256; i++) {
      scale.table.set(scale.rgb(scale.lo + ((scale.hi - scale.lo) * i) / 255), 3 * i);
    }
  }
  return scale.table;
}

/**
 * Paint `count` maps of h x w values in a grid of `cols` columns, one value of grey between them,
 * at (x, y), px (or [px_x, px_y]) screen pixels per value: one ImageData and one drawImage for
 * them all. at(k, i, j) is value (i, j) of map k: a number on `scale`, or [r, g, b] (scale null).
 */
function paintGrid(ctx, x, y, px, count, h, w, cols, at, scale) {
  const [pxX, pxY] = Array.isArray(px) ? px : [px, px];
  const width = cols * (w + 1) - 1;
  const height = Math.ceil(count / cols) * (h + 1) - 1;
  const image = new ImageData(width, height);
  const out = image.data;
  const words = new Uint32Array(out.buffer);
  const table = scale && colours(scale);
  const span = scale ? (scale.hi - scale.lo) || 1 : 1;
  for (let k = 0; k < count; k++) {
    const top = Math.floor(k / cols) * (h + 1);
    const left = (k % cols) * (w + 1);
    for (let i = top; i < Math.min(height, top + h + 1); i++) { // the map and its grey edge
      words.fill(GAP, i * width + left, i * width + Math.min(width, left + w + 1));
    }
    for (let i = 0; i < h; i++) {
      let o = 4 * ((top + i) * width + left);
      for (let j = 0; j < w; j++, o += 4) {
        const v = at(k, i, j);
        if (!scale || Number.isNaN(v)) {
          out.set(scale ? BLANK : v, o);
        } else {
          const t = 3 * Math.min(255, Math.max(0, Math.round(((v - scale.lo) / span) * 255)));
          out[o] = table[t]; out[o + 1] = table[t + 1]; out[o + 2] = table[t + 2];
        }
      }
    }
  }
  if (pxX === 1 && pxY === 1) {
    ctx.putImageData(image, x, y);
    return;
  }
  scratch.width = width;
  scratch.height = height;
  scratch.getContext('2d').putImageData(image, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(scratch, x, y, width * pxX, height * pxY);
}

/** at(k, i, j) of the images of an [N, H, W, C] (or [H, W, C], [H, W]) tensor: grey, or RGB. */
function pixels(tensor, first = 0) {
  const [h, w, c = 1] = tensor.shape.slice(-3);
  const d = tensor.data;
  const at = (k, i, j, q = 0) => d[((first + k) * h * w + i * w + j) * c + q];
  if (c !== 3) return at;
  const unit = (v) => 255 * Math.min(1, Math.max(0, v));
  return (k, i, j) => [unit(at(k, i, j, 0)), unit(at(k, i, j, 1)), unit(at(k, i, j, 2))];
}

const isColour = (tensor) => tensor.shape.length >= 3 && tensor.shape[tensor.shape.length - 1] === 3;

/** One [H, W] map (or [H, W, 1 or 3] image) on a canvas about `size` px wide; returns px/value. */
function drawMap(canvas, tensor, scale, size = 224, margin = 0) {
  const [h, w] = tensor.shape;
  const px = Math.max(1, Math.floor(size / (Math.max(h, w) + 2 * margin)));
  canvas.width = (w + 2 * margin) * px;
  canvas.height = (h + 2 * margin) * px;
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#d9dde3';
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  paintGrid(ctx, margin * px, margin * px, px, 1, h, w, 1, pixels(tensor),
    isColour(tensor) ? null : scale);
  legend(canvas.id, scale);
  return px;
}

/** The colours of a scale and its range, in the legend under canvas `id` (or in `node`). */
function legend(id, scale, node = document.querySelector(`.legend[data-for="${id}"]`)) {
  if (!node) return node;
  const bar = el('canvas', { width: 96, height: 10 });
  const ctx = bar.getContext('2d');
  const gradient = ctx.createLinearGradient(0, 0, 96, 0);
  for (const t of [0, 0.5, 1]) {
    gradient.addColorStop(t, `rgb(${scale.rgb(scale.lo + (scale.hi - scale.lo) * t).join(',')})`);
  }
  ctx.fillStyle = gradient;
  ctx.fillRect(0, 0, 96, 10);
  const words = scale.kind === 'signed' ? 'blue < 0 < red' : 'black to white';
  node.replaceChildren(el('span', { text: fmt(scale.lo) }), bar, el('span', { text: fmt(scale.hi) }),
    el('span', { class: 'muted', text: words }));
  Object.assign(node.dataset, { lo: scale.lo, hi: scale.hi });
  return node;
}

/**
 * A canvas for a grid of `count` maps of h x w values in `cols` columns: one canvas pixel per
 * value, shown px (or [px_x, px_y]) times larger by CSS (pixelated), which costs the page nothing.
 */
function gridCanvas(canvas, count, h, w, cols, px) {
  const [pxX, pxY] = Array.isArray(px) ? px : [px, px];
  canvas.width = cols * (w + 1) - 1;
  canvas.height = Math.ceil(count / cols) * (h + 1) - 1;
  canvas.style.width = `${canvas.width * pxX}px`;
  canvas.style.height = `${canvas.height * pxY}px`;
  return canvas.getContext('2d');
}

/** The C channels of an [H, W, C] tensor as a grid of small maps on one colour scale. */
function drawChannels(canvas, tensor, scale, width = 1120, cell = 112) {
  const [h, w, c] = tensor.shape;
  const px = Math.max(1, Math.min(6, Math.floor(cell / Math.max(h, w))));
  const cols = Math.max(1, Math.min(c, Math.floor((width / px + 1) / (w + 1))));
  const at = (k, i, j) => tensor.data[(i * w + j) * c + k];
  paintGrid(gridCanvas(canvas, c, h, w, cols, px), 0, 0, 1, c, h, w, cols, at, scale);
}

/** Kernels [kh, kw, C_in, C_out]: one row per input channel (16 at most), one column per filter. */
function drawKernels(canvas, tensor, scale, width = 1120) {
  const [kh, kw, cin, cout] = tensor.shape;
  const px = Math.max(2, Math.min(24, Math.floor(width / (cout * (kw + 1)))));
  const rows = Math.min(cin, 16);
  const at = (k, r, s) => tensor.data[((r * kw + s) * cin + Math.floor(k / cout)) * cout + (k % cout)];
  const ctx = gridCanvas(canvas, rows * cout, kh, kw, cout, px);
  paintGrid(ctx, 0, 0, 1, rows * cout, kh, kw, cout, at, scale);
  return rows < cin ? `the first 16 of ${cin} input channels` : '';
}

/** A dense matrix [n_in, n_out]: one row of cells per output. */
function drawMatrix(canvas, tensor, scale, width = 560) {
  const [n, m] = tensor.shape;
  const pxX = Math.max(1, Math.min(8, Math.floor(width / n)));
  const pxY = Math.max(pxX, Math.min(24, Math.floor(160 / m)));
  const ctx = gridCanvas(canvas, 1, m, n, 1, [pxX, pxY]);
  paintGrid(ctx, 0, 0, 1, 1, m, n, 1, (k, i, j) => tensor.data[j * m + i], scale);
}

/** A vector: signed bars (up to 128 values; with their values up to 12), else a strip of cells. */
function drawVector(canvas, data, scale, width = 560) {
  if (data.length > 128) {
    const cols = Math.min(data.length, 64);
    const px = Math.max(2, Math.floor(width / cols));
    const rows = Math.ceil(data.length / cols);
    const at = (k, i, j) => (i * cols + j < data.length ? data[i * cols + j] : NaN);
    paintGrid(gridCanvas(canvas, 1, rows, cols, 1, px), 0, 0, 1, 1, rows, cols, 1, at, scale);
    return;
  }
  const bar = Math.max(2, Math.min(48, Math.floor(width / data.length)));
  const gap = bar >= 8 ? 2 : 0;
  const labels = data.length <= 12;
  canvas.width = bar * data.length;
  canvas.height = labels ? 74 : 60;
  const ctx = canvas.getContext('2d');
  const m = maxAbs(data) || 1;
  ctx.fillStyle = '#8a94a3';
  ctx.fillRect(0, 30, canvas.width, 1);
  Object.assign(ctx, { font: '10px system-ui, sans-serif', textAlign: 'center' });
  data.forEach((v, i) => {
    ctx.fillStyle = `rgb(${(v < 0 ? BLUE : RED).join(',')})`;
    const height = (28 * Math.abs(v)) / m;
    ctx.fillRect(i * bar + gap, v < 0 ? 31 : 30 - height, bar - 2 * gap, height);
    if (labels) { ctx.fillStyle = '#333'; ctx.fillText(fmt(v), i * bar + bar / 2, 70); }
  });
}

/** Any tensor of the model views, with its legend: vectors, maps, HWIO kernels, matrices. */
function drawTensor(tensor) {
  const canvas = el('canvas');
  const scale = signedScale(maxAbs(tensor.data));
  const rank = tensor.shape.length;
  let note = '';
  if (rank === 1) drawVector(canvas, tensor.data, scale);
  else if (rank === 2) drawMatrix(canvas, tensor, scale);
  else if (rank === 3) drawChannels(canvas, tensor, scale);
  else note = drawKernels(canvas, tensor, scale);
  const box = el('div', { class: 'tensor' }, canvas, legend(null, scale, el('div', { class: 'legend' })));
  if (note) box.append(el('div', { class: 'muted', text: note }));
  return box;
}

/** Outline cells (rows x cols from (row, col)) on a canvas drawn at px pixels per cell. */
function outline(canvas, px, row, col, rows, cols, colour, line = 2) {
  const ctx = canvas.getContext('2d');
  Object.assign(ctx, { strokeStyle: colour, lineWidth: line });
  ctx.strokeRect(col * px + line / 2, row * px + line / 2, cols * px - line, rows * px - line);
}

/** A 3x3 grid of numbers in `node`, each span holding its exact value. */
function numberGrid(node, values, scale) {
  node.replaceChildren(...Array.from(values, (v, i) => {
    const span = el('span', { 'data-row': Math.floor(i / 3), 'data-col': i % 3, 'data-value': v,
      text: fmt(v) });
    if (scale) span.style.background = tint(scale, v);
    return span;
  }));
}

// ---- view 1: kernels ----------------------------------------------------------------------------

const KERNEL_NOTES = {
  blur: 'Every weight is 1/9: each output pixel is the average of the 9 pixels under the kernel, '
    + 'so sharp edges soften.',
  sharpen: 'A large centre and negative neighbours: the pixel minus its surroundings is '
    + 'amplified, so edges get crisper.',
  'horizontal edges': 'Negative top row, positive bottom row: it answers where brightness '
    + 'changes from top to bottom.',
  'vertical edges': 'Negative left column, positive right column: it answers where brightness '
    + 'changes from left to right.',
  custom: 'Your own 9 numbers: the same sliding sum, a different picture.',
};

/** The kernel as 3 rows (a cell that is no number goes as typed: the server says why). */
function kernelRows() {
  if (info.kernels[state.kernel]) return info.kernels[state.kernel];
  const cells = state.kernel.split(',').map((t) => {
    const x = t.trim() === '' ? NaN : Number(t);
    return Number.isFinite(x) ? x : t;
  });
  return [cells.slice(0, 3), cells.slice(3, 6), cells.slice(6)];
}

/**
 * A cell edited: the kernel becomes custom; untouched cells keep their exact values. While
 * typing, only numbers are sent; on Enter or leaving the cell, whatever is there.
 */
function onKernelCell(event) {
  const cells = [...$('kernel-grid').querySelectorAll('input')];
  const texts = cells.map((c) => (c.value === c.dataset.shown ? c.dataset.value : c.value.trim()));
  if (event.type === 'input' && texts.some((t) => t === '' || !Number.isFinite(Number(t)))) return;
  state.kernel = texts.join(',');
  render(event);
}

async function renderKernels(guard) {
  const body = { image: imageRef(state.image), kernel: kernelRows(), stride: int(state.stride),
    padding: int(state.padding) };
  const key = JSON.stringify(body);
  for (const b of $('kernel-buttons').children) {
    b.classList.toggle('active', b.dataset.kernel === state.kernel);
  }
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
    if (document.activeElement !== cell) cell.value = cell.dataset.shown = fmt(v);
    cell.style.background = tint(scale, v);
  });
  $('kernel-note').textContent = KERNEL_NOTES[info.kernels[state.kernel] ? state.kernel : 'custom'];
  const size = answer.size;
  for (const [axis, n, out] of [['h', size.n, size.out], ['w', size.n_w, size.out_w]]) {
    const node = $(`formula-${axis}`);
    Object.assign(node.dataset, { n, p: size.p, k: size.k, s: size.s, out });
    node.textContent = `${axis.toUpperCase()}:  floor((${n} + 2·${size.p} − ${size.k}) / ${size.s})`
      + ` + 1 = ${out}`;
  }
  drawn.kernels = key;
}

// ---- view 2: pattern matching and Play ----------------------------------------------------------

let match = null; // the last /api/match answer
let slide = null; // {key, answer, stride, padding} of the last /api/slide
let player = null; // Play's timer
const MARGIN = 2; // cells drawn around the image, where a padded window may hang over

/** Play's request: the clicked patch as the kernel, with the page's stride and padding. */
function slideRequest() {
  return { image: imageRef(state.image), kernel: plain(match.patch), stride: int(state.stride),
    padding: int(state.padding) };
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

/** The image with the clicked patch, and Play's window where it is (it may hang over). */
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
  const idle = state.pos === null || !slideIsCurrent();
  root.classList.toggle('idle', idle);
  if (idle) {
    root.dataset.count = 0;
    delete root.dataset.pos;
    delete $('play-sum').dataset.value;
    drawImageMarks(null);
    return;
  }
  const { windows, products, sums } = slide.answer;
  const [, outW] = sums.shape;
  const count = sums.data.length;
  const pos = Math.max(0, Math.min(count - 1, Number(state.pos) || 0));
  const [r, c] = [Math.floor(pos / outW), pos % outW];
  state.pos = String(pos);
  Object.assign(root.dataset, { pos, row: r, col: c, count, playing: Boolean(player) });
  const nine = (t) => t.data.subarray(pos * 9, pos * 9 + 9);
  numberGrid($('play-window'), nine(windows), greyScale(0, 1));
  numberGrid($('play-kernel'), match.patch.data, greyScale(0, 1));
  numberGrid($('play-products'), nine(products), signedScale(maxAbs(products.data)));
  $('play-sum').dataset.value = sums.data[pos];
  $('play-sum').textContent = fmt(sums.data[pos]);
  Object.assign($('scrubber'), { max: count - 1, value: pos });
  $('play-pos').textContent = `position ${pos + 1} of ${count}: output (${r}, ${c}), `
    + `stride ${slide.stride}, padding ${slide.padding}`;
  $('play-btn').textContent = player ? '❚❚ Pause' : '▶ Play';
  // the output so far, on the colour scale of the whole map; later positions are blank
  const sofar = { shape: sums.shape, data: sums.data.map((v, i) => (i <= pos ? v : NaN)) };
  const px = drawMap($('play-out'), sofar, signedScale(maxAbs(sums.data)), 196);
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

// ---- views 3 and 4: the model, forward and backward ---------------------------------------------

let strip = null; // the page of test images shown
const STRIP = 16;
const uploads = {}; // upload id -> its image in the run's form (the backward view's thumbnail)

/** The page of test thumbnails around the chosen test image. */
async function renderStrip(guard) {
  const ref = imageRef(state.input);
  const count = info.run.test_count;
  if (!count) return;
  const index = ref.test !== undefined ? ref.test : (strip ? strip.start : 0);
  const start = Math.max(0, Math.min(count - 1, Math.floor(index / STRIP) * STRIP));
  if (!strip || strip.start !== start) {
    const answer = await api(`/api/test-images?start=${start}&count=${STRIP}`);
    guard();
    strip = answer;
  }
  const canvas = $('test-strip');
  const [n, h, w] = strip.images.shape;
  const cell = 32;
  const fit = (cell - 4) / Math.max(h, w); // large images are shrunk to fit their cell
  const px = fit >= 1 ? Math.floor(fit) : fit;
  Object.assign(canvas, { width: STRIP * cell, height: cell });
  canvas.dataset.start = strip.start;
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const grey = greyScale(0, 1);
  for (let k = 0; k < n; k++) {
    const colour = isColour(strip.images);
    paintGrid(ctx, k * cell + 2, 2, px, 1, h, w, 1, pixels(strip.images, k), colour ? null : grey);
    if (strip.start + k === ref.test) outline(canvas, 1, 0, k * cell, cell, cell, '#f5b700', 3);
  }
  $('test-index').max = count - 1;
  if (ref.test !== undefined) $('test-index').value = ref.test;
}

/** The chosen input as an [H, W, C] image: its strip thumbnail, or the upload's image. */
function chosenInput() {
  const ref = imageRef(state.input);
  const k = strip && ref.test !== undefined ? ref.test - strip.start : -1;
  if (k >= 0 && k < strip.labels.length) {
    const size = strip.images.data.length / strip.labels.length;
    const data = strip.images.data.subarray(k * size, (k + 1) * size);
    return { shape: strip.images.shape.slice(1), data };
  }
  return uploads[ref.upload] || { shape: [1, 1, 1], data: new Float32Array(1) };
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
  const body = { input: imageRef(state.input), target: null };
  const key = JSON.stringify(body) + runState.version;
  if (drawn.model === key) return;
  const answer = await api('/api/forward', body);
  guard();
  remember('forward', answer);
  drawForward(answer);
  drawn.model = key;
}

/** A titled block: a caption above a picture. */
const captioned = (caption, picture) => el('div', {}, el('div', { class: 'caption', text: caption }),
  picture);

function drawForward(answer) {
  const classes = info.run.classes;
  drawMap($('m-input'), answer.input, autoScale(answer.input.data, true), 140);
  const list = $('probabilities');
  Object.assign(list.dataset, { predicted: answer.predicted, target: answer.target });
  list.replaceChildren(...answer.probabilities.map((p, i) => {
    const fill = el('span', { class: 'fill' });
    fill.style.width = `${(100 * p).toFixed(2)}%`;
    const name = classes[i] + (i === answer.label ? ' (label)' : '');
    return el('li', { 'data-index': i, 'data-class': classes[i], 'data-prob': p,
      class: i === answer.predicted ? 'predicted' : '' },
    el('span', { class: 'name', text: name }), el('span', { class: 'pbar' }, fill),
    el('span', { class: 'value', text: fmt(p) }));
  }));
  const saliency = signedScale(maxAbs(answer.saliency.data));
  drawChannels($('saliency'), answer.saliency, saliency, 140, 140);
  legend('saliency', saliency);
  $('saliency-class').textContent = `of "${classes[answer.target]}"`;
  const filters = Object.fromEntries((runState.filters || []).map((f) => [f.layer, f.w]));
  const summary = Object.fromEntries(info.run.layers.map((l) => [l.name, l.summary]));
  $('model-layers').replaceChildren(...answer.layers.map((layer) => {
    const shape = layer.output.shape;
    const title = ` ${layer.kind} ${summary[layer.name] || ''} → ${shape.join('×')}`;
    const body = el('div', { class: 'layer-body' });
    if (filters[layer.name]) body.append(captioned('kernels', drawTensor(filters[layer.name])));
    const what = shape.length === 3 ? 'feature maps, one per channel' : 'outputs';
    body.append(captioned(what, drawTensor(layer.output)));
    return el('div', { class: 'layer', 'data-name': layer.name, 'data-kind': layer.kind,
      'data-shape': shape.join(',') },
    el('h3', { text: layer.name }, el('span', { class: 'muted', text: title })), body);
  }));
}

async function renderBackward(guard) {
  if (!hasRun()) return;
  await renderStrip(guard);
  const body = { input: imageRef(state.input) };
  if (state.label !== null) body.label = int(state.label); // else the test label, or for a
  // drawing the class the model predicts (the server's default)
  const key = JSON.stringify(body) + runState.version;
  if (drawn.backward === key) return;
  const answer = await api('/api/backward', body);
  guard();
  remember('backward', answer);
  drawBackward(answer);
  drawn.backward = key;
}

function drawBackward(answer) {
  Object.assign($('view-backward').dataset, { label: answer.label, loss: answer.loss,
    maxDiff: answer.max_diff });
  $('label-select').value = answer.label;
  $('loss').textContent = fmt(answer.loss);
  $('max-diff').textContent = fmt(answer.max_diff);
  drawMap($('b-input'), chosenInput(), greyScale(0, 1), 56);
  const diff = (d) => el('span', { class: d > 1e-3 ? 'diff bad' : 'diff',
    text: `largest difference to jax.grad: ${fmt(d)}` });
  $('backward-steps').replaceChildren(...answer.steps.map((step) => {
    const what = step.kind === 'loss' ? 'dL/dz, at the logits' : `dL/d(input of ${step.name})`;
    const card = el('div', { class: 'step', 'data-name': step.name, 'data-kind': step.kind,
      'data-diff': step.diff },
    el('h3', { text: step.name }, el('span', { class: 'muted', text: ` ${step.kind}` })),
    el('code', { class: 'formula', text: step.formula }),
    el('div', { class: 'caption' }, `${what} [${step.grad.shape.join('×')}] `, diff(step.diff)),
    drawTensor(step.grad));
    for (const param of step.params) {
      const shape = param.shape.join('×');
      const caption = `dL/d${param.name} [${shape}], largest |value| ${fmt(param.max_abs)} `;
      const picture = param.grad ? drawTensor(param.grad)
        : el('div', { class: 'muted', text: 'too large to send: its size and difference only' });
      card.append(el('div', { class: 'param', 'data-name': param.name,
        'data-shape': param.shape.join(','), 'data-diff': param.diff, 'data-max-abs': param.max_abs },
      el('div', { class: 'caption' }, caption, diff(param.diff)), picture));
    }
    return card;
  }));
}

// ---- view 5: training ---------------------------------------------------------------------------

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
  Object.assign(ctx, { font: '11px system-ui, sans-serif', strokeStyle: '#c5cbd3',
    fillStyle: '#4a5260', lineWidth: 1 });
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
    Object.assign(ctx, { strokeStyle: COLOURS[k % 4], fillStyle: COLOURS[k % 4], lineWidth: 2 });
    ctx.beginPath();
    values.forEach((v, e) => (e ? ctx.lineTo(x(e), y(v)) : ctx.moveTo(x(e), y(v))));
    ctx.stroke();
    values.forEach((v, e) => ctx.fillRect(x(e) - 2.5, y(v) - 2.5, 5, 5));
    ctx.fillRect(L + 130 * k, 8, 14, 3);
    ctx.fillText(name, L + 18 + 130 * k, 13);
  });
}

async function renderTraining() {
  if (!hasRun()) return;
  const { version, epoch, status } = runState;
  Object.assign($('training').dataset, { version, epoch, status });
  $('training-status').textContent = `${status} · ${info.run.model} · ${info.run.path}`;
  const history = Object.entries(runState.history || {}).filter(([, v]) => Array.isArray(v));
  const pick = (word) => Object.fromEntries(history.filter(([k]) => k.includes(word)));
  const losses = pick('loss');
  const accuracies = pick('accuracy');
  const top = Math.max(0, ...Object.values(losses).flat());
  drawCurves($('loss-curve'), losses, 0, top ? top * 1.05 : 1);
  const bottom = Math.min(1, ...Object.values(accuracies).flat());
  drawCurves($('acc-curve'), accuracies, Math.floor(bottom * 10) / 10, 1);
  $('training-filters').replaceChildren(...(runState.filters || []).map((f) => el('div',
    { class: 'layer', 'data-name': f.layer },
    el('h3', { text: `${f.layer} filters` },
      el('span', { class: 'muted', text: ` ${f.w.shape.join('×')} (kh×kw×C_in×C_out)` })),
    drawTensor(f.w))));
}

/** A new checkpoint (or the first): keep it, and update what names the run. */
function applyRun(answer) {
  runState = answer;
  remember('run', answer);
  if (answer.run) info.run = answer.run;
  $('run-label').textContent = info.run ? `run: ${info.run.path} · ${info.run.status}` : 'no run';
  const images = $('image-select'); // a run that was still starting has test images now
  if (images.options.length && hasRun() && info.run.test_count && !images.querySelector('[value=test]')) {
    images.append(el('option', { value: 'test', text: TEST_OPTION }));
  }
  const classes = hasRun() ? info.run.classes : [];
  if ($('label-select').options.length !== classes.length) {
    $('label-select').replaceChildren(...classes.map((name, i) => el('option',
      { value: i, text: `${i}: ${name}` })));
  }
  showHints();
}

let polling = false;

/** Every ~2 s: has the run saved a new checkpoint? Then redraw the views that show it. */
async function pollRun() {
  if (!info.run || polling) return;
  polling = true;
  try {
    const since = runState.version ? `?since=${encodeURIComponent(runState.version)}` : '';
    const answer = await api(`/api/run${since}`, undefined, { quiet: true });
    if (answer.changed) {
      applyRun(answer);
      if (['model', 'backward', 'training'].includes(state.view)) render(null);
    }
  } catch (err) {
    // the server may be restarting: the next poll asks again
  } finally {
    polling = false;
  }
}

// ---- controls and start -------------------------------------------------------------------------

const VIEWS = { kernels: renderKernels, pattern: renderPattern, model: renderModel,
  backward: renderBackward, training: renderTraining };

/** Send an image file (or the drawn PNG); returns the upload's id. */
async function upload(blob) {
  const answer = await api('/api/upload', blob, { bytes: true });
  remember('upload', answer);
  uploads[answer.id] = answer.model;
  const value = `upload:${answer.id}`;
  if (![...$('image-select').options].some((o) => o.value === value)) {
    $('image-select').append(el('option', { value, text: `upload ${Object.keys(uploads).length}` }));
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

/** A control changed: update the state, the controls, and draw. */
function change(event, update) {
  update();
  syncControls();
  render(event);
}

const TEST_OPTION = 'a test image of the run';
const on = (id, type, handler) => $(id).addEventListener(type, handler);
const chooseInput = (e, input) => change(e, () => { state.input = input; state.label = null; });

function buildControls() {
  const options = (select, values, text = String) => select.replaceChildren(
    ...values.map((v) => el('option', { value: v, text: text(v) })));
  options($('stride'), info.strides);
  options($('padding'), info.paddings, (p) => ({ 0: '0 (valid)', 1: '1 (same)' }[p] || String(p)));
  const images = [...info.images, ...(info.run && info.run.test_count ? ['test'] : [])];
  options($('image-select'), images, (v) => (v === 'test' ? TEST_OPTION : v));
  $('kernel-buttons').replaceChildren(...Object.keys(info.kernels).map((name) => el('button',
    { type: 'button', 'data-kernel': name, text: name })));
  $('kernel-grid').replaceChildren(...Array.from({ length: 9 }, (_, i) => el('input', {
    type: 'text', inputmode: 'decimal', 'data-row': Math.floor(i / 3), 'data-col': i % 3,
    'aria-label': `kernel row ${Math.floor(i / 3)} column ${i % 3}`,
  })));

  on('tabs', 'click', (e) => e.target.dataset.view
    && change(e, () => { state.view = e.target.dataset.view; }));
  on('kernel-buttons', 'click', (e) => e.target.dataset.kernel
    && change(e, () => { state.kernel = e.target.dataset.kernel; }));
  on('kernel-grid', 'input', onKernelCell);
  on('kernel-grid', 'change', onKernelCell);
  on('image-select', 'change', (e) => change(e, () => {
    state.image = e.target.value === 'test' ? `test:${$('image-test').value || 0}` : e.target.value;
    state.pos = null;
  }));
  on('image-test', 'change', (e) => change(e, () => {
    state.image = `test:${e.target.value}`;
    state.pos = null;
  }));
  on('stride', 'change', (e) => change(e, () => { state.stride = e.target.value; }));
  on('padding', 'change', (e) => change(e, () => { state.padding = e.target.value; }));
  on('image-file', 'change', (e) => e.target.files[0] && render(e, async () => {
    state.image = `upload:${await upload(e.target.files[0])}`;
    state.pos = null;
    syncControls();
  }));
  on('p-image', 'click', (e) => {
    const canvas = $('p-image');
    const [h, w] = match ? match.image.shape : [0, 0];
    const rect = canvas.getBoundingClientRect();
    const cell = rect.width / (w + 2 * MARGIN);
    const row = Math.floor((e.clientY - rect.top) / cell) - MARGIN;
    const col = Math.floor((e.clientX - rect.left) / cell) - MARGIN;
    if (row < 0 || col < 0 || row >= h || col >= w) return;
    stopPlay();
    change(e, () => { state.pixel = `${row},${col}`; state.pos = null; });
  });
  on('play-btn', 'click', onPlay);
  on('prev-btn', 'click', (e) => onStep(e, -1));
  on('next-btn', 'click', (e) => onStep(e, 1));
  on('scrubber', 'input', (e) => onStep(e, 0, Number(e.target.value)));
  on('speed', 'change', () => { if (player) { stopPlay(); onPlay(null); } });

  on('test-strip', 'click', (e) => {
    const rect = $('test-strip').getBoundingClientRect();
    const k = Math.floor(((e.clientX - rect.left) / rect.width) * STRIP);
    if (strip && k < strip.labels.length) chooseInput(e, `test:${strip.start + k}`);
  });
  const start = () => (strip ? strip.start : 0);
  on('strip-prev', 'click', (e) => chooseInput(e, `test:${Math.max(0, start() - STRIP)}`));
  on('strip-next', 'click', (e) => chooseInput(e,
    `test:${Math.min(info.run.test_count - 1, start() + STRIP)}`));
  on('test-index', 'change', (e) => chooseInput(e, `test:${e.target.value}`));
  on('label-select', 'change', (e) => change(e, () => { state.label = e.target.value; }));
  on('model-file', 'change', (e) => e.target.files[0] && render(e, async () => {
    state.input = `upload:${await upload(e.target.files[0])}`;
    state.label = null;
  }));
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
    return [(e.clientX - rect.left) * (canvas.width / rect.width),
      (e.clientY - rect.top) * (canvas.height / rect.height)];
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
      const start = performance.now();
      const url = canvas.toDataURL('image/png'); // synchronous: no wait for an encoder thread
      const png = Uint8Array.from(atob(url.slice(url.indexOf(',') + 1)), (ch) => ch.charCodeAt(0));
      trace.encode += performance.now() - start;
      state.input = `upload:${await upload(png)}`;
      state.label = null;
    });
  });
  on('draw-clear', 'click', clear);
}

async function start() {
  readHash();
  try {
    info = await api('/api/info');
    applyRun(info.run ? await api('/api/run') : { version: null });
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
