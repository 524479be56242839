// live-balances demo page: follows a wallet with the TypeScript client (clients/ts, bundled
// into the global `LiveBalances` ahead of this file) and renders what it shows. Tabs of the
// page share one stream: the client elects a leader tab that holds it. Several wallets
// (`0x…` on the chain given, or `chainId:0x…`, one per line) are followed on one stream of
// every pair (`watchManyBalances`), each row naming its wallet, shared the same way by the
// tabs following the same wallets. While no stream can be had, the client polls the batch
// balance route itself (`fallback: { pollEveryMs }`) and its readings arrive as events.
// Everything that comes from a token list or a chain (symbols, names) is attacker-controlled,
// so the DOM is only ever built with createElement/textContent, never from HTML strings.
"use strict";

const DEFAULT_CHAIN = "31337";
// anvil's second default account, the wallet `make dev` seeds and moves tokens for.
const DEFAULT_OWNER = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8";
const NATIVE = "0xeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee";
const MAX_UINT256 = (1n << 256n) - 1n;
const LOG_LINES = 20;
const FLASH_MS = 1000;
const POLL_MS = 10000;
const MAX_SYMBOL_CHARS = 64;

// The API lives where the page does: strip the page's own name from the path, so the same
// page works under `…/lambda-url/api/demo` locally and at a deployed function URL's root.
const client = LiveBalances.createClient({
  baseUrl: location.pathname.replace(/demo$/, "").replace(/\/?$/, "/"),
});

const $ = (id) => document.getElementById(id);
const rows = new Map(); // row key (see `rowKey`) -> { tr, cells, symbol, token, wallet, balance, allowance, error }
const meta = new Map(); // token -> { symbol, name, decimals }
const flashTimers = new WeakMap();
let spender = null;
let watch = null;

function list(text) {
  return text.split(/[\s,]+/).map((s) => s.trim()).filter((s) => s.length > 0);
}

/** The pair an event or session is about (`null` when one wallet is followed). */
function pairOf(x) {
  return x && x.pair ? x.pair : null;
}

function pairKey(pair) {
  return pair.chainId + ":" + pair.owner.toLowerCase();
}

/** One row per token, and per wallet when several are followed. */
function rowKey(pair, token) {
  return pair ? pairKey(pair) + "/" + token : token;
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

function setRole(role) {
  const el = $("role");
  el.dataset.role = role;
  el.textContent = role === "leader" ? "this tab holds the stream" : role === "follower" ? "stream shared by another tab" : "";
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
function addMeta(entries) {
  for (const [token, m] of entries) {
    if (!m || typeof m !== "object") continue;
    const decimals = Number.isInteger(m.decimals) && m.decimals >= 0 && m.decimals <= 255 ? m.decimals : null;
    meta.set(token.toLowerCase(), {
      symbol: typeof m.symbol === "string" ? m.symbol : null,
      name: typeof m.name === "string" ? m.name : null,
      decimals,
    });
  }
  for (const key of rows.keys()) renderToken(key);
}

/** `amount` (bigint) with `decimals` applied, exactly, and thousands separated. */
function formatAmount(amount, decimals) {
  const [whole, fraction] = LiveBalances.formatUnits(amount, decimals).split(".");
  return whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",") + (fraction ? "." + fraction : "");
}

function formatted(amount, token) {
  const m = meta.get(token);
  if (amount == null || !m || m.decimals == null) return "–";
  if (amount === MAX_UINT256) return "unlimited";
  return formatAmount(amount, m.decimals);
}

function row(pair, token) {
  const key = rowKey(pair, token);
  let r = rows.get(key);
  if (r) return r;
  const tr = document.createElement("tr");
  tr.dataset.token = token;
  if (pair) tr.dataset.wallet = pairKey(pair);
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
  if (pair) {
    const wallet = document.createElement("span");
    wallet.className = "wallet";
    wallet.textContent = pair.chainId + ":" + short(pair.owner);
    wallet.title = pairKey(pair);
    cells.token.append(wallet);
  }
  r = { tr, cells, symbol, token, wallet: pair ? pairKey(pair) : null, balance: null, allowance: null, error: null };
  rows.set(key, r);
  const body = $("balances").tBodies[0];
  // The native currency first, the rest in the order they arrive.
  if (token === NATIVE) body.prepend(tr);
  else body.append(tr);
  renderToken(key);
  return r;
}

function renderToken(key) {
  const r = rows.get(key);
  const token = r.token;
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
    r.cells.raw.textContent = r.balance == null ? "…" : r.balance.toString();
  }
  r.cells.allowance.textContent = r.allowance == null ? "–" : formatted(r.allowance, token);
  r.cells.allowance.title = r.allowance == null ? "" : r.allowance.toString();
}

function flash(td) {
  td.classList.remove("flash");
  void td.offsetWidth; // restart the animation when the same cell changes again
  td.classList.add("flash");
  clearTimeout(flashTimers.get(td));
  flashTimers.set(td, setTimeout(() => td.classList.remove("flash"), FLASH_MS));
}

function setBalance(pair, token, value, error) {
  const r = row(pair, token);
  // A first value is not a change; only a value replacing a shown one flashes.
  const shown = r.balance !== null || r.error !== null;
  const changed = shown && (r.balance !== value || r.error !== error);
  r.balance = value;
  r.error = error;
  renderToken(rowKey(pair, token));
  if (changed) {
    flash(r.cells.amount);
    flash(r.cells.raw);
  }
}

function setAllowance(pair, token, value) {
  const r = row(pair, token);
  const changed = r.allowance !== null && r.allowance !== value;
  r.allowance = value;
  renderToken(rowKey(pair, token));
  if (changed) flash(r.cells.allowance);
}

function setBlock(n) {
  if (Number.isInteger(n)) $("block").textContent = "at block " + n;
}

function log(block, text, pair) {
  if (pair) text = pair.chainId + ":" + short(pair.owner) + " " + text;
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

function onSnapshot(e) {
  const pair = pairOf(e);
  addMeta(e.tokens);
  for (const [token, value] of e.balances) setBalance(pair, token, value, null);
  for (const [token, reason] of e.errors) setBalance(pair, token, null, reason);
  for (const [token, bySpender] of e.allowances) {
    const first = spender && bySpender.has(spender) ? spender : bySpender.keys().next().value;
    if (first !== undefined) setAllowance(pair, token, bySpender.get(first));
  }
  setBlock(e.blockNumber);
  log(e.blockNumber, (e.polled ? "polled " : "") + "snapshot: " + e.balances.size + " balances", pair);
}

function onBalance(e) {
  setBalance(pairOf(e), e.address, e.balance, null);
  setBlock(e.blockNumber);
  const amount = formatted(e.balance, e.address);
  log(e.blockNumber, label(e.address) + " balance " + (amount === "–" ? e.balance.toString() : amount) +
    (e.txHash ? " (tx " + short(e.txHash) + ")" : "") + (e.polled ? " (polled)" : ""), pairOf(e));
}

function onAllowance(e) {
  if (spender && e.spender !== spender) return;
  setAllowance(pairOf(e), e.address, e.allowance);
  setBlock(e.blockNumber);
  log(e.blockNumber, label(e.address) + " allowance for " + short(e.spender) + " " + formatted(e.allowance, e.address), pairOf(e));
}

function onEvent(e) {
  switch (e.type) {
    case "all_balances": return onSnapshot(e);
    case "balance_update": return onBalance(e);
    case "allowance_update": return onAllowance(e);
    case "resync": return log("–", "resync (" + e.code + "): a fresh snapshot follows", pairOf(e));
    case "error": {
      // On a stream of several wallets an error names its wallet, and the others go on.
      const pair = pairOf(e);
      return showError("stream error " + (pair ? pairKey(pair) + " " : "") + e.code + ": " + e.message);
    }
  }
}

function onSession(reply, pair) {
  spender = reply.spenders.length ? reply.spenders[0] : null;
  $("spender").textContent = spender ? "(" + short(spender) + ")" : "";
  addMeta(Object.entries(reply.metadata));
  for (const token of reply.tokens) row(pair || null, token);
  for (const l of reply.lists || []) {
    log(reply.blockNumber, "token list " + String(l.name || l.url) + ": " + Number(l.tokens) + " tokens");
  }
}

function onError(error) {
  // A session request refused for its content will not succeed by retrying: stop there.
  if (error instanceof LiveBalances.ApiError && error.status >= 400 && error.status < 500 && error.status !== 429) {
    showError("session failed (HTTP " + error.status + ") " + error.code + ": " + error.message);
    if (watch) watch.close();
    setStatus("idle");
    setRole("");
    return;
  }
  showError(String(error && error.message ? error.message : error));
}

/** The indicator, and a log line when the client's own polling starts or stops. */
function onStatus(state) {
  const was = $("status").dataset.state;
  setStatus(state);
  if (state === "fallback") log("–", "no live stream: polling every " + POLL_MS / 1000 + " s");
  else if (was === "fallback" && state === "live") log("–", "stream back: polling stopped");
}

function start(event) {
  event.preventDefault();
  showError("");
  if (watch) watch.close();
  rows.clear();
  meta.clear();
  $("balances").tBodies[0].replaceChildren();
  $("log").replaceChildren();
  $("block").textContent = "";
  const chain = Number($("chain").value.trim());
  const wallets = list($("owner").value);
  const owner = wallets[0] || "";
  const session = {};
  const customTokens = list($("tokens").value);
  const tokensListsUrls = list($("lists").value);
  if (customTokens.length) session.customTokens = customTokens;
  if (tokensListsUrls.length) session.tokensListsUrls = tokensListsUrls;
  setStatus("connecting");
  if (wallets.length > 1) {
    // Several wallets: one stream of every (chain, wallet) pair, the same session for each,
    // shared by the tabs following the same wallets.
    const pairs = wallets.map((w) => {
      const [c, o] = w.includes(":") ? w.split(":") : [String(chain), w];
      return { chainId: Number(c), owner: o.toLowerCase(), session };
    });
    watch = client.watchManyBalances(pairs, {
      onSessions: (results) => {
        for (const r of results) if (r.session) onSession(r.session, { chainId: r.chainId, owner: r.owner });
      },
      onEvent,
      onStatus,
      onRole: setRole,
      onError,
      fallback: { pollEveryMs: POLL_MS },
    });
    setRole(watch.role);
    return;
  }
  watch = client.watchBalances({
    chainId: chain,
    owner: owner.toLowerCase(),
    session,
    onSession,
    onEvent,
    onStatus,
    onRole: setRole,
    onError,
    fallback: { pollEveryMs: POLL_MS },
  });
  setRole(watch.role);
}

prefill();
$("session").addEventListener("submit", start);
