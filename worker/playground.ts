// GET / — one small page, no framework: a prompt, greedy / sampling / beam search with their
// settings, the text streaming in, and for beam search an SVG tree of the hypotheses kept at each
// step (from the `beams` extension of the SSE chunks), the returned sequences highlighted. Model
// text only ever goes into the page through textContent.

const CSS = `
body{font:14px/1.4 system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:16px;color:#222}
h1{font-size:20px;margin:0 0 8px}
textarea{width:100%;box-sizing:border-box;font:14px ui-monospace,monospace}
fieldset{border:1px solid #ccc;margin:8px 0;padding:6px 10px}
label{margin-right:12px;white-space:nowrap}
input[type=number]{width:70px}
#out{white-space:pre-wrap;background:#f6f6f6;border:1px solid #ddd;padding:8px;min-height:60px;font:14px ui-monospace,monospace}
#stats{color:#666;font-size:12px;margin:4px 0}
#err{color:#b00}
#treebox{overflow:auto;border:1px solid #ddd;margin-top:8px;max-height:480px}
#tree text{font:11px ui-monospace,monospace}
#tree .node rect{fill:#fff;stroke:#999}
#tree .node.ret rect{fill:#ffe9a8;stroke:#c80;stroke-width:2}
#tree line{stroke:#bbb}
#tree line.ret{stroke:#c80;stroke-width:2}
.seq{font:13px ui-monospace,monospace;white-space:pre-wrap;border-left:3px solid #c80;padding-left:6px;margin:4px 0}
.mode-only{display:none}
`;

const JS = `
const $ = (id) => document.getElementById(id);
const NS = 'http://www.w3.org/2000/svg';
let controller = null;
function showMode() {
  const m = $('mode').value;
  for (const el of document.querySelectorAll('.mode-only')) el.style.display = el.dataset.mode === m ? 'inline' : 'none';
}
$('mode').addEventListener('change', showMode);
showMode();

function body() {
  const m = $('mode').value;
  const b = { max_tokens: +$('max_tokens').value, stream: true, stream_options: { include_usage: true } };
  if ($('endpoint').value === 'chat') b.messages = [{ role: 'user', content: $('prompt').value }];
  else b.prompt = $('prompt').value;
  if (m === 'greedy') b.temperature = 0;
  if (m === 'sampling') {
    b.temperature = +$('temperature').value; b.top_p = +$('top_p').value;
    if (+$('top_k').value > 0) b.top_k = +$('top_k').value;
    if ($('seed').value !== '') b.seed = +$('seed').value;
  }
  if (m === 'beam') {
    b.num_beams = +$('num_beams').value; b.n = Math.min(+$('n').value, b.num_beams);
    b.length_penalty = +$('length_penalty').value; b.early_stopping = $('early_stopping').checked;
  }
  return b;
}

// beam tree: steps[s] = list of nodes {token,text,score,parent,path}
let steps = [];
function resetTree() { steps = []; const t = $('tree'); while (t.firstChild) t.removeChild(t.firstChild); t.setAttribute('width', 0); t.setAttribute('height', 0); }
const COL = 96, ROW = 34, W = 88, H = 26;
function el(name, attrs, parent) { const e = document.createElementNS(NS, name); for (const k in attrs) e.setAttribute(k, attrs[k]); parent.appendChild(e); return e; }
function addStep(ev) {
  const prev = steps[steps.length - 1];
  const nodes = ev.beams.map((b) => ({ ...b, path: (prev && prev[b.parent] ? prev[b.parent].path : []).concat(b.token) }));
  steps.push(nodes);
  const t = $('tree');
  const s = steps.length;
  const maxRows = Math.max(1, ...steps.map((x) => x.length));
  t.setAttribute('width', (s + 1) * COL + 10); t.setAttribute('height', maxRows * ROW + 10);
  if (s === 1) { const g = el('g', { class: 'node root', transform: 'translate(4,4)' }, t); el('rect', { width: W, height: H, rx: 4 }, g); const tx = el('text', { x: 6, y: 17 }, g); tx.textContent = 'prompt'; }
  nodes.forEach((n, i) => {
    const px = (s - 1) * COL + 4 + W, py = (s === 1 ? 0 : n.parent) * ROW + 4 + H / 2;
    n.line = el('line', { x1: px, y1: py, x2: s * COL + 4, y2: i * ROW + 4 + H / 2, 'data-step': s }, t);
    const g = el('g', { class: 'node', transform: 'translate(' + (s * COL + 4) + ',' + (i * ROW + 4) + ')', 'data-step': s, 'data-index': i }, t);
    el('rect', { width: W, height: H, rx: 4 }, g);
    const a = el('text', { x: 4, y: 11 }, g); a.textContent = JSON.stringify(n.text).slice(1, -1).slice(0, 11);
    const b = el('text', { x: 4, y: 22, fill: '#777' }, g); b.textContent = n.score.toFixed(2);
    const title = el('title', {}, g); title.textContent = 'step ' + s + ', beam ' + i + ', score ' + n.score + ', parent ' + n.parent;
    n.g = g;
  });
}
// marks the path of a returned sequence; where it ends past the drawn steps (it finished, so it
// left the running beams), a terminal node below the tree shows where, with its final score
function highlight(tokens, index, score, reason) {
  let last = null, s = 0;
  for (; s < steps.length && s < tokens.length; s++) {
    const node = steps[s].find((n) => n.path.length === s + 1 && n.path.every((x, k) => x === tokens[k]));
    if (!node) break;
    node.g.classList.add('ret'); node.line.classList.add('ret');
    last = { node, s: s + 1, i: steps[s].indexOf(node) };
  }
  if (!last || last.s >= tokens.length) return;
  const t = $('tree');
  const rows = Math.max(1, ...steps.map((x) => x.length));
  const x = (last.s + 1) * COL + 4, y = (rows + index) * ROW + 4;
  const line = el('line', { x1: last.s * COL + 4 + W, y1: last.i * ROW + 4 + H / 2, x2: x, y2: y + H / 2, class: 'ret' }, t);
  const g = el('g', { class: 'node ret end', transform: 'translate(' + x + ',' + y + ')', 'data-final': index }, t);
  el('rect', { width: W, height: H, rx: 4 }, g);
  const a = el('text', { x: 4, y: 11 }, g); a.textContent = '#' + index + ' ' + reason;
  const b = el('text', { x: 4, y: 22, fill: '#777' }, g); b.textContent = score.toFixed(3);
  t.setAttribute('width', Math.max(+t.getAttribute('width'), x + COL)); t.setAttribute('height', Math.max(+t.getAttribute('height'), y + ROW + 10));
  void line;
}

async function run() {
  if (controller) controller.abort();
  controller = new AbortController();
  $('out').textContent = ''; $('err').textContent = ''; $('stats').textContent = ''; $('seqs').textContent = '';
  resetTree();
  const t0 = performance.now();
  let first = 0, usage = null;
  const headers = { 'content-type': 'application/json' };
  if ($('key').value) headers.authorization = 'Bearer ' + $('key').value;
  $('run').disabled = true; $('status').textContent = 'running';
  try {
    const path = $('endpoint').value === 'chat' ? '/v1/chat/completions' : '/v1/completions';
    const res = await fetch(path, { method: 'POST', headers, body: JSON.stringify(body()), signal: controller.signal });
    if (!res.ok) { const j = await res.json().catch(() => ({})); throw new Error((j.error && j.error.message) || res.status + ' ' + res.statusText); }
    const reader = res.body.getReader(); const dec = new TextDecoder(); let buf = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let cut;
      while ((cut = buf.indexOf('\\n\\n')) >= 0) {
        const block = buf.slice(0, cut); buf = buf.slice(cut + 2);
        if (!block.startsWith('data: ')) continue;
        const data = block.slice(6);
        if (data === '[DONE]') continue;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(chunk.error.message);
        if (chunk.usage) usage = chunk.usage;
        if (chunk.beams) addStep(chunk.beams);
        for (const c of chunk.choices || []) {
          c.text = c.text !== undefined ? c.text : (c.delta && c.delta.content) || '';
          if (!first && c.text) first = performance.now();
          if (c.token_ids) {
            highlight(c.token_ids, c.index, c.beam_score, c.finish_reason);
            const d = document.createElement('div'); d.className = 'seq';
            d.textContent = '#' + c.index + ' (score ' + c.beam_score.toFixed(3) + ', ' + c.finish_reason + '): ' + c.text;
            $('seqs').appendChild(d);
            if (c.index === 0) $('out').textContent = c.text;
          } else if (c.text) $('out').textContent += c.text;
        }
      }
    }
    const ms = performance.now() - t0;
    if (usage) $('stats').textContent = usage.completion_tokens + ' tokens in ' + (ms / 1000).toFixed(2) + ' s (' + (usage.completion_tokens / ms * 1000).toFixed(1) + ' tok/s' + (first ? ', first text after ' + (first - t0).toFixed(0) + ' ms' : '') + '); prompt ' + usage.prompt_tokens + ' tokens';
    $('status').textContent = 'done';
  } catch (e) {
    if (e.name !== 'AbortError') $('err').textContent = String(e.message || e);
    $('status').textContent = 'error';
  } finally { $('run').disabled = false; }
}
$('run').addEventListener('click', run);
$('stop').addEventListener('click', () => controller && controller.abort());
fetch('/v1/models').then((r) => r.ok ? r.json() : null).then((j) => { if (j && j.data[0]) $('model').textContent = j.data[0].id + (j.data[0].context_length ? ' · context ' + j.data[0].context_length : '') + (j.data[0].quantization ? ' · ' + j.data[0].quantization : ''); }).catch(() => {});
`;

/** The playground page served at GET /. */
export const PLAYGROUND_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>edgelm playground</title><style>${CSS}</style></head>
<body>
<h1>edgelm playground</h1>
<div id="model" style="color:#666;font-size:12px"></div>
<textarea id="prompt" rows="4">Once upon a time</textarea>
<fieldset><legend>decoding</legend>
<label>as <select id="endpoint"><option value="completion">completion</option><option value="chat">chat (the model's template)</option></select></label>
<label>mode <select id="mode"><option value="greedy">greedy</option><option value="sampling">sampling</option><option value="beam">beam search</option></select></label>
<label>max_tokens <input id="max_tokens" type="number" min="1" value="32"></label>
<span class="mode-only" data-mode="sampling">
<label>temperature <input id="temperature" type="number" step="0.1" min="0" max="2" value="0.8"></label>
<label>top_p <input id="top_p" type="number" step="0.05" min="0.05" max="1" value="0.95"></label>
<label>top_k <input id="top_k" type="number" min="0" value="40"></label>
<label>seed <input id="seed" type="number" value=""></label>
</span>
<span class="mode-only" data-mode="beam">
<label>num_beams <input id="num_beams" type="number" min="2" max="16" value="4"></label>
<label>n <input id="n" type="number" min="1" max="16" value="2"></label>
<label>length_penalty <input id="length_penalty" type="number" step="0.1" value="1"></label>
<label><input id="early_stopping" type="checkbox"> early_stopping</label>
</span>
<label>API key <input id="key" type="password" placeholder="(if the server wants one)" style="width:160px"></label>
</fieldset>
<button id="run">Generate</button> <button id="stop">Stop</button> <span id="status"></span>
<div id="stats"></div><div id="err"></div>
<div id="out" aria-live="polite"></div>
<div id="seqs"></div>
<div id="treebox"><svg id="tree" xmlns="http://www.w3.org/2000/svg" width="0" height="0"></svg></div>
<script>${JS}</script>
</body></html>`;
