// The live view's page: one websocket (/ws) brings a hello (the controls, the recent notes), a
// message per note and a state frame ten times a second; the page draws from what it holds on
// every animation frame, and sends {"set": CONTROL, "value": V} when a control is moved.
"use strict";

const PAST_S = 10, AHEAD_S = 2;          // the roll's window around now
let PLAYER = "#1f77b4";                  // the player's colour; the band's voices below: the
let PALETTE = ["#ff7f0e", "#2ca02c", "#d62728", "#9467bd"];  // hello's palette replaces them
const MAX_NATS = 4;                      // the entropy strip's top

const view = {                           // everything drawn comes from here (tests read it too)
  connected: false, frames: 0, hellos: 0, model: "", t: 0, offset: null,
  notes: [], open: new Map(), plan: [], entropy: [], cellFrames: [], cells: [],
  voices: {}, colours: {}, controls: {}, errors: 0, ws: null, maxNoteS: 5,
};
window.neuralbandView = view;

function colour(voice) {
  if (voice === "player") return PLAYER;
  if (!(voice in view.colours)) {
    view.colours[voice] = PALETTE[Object.keys(view.colours).length % PALETTE.length];
    legend();
  }
  return view.colours[voice];
}

function legend() {
  const el = document.getElementById("legend");
  el.innerHTML = "";
  for (const [voice, c] of [["player", PLAYER], ...Object.entries(view.colours)]) {
    const span = document.createElement("span");
    span.innerHTML = `<i style="background:${c}"></i>`;
    span.appendChild(document.createTextNode(voice));
    el.appendChild(span);
  }
}

function now() {                         // frozen while not connected: nothing moves unheard
  if (!view.connected || view.offset === null) return view.t;
  return performance.now() / 1000 + view.offset;
}

function clock(t) {                      // the engine's time: the page's clock plus an offset
  view.t = t;
  const offset = t - performance.now() / 1000;
  if (view.offset === null || Math.abs(offset - view.offset) > 0.25) view.offset = offset;
  else view.offset += 0.1 * (offset - view.offset);
}

// --- messages -------------------------------------------------------------------------------

function connect() {
  const token = new URLSearchParams(location.search).get("token");  // beyond loopback
  const ws = new WebSocket(`ws://${location.host}/ws` +
                           (token ? `?token=${encodeURIComponent(token)}` : ""));
  view.ws = ws;
  ws.onopen = () => status(true);
  ws.onclose = () => { status(false); view.ws = null; setTimeout(connect, 1000); };
  ws.onerror = () => ws.close();
  ws.onmessage = (event) => {
    let m;
    try { m = JSON.parse(event.data); } catch (e) { return; }
    handle(m);
  };
}

function status(on) {
  view.connected = on;
  const el = document.getElementById("status");
  el.textContent = on ? "connected" : "not connected: retrying";
  el.className = on ? "on" : "off";
}

function handle(m) {
  if (m.type === "hello") {
    view.hellos += 1;
    view.model = m.model;
    document.getElementById("model").textContent = m.model;
    view.notes = []; view.open = new Map(); view.entropy = []; view.cellFrames = [];
    view.voices = m.voices; view.cells = m.cells; view.offset = null;
    view.maxNoteS = m.max_note_s || 5;
    if (m.palette) { PLAYER = m.palette[0]; PALETTE = m.palette.slice(1); view.colours = {}; }
    clock(m.t);
    for (const voice of Object.values(m.voices)) colour(voice);
    buildControls(m.controls);
    for (const n of m.notes) note(n);
  } else if (m.type === "note_on" || m.type === "note_off") {
    note(m);
  } else if (m.type === "state") {
    view.frames += 1;
    clock(m.t);
    view.plan = m.plan;
    if (m.entropy.length) view.entropy.push({t: m.t, values: m.entropy});
    if (m.cells) view.cells = m.cells;
    if (m.cell_values) view.cellFrames.push({t: m.t, values: m.cell_values});
    showControls(m.controls);
    if (m.beat !== undefined) document.getElementById("beat").textContent = m.beat;
    if (m.learning !== undefined) document.getElementById("learning").textContent = m.learning;
    prune();
  } else if (m.type === "error") {
    view.errors += 1;
    document.getElementById("message").textContent = m.error;
  }
}

function note(m) {
  const key = `${m.voice}:${m.pitch}`;
  const open = view.open.get(key);
  if (open) { open.end = m.t; view.open.delete(key); }
  if (m.type === "note_on") {
    const n = {pitch: m.pitch, start: m.t, end: null, voice: m.voice, who: m.who,
               velocity: m.velocity};
    view.notes.push(n);
    view.open.set(key, n);
  }
}

function prune() {                       // keep what the window can still show
  const t = now(), since = t - PAST_S - 1;
  for (const [key, n] of view.open) {    // a NOTE_OFF this page lost: the band's cap ended it
    if (n.start < t - view.maxNoteS - 1) { n.end = n.start + view.maxNoteS; view.open.delete(key); }
  }
  view.notes = view.notes.filter((n) => n.end === null || n.end > since);
  view.entropy = view.entropy.filter((e) => e.t > since);
  view.cellFrames = view.cellFrames.filter((c) => c.t > since);
}

// --- drawing -----------------------------------------------------------------------------------

function fit(canvas) {                   // draw at the canvas's shown size
  const w = canvas.clientWidth || canvas.width;
  if (canvas.width !== w) canvas.width = w;
  return [canvas.getContext("2d"), canvas.width, canvas.height];
}

function draw() {
  const t = now(), from = t - PAST_S, span = PAST_S + AHEAD_S;
  drawRoll(t, from, span);
  drawEntropy(t, from, span);
  drawCells(t, from, span);
  requestAnimationFrame(draw);
}

function drawRoll(t, from, span) {
  const [g, w, h] = fit(document.getElementById("roll"));
  g.fillStyle = "#0c0d10";
  g.fillRect(0, 0, w, h);
  const pitches = view.notes.map((n) => n.pitch).concat(view.plan.map((p) => p.pitch));
  const lo = Math.min(48, ...pitches) - 2, hi = Math.max(84, ...pitches) + 2;
  const row = h / (hi - lo + 1);
  const x = (s) => (s - from) / span * w, y = (p) => h - (p - lo + 1) * row;
  g.strokeStyle = "#1f2228";
  for (let p = lo; p <= hi; p++) if (p % 12 === 0) { g.beginPath(); g.moveTo(0, y(p) + row); g.lineTo(w, y(p) + row); g.stroke(); }
  for (const n of view.notes) {
    const end = n.end === null ? t : n.end;
    if (end < from) continue;
    g.globalAlpha = 0.35 + 0.65 * n.velocity / 127;   // velocity as brightness
    g.fillStyle = colour(n.voice);
    g.fillRect(x(n.start), y(n.pitch), Math.max(2, x(end) - x(n.start)), Math.max(2, row - 1));
  }
  g.globalAlpha = 1;
  g.setLineDash([4, 3]);
  for (const p of view.plan) {           // what the band will play next, if you let it
    g.strokeStyle = g.fillStyle = colour(p.voice);
    g.globalAlpha = 0.3;
    if (p.type === "note_on") g.fillRect(x(p.t), y(p.pitch), Math.max(6, 0.25 / span * w), Math.max(2, row - 1));
    g.globalAlpha = 1;
    if (p.type === "note_on") g.strokeRect(x(p.t), y(p.pitch), Math.max(6, 0.25 / span * w), Math.max(2, row - 1));
    else { g.beginPath(); g.moveTo(x(p.t), y(p.pitch)); g.lineTo(x(p.t), y(p.pitch) + row); g.stroke(); }
  }
  g.setLineDash([]);
  g.strokeStyle = "#ffffff";
  g.beginPath(); g.moveTo(x(t), 0); g.lineTo(x(t), h); g.stroke();
}

function drawEntropy(t, from, span) {
  const [g, w, h] = fit(document.getElementById("entropy"));
  g.fillStyle = "#0c0d10";
  g.fillRect(0, 0, w, h);
  const dt = 0.1;                        // a frame's draws spread over the frame before it
  for (const e of view.entropy) {
    e.values.forEach((v, k) => {
      const s = e.t - dt + dt * (k + 0.5) / e.values.length;
      const bar = Math.min(1, v / MAX_NATS);
      g.fillStyle = `hsl(${120 - 120 * bar}, 70%, 55%)`;
      g.fillRect((s - from) / span * w, h - bar * h, Math.max(1.5, dt / span * w / e.values.length), bar * h);
    });
  }
}

function drawCells(t, from, span) {
  const [g, w, h] = fit(document.getElementById("cells"));
  g.fillStyle = "#0c0d10";
  g.fillRect(0, 0, w, h);
  const rows = view.cells.length || 1, row = h / rows, dt = 0.1;
  for (const c of view.cellFrames) {
    const x0 = (c.t - dt - from) / span * w, cw = Math.max(1, dt / span * w + 0.5);
    c.values.forEach((v, i) => {
      const a = Math.min(1, Math.abs(v));
      g.fillStyle = v >= 0 ? `rgba(242,78,78,${a})` : `rgba(78,168,242,${a})`;
      g.fillRect(x0, i * row, cw, Math.max(1, row - 0.5));
    });
  }
}

// --- the controls ---------------------------------------------------------------------------

function send(name, value) {
  if (view.ws && view.ws.readyState === WebSocket.OPEN) {
    view.ws.send(JSON.stringify(value === undefined ? {set: name} : {set: name, value: value}));
  }
}

function buildControls(controls) {
  const box = document.getElementById("controls");
  box.innerHTML = "";
  view.controls = {};
  for (const c of controls) {
    const label = document.createElement("label");
    label.title = c.help;
    const head = document.createElement("span");
    head.textContent = c.name + " ";
    const value = document.createElement("span");
    value.className = "value";
    head.appendChild(value);
    label.appendChild(head);
    let input;
    if (c.kind === "range") {
      input = document.createElement("input");
      Object.assign(input, {type: "range", min: c.low, max: c.high, step: (c.high - c.low) / 127});
      let last = 0;
      input.addEventListener("input", () => {  // a drag: at most one message per 50 ms
        const at = performance.now();
        if (at - last >= 50) { last = at; send(c.name, Number(input.value)); }
      });
      input.addEventListener("change", () => send(c.name, Number(input.value)));
      label.appendChild(input);
      if (c.unset) {
        const unset = document.createElement("button");
        unset.textContent = c.unset;
        unset.addEventListener("click", () => send(c.name, c.unset));
        label.appendChild(unset);
      }
    } else if (c.kind === "choice") {
      input = document.createElement("select");
      for (const choice of c.choices) input.add(new Option(choice, choice));
      input.addEventListener("change", () => send(c.name, input.value));
      label.appendChild(input);
    } else if (c.kind === "switch") {
      input = document.createElement("input");
      input.type = "checkbox";
      input.addEventListener("change", () => send(c.name, input.checked ? 1 : 0));
      label.appendChild(input);
    } else {
      input = document.createElement("button");
      input.textContent = c.name;
      input.addEventListener("click", () => send(c.name));
      label.appendChild(input);
    }
    input.id = "control-" + c.name;
    box.appendChild(label);
    const entry = {spec: c, input: input, value: value, heldUntil: 0};
    const hold = () => { entry.heldUntil = performance.now() + 500; };  // the hand is on it
    for (const kind of ["pointerdown", "input", "change"]) input.addEventListener(kind, hold);
    view.controls[c.name] = entry;
  }
}

function showControls(values) {          // the engine's values, but not under the hand
  for (const [name, v] of Object.entries(values)) {
    const c = view.controls[name];
    if (!c) continue;
    const kind = c.spec.kind;
    c.value.textContent = kind === "trigger" ? "" : (typeof v === "number" ? +v.toFixed(2) : v);
    if (performance.now() < c.heldUntil) continue;
    if (kind === "range") c.input.style.opacity = typeof v === "number" ? 1 : 0.4;  // unset
    if (kind === "range" && typeof v === "number") c.input.value = v;
    else if (kind === "choice") c.input.value = v;
    else if (kind === "switch") c.input.checked = v === "on";
  }
}

connect();
requestAnimationFrame(draw);
