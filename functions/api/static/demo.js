// live-balances demo page: starts a session, follows the wallet's SSE stream and renders it.
// Everything that comes from a token list or a chain (symbols, names) is attacker-controlled,
// so the DOM is only ever built with createElement/textContent, never from HTML strings.
"use strict";

const DEFAULT_CHAIN = "31337";
// anvil's second default account, the wallet `make dev` seeds and moves tokens for.
const DEFAULT_OWNER = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8";
const MAX_UINT256 = (1n << 256n) - 1n;
const LOG_LINES = 20;
const FLASH_MS = 1000;
// Until two pings have been seen, assume the server's default ping period.
const DEFAULT_PING_MS = 15000;
const MAX_SYMBOL_CHARS = 64;

// The API lives where the page does: strip the page's own name from the path, so the same
// page works under `…/lambda-url/api/demo` locally and at a deployed function URL's root.
const base = location.pathname.replace(/demo$/, "").replace(/\/?$/, "/");

const $ = (id) => document.getElementById(id);
const rows = new Map(); // token -> { tr, cells, balance, allowance, error }
const meta = new Map(); // token -> { symbol, name, decimals }
const flashTimers = new WeakMap();
let spender = null;
let source = null;
let lastPing = 0;
let pingGap = DEFAULT_PING_MS;
let openedAt = 0;
let watchdog = 0;

function list(text) {
  return text.split(/[\s,]+/).map((s) => s.trim()).filter((s) => s.length > 0);
}

function prefill() {
  const q = new URLSearchParams(location.search);
  $("chain").value = q.get("chain") || DEFAULT_CHAIN;
  $("owner").value = q.get("owner") || DEFAULT_OWNER;
  $("tokens").value = list(q.get("tokens") || "").join("\n");
  $("lists").value = list(q.get("lists") || "").join("\n");
}

function setStatus(state) {
  const el = $("status");
  el.className = "status " + state;
  el.dataset.state = state;
  el.textContent = state;
}

function showError(text) {
  const el = $("error");
  el.textContent = text;
  el.hidden = !text;
}

function short(address) {
  return address.length > 12 ? address.slice(0, 6) + "…" + address.slice(-4) : address;
}

/** Token metadata as the page trusts it: a string symbol and a whole decimals in 0..=255. */
function addMeta(map) {
  if (!map || typeof map !== "object") return;
  for (const [token, m] of Object.entries(map)) {
    if (!m || typeof m !== "object") continue;
    const decimals = Number.isInteger(m.decimals) && m.decimals >= 0 && m.decimals <= 255 ? m.decimals : null;
    meta.set(token.toLowerCase(), {
      symbol: typeof m.symbol === "string" ? m.symbol : null,
      name: typeof m.name === "string" ? m.name : null,
      decimals,
    });
  }
  for (const token of rows.keys()) renderToken(token);
}

/** `raw` (a decimal string) with `decimals` applied, exactly (BigInt, no floating point). */
function formatUnits(raw, decimals) {
  let value = BigInt(raw);
  const negative = value < 0n;
  if (negative) value = -value;
  const unit = 10n ** BigInt(decimals);
  const whole = (value / unit).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  const fraction = decimals === 0 ? "" : (value % unit).toString().padStart(decimals, "0").replace(/0+$/, "");
  return (negative ? "-" : "") + whole + (fraction ? "." + fraction : "");
}

function formatted(raw, token) {
  const m = meta.get(token);
  if (raw == null || !m || m.decimals == null) return "–";
  try {
    if (BigInt(raw) === MAX_UINT256) return "unlimited";
    return formatUnits(raw, m.decimals);
  } catch {
    return "–";
  }
}

function row(token) {
  let r = rows.get(token);
  if (r) return r;
  const tr = document.createElement("tr");
  tr.dataset.token = token;
  const cells = {};
  for (const name of ["token", "amount", "raw", "allowance"]) {
    const td = document.createElement("td");
    td.className = name === "token" ? name : name + " num";
    tr.append(td);
    cells[name] = td;
  }
  const symbol = document.createElement("span");
  symbol.className = "symbol";
  const address = document.createElement("span");
  address.className = "address";
  address.textContent = short(token);
  address.title = token;
  cells.token.append(symbol, address);
  r = { tr, cells, symbol, balance: null, allowance: null, error: null };
  rows.set(token, r);
  const body = $("balances").tBodies[0];
  // The native currency first, the rest in the order they arrive.
  if (token === "0xeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee") body.prepend(tr);
  else body.append(tr);
  renderToken(token);
  return r;
}

function renderToken(token) {
  const r = rows.get(token);
  const m = meta.get(token);
  let symbol = (m && m.symbol) || "";
  if (symbol.length > MAX_SYMBOL_CHARS) symbol = symbol.slice(0, MAX_SYMBOL_CHARS) + "…";
  r.symbol.textContent = symbol;
  r.cells.token.title = (m && m.name) || "";
  if (r.error) {
    r.cells.amount.textContent = "read failed";
    r.cells.amount.classList.add("failed");
    r.cells.raw.textContent = r.error;
  } else {
    r.cells.amount.classList.remove("failed");
    r.cells.amount.textContent = formatted(r.balance, token);
    r.cells.raw.textContent = r.balance ?? "…";
  }
  r.cells.allowance.textContent = r.allowance == null ? "–" : formatted(r.allowance, token);
  r.cells.allowance.title = r.allowance ?? "";
}

function flash(td) {
  td.classList.remove("flash");
  void td.offsetWidth; // restart the animation when the same cell changes again
  td.classList.add("flash");
  clearTimeout(flashTimers.get(td));
  flashTimers.set(td, setTimeout(() => td.classList.remove("flash"), FLASH_MS));
}

function setBalance(token, value, error) {
  const r = row(token);
  // A first value is not a change; only a value replacing a shown one flashes.
  const shown = r.balance !== null || r.error !== null;
  const changed = shown && (r.balance !== value || r.error !== error);
  r.balance = value;
  r.error = error;
  renderToken(token);
  if (changed) {
    flash(r.cells.amount);
    flash(r.cells.raw);
  }
}

function setAllowance(token, value) {
  const r = row(token);
  const changed = r.allowance !== null && r.allowance !== value;
  r.allowance = value;
  renderToken(token);
  if (changed) flash(r.cells.allowance);
}

function setBlock(n) {
  if (Number.isInteger(n)) $("block").textContent = "at block " + n;
}

function log(block, text) {
  const li = document.createElement("li");
  const b = document.createElement("span");
  b.className = "block";
  b.textContent = "#" + block;
  li.append(b, " " + text);
  const ol = $("log");
  ol.prepend(li);
  while (ol.children.length > LOG_LINES) ol.lastElementChild.remove();
}

function label(token) {
  const m = meta.get(token);
  return (m && m.symbol) || short(token);
}

function onSnapshot(data) {
  addMeta(data.tokens);
  const errors = data.errors || {};
  for (const [token, value] of Object.entries(data.balances || {})) setBalance(token, value, null);
  for (const [token, reason] of Object.entries(errors)) setBalance(token, null, String(reason));
  for (const [token, bySpender] of Object.entries(data.allowances || {})) {
    const first = spender && spender in bySpender ? spender : Object.keys(bySpender)[0];
    if (first !== undefined) setAllowance(token, bySpender[first]);
  }
  setBlock(data.blockNumber);
  log(data.blockNumber, "snapshot: " + Object.keys(data.balances || {}).length + " balances");
}

function onBalance(data) {
  setBalance(data.address, data.balance, null);
  setBlock(data.blockNumber);
  const amount = formatted(data.balance, data.address);
  log(data.blockNumber, label(data.address) + " balance " + (amount === "–" ? data.balance : amount) +
    (data.txHash ? " (tx " + short(data.txHash) + ")" : ""));
}

function onAllowance(data) {
  if (spender && data.spender !== spender) return;
  setAllowance(data.address, data.allowance);
  setBlock(data.blockNumber);
  log(data.blockNumber, label(data.address) + " allowance for " + short(data.spender) + " " +
    formatted(data.allowance, data.address));
}

function parse(event) {
  try {
    return JSON.parse(event.data);
  } catch {
    showError("unreadable " + event.type + " event");
    return null;
  }
}

function on(es, name, handler) {
  es.addEventListener(name, (event) => {
    const data = parse(event);
    if (data) handler(data);
  });
}

function connect(chain, owner, again) {
  if (source) source.close();
  const es = new EventSource(base + "sse/" + encodeURIComponent(chain) + "/balances/" + encodeURIComponent(owner));
  source = es;
  openedAt = Date.now();
  lastPing = 0;
  setStatus(again ? "reconnecting" : "connecting");
  es.addEventListener("open", () => {
    openedAt = Date.now();
    setStatus("live");
  });
  on(es, "all_balances", (d) => { setStatus("live"); onSnapshot(d); });
  on(es, "balance_update", onBalance);
  on(es, "allowance_update", onAllowance);
  on(es, "resync", (d) => log("–", "resync (" + d.code + "): a fresh snapshot follows"));
  es.addEventListener("ping", () => {
    const now = Date.now();
    if (lastPing) pingGap = Math.min(pingGap, now - lastPing);
    lastPing = now;
    setStatus("live");
  });
  // A server `error` event carries data and ends the stream; a connection error has none and
  // EventSource retries by itself unless the answer was an HTTP error (then it is CLOSED).
  es.addEventListener("error", (event) => {
    if (event.data) {
      const d = parse(event);
      if (d) showError("stream error " + d.code + ": " + d.message);
      es.close();
      setStatus("closed");
    } else if (es.readyState === EventSource.CLOSED) {
      showError("the stream could not be opened; press Start to try again");
      setStatus("closed");
    } else {
      setStatus("reconnecting");
    }
  });
  clearInterval(watchdog);
  // No ping for two ping periods: the connection is dead without EventSource noticing. A new
  // EventSource starts with a fresh snapshot, so nothing is lost by replacing it.
  watchdog = setInterval(() => {
    if (source !== es || es.readyState !== EventSource.OPEN) return;
    if (Date.now() - Math.max(lastPing, openedAt) > 2 * pingGap) {
      log("–", "no ping for " + Math.round((2 * pingGap) / 1000) + " s: reconnecting");
      connect(chain, owner, true);
    }
  }, 1000);
}

async function start(event) {
  event.preventDefault();
  showError("");
  if (source) source.close();
  clearInterval(watchdog);
  rows.clear();
  meta.clear();
  $("balances").tBodies[0].replaceChildren();
  $("log").replaceChildren();
  $("block").textContent = "";
  const chain = $("chain").value.trim();
  const owner = $("owner").value.trim();
  const body = {};
  const customTokens = list($("tokens").value);
  const tokensListsUrls = list($("lists").value);
  if (customTokens.length) body.customTokens = customTokens;
  if (tokensListsUrls.length) body.tokensListsUrls = tokensListsUrls;
  setStatus("connecting");
  let reply;
  try {
    const response = await fetch(base + encodeURIComponent(chain) + "/sessions/" + encodeURIComponent(owner), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    reply = await response.json().catch(() => ({}));
    if (!response.ok) {
      showError("session failed (HTTP " + response.status + ") " + (reply.code || "") + ": " + (reply.message || ""));
      setStatus("idle");
      return;
    }
  } catch (e) {
    showError("session failed: " + e.message);
    setStatus("idle");
    return;
  }
  spender = Array.isArray(reply.spenders) && reply.spenders.length ? reply.spenders[0] : null;
  $("spender").textContent = spender ? "(" + short(spender) + ")" : "";
  addMeta(reply.metadata);
  for (const token of Array.isArray(reply.tokens) ? reply.tokens : []) row(token);
  for (const l of Array.isArray(reply.lists) ? reply.lists : []) {
    log(reply.blockNumber, "token list " + String(l.name || l.url) + ": " + Number(l.tokens) + " tokens");
  }
  connect(chain, owner);
}

prefill();
$("session").addEventListener("submit", start);
