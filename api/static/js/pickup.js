// The pickup desk: the camera scanner, focus kept in the code box for USB scanners, and the
// desk that keeps handing over when the network drops. Online, every scan asks the server
// (the htmx form). Offline, or when the server does not answer, the desk judges the token
// itself with its copy of the desk bundle (pickup-token.js), hands over, and queues the
// redemption in IndexedDB (desk-store.js) with an Idempotency-Key; when the network is back
// the queue goes to the server, which applies each once (exchange/desk.py).
// Without this file the desk still works online: scan with a USB scanner or paste, then Enter.
import QrScanner from "/static/vendor/qr-scanner.min.js";
import * as store from "/static/js/desk-store.js";
import { claimsOf, judge, tokenFromScan } from "/static/js/pickup-token.js";

const form = document.getElementById("scan-form");
const input = document.getElementById("f-token");
const answer = document.getElementById("scan-result");
const toggle = document.getElementById("camera-toggle");
const video = document.getElementById("camera");
const cameraError = document.getElementById("camera-error");
const panel = document.getElementById("desk-status");
const connection = document.getElementById("desk-connection");
const copyLine = document.getElementById("desk-copy");
const queueLine = document.getElementById("desk-queue");
const signIn = document.getElementById("desk-sign-in");
const notesList = document.getElementById("desk-notes");
const nameInput = document.getElementById("desk-name");
const config = JSON.parse(document.getElementById("desk-config").textContent);
const text = config.text;
const department = config.department_id;

const REFRESH_MS = 60_000; // the bundle, while online
const TICK_MS = 15_000;
const BATCH = 100; // the most one sync request takes (exchange.desk.MAX_BATCH)
const MAX_NOTES = 10;

let desk = null; // {id, name}: null until IndexedDB answered (then the desk is online-only)
let copy = null; // this desk's copy of the desk bundle
let reachable = true; // the server answered the last request
let signedOut = false;
let csrf = panel.dataset.csrf;
let queued = 0;
let notes = [];
let pending = null; // the scan being asked online: queued with its key if no answer comes
let judging = Promise.resolve(); // offline scans one at a time: each sees what the last recorded
let scanner = null;
let last = "";
let lastAt = 0;

const fill = (template, values) => template.replace(/%\((\w+)\)s/g, (_, name) => String(values[name] ?? ""));
// As the server shows times (api/pages/templating.local_time): Asia/Shanghai, "YYYY-MM-DD HH:MM".
const clock = new Intl.DateTimeFormat("sv-SE", {
  timeZone: "Asia/Shanghai", year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
});
const localTime = (iso) => (iso ? clock.format(new Date(iso)) : "");
const randomId = () => Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
const online = () => navigator.onLine && reachable;

// --- What the desk shows about itself -------------------------------------------------------

function render() {
  connection.textContent = !navigator.onLine ? text.offline : reachable ? text.online : text.unreachable;
  connection.className = `badge ${online() ? "ok" : "offline"}`;
  panel.dataset.connection = online() ? "online" : "offline";
  if (!copy) {
    copyLine.textContent = text.no_copy;
  } else {
    const minutes = Math.floor((Date.now() - copy.fetched_at) / 60_000);
    copyLine.textContent = minutes < 1 ? text.copy_now : fill(text.copy_age, { num: minutes });
  }
  queueLine.textContent = fill(text.queue, { num: queued });
  panel.dataset.queued = String(queued);
  signIn.hidden = !signedOut;
  notesList.replaceChildren(...notes.map((note) => {
    const item = document.createElement("li");
    item.className = note.kind;
    item.textContent = `${localTime(note.at)} ${note.message}`;
    return item;
  }));
  // The page can be reloaded offline once the worker controls it and the bundle is copied.
  const controlled = "serviceWorker" in navigator && navigator.serviceWorker.controller !== null;
  panel.dataset.offlineReady = controlled && copy ? "yes" : "no";
}

async function note(kind, message) {
  notes = [{ kind, message, at: new Date().toISOString() }, ...notes].slice(0, MAX_NOTES);
  await store.put("meta", notes, "notes");
}

async function countQueue() {
  queued = (await store.all("queue")).filter((item) => item.department_id === department).length;
}

function line(className, content) {
  const span = document.createElement("span");
  span.className = className;
  span.textContent = content;
  return span;
}

// The big green or red answer, as the server renders it (coord/_scan_result.html).
function show(ok, lines) {
  const box = document.createElement("div");
  box.className = `scan-result ${ok ? "ok" : "bad"}`;
  box.setAttribute("role", "status");
  box.dataset.result = ok ? "ok" : "refused";
  box.dataset.offline = "yes";
  box.append(line("big", ok ? text.hand_over : text.do_not_hand_over), ...lines);
  answer.replaceChildren(box);
}

function orderNumber(orderId) {
  const small = line("line small", `${text.order_number} `);
  small.append(line("mono", orderId));
  return small;
}

function reasonOf(verdict) {
  const reason = text.reasons[verdict.reason] || verdict.reason;
  return fill(reason, { when: localTime(verdict.when), who: verdict.who || "" });
}

// --- The bundle and the queue -----------------------------------------------------------------

function merge(bundle) {
  const now = Date.now();
  const next = bundle.complete || !copy ? { orders: {}, revocations: {} } : copy;
  next.department_id = bundle.department_id;
  next.keys = Object.fromEntries(bundle.keys.keys.map((jwk) => [jwk.kid, jwk]));
  for (const order of bundle.orders) next.orders[order.order_id] = order;
  for (const revoked of bundle.revocations) {
    next.revocations[revoked.order_id] = revoked;
    delete next.orders[revoked.order_id];
  }
  // A token past its expiry is refused anyway: forget what is known of it.
  for (const known of [next.orders, next.revocations]) {
    for (const [id, entry] of Object.entries(known)) if (Date.parse(entry.expires_at) <= now) delete known[id];
  }
  next.cursor = bundle.cursor;
  next.fetched_at = now;
  copy = next;
}

async function fetchBundle() {
  const since = copy?.cursor ? `?since=${encodeURIComponent(copy.cursor)}` : "";
  let response;
  try {
    response = await fetch(`/api/departments/${encodeURIComponent(department)}/desk-bundle${since}`, {
      cache: "no-store", headers: { accept: "application/json" },
    });
  } catch (network) {
    reachable = false;
    return;
  }
  reachable = response.status < 500;
  signedOut = response.status === 401;
  if (response.status === 422 && copy) copy.cursor = null; // a cursor it no longer takes: start over
  if (!response.ok) return;
  merge(await response.json());
  await store.put("meta", copy, `bundle:${department}`);
}

// Signed out, or the form token went stale (the browser was restarted): ask the page again.
async function freshToken() {
  let response;
  try {
    response = await fetch("/coord/pickup", { cache: "no-store" });
  } catch (network) {
    reachable = false;
    return false;
  }
  signedOut = response.redirected || response.status === 401;
  if (!response.ok || signedOut) return false;
  const page = new DOMParser().parseFromString(await response.text(), "text/html");
  const token = page.getElementById("desk-status")?.dataset.csrf;
  if (token) csrf = token;
  return Boolean(token);
}

async function send(items, retried = false) {
  const body = {
    desk_id: desk.id,
    desk_name: desk.name,
    items: items.map((item) => ({
      idempotency_key: item.idempotency_key,
      token: item.token,
      scanned_at: item.scanned_at,
      coordinator_id: item.coordinator_id,
    })),
  };
  let response;
  try {
    response = await fetch("/coord/pickup/sync", {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json", "x-csrftoken": csrf },
      body: JSON.stringify(body),
    });
  } catch (network) {
    reachable = false;
    return null;
  }
  if (response.ok && (response.headers.get("content-type") || "").includes("json")) {
    reachable = true;
    signedOut = false;
    return response.json();
  }
  if (response.status >= 500) {
    reachable = false;
    return null;
  }
  return !retried && (await freshToken()) ? send(items, true) : null;
}

async function settle(items, results) {
  const byKey = new Map(items.map((item) => [item.idempotency_key, item]));
  let sent = 0;
  for (const result of results) {
    const item = byKey.get(result.idempotency_key);
    if (!item) continue;
    if (result.outcome === "fulfilled") {
      sent += 1;
    } else if (result.outcome === "incident") {
      await note("bad", fill(text.incident, { order: item.label, kind: text.kinds[result.incident_kind] || "" }));
    } else {
      const reason = text.reasons[result.problem?.code] || result.problem?.detail || "";
      await note("bad", fill(text.refused, { order: item.label, reason }));
    }
  }
  // Answered, whatever the answer: the server keeps what it applied, and the desk keeps its
  // record of handing these over, so it still refuses them a second time.
  await store.remove("queue", results.map((result) => result.idempotency_key).filter((key) => byKey.has(key)));
  if (sent) await note("ok", fill(text.sent, { num: sent }));
}

async function sync() {
  const items = (await store.all("queue"))
    .filter((item) => item.department_id === department)
    .sort((a, b) => a.scanned_at.localeCompare(b.scanned_at));
  for (let start = 0; start < items.length; start += BATCH) {
    const chunk = items.slice(start, start + BATCH);
    const answered = await send(chunk);
    if (!answered) break; // not now: the queue stays
    await settle(chunk, answered.items);
  }
  await countQueue();
}

async function update() {
  if (!navigator.onLine) return;
  await fetchBundle();
  if (reachable && !signedOut) await sync();
}

// One refresh at a time; the reset runs after the promise is stored, even when `update`
// had nothing to wait for.
let refreshing = null;
function refresh() {
  refreshing ??= update().finally(() => {
    refreshing = null;
    render();
  });
  return refreshing;
}

// --- Scanning -----------------------------------------------------------------------------------

function newAttempt(scanned) {
  return {
    idempotency_key: randomId(),
    token: tokenFromScan(scanned),
    scanned_at: new Date().toISOString(),
    coordinator_id: config.coordinator.id,
    department_id: department,
    order_id: claimsOf(tokenFromScan(scanned))?.sub || "",
  };
}

function handedRecord(attempt, claims) {
  return {
    order_id: claims.sub,
    jti: claims.jti,
    scanned_at: attempt.scanned_at,
    idempotency_key: attempt.idempotency_key,
    expires_at: new Date(claims.exp * 1000).toISOString(),
  };
}

function ready() {
  input.value = "";
  input.focus();
}

function handOverOffline(attempt) {
  ready();
  judging = judging
    .then(() => judgeAndRecord(attempt))
    .catch(() => show(false, [line("line", text.reasons.NotRecorded)]));
}

async function judgeAndRecord(attempt) {
  const verdict = await judge(attempt.token, copy, (orderId) => store.get("handed", orderId), Date.now());
  if (!verdict.ok) {
    show(false, [line("line", reasonOf(verdict))]);
    return;
  }
  const order = verdict.order;
  const item = { ...attempt, label: order ? `${order.product_name} × ${order.quantity}` : verdict.claims.sub };
  try {
    await store.handOver(item, handedRecord(attempt, verdict.claims));
  } catch (storageFailed) {
    show(false, [line("line", text.reasons.NotRecorded)]);
    return;
  }
  queued += 1;
  render();
  const lines = order
    ? [line("line", item.label), line("line", fill(text.to, { name: order.person }))]
    : [line("line", text.not_in_copy)];
  show(true, [...lines, orderNumber(verdict.claims.sub), line("line small", text.queued)]);
}

// Online the form asks the server; with no network, or while it does not answer, the desk
// judges by itself instead.
form.addEventListener("htmx:configRequest", (event) => {
  const scanned = input.value.trim();
  if (!scanned || !desk) return; // the server answers an empty box; without storage, online only
  const attempt = newAttempt(scanned);
  if (!online() || signedOut) {
    event.preventDefault();
    handOverOffline(attempt);
    return;
  }
  pending = attempt;
  Object.assign(event.detail.parameters, {
    idempotency_key: attempt.idempotency_key, desk_id: desk.id, desk_name: desk.name,
  });
});

// After each answer, clear the box and put the cursor back for the next scan.
document.body.addEventListener("htmx:afterRequest", (event) => {
  if (event.detail.elt !== form) return;
  const attempt = pending;
  pending = null;
  const xhr = event.detail.xhr;
  if (xhr.responseURL) signedOut = new URL(xhr.responseURL).pathname === "/login";
  const answered = !signedOut && (xhr.status === 200 || xhr.status === 409); // green or red
  if (attempt && !answered) {
    // No answer: the network dropped or it timed out, no database, signed out, or a stale
    // form token. Judge it here and queue it with the same key, so that if the question did
    // reach the server the queue gets the server's answer back, not a second redemption.
    reachable = xhr.status !== 0 && xhr.status < 500;
    render();
    handOverOffline(attempt);
    return;
  }
  reachable = true;
  const claims = attempt && claimsOf(attempt.token);
  if (xhr.status === 200 && claims) store.put("handed", handedRecord(attempt, claims));
  render();
  ready();
});

function submitScan(value) {
  const now = Date.now();
  // A code held in front of the camera is read many times a second: submit it once.
  if (value === last && now - lastAt < 4000) return;
  last = value;
  lastAt = now;
  input.value = value;
  form.requestSubmit();
}

async function startCamera() {
  video.hidden = false;
  // qr-scanner decodes with the browser's BarcodeDetector where present, else in a worker.
  scanner = new QrScanner(video, (result) => submitScan(result.data), {
    returnDetailedScanResult: true,
    // The library's region highlight is SVG with inline styles, which the CSP refuses;
    // the video's own outline (site.css) marks where to hold the code instead.
    highlightScanRegion: false,
    // A pickup token makes a dense code: scan most of the frame at up to 800 px, not the
    // library's default 400 px crop of the middle two thirds.
    calculateScanRegion: (v) => {
      const side = Math.round(Math.min(v.videoWidth, v.videoHeight) * 0.9);
      const scaled = Math.min(side, 800);
      return {
        x: Math.round((v.videoWidth - side) / 2),
        y: Math.round((v.videoHeight - side) / 2),
        width: side,
        height: side,
        downScaledWidth: scaled,
        downScaledHeight: scaled,
      };
    },
  });
  try {
    await scanner.start();
    toggle.textContent = toggle.dataset.stop;
    cameraError.hidden = true;
  } catch (error) {
    stopCamera();
    cameraError.hidden = false;
  }
}

function stopCamera() {
  if (scanner) {
    scanner.stop();
    scanner.destroy();
    scanner = null;
  }
  video.hidden = true;
  toggle.textContent = toggle.dataset.start;
}

toggle.addEventListener("click", () => (scanner ? stopCamera() : startCamera()));
QrScanner.hasCamera().then((has) => { toggle.hidden = !has; });

// --- Starting up --------------------------------------------------------------------------------

async function start() {
  desk = (await store.get("meta", "desk")) || { id: randomId(), name: "" };
  await store.put("meta", desk, "desk");
  nameInput.value = desk.name;
  nameInput.addEventListener("change", async () => {
    desk.name = nameInput.value.trim().slice(0, 100);
    await store.put("meta", desk, "desk");
  });
  copy = (await store.get("meta", `bundle:${department}`)) || null;
  notes = (await store.get("meta", "notes")) || [];
  await countQueue();
  panel.hidden = false;
  render();
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.addEventListener("controllerchange", render);
    // Served from /coord/ so that it may keep this page (see api/pages/desk.py).
    navigator.serviceWorker.register("/coord/desk-sw.js", { scope: "/coord/pickup" }).catch(() => {});
  }
  window.addEventListener("online", () => { reachable = true; refresh(); });
  window.addEventListener("offline", render);
  setInterval(() => {
    const stale = !copy || Date.now() - copy.fetched_at >= REFRESH_MS;
    if (navigator.onLine && (stale || !reachable || queued > 0)) refresh();
    else render();
  }, TICK_MS);
  await refresh();
}

start().catch(() => { desk = null; }); // no IndexedDB here: the desk works online only
