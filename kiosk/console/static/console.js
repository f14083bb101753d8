// Staff console page: draws the snapshot from /api/stream, then applies each update in place.
// Every text comes from the strings the server embedded (kiosk/console/locales/<lang>.json and the staff texts
// shared with the kiosk, catalogue/locales/<lang>/staff.json): what kiosks send is ids (lamp pattern, event kind,
// call reason, reply) rendered here in the viewer's language, never shown raw; data from kiosks is only ever
// inserted with textContent, never as HTML. Times are the facility's ([facility] timezone, from the snapshot).
"use strict";

const S = JSON.parse(document.getElementById("strings").textContent);
const LANG = document.documentElement.lang;
const CSRF = document.querySelector('meta[name="csrf-token"]').content;
const CAN_COMMAND = document.body.classList.contains("role-staff");
const HISTORY_ROWS = 500;
// [console] urgent_seconds / realert_seconds: an open call turns urgent, and rings again until acknowledged
const CALLS = JSON.parse(document.getElementById("call-settings").textContent);
let clockSkew = 0; // server time minus this browser's time (ms), from each snapshot: waits count on the server's clock
let listener = null; // this page's id as a listener (staff pages only), from its stream's snapshot

const kioskRows = new Map(); // "site/kiosk" -> <tr>
const kiosks = new Map(); // "site/kiosk" -> kiosk view
const callCards = new Map(); // "site/kiosk" -> <article>
const codes = {}; // code -> catalogue info
let audio = null;

function t(key, params = {}) {
  const text = S[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in params ? String(params[name]) : `{${name}}`));
}
const $ = (id) => document.getElementById(id);
const keyOf = (item) => `${item.site}/${item.kiosk}`;

// The text of id `prefix.value` (lamp.call, event.lookup ...), or `prefix.unknown` for an id this console does
// not know (a newer kiosk): an id is never shown raw.
function named(prefix, value) {
  return t(`${prefix}.${value}` in S ? `${prefix}.${value}` : `${prefix}.unknown`);
}

// Clock times in the facility's time zone (the snapshot's `timezone`), as people read them: "10:42", and
// "11/28 10:42" for another day.
const LOCALE = LANG === "ja" ? "ja-JP" : "en-GB";
let timeZone = undefined; // the browser's until the first snapshot
let clockFormat = null, dayFormat = null;
function setTimeZone(zone) {
  try {
    clockFormat = new Intl.DateTimeFormat(LOCALE, { timeZone: zone, hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
    dayFormat = new Intl.DateTimeFormat(LOCALE, { timeZone: zone, month: "numeric", day: "numeric" });
    timeZone = zone;
  } catch (err) { /* an unknown zone: keep the one we had */ }
}
setTimeZone(undefined);

function timeText(iso) {
  if (!iso) return "–";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "–";
  const clock = clockFormat.format(date);
  const day = dayFormat.format(date);
  return day === dayFormat.format(new Date(Date.now() + clockSkew)) ? clock : `${day} ${clock}`;
}

// How long ago, as people say it: "just now", "3 min ago" / 「3分前」, "2 h ago" / 「2時間前」, "3 days ago".
function agoText(iso) {
  const then = Date.parse(iso || "");
  if (Number.isNaN(then)) return "–";
  const seconds = Math.max(0, Math.floor((Date.now() + clockSkew - then) / 1000));
  if (seconds < 60) return t("time.just_now");
  if (seconds < 3600) return t("time.minutes_ago", { n: Math.floor(seconds / 60) });
  if (seconds < 86400) return t("time.hours_ago", { n: Math.floor(seconds / 3600) });
  return t("time.days_ago", { n: Math.floor(seconds / 86400) });
}

function lastSeenCell(k) {
  const td = cell(agoText(k.last_seen), "seen");
  if (k.last_seen) td.title = timeText(k.last_seen);
  return td;
}

// "3 min ago" grows older by itself: redraw the last-seen cells twice a minute.
function tickLastSeen() {
  for (const [key, row] of kioskRows) {
    const k = kiosks.get(key);
    const td = row.querySelector("td.seen");
    if (k && td) td.replaceWith(lastSeenCell(k));
  }
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

// --- kiosks ---------------------------------------------------------------------------------------------

// A reader fault in words: why (reader.<cause>, the kiosk's id) and, on hover, what to do.
function readerCell(k) {
  if (k.reader_ok !== false) return cell(k.reader_ok === null ? t("kiosks.unknown") : t("kiosks.reader_ok"));
  const key = `reader.${k.reader_cause}`;
  if (!k.reader_cause || !(key in S)) return cell(t("kiosks.reader_fault"), "bad");
  const td = cell(t("kiosks.reader_fault"), "bad cause");
  const why = document.createElement("span");
  why.className = "why";
  why.textContent = t(key, k.reader_params || {}).replace(/\{\w+\}/g, "–"); // a param the kiosk left out
  td.append(why);
  if (`${key}.fix` in S && S[`${key}.fix`]) td.title = t(`${key}.fix`, k.reader_params || {}).replace(/\{\w+\}/g, "–");
  return td;
}

function kioskCells(k) {
  const lamp = k.lamp ? named("lamp", k.lamp) : t("kiosks.unknown");
  const state = k.online ? t("kiosks.online") : t("kiosks.offline");
  return [
    cell(k.kiosk, "name"),
    cell(k.outage ? `${state} · ${t("kiosks.outage")}` : state, k.online ? "ok" : "bad"),
    readerCell(k),
    cell(lamp, k.lamp && k.lamp !== "off" ? `lamp-${k.lamp}` : ""),
    cell(k.backlog === null ? "–" : String(k.backlog), k.backlog > 0 ? "warn" : ""),
    lastSeenCell(k),
  ];
}

function putKiosk(k) {
  const key = keyOf(k);
  kiosks.set(key, k);
  let row = kioskRows.get(key);
  if (!row) {
    row = document.createElement("tr");
    row.dataset.kiosk = key;
    kioskRows.set(key, row);
  }
  row.replaceChildren(...kioskCells(k));
  placeKiosk(row, k);
  row.className = k.online ? "online" : "offline";
  row.dataset.online = String(k.online);
  row.dataset.lamp = k.lamp || "";
  const card = callCards.get(key);
  if (card) card.classList.toggle("kiosk-offline", !k.online);
}

// Kiosks that need attention (offline, reader fault, outage) come first, then by name.
function needsAttention(k) {
  return !k.online || k.reader_ok === false || k.outage;
}

const collator = new Intl.Collator("en", { numeric: true });
function kioskOrder(a, b) {
  return needsAttention(b) - needsAttention(a) || collator.compare(keyOf(a), keyOf(b));
}

// One kiosk changed: its row moves to where it belongs (a binary search over the rows, which are kept in
// order). A snapshot draws every row in one sorted pass (drawAllKiosks), so the page stays linear in rows.
function placeKiosk(row, k) {
  const body = $("kiosks");
  if (bulk) return;
  const rows = body.children;
  let lo = 0, hi = rows.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const other = rows[mid] === row ? (mid + 1 < rows.length ? rows[mid + 1] : null) : rows[mid];
    if (other === null || kioskOrder(kiosks.get(other.dataset.kiosk), k) > 0) hi = mid; else lo = mid + 1;
  }
  let after = rows[lo] || null;
  if (after === row) after = row.nextSibling;
  if (row.nextSibling !== after || row.parentNode !== body) body.insertBefore(row, after);
}

let bulk = false;
function drawAllKiosks() {
  const sorted = [...kiosks.values()].sort(kioskOrder);
  $("kiosks").replaceChildren(...sorted.map((k) => kioskRows.get(keyOf(k))));
}

function removeKiosk(key) {
  kiosks.delete(key);
  kioskRows.get(key)?.remove();
  kioskRows.delete(key);
}

// Many kiosk updates can arrive together: redraw the counts and the outage banner once per burst.
let summaryPending = false;
function scheduleKioskSummary() {
  if (summaryPending) return;
  summaryPending = true;
  setTimeout(() => { summaryPending = false; drawKioskSummary(); }, 50);
}

function drawKioskSummary() {
  const all = [...kiosks.values()];
  $("online-count").textContent = t("kiosks.online_count", { online: all.filter((k) => k.online).length, total: all.length });
  $("no-kiosks").hidden = all.length > 0;
  const outage = all.filter((k) => k.outage);
  $("outage").hidden = outage.length === 0;
  $("outage-kiosks").textContent = t("outage.kiosks", { kiosks: outage.map((k) => k.kiosk).join(", ") });
  const box = $("outage-codes");
  box.replaceChildren();
  for (const code of new Set(outage.map((k) => k.outage_code).filter(Boolean))) {
    const info = codes[code];
    if (!info) continue;
    const details = document.createElement("details");
    const summary = document.createElement("summary");
    summary.textContent = t("outage.code_steps", { code, title: info.title });
    details.append(summary, ...info.conditions.map((condition) => stepList(condition.steps)));
    box.append(details);
  }
}

// --- calls ----------------------------------------------------------------------------------------------

function stepList(steps) {
  const list = document.createElement("ul");
  list.className = "steps";
  list.lang = "ja";
  for (const step of steps) {
    const li = document.createElement("li");
    li.textContent = step.text;
    li.className = `depth-${Math.min(step.depth, 3)}`;
    list.append(li);
  }
  return list;
}

function conditionBlocks(info) {
  const blocks = [];
  for (const condition of info.conditions) {
    if (condition.check) {
      const h = document.createElement("h4");
      h.textContent = t("call.check");
      const p = document.createElement("p");
      p.className = "check";
      p.lang = "ja";
      p.textContent = condition.check;
      blocks.push(h, p);
    }
    if (condition.steps.length) {
      const h = document.createElement("h4");
      h.textContent = t("call.steps");
      blocks.push(h, stepList(condition.steps));
    }
  }
  return blocks;
}

// A call without a code is titled as what it is (「患者さんの呼び出し」): its reason's title.
function drawCallInfo(card, call) {
  const info = call.code ? codes[call.code] : null;
  card.querySelector(".code").textContent = call.code || named("call.title", call.reason ?? card.dataset.reason);
  card.querySelector(".title").textContent = info ? info.title : "";
  const gloss = info && LANG !== "ja" ? info.titles?.[LANG] || "" : "";
  const glossEl = card.querySelector(".gloss");
  glossEl.textContent = gloss ? `${gloss} (${t("call.official_text")})` : call.code && info && !info.known ? t("call.unknown_code") : "";
  glossEl.hidden = !glossEl.textContent;
  card.querySelector(".info").replaceChildren(...(info ? conditionBlocks(info) : []));
}

function putCall(call, isNew) {
  const key = keyOf(call);
  let card = callCards.get(key);
  const fresh = !card || card.dataset.callId !== call.call_id;
  if (!card) {
    card = $("call-template").content.firstElementChild.cloneNode(true);
    card.querySelector(".ack").addEventListener("click", () => send(card, "acknowledge"));
    card.querySelector(".resolve").addEventListener("click", () => send(card, "resolve"));
    callCards.set(key, card);
    $("calls").append(card);
  }
  if (fresh) card.querySelector(".answer").textContent = "";
  card.dataset.callId = call.call_id;
  card.dataset.site = call.site;
  card.dataset.kiosk = call.kiosk;
  card.dataset.code = call.code || "";
  card.dataset.acknowledged = String(call.acknowledged);
  card.classList.toggle("acknowledged", call.acknowledged);
  card.classList.toggle("kiosk-offline", kiosks.get(key)?.online === false);
  card.querySelector(".kiosk").textContent = `${t("call.kiosk")} ${call.kiosk}`;
  card.querySelector(".since").textContent = `${t("call.since")} ${timeText(call.since)}`;
  card.dataset.since = String(Date.parse(call.since || "") || Date.now() + clockSkew);
  card.dataset.reason = call.reason || "unknown";
  card.dataset.escalation = String(call.escalation || 0);
  const escalation = card.querySelector(".escalation");
  escalation.textContent = call.escalation ? t(`call.escalation.${call.escalation}`) : "";
  escalation.hidden = !call.escalation;
  if (fresh) card.dataset.alerted = isNew ? String(Date.now()) : "0"; // a call already open rings at the next tick
  card.querySelector(".reason").textContent = named("call.reason", call.reason);
  card.querySelector(".state").textContent = call.acknowledged ? t("call.acknowledged") : t("call.waiting");
  card.querySelector(".ack").hidden = !CAN_COMMAND || call.acknowledged;
  card.querySelector(".resolve").hidden = !CAN_COMMAND;
  drawCallInfo(card, call);
  if (isNew && fresh) announce(call);
  drawWait(card);
  placeCall(card);
  drawCallSummary();
}

// --- how long each open call has waited --------------------------------------------------------------------

function waitedSeconds(card) {
  return Math.max(0, Math.floor((Date.now() + clockSkew - Number(card.dataset.since)) / 1000));
}

function durationText(seconds) {
  const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
  const two = (n) => String(n).padStart(2, "0");
  return h ? `${h}:${two(m)}:${two(s)}` : `${m}:${two(s)}`;
}

// The wait on the card, urgent (red) past urgent_seconds while nobody acknowledged; returns the wait.
function drawWait(card) {
  const waited = waitedSeconds(card);
  const open = card.dataset.acknowledged !== "true";
  card.querySelector(".elapsed").textContent = t("call.waited", { time: durationText(waited) });
  card.dataset.waited = String(waited);
  card.classList.toggle("urgent", open && waited >= CALLS.urgent_seconds);
  return waited;
}

// Unacknowledged calls first, then the longest wait first.
function callOrder(a, b) {
  return (a.dataset.acknowledged === "true") - (b.dataset.acknowledged === "true")
    || Number(a.dataset.since) - Number(b.dataset.since);
}

function placeCall(card) {
  const box = $("calls");
  const after = [...box.children].find((c) => c !== card && callOrder(card, c) < 0) || null;
  if (card.nextSibling !== after || card.parentNode !== box) box.insertBefore(card, after);
}

// Once a second: every wait, and the chime + notification again for a call still unacknowledged.
function tickCalls() {
  const now = Date.now();
  for (const card of callCards.values()) {
    const waited = drawWait(card);
    if (card.dataset.acknowledged === "true") continue;
    if (now - Number(card.dataset.alerted) >= CALLS.realert_seconds * 1000) {
      card.dataset.alerted = String(now);
      announce({ site: card.dataset.site, kiosk: card.dataset.kiosk, call_id: card.dataset.callId,
                 code: card.dataset.code || null, reason: card.dataset.reason }, waited);
    }
  }
}

function removeCall(key, callId) {
  const card = callCards.get(key);
  if (!card || (callId && card.dataset.callId !== callId)) return;
  card.remove();
  callCards.delete(key);
  drawCallSummary();
}

function drawCallSummary() {
  $("call-count").textContent = String(callCards.size);
  $("no-calls").hidden = callCards.size > 0;
  document.title = callCards.size ? `(${callCards.size}) ${t("app.title")}` : t("app.title");
}

async function send(card, name) {
  const answer = card.querySelector(".answer");
  const buttons = card.querySelectorAll("button");
  buttons.forEach((b) => (b.disabled = true));
  answer.className = "answer";
  answer.textContent = t("call.sending");
  const body = { site: card.dataset.site, kiosk: card.dataset.kiosk, name, call_id: card.dataset.callId };
  try {
    const response = await fetch("/api/command", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": CSRF },
      body: JSON.stringify(body),
      credentials: "same-origin",
    });
    const result = await response.json();
    if (response.status === 401) {
      location.href = result.error === "session_expired" ? "/login?why=expired" : "/login";
      return;
    }
    if (!response.ok) {
      answer.textContent = result.message;
      answer.classList.add("failed");
    } else if (result.ok) {
      answer.textContent = t("call.answer_ok", { detail: replyText(result) });
      answer.classList.add("accepted");
    } else {
      answer.textContent = t("call.answer_refused", { detail: replyText(result) });
      answer.classList.add("failed");
    }
  } catch (err) {
    answer.textContent = t("error.network");
    answer.classList.add("failed");
  } finally {
    buttons.forEach((b) => (b.disabled = false));
  }
}

// The kiosk's answer in the viewer's language: its text id (`reply.<detail_id>`, with params) or, from a kiosk
// that predates ids, its error code's text; a kiosk's English sentence is never shown.
function replyText(result) {
  const plain = t(result.ok ? "reply.done" : "reply.rejected");
  const id = result.detail_id || result.error;
  if (!id || !(`reply.${id}` in S)) return plain;
  const text = t(`reply.${id}`, result.params || {});
  return /\{\w+\}/.test(text) ? plain : text; // a placeholder the kiosk did not fill: the plain answer
}

// --- new-call chime and browser notification -------------------------------------------------------------

function chime() {
  if (!audio) return;
  const start = audio.currentTime;
  for (const [offset, freq] of [[0, 880], [0.25, 660]]) {
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.frequency.value = freq;
    gain.gain.setValueAtTime(0.25, start + offset);
    gain.gain.exponentialRampToValueAtTime(0.001, start + offset + 0.4);
    osc.connect(gain).connect(audio.destination);
    osc.start(start + offset);
    osc.stop(start + offset + 0.45);
  }
}

// A new call (waited undefined), or one still unacknowledged after `waited` seconds: chime and notify again.
function announce(call, waited) {
  chime();
  if (!("Notification" in window) || Notification.permission !== "granted") return;
  const info = call.code ? codes[call.code] : null;
  const body = [call.code, info ? info.title : named("call.title", call.reason)].filter(Boolean).join(" ");
  const title = waited === undefined ? t("notify.title", { kiosk: call.kiosk })
    : t("notify.again_title", { kiosk: call.kiosk, time: durationText(waited) });
  new Notification(title, { body, tag: `${keyOf(call)}/${call.call_id}`, renotify: waited !== undefined });
}

function enableSound() {
  const AudioCtx = window.AudioContext || window.webkitAudioContext;
  if (AudioCtx && !audio) audio = new AudioCtx();
  audio?.resume?.();
  if ("Notification" in window && Notification.permission === "default") Notification.requestPermission();
  localStorage.setItem("console-sound", "on");
  $("sound").textContent = t("header.sound_is_on");
  $("sound").classList.add("on");
}

// --- history --------------------------------------------------------------------------------------------

function historyRow(entry) {
  const row = document.createElement("tr");
  row.dataset.kind = entry.kind;
  row.append(cell(timeText(entry.time)), cell(named("event", entry.kind)), cell(entry.code || "–"), cell(entry.kiosk));
  return row;
}

function addHistory(entry) {
  const body = $("history");
  body.prepend(historyRow(entry));
  while (body.children.length > HISTORY_ROWS) body.lastElementChild.remove();
  $("no-history").hidden = true;
}

const countRows = new Map(); // code or call reason -> <tr>

function countRow(c) {
  const row = document.createElement("tr");
  row.dataset.code = c.code;
  const label = /^\d{3}$/.test(c.code) ? c.code : named("call.title", c.code);
  row.append(cell(label), cell(String(c.lookups)), cell(String(c.calls)));
  countRows.set(c.code, row);
  return row;
}

function drawCounts(counts) {
  countRows.clear();
  $("counts").replaceChildren(...counts.map(countRow));
}

// A history update carries only the one count that changed (a delta): replace or insert that row, in order.
function putCount(c) {
  const old = countRows.get(c.code);
  const row = countRow(c);
  if (old) { old.replaceWith(row); return; }
  const after = [...countRows.keys()].filter((code) => code > c.code).sort()[0];
  $("counts").insertBefore(row, after === undefined ? null : countRows.get(after));
}

// --- the stream ------------------------------------------------------------------------------------------

function applySnapshot(snap) {
  Object.assign(codes, snap.codes);
  const serverNow = Date.parse(snap.server_time || "");
  clockSkew = Number.isNaN(serverNow) ? 0 : serverNow - Date.now();
  if (snap.timezone && snap.timezone !== timeZone) setTimeZone(snap.timezone);
  for (const key of [...kioskRows.keys()]) removeKiosk(key);
  for (const key of [...callCards.keys()]) removeCall(key);
  bulk = true;
  snap.kiosks.forEach(putKiosk);
  bulk = false;
  drawAllKiosks();
  snap.calls.forEach((call) => putCall(call, false));
  $("history").replaceChildren(...snap.history.slice(-HISTORY_ROWS).reverse().map(historyRow));
  $("no-history").hidden = snap.history.length > 0;
  drawCounts(snap.counts);
  drawKioskSummary();
  drawCallSummary();
  showLink(snap.connected);
  showListeners(snap.listeners || 0);
  listener = snap.listener || null;
  beat();
}

// --- who can hear a call ------------------------------------------------------------------------------------
// A staff page counts as listening (the kiosks' consoles_online) while it is visible: it says so when its stream
// starts, whenever it is shown or hidden (Page Visibility API), and every beat_seconds while visible. A hidden,
// frozen or sleeping page stops beating and the server stops counting it [console] listener_expiry_seconds after
// it was last visible (a glance at another tab does not send patients away); shown again, it counts at once.
function beat() {
  if (!listener) return;
  fetch("/api/listening", {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": CSRF },
    body: JSON.stringify({ listener, visible: document.visibilityState === "visible" }),
    credentials: "same-origin",
    keepalive: true, // also while the page is being hidden or closed
  }).catch(() => { /* server unreachable: it stops counting this page by itself */ });
}

function showListeners(count) {
  const box = $("listeners");
  box.textContent = count ? t("header.listeners", { count }) : t("header.nobody_listening");
  box.classList.toggle("none", !count);
  box.dataset.count = String(count);
}

function showLink(connected) {
  $("lost").hidden = connected;
  $("lost").textContent = connected ? "" : t("error.broker_down");
}

function apply(update) {
  switch (update.type) {
    case "snapshot": applySnapshot(update); break;
    case "kiosk": putKiosk(update.kiosk); scheduleKioskSummary(); break;
    case "kiosk_removed": removeKiosk(`${update.site}/${update.kiosk}`); scheduleKioskSummary(); break;
    case "call": putCall(update.call, true); break;
    case "call_cleared": removeCall(`${update.site}/${update.kiosk}`, update.call_id); break;
    case "code":
      codes[update.code] = update.info;
      for (const card of callCards.values()) if (card.dataset.code === update.code) drawCallInfo(card, { code: update.code });
      break;
    case "history": addHistory(update.entry); if (update.count) putCount(update.count); break;
    case "day": $("history").replaceChildren(); drawCounts([]); $("no-history").hidden = false; break;
    case "link": showLink(update.connected); break;
    case "listeners": showListeners(update.count); break;
    case "expired": location.href = "/login?why=expired"; break;
  }
}

function connect() {
  const source = new EventSource("/api/stream");
  source.onmessage = (message) => apply(JSON.parse(message.data));
  source.onopen = () => { $("lost").hidden = true; };
  source.onerror = async () => {
    $("lost").hidden = false;
    $("lost").textContent = t("stream.lost");
    if (source.readyState !== EventSource.CLOSED) return; // the browser retries by itself
    try {
      const response = await fetch("/api/session", { credentials: "same-origin" });
      if (response.status === 401) {
        const result = await response.json();
        location.href = result.error === "session_expired" ? "/login?why=expired" : "/login";
        return;
      }
    } catch (err) { /* server down: keep retrying */ }
    setTimeout(connect, 2000);
  };
}

$("sound").addEventListener("click", enableSound);
if (localStorage.getItem("console-sound") === "on") {
  $("sound").textContent = t("header.sound_on");
  document.addEventListener("click", () => { if (!audio) enableSound(); }, { once: true });
}
connect();
setInterval(tickCalls, 1000);
setInterval(tickLastSeen, 30000);
document.addEventListener("visibilitychange", beat);
setInterval(() => { if (document.visibilityState === "visible") beat(); }, CALLS.beat_seconds * 1000);
