// ui.js: the page of `cria ui` (cria-ui(1)). Plain JavaScript, no build
// step: every view reads its state from the URL (/data?pipeline=...,
// /train?run=..., /eval?dir=..., /chat?model=...&adapter=...) and talks to
// the endpoints of cria-ui(1) with fetch, sending the API key when the
// server asks for one.
'use strict';

const T = {
  en: {},
  zh: {
    'nav.data': '数据', 'nav.train': '训练', 'nav.eval': '评测', 'nav.chat': '对话',
    'key.label': 'API 密钥', 'key.save': '使用',
    'data.title': '数据', 'data.help': 'cria data 流水线（cria-pipeline(5)）；路径相对于工作目录。',
    'data.n': '显示记录数', 'data.onerror': '坏记录', 'data.skip': '跳过', 'data.stop': '停止',
    'data.run': '预览运行', 'data.write': '写出结果', 'data.stages': '各阶段', 'data.stage': '阶段', 'data.kind': '类型',
    'data.skipped': '跳过', 'data.reasons': '原因', 'data.records': '记录', 'data.skippedrecords': '被跳过的记录',
    'data.running': '运行中…', 'data.done': '完成', 'data.written': '已写出',
    'data.format': '渲染方式', 'data.formathint': '提示格式名，或模型目录（用其对话模板）',
    'data.prompt': '提示', 'data.response': '回答', 'data.renderedwith': '渲染自',
    'data.clusters': '重复簇', 'data.nclusters': '个重复簇', 'data.kept': '保留', 'data.duplicate': '重复',
    'data.exact': '完全相同', 'data.near': '近似重复', 'data.more': '更多重复未显示：',
    'train.title': '训练', 'train.run': '运行目录', 'train.attach': '查看', 'train.stop': '停止（保存检查点）',
    'train.resume': '继续', 'train.loss': '损失', 'train.evalloss': '评测损失', 'train.lr': '学习率',
    'train.tps': '词元/秒', 'train.new': '开始新的训练（cria train）', 'train.start': '开始',
    'train.running': '运行中', 'train.exited': '已结束', 'train.points': '个点', 'train.elsewhere': '在别处启动',
    'eval.title': '评测', 'eval.dir': '评测目录（cria eval --out）', 'eval.load': '打开', 'eval.score': '分数',
    'eval.min': '不低于', 'eval.max': '不高于', 'eval.shown': '条显示',
    'eval.prompt': '提示', 'eval.reference': '参考答案', 'eval.prediction': '模型回答',
    'chat.title': '对话', 'chat.model': '模型', 'chat.adapter': '适配器（可选）', 'chat.open': '加载',
    'chat.send': '发送', 'chat.loaded': '已加载', 'chat.loading': '模型加载中…', 'chat.base': '基础模型',
    'chat.adapted': '加适配器',
  },
};
const EN = {
  'data.running': 'running…', 'data.done': 'done', 'data.written': 'written',
  'data.prompt': 'prompt', 'data.response': 'response', 'data.renderedwith': 'rendered with',
  'data.nclusters': 'clusters', 'data.kept': 'kept', 'data.duplicate': 'duplicate', 'data.exact': 'exact',
  'data.near': 'near', 'data.more': 'more duplicates not shown:',
  'train.running': 'running', 'train.exited': 'exited', 'train.points': 'points', 'train.elsewhere': 'started elsewhere',
  'eval.shown': 'shown', 'eval.prompt': 'prompt', 'eval.reference': 'reference', 'eval.prediction': 'prediction',
  'chat.loaded': 'loaded', 'chat.loading': 'loading the model…', 'chat.base': 'base',
  'chat.adapted': 'adapted',
};
let lang = localStorage.getItem('cria-ui-lang') || ((navigator.language || '').startsWith('zh') ? 'zh' : 'en');
function t(key, fallback) {
  return (T[lang] && T[lang][key]) || EN[key] || fallback || key;
}
function translate() {
  document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
  for (const el of document.querySelectorAll('[data-t]')) {
    if (!el.dataset.en) el.dataset.en = el.textContent;
    el.textContent = lang === 'en' ? el.dataset.en : t(el.dataset.t, el.dataset.en);
  }
  for (const el of document.querySelectorAll('[data-tp]')) {
    if (!el.dataset.enp) el.dataset.enp = el.placeholder;
    el.placeholder = lang === 'en' ? el.dataset.enp : t(el.dataset.tp, el.dataset.enp);
  }
  document.getElementById('lang').textContent = lang === 'en' ? '中文' : 'English';
}

const $ = (id) => document.getElementById(id);
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : String(c ?? ''));
  return e;
}
function showError(id, message) {
  const box = $(id);
  box.hidden = !message;
  box.textContent = message || '';
}

// ---- requests -----------------------------------------------------------

function headers(extra) {
  const h = Object.assign({}, extra || {});
  const key = localStorage.getItem('cria-ui-key');
  if (key) h.Authorization = 'Bearer ' + key;
  return h;
}
async function api(method, path, body) {
  const init = { method, headers: headers(body ? { 'Content-Type': 'application/json' } : {}) };
  if (body) init.body = JSON.stringify(body);
  const r = await fetch(path, init);
  if (r.status === 401) $('key-bar').hidden = false;
  let json = null;
  try { json = await r.json(); } catch (e) { /* not JSON */ }
  if (!r.ok && !(json && (json.stages || json.records))) {
    throw new Error((json && json.error && (json.error.message || json.error)) || r.status + ' ' + r.statusText);
  }
  return json;
}
// Server-sent events read through fetch (EventSource cannot send the key).
async function events(path, onEvent, signal) {
  const r = await fetch(path, { headers: headers(), signal });
  if (r.status === 401) $('key-bar').hidden = false;
  if (!r.ok) {
    let msg = r.status + ' ' + r.statusText;
    try { msg = (await r.json()).error.message; } catch (e) { /* keep */ }
    throw new Error(msg);
  }
  const reader = r.body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      let type = 'message', data = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) type = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
      }
      if (data.length) onEvent(type, data.join('\n'));
    }
  }
}

// ---- views ----------------------------------------------------------------

const views = ['data', 'train', 'eval', 'chat'];
function currentView() {
  const v = location.pathname.replace(/^\//, '');
  return views.includes(v) ? v : 'data';
}
function setQuery(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
  const url = '/' + currentView() + (q.toString() ? '?' + q : '');
  if (url !== location.pathname + location.search) history.pushState(null, '', url);
}
function show() {
  const v = currentView();
  for (const name of views) $('view-' + name).hidden = name !== v;
  for (const a of document.querySelectorAll('header nav a')) a.classList.toggle('active', a.dataset.view === v);
  const q = new URLSearchParams(location.search);
  if (v === 'data') loadFormats();
  if (v === 'data' && q.get('pipeline') !== null) {
    $('pipeline').value = q.get('pipeline');
    $('data-format').value = q.get('format') || '';
    runData(false, false);
  } else if (v === 'train') {
    loadTrainForm();
    if (q.get('run')) { $('run').value = q.get('run'); attach(false); }
  } else if (v === 'eval' && q.get('dir')) {
    $('eval-dir').value = q.get('dir');
    loadEval(false);
  } else if (v === 'chat' && q.get('model')) {
    $('chat-model').value = q.get('model');
    $('chat-adapter').value = q.get('adapter') || '';
    openChat(false);
  }
}

// ---- data -----------------------------------------------------------------

// A record as the model reads it: the prompt, then what it learns to write.
function renderedView(rec, r) {
  const box = el('div', { class: 'record rendered' });
  if (r.error) {
    box.append(el('div', { class: 'label error-text' }, r.error));
    return box;
  }
  box.append(el('div', { class: 'label' }, t('data.prompt')), el('pre', { class: 'prompt' }, r.prompt));
  if (r.response !== undefined) box.append(el('div', { class: 'label' }, t('data.response')), el('pre', { class: 'response' }, r.response));
  return box;
}
function recordView(rec, cls) {
  const box = el('div', { class: 'record' + (cls ? ' ' + cls : '') });
  if (!rec) return box;
  const fields = ['system', 'instruction', 'input', 'output'];
  let any = false;
  for (const f of fields) {
    if (typeof rec[f] === 'string' && rec[f] !== '') {
      box.append(el('div', { class: 'label' }, f), el('pre', {}, rec[f]));
      any = true;
    }
  }
  if (Array.isArray(rec.messages)) {
    for (const m of rec.messages) box.append(el('div', { class: 'label' }, m.role), el('pre', {}, m.content));
    any = true;
  }
  const rest = Object.assign({}, rec);
  for (const f of fields.concat(['messages'])) delete rest[f];
  if (Object.keys(rest).length) box.append(el('div', { class: 'label' }, any ? 'metadata' : 'record'), el('pre', {}, JSON.stringify(rest)));
  return box;
}

async function runData(write, push) {
  const pipeline = $('pipeline').value.trim();
  if (!pipeline) return;
  const format = $('data-format').value.trim();
  if (push !== false) setQuery({ pipeline, format });
  $('data-state').textContent = t('data.running');
  for (const b of [$('data-run'), $('data-write')]) b.disabled = true;
  showError('data-error', '');
  try {
    const r = await api('POST', '/api/data', {
      pipeline, n: Number($('data-n').value || 20), 'on-error': $('data-onerror').value, write, format,
    });
    const body = $('stages').tBodies[0];
    body.textContent = '';
    (r.stages || []).forEach((s, i) => {
      const reasons = Object.entries(s.reasons || {}).map(([k, v]) => k + ': ' + v).join(', ');
      body.append(el('tr', {}, el('td', {}, i + 1), el('td', {}, s.stage), el('td', {}, s.kind),
        el('td', { class: 'num' }, s.in), el('td', { class: 'num' }, s.out), el('td', { class: 'num' }, s.skipped),
        el('td', {}, reasons)));
    });
    $('records').textContent = '';
    $('data-used').textContent = r.format && r.format.used ? t('data.renderedwith') + ' ' + r.format.used : '';
    (r.records || []).forEach((rec, i) => {
      $('records').append(r.rendered && r.rendered[i] ? renderedView(rec, r.rendered[i]) : recordView(rec));
    });
    $('skipped').textContent = '';
    for (const s of r.skipped || []) {
      const name = r.stages && r.stages[s.stage] ? r.stages[s.stage].stage : '#' + (s.stage + 1);
      const box = recordView(s.record, 'skip');
      box.prepend(el('div', { class: 'label' }, name + ' — ' + s.reason + (s.message ? ': ' + s.message : '')));
      $('skipped').append(box);
    }
    showClusters(r);
    showError('data-error', r.error || '');
    $('data-state').textContent = r.error ? '' : r.written ? t('data.written') : t('data.done');
  } catch (e) {
    showError('data-error', e.message);
    $('data-state').textContent = '';
  } finally {
    for (const b of [$('data-run'), $('data-write')]) b.disabled = false;
  }
}

// Each dedup stage's clusters: the record kept, then those dropped as its duplicates.
function showClusters(r) {
  const box = $('clusters');
  box.textContent = '';
  const stages = r.dedup || [];
  $('clusters-box').hidden = !stages.length;
  for (const d of stages) {
    const name = r.stages && r.stages[d.stage] ? r.stages[d.stage].stage : '#' + (d.stage + 1);
    box.append(el('p', { class: 'muted' }, name + ': ' + d.n_clusters + ' ' + t('data.nclusters')));
    for (const c of d.clusters) {
      const cluster = el('div', { class: 'cluster' });
      const kept = recordView(c.kept.record, 'kept');
      kept.prepend(el('div', { class: 'label' }, t('data.kept') + ' #' + c.kept.name + ' — ' + t('data.' + c.kind, c.kind)));
      cluster.append(kept);
      for (const dup of c.duplicates) {
        const b = recordView(dup.record, 'skip');
        b.prepend(el('div', { class: 'label' }, t('data.duplicate') + ' #' + dup.name));
        cluster.append(b);
      }
      if (c.n_duplicates > c.duplicates.length) cluster.append(el('div', { class: 'muted' }, t('data.more') + ' ' + (c.n_duplicates - c.duplicates.length)));
      box.append(cluster);
    }
  }
}

let formatsLoaded = false;
async function loadFormats() {
  if (formatsLoaded) return;
  formatsLoaded = true;
  try {
    const r = await api('GET', '/api/formats');
    for (const f of r.formats) $('formats').append(el('option', { value: f.name }, f.description || ''));
  } catch (e) { formatsLoaded = false; }
}

// ---- training ---------------------------------------------------------------

let trainOptions = null;
async function loadTrainForm() {
  if (trainOptions) return;
  try {
    trainOptions = await api('GET', '/api/train/options');
  } catch (e) { showError('train-error', e.message); return; }
  const form = $('train-form');
  for (const o of trainOptions) {
    let input;
    if (o.type === 'enum' || o.type === 'bool') {
      input = el('select', { name: o.name });
      const choices = o.type === 'bool' ? ['false', 'true'] : o.choices.split('|');
      for (const c of choices) input.append(el('option', { value: c }, c));
      if (o.default) input.value = o.default;
    } else {
      input = el('input', { type: 'text', name: o.name, placeholder: o.default || '' });
    }
    input.title = o.description;
    form.append(el('label', { class: o.required ? 'required' : '', title: o.description }, el('span', {}, o.name), input));
  }
}

let series = null, tail = null;
function resetChart() {
  series = { loss: [], eval: [], lr: [], tps: [], lastElapsed: null };
  draw();
}
function addLogLine(line) {
  let o;
  try { o = JSON.parse(line); } catch (e) { return; }
  if (typeof o.loss === 'number') {
    series.loss.push([o.step, o.loss]);
    if (typeof o.lr === 'number') series.lr.push([o.step, o.lr]);
    const tokens = o.loss_tokens ?? o.loss_pairs;
    if (typeof o.elapsed_s === 'number' && series.lastElapsed !== null && o.elapsed_s > series.lastElapsed && tokens) {
      series.tps.push([o.step, tokens / (o.elapsed_s - series.lastElapsed)]);
    }
    if (typeof o.elapsed_s === 'number') series.lastElapsed = o.elapsed_s;
  }
  if (typeof o.eval_loss === 'number') series.eval.push([o.step, o.eval_loss]);
}
function draw() {
  const c = $('chart'), g = c.getContext('2d');
  const W = c.width, H = c.height, L = 56, R = 64, TOP = 14, B = 28;
  g.clearRect(0, 0, W, H);
  g.font = '12px sans-serif';
  g.strokeStyle = '#d8dce3';
  g.strokeRect(L, TOP, W - L - R, H - TOP - B);
  const all = series.loss.concat(series.eval);
  c.dataset.points = String(series.loss.length + series.eval.length);
  if (!all.length) return;
  const xs = all.map((p) => p[0]).concat(series.lr.map((p) => p[0]));
  const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1);
  const lossMin = Math.min(...all.map((p) => p[1])), lossMax = Math.max(...all.map((p) => p[1]));
  const pad = (lossMax - lossMin) * 0.05 || 0.5;
  const ly0 = lossMin - pad, ly1 = lossMax + pad;
  const X = (x) => L + (x - x0) / (x1 - x0) * (W - L - R);
  const Y = (y, a, b) => TOP + (1 - (y - a) / (b - a)) * (H - TOP - B);
  g.fillStyle = '#667';
  g.textAlign = 'right';
  for (let i = 0; i <= 4; i++) {
    const v = ly0 + (ly1 - ly0) * i / 4;
    g.fillText(v.toPrecision(3), L - 6, Y(v, ly0, ly1) + 4);
  }
  g.textAlign = 'center';
  for (let i = 0; i <= 4; i++) {
    const v = x0 + (x1 - x0) * i / 4;
    g.fillText(String(Math.round(v)), X(v), H - 8);
  }
  const line = (pts, color, a, b, dash) => {
    if (!pts.length) return;
    g.strokeStyle = color;
    g.setLineDash(dash || []);
    g.lineWidth = 2;
    g.beginPath();
    pts.forEach((p, i) => (i ? g.lineTo : g.moveTo).call(g, X(p[0]), Y(p[1], a, b)));
    g.stroke();
    for (const p of pts.length < 60 ? pts : []) { g.fillStyle = color; g.fillRect(X(p[0]) - 2, Y(p[1], a, b) - 2, 4, 4); }
    g.setLineDash([]);
  };
  // Learning rate and tokens/s on their own scales (right axis: their maxima).
  const lrMax = Math.max(...series.lr.map((p) => p[1]), 1e-12);
  const tpsMax = Math.max(...series.tps.map((p) => p[1]), 1e-12);
  line(series.lr, '#8250df', 0, lrMax * 1.05, [6, 4]);
  line(series.tps, '#1a7f37', 0, tpsMax * 1.05, [2, 3]);
  line(series.loss, '#1f6feb', ly0, ly1);
  line(series.eval, '#d1242f', ly0, ly1);
  g.textAlign = 'left';
  g.fillStyle = '#8250df';
  g.fillText('lr ' + lrMax.toExponential(1), W - R + 4, TOP + 10);
  g.fillStyle = '#1a7f37';
  if (series.tps.length) g.fillText(Math.round(tpsMax) + ' tok/s', W - R + 4, TOP + 26);
}

function runName() { return $('run').value.trim(); }
async function attach(push) {
  const run = runName();
  if (!run) return;
  if (push !== false) setQuery({ run });
  if (tail) tail.abort();
  tail = new AbortController();
  resetChart();
  showError('train-error', '');
  const mine = tail;
  events('/api/train/log?run=' + encodeURIComponent(run), (type, data) => {
    if (type === 'reset') resetChart();
    else if (type === 'status') showStatus(JSON.parse(data));
    else { addLogLine(data); draw(); }
  }, tail.signal).catch((e) => { if (mine === tail && e.name !== 'AbortError') showError('train-error', e.message); });
}
async function showStatus(s) {
  const state = s.state === 'running' ? t('train.running') : s.state === 'exited' ? t('train.exited') + ' (' + s.exit_status + ')' : '';
  $('train-state').textContent = state + (s.pid ? ' — ' + t('train.elsewhere') + ' (pid ' + s.pid + ')' : '');
  const files = $('train-files');
  files.textContent = '';
  if (s.state !== 'running') {
    const q = 'run=' + encodeURIComponent(runName());
    for (const name of ['loss.png', 'report.json']) {
      files.append(el('a', { href: '/api/train/file?' + q + '&name=' + name, target: '_blank' }, name), ' ');
    }
  }
  if (s.state === 'exited') {
    try {
      const full = await api('GET', '/api/train/status?run=' + encodeURIComponent(runName()));
      $('train-stderr').hidden = !full.stderr;
      $('train-stderr').textContent = full.stderr || '';
    } catch (e) { /* shown by the stream */ }
  }
}
async function startRun() {
  const options = {};
  for (const input of $('train-form').querySelectorAll('input, select')) {
    const o = trainOptions.find((x) => x.name === input.name);
    if (input.value !== '' && input.value !== (o.default || '')) options[input.name] = input.value;
  }
  try {
    const r = await api('POST', '/api/train/start', { options });
    $('run').value = options.out;
    attach();
    return r;
  } catch (e) { showError('train-error', e.message); }
}
async function stopRun() {
  try { await api('POST', '/api/train/stop', { run: runName() }); } catch (e) { showError('train-error', e.message); }
}
async function resumeRun() {
  try { await api('POST', '/api/train/resume', { run: runName() }); attach(false); } catch (e) { showError('train-error', e.message); }
}

// ---- evaluation -------------------------------------------------------------

let evalData = null;
function flatScores(o, prefix, out) {
  for (const [k, v] of Object.entries(o || {})) {
    if (typeof v === 'number') out[prefix + k] = v;
    else if (v && typeof v === 'object') flatScores(v, prefix + k + '.', out);
  }
  return out;
}
async function loadEval(push) {
  const dir = $('eval-dir').value.trim();
  if (!dir) return;
  if (push !== false) setQuery({ dir });
  showError('eval-error', '');
  try {
    evalData = await api('GET', '/api/eval?dir=' + encodeURIComponent(dir));
  } catch (e) { showError('eval-error', e.message); return; }
  // The comparison: one row per metric score, one column per arm.
  const summary = evalData.summary || {};
  const arms = Object.keys(summary).filter((k) => summary[k] && typeof summary[k] === 'object');
  const flat = arms.map((a) => flatScores(summary[a], '', {}));
  const keys = [...new Set(flat.flatMap((f) => Object.keys(f)))];
  const table = $('compare');
  table.textContent = '';
  const head = el('tr', {}, el('th', {}, 'metric'));
  for (const a of arms) head.append(el('th', { class: 'num' }, a));
  if (arms.length === 2) head.append(el('th', { class: 'num' }, 'Δ'));
  table.append(el('thead', {}, head));
  const body = el('tbody');
  for (const k of keys) {
    const tr = el('tr', {}, el('td', {}, k));
    for (const f of flat) tr.append(el('td', { class: 'num' }, f[k] === undefined ? '' : f[k].toFixed(4)));
    if (arms.length === 2 && flat[0][k] !== undefined && flat[1][k] !== undefined) {
      const d = flat[1][k] - flat[0][k];
      tr.append(el('td', { class: 'num' }, (d >= 0 ? '+' : '') + d.toFixed(4)));
    }
    body.append(tr);
  }
  table.append(body);
  // The scores a prediction can be filtered by.
  const metric = $('eval-metric');
  metric.textContent = '';
  const scoreKeys = new Set();
  for (const p of evalData.predictions) {
    for (const [k, v] of Object.entries(p)) if (k.startsWith('scores')) for (const s of Object.keys(flatScores(v, '', {}))) scoreKeys.add(k + '.' + s);
  }
  for (const k of scoreKeys) metric.append(el('option', { value: k }, k));
  renderPredictions();
}
function scoreOf(p, key) {
  const [field, ...rest] = key.split('.');
  return flatScores(p[field], '', {})[rest.join('.')];
}
function renderPredictions() {
  if (!evalData) return;
  const key = $('eval-metric').value;
  const lo = $('eval-min').value === '' ? -Infinity : Number($('eval-min').value);
  const hi = $('eval-max').value === '' ? Infinity : Number($('eval-max').value);
  const preds = evalData.predictions;
  const predKeys = [...new Set(preds.flatMap((p) => Object.keys(p).filter((k) => k.startsWith('prediction'))))];
  const table = $('predictions');
  table.textContent = '';
  const head = el('tr', {}, el('th', {}, '#'), el('th', {}, t('eval.prompt')), el('th', {}, t('eval.reference')));
  for (const k of predKeys) head.append(el('th', {}, k.replace(/^prediction_?/, '') || t('eval.prediction')));
  if (key) head.append(el('th', { class: 'num' }, key));
  table.append(el('thead', {}, head));
  const body = el('tbody');
  let shown = 0;
  for (const p of preds) {
    const s = key ? scoreOf(p, key) : undefined;
    if (key && (s === undefined || s < lo || s > hi)) continue;
    shown++;
    const tr = el('tr', {}, el('td', {}, p.index), el('td', {}, el('pre', {}, p.prompt || '')),
      el('td', {}, el('pre', {}, (p.references || []).join('\n'))));
    for (const k of predKeys) tr.append(el('td', {}, el('pre', {}, p[k] || '')));
    if (key) tr.append(el('td', { class: 'num' }, s === undefined ? '' : s.toFixed(4)));
    body.append(tr);
  }
  table.append(body);
  $('eval-count').textContent = shown + ' / ' + evalData.n_predictions + ' ' + t('eval.shown');
}

// ---- chat -------------------------------------------------------------------

// With an adapter the chat has two columns: the base model (left, POST
// /api/chat/base) and the adapted one (right, /v1 as cria serve answers);
// one message goes to both, each keeps its own conversation.
let chatModel = null, chatBase = null, chatMessages = [], baseMessages = [];
async function openChat(push) {
  const model = $('chat-model').value.trim();
  const adapter = $('chat-adapter').value.trim();
  if (!model) return;
  if (push !== false) setQuery({ model, adapter });
  showError('chat-error', '');
  $('chat-state').textContent = t('chat.loading');
  $('chat-send').disabled = true;
  try {
    const r = await api('POST', '/api/chat/open', { model, adapter });
    chatModel = r.model;
    chatBase = r.base || null;
    chatMessages = [];
    baseMessages = [];
    $('chat-log').textContent = '';
    $('chat-log-base').textContent = '';
    $('chat-cols').classList.toggle('side', !!chatBase);
    $('chat-col-base').hidden = !chatBase;
    $('chat-head').hidden = !chatBase;
    $('chat-head-base').textContent = t('chat.base') + ': ' + (chatBase || '');
    $('chat-head').textContent = t('chat.adapted') + ': ' + r.model;
    $('chat-state').textContent = t('chat.loaded') + ': ' + r.model;
  } catch (e) {
    $('chat-state').textContent = '';
    showError('chat-error', e.message);
  } finally {
    $('chat-send').disabled = false;
  }
}
// One column's answer, streamed into its log.
async function answerInto(url, model, history, log) {
  const answer = el('div', { class: 'msg assistant streaming' });
  log.append(answer);
  let reply = '';
  try {
    const r = await fetch(url, {
      method: 'POST',
      headers: headers({ 'Content-Type': 'application/json' }),
      body: JSON.stringify({ model, messages: history, stream: true }),
    });
    if (!r.ok) throw new Error((await r.json()).error.message);
    const reader = r.body.getReader();
    const dec = new TextDecoder();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const ev = buf.slice(0, i).replace(/^data: ?/, '');
        buf = buf.slice(i + 2);
        if (ev === '[DONE]') continue;
        const o = JSON.parse(ev);
        if (o.error) throw new Error(o.error.message);
        const delta = o.choices && o.choices[0] && o.choices[0].delta;
        if (delta && delta.content) {
          reply += delta.content;
          answer.textContent = reply;
          answer.dataset.chunks = String(Number(answer.dataset.chunks || 0) + 1);
        }
      }
    }
    history.push({ role: 'assistant', content: reply });
  } catch (e) {
    showError('chat-error', e.message);
  } finally {
    answer.classList.remove('streaming');
    answer.classList.add('done');
  }
}
async function send() {
  const text = $('chat-input').value.trim();
  if (!text || !chatModel) return;
  $('chat-input').value = '';
  $('chat-send').disabled = true;
  const columns = [[ '/v1/chat/completions', chatModel, chatMessages, $('chat-log') ]];
  if (chatBase) columns.push([ '/api/chat/base', chatBase, baseMessages, $('chat-log-base') ]);
  for (const [, , history, log] of columns) {
    history.push({ role: 'user', content: text });
    log.append(el('div', { class: 'msg user' }, text));
  }
  await Promise.all(columns.map((c) => answerInto(...c)));
  $('chat-send').disabled = false;
}

// ---- wiring -----------------------------------------------------------------

document.addEventListener('DOMContentLoaded', () => {
  translate();
  $('lang').onclick = () => {
    lang = lang === 'en' ? 'zh' : 'en';
    localStorage.setItem('cria-ui-lang', lang);
    translate();
  };
  $('key-save').onclick = () => {
    localStorage.setItem('cria-ui-key', $('key').value);
    $('key-bar').hidden = true;
    show();
  };
  for (const a of document.querySelectorAll('header nav a')) {
    a.onclick = (e) => {
      e.preventDefault();
      history.pushState(null, '', a.getAttribute('href'));
      show();
    };
  }
  window.onpopstate = show;
  $('data-run').onclick = () => runData(false);
  $('data-write').onclick = () => runData(true);
  $('train-attach').onclick = () => attach();
  $('train-start').onclick = startRun;
  $('train-stop').onclick = stopRun;
  $('train-resume').onclick = resumeRun;
  $('eval-load').onclick = () => loadEval();
  for (const id of ['eval-metric', 'eval-min', 'eval-max']) $(id).oninput = $(id).onchange = renderPredictions;
  $('chat-open').onclick = () => openChat();
  $('chat-send').onclick = send;
  $('chat-input').onkeydown = (e) => { if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); send(); } };
  resetChart();
  api('GET', '/api/info').then((i) => { $('root').textContent = i.root; }).catch(() => {});
  show();
});
