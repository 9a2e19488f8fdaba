// The labelling page: fetches the next pending pair, loops its two clips in step,
// sends the person's answer, and lets them undo it. No libraries, no build step.
"use strict";

const TOKEN = new URLSearchParams(location.search).get("token") || "";
const CLIENT = Math.random().toString(36).slice(2, 12);  // this tab, for the server's leases
const FPS = 5;
const KEYS = {
  ArrowLeft: "left", "1": "left", ArrowRight: "right", "2": "right",
  "=": "equal", e: "equal", E: "equal", s: "skip", S: "skip", "0": "skip",
};

let current = null;       // the pair on screen: {round, query, steps, ...}
let strips = null;        // its two decoded clips
let frame = 0;
let busy = false;         // an answer is on its way: ignore keys until it lands
const history = [];       // answers given in this tab, for undo

const $ = (id) => document.getElementById(id);

async function api(path, body) {
  const options = { headers: { "X-Vmalign-Token": TOKEN } };
  if (body !== undefined) {
    options.method = "POST";
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail; } catch (error) { /* not JSON */ }
    throw new Error(typeof detail === "string" ? detail : JSON.stringify(detail));
  }
  return response;
}

async function clip(pair, side) {
  const blob = await (await api(`/api/clip/${pair.round}/${pair.query}/${side}`)).blob();
  return createImageBitmap(blob);
}

function labeller() {
  return $("labeller").value.trim() || undefined;
}

function showProgress(progress) {
  if (!progress) { $("progress").textContent = ""; return; }
  let text = `Round ${progress.round}: ${progress.labelled + progress.skipped} of ` +
    `${progress.count} answered (${progress.labelled} labelled, ${progress.skipped} skipped)`;
  if (progress.budget !== null && progress.budget !== undefined) {
    const asked = (progress.asked_before || 0) + progress.labelled + progress.skipped;
    text += ` · ${asked} of ${progress.budget} in the run's budget`;
  }
  $("progress").textContent = text;
}

async function next() {
  const state = await (await api(`/api/state?client=${CLIENT}`)).json();
  if (!$("labeller").value && !localStorage.getItem("vmalign-labeller")) {
    $("labeller").placeholder = state.labeller;
  }
  showProgress(state.progress);
  if (!state.pair) {
    current = strips = null;
    $("pair").hidden = true;
    $("waiting").hidden = false;
    $("instruction").textContent = "";
    setTimeout(() => next().catch(report), 1500);
    return;
  }
  await show(state.pair);
}

async function show(pair) {
  const loaded = await Promise.all([clip(pair, "a"), clip(pair, "b")]);
  current = pair;
  strips = loaded;
  frame = 0;  // both clips restart together
  $("instruction").textContent = pair.instruction || "(no instruction)";
  $("waiting").hidden = true;
  $("pair").hidden = false;
  $("pair").dataset.round = pair.round;
  $("pair").dataset.query = pair.query;
  draw();
}

function draw() {
  if (!current || !strips) return;
  ["left", "right"].forEach((id, side) => {
    const context = $(id).getContext("2d");
    context.imageSmoothingEnabled = false;
    const { width, height } = current;
    context.drawImage(strips[side], frame * width, 0, width, height,
                      0, 0, $(id).width, $(id).height);
  });
}

setInterval(() => {
  if (current) { frame = (frame + 1) % current.steps; draw(); }
}, 1000 / FPS);

function report(error) {
  $("message").textContent = error.message;
}

async function answer(choice) {
  if (busy || !current) return;
  busy = true;
  const pair = current;
  try {
    const reply = await (await api("/api/label", {
      round: pair.round, query: pair.query, label: choice, labeller: labeller(),
    })).json();
    history.push(pair);
    $("message").textContent = "";
    showProgress(reply.progress);
  } catch (error) {
    report(error);  // e.g. another tab answered it first: go on to the next pair
  }
  try { await next(); } catch (error) { report(error); }
  busy = false;
}

async function undo() {
  if (busy || history.length === 0) return;
  busy = true;
  const pair = history.pop();
  try {
    const reply = await (await api("/api/undo", {
      round: pair.round, query: pair.query, labeller: labeller(),
    })).json();
    $("message").textContent = `Undone: pair ${pair.query} of round ${pair.round} is back.`;
    showProgress(reply.progress);
    await show(pair);
  } catch (error) {
    report(error);
  }
  busy = false;
}

function toggleHelp(show) {
  $("help").hidden = show === undefined ? !$("help").hidden : !show;
}

document.addEventListener("keydown", (event) => {
  if (event.target === $("labeller")) return;  // typing a name
  if (event.key === "?" || event.key === "h" || event.key === "H") { toggleHelp(); return; }
  if (event.key === "Escape") { toggleHelp(false); return; }
  if (!$("help").hidden) return;
  if (event.key === "u" || event.key === "U" || event.key === "Backspace") {
    event.preventDefault();
    undo();
  } else if (KEYS[event.key]) {
    event.preventDefault();
    answer(KEYS[event.key]);
  }
});

document.querySelectorAll("button[data-choice]").forEach((button) => {
  button.addEventListener("click", () => answer(button.dataset.choice));
});
$("btn-undo").addEventListener("click", undo);
$("btn-help").addEventListener("click", () => toggleHelp());
$("help").addEventListener("click", () => toggleHelp(false));

$("labeller").value = localStorage.getItem("vmalign-labeller") || "";
$("labeller").addEventListener("change", () => {
  localStorage.setItem("vmalign-labeller", $("labeller").value.trim());
});

next().catch(report);
