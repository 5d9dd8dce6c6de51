/* Toychain live dashboard.

   How it works: GET /dashboard/config (from whoever served this page) names the
   nodes to watch. For each node the page opens its /events WebSocket and calls
   its JSON-RPC (POST /rpc, batched): exactly what any other client can do.

   - Events (block_connected, tx_accepted, tx_rejected, ...) update the state at
     once; a refresh of each node (getblockchaininfo, getrawmempool,
     getpeerinfo, getnetworkinfo) every few seconds corrects anything missed.
   - A node whose event socket closes, or whose RPC does not answer, is down;
     the page keeps trying to reconnect.
   - Blocks from all nodes go into one tree (hash -> block). The active chain
     is the best tip's ancestry, and the best tip is the one with the most
     chain work, as a node chooses (never the tallest: on devnet, which
     retargets, a taller branch can hold less work); any other block is a
     stale branch. A reorg is the node's own "reorg" event, naming the blocks
     it left and joined. Which nodes have a transaction is derived, not
     tracked: in a node's mempool, or in a block of that node's chain (then
     with its confirmations).
   - A refused transaction opens its trace: the node's explaintransaction of
     the bytes it kept of it (getrecentrejects lists them as "hex"), every
     check with the values compared, computed now against that node's current
     coins. The try-it panel shows the trace of what it sent.
   - Balances are sums of coins from listunspent (minconf 0: pending included,
     coins spent by pending txs left out), so they can never be negative. A node
     answers at most 1,000 coins per call: the page asks page after page.

   Everything is built with DOM and SVG calls and textContent: no HTML strings,
   so nothing a node says can turn into markup. Amounts are integers of units. */
"use strict";

const WINDOW = 9;          // block heights drawn (6, so bigger, in the blocks view or on a narrow screen)
const KEEP = 40;           // heights of blocks kept in memory
const RECENT_TXS = 10;
const MAX_TXS = 60;
const MAX_REFUSALS = 40;
const MERGE_SECONDS = 20;  // one refusal row for the same tx/block refused by several nodes
const POLL_MS = 4000;
const RECONNECT_MS = 2000;
const RPC_TIMEOUT_MS = 6000;
const PAGE = 1000;         // items per listunspent call: the most a node answers
const ADDRESSES = 500;     // addresses one listunspent call may name
const NEW_MS = 4000;       // how long a block or refusal is highlighted as new
const SVGNS = "http://www.w3.org/2000/svg";
const UNIT = 100000000;

const S = {
  config: null,
  nodes: [],               // {name, url, up, wsOpen, height, tip, mempool: Set, peers, listen, ...}
  blocks: new Map(),       // hash -> {hash, height, prev, time, miner, txids, chainwork, seenAt}
  txs: new Map(),          // txid -> {txid, first, fee, size, arrivals: Map, blocks: Set, dropped: Map, info}
  refusals: [],            // newest first
  reorgs: [],              // newest first: {time, node, fork, dropped: [hash], now: [hash]}
  trace: null,             // the refusal whose trace is open: {key, ...}
  accounts: [],            // {name, address, demo}
  names: new Map(),        // address -> demo account name
  coins: null,             // address -> [coin rows], from the balance node
  balanceNode: null,
  balanceError: null,
  expanded: new Set(),     // addresses whose coins are shown
};

// -- small helpers ----------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  setAttrs(node, attrs);
  node.append(...children.filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

function sv(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVGNS, tag);
  setAttrs(node, attrs);
  node.append(...children.filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

function setAttrs(node, attrs) {
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.setAttribute("class", value);
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
}

function toy(units) {
  const sign = units < 0 ? "-" : "";
  const abs = Math.abs(units);
  return `${sign}${Math.floor(abs / UNIT)}.${String(abs % UNIT).padStart(8, "0")}`;
}

const short = (hash, n = 10) => (hash ? hash.slice(0, n) + "…" : "?");
const who = (address) => (address ? S.names.get(address) || short(address, 12) : "?");
const clock = (seconds) => new Date(seconds * 1000).toLocaleTimeString([], { hour12: false });
const label = (name, n = 9) => (name.length <= n ? name : name.slice(0, n - 1) + "…");

function hostPort(url) {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || (u.protocol === "https:" ? 443 : 80)}`;
  } catch {
    return url;
  }
}

// The node a "host:port" (a peer address, or a refusal's source) belongs to.
function nodeAt(addr) {
  return S.nodes.find((n) => n.listen === addr || hostPort(n.url) === addr) || null;
}

// -- JSON-RPC --------------------------------------------------------------------------------------

class RpcError extends Error {
  constructor(error) {
    super(error.message || "RPC error");
    this.code = error.code;
    this.reason = error.data && error.data.reject_reason;
  }
}

async function postJSON(url, body) {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), RPC_TIMEOUT_MS);
  try {
    const response = await fetch(url, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body), signal: abort.signal,
    });
    return await response.json();
  } finally {
    clearTimeout(timer);
  }
}

// calls: [[method, params], ...] -> one HTTP request; returns the replies in order.
async function batch(node, calls) {
  const body = calls.map(([method, params], id) => ({ jsonrpc: "2.0", id, method, params: params || [] }));
  const replies = await postJSON(node.url + "/rpc", body);
  if (!Array.isArray(replies)) throw new RpcError(replies.error || { message: "bad reply" });
  const byId = new Map(replies.map((r) => [r.id, r]));
  return calls.map((_, id) => byId.get(id));
}

function value(reply) {
  if (!reply) throw new Error("no reply");
  if (reply.error) throw new RpcError(reply.error);
  return reply.result;
}

async function rpc(node, method, params = []) {
  return value((await batch(node, [[method, params]]))[0]);
}

// Every item of a paged method (listunspent): each page asked after the last item of the one before.
async function allPages(node, method, params) {
  const items = [];
  let options = { limit: PAGE };
  for (;;) {
    const page = await rpc(node, method, [...params, options]);
    items.push(...page);
    if (page.length < PAGE) return items;
    options = { limit: PAGE, after: page[page.length - 1] };
  }
}

// -- nodes: events and refreshes -------------------------------------------------------------

function connect(node) {
  let ws;
  try {
    ws = new WebSocket(node.url.replace(/^http/, "ws") + "/events");
  } catch {
    setTimeout(() => connect(node), RECONNECT_MS);
    return;
  }
  ws.onopen = () => {
    node.wsOpen = true;
    refreshNode(node);
  };
  ws.onmessage = (message) => {
    let event;
    try {
      event = JSON.parse(message.data);
    } catch {
      return;
    }
    onEvent(node, event);
  };
  ws.onclose = () => {
    node.wsOpen = false;
    if (node.up !== false) {
      node.up = false;
      node.peers = [];
      changed();
      scheduleBalances();
    }
    setTimeout(() => connect(node), RECONNECT_MS);
  };
}

async function refreshNode(node) {
  if (node.refreshing) {
    node.refreshAgain = true;
    return;
  }
  node.refreshing = true;
  try {
    do {
      node.refreshAgain = false;
      const calls = [["getblockchaininfo"], ["getrawmempool"], ["getpeerinfo"], ["getnetworkinfo"]];
      const firstTime = !node.rejectsLoaded;
      if (firstTime) calls.push(["getrecentrejects"]);
      const replies = await batch(node, calls);
      const [info, pool, peers, net] = replies.slice(0, 4).map(value);
      node.height = info.height;
      node.tip = info.best_block_hash;
      node.mempool = new Set(pool);
      node.peers = peers;
      node.listen = net.listen;
      for (const txid of pool) noteTx(txid);
      if (firstTime) {
        node.rejectsLoaded = true;
        for (const r of value(replies[4]).reverse()) addRefusal(node, r, false);  // oldest first
      }
      await loadChain(node, info.best_block_hash);
      node.up = node.wsOpen;
    } while (node.refreshAgain);
  } catch (error) {
    node.up = false;
    node.peers = [];
    node.error = String(error.message || error);
  } finally {
    node.refreshing = false;
    changed();
  }
}

// Fetch the blocks from `hash` back to the first one already known (at most a window).
async function loadChain(node, hash) {
  const fetched = [];
  for (let h = hash; h && !S.blocks.has(h) && fetched.length < WINDOW + 2;) {
    const block = await rpc(node, "getblock", [h]);
    fetched.push(block);
    if (block.height === 0) break;
    h = block.prev_hash;
  }
  if (!fetched.length) return;
  // The miner is whoever the coinbase (each block's first tx) pays.
  const raws = await batch(node, fetched.map((b) => ["getrawtransaction", [b.tx[0]]]));
  const decoded = await batch(node, raws.map((r) => ["decoderawtransaction", [value(r).hex]]));
  fetched.forEach((b, i) => {
    const coinbase = value(decoded[i]);
    addBlock({ hash: b.hash, height: b.height, prev: b.prev_hash, time: b.time, txids: b.tx,
               chainwork: b.chainwork, miner: coinbase.vout.length ? coinbase.vout[0].address : null }, false);
  });
}

function onEvent(node, e) {
  switch (e.event) {
    case "block_connected": {
      addBlock({ hash: e.hash, height: e.height, prev: e.prev_hash, time: e.time, miner: e.miner,
                 txids: e.txids, chainwork: e.chainwork }, true);
      node.tip = e.hash;
      node.height = e.height;
      for (const txid of e.txids) node.mempool.delete(txid);
      if (e.height > 0 && !S.blocks.has(e.prev_hash)) loadChain(node, e.prev_hash).then(changed, () => {});
      scheduleBalances();
      break;
    }
    case "block_disconnected": {
      const block = S.blocks.get(e.hash);
      if (block) {
        node.tip = block.prev;
        node.height = block.height - 1;
      }
      scheduleRefresh(node);
      scheduleBalances();
      break;
    }
    case "reorg":  // the node's own account: the blocks it left (old tip first) and joined (fork first)
      S.reorgs.unshift({ time: e.time, node: node.name, fork: e.fork, dropped: e.disconnected, now: e.connected });
      S.reorgs.length = Math.min(S.reorgs.length, 5);
      break;
    case "tx_accepted": {
      const tx = noteTx(e.txid);
      tx.fee = e.fee;
      tx.size = e.size;
      if (!tx.arrivals.has(node.name)) tx.arrivals.set(node.name, { ms: Date.now(), source: e.source });
      tx.dropped.delete(node.name);
      node.mempool.add(e.txid);
      scheduleBalances();
      break;
    }
    case "tx_removed": {
      node.mempool.delete(e.txid);
      const tx = S.txs.get(e.txid);
      if (tx && e.reason !== "block") tx.dropped.set(node.name, e.reason);
      scheduleBalances();
      break;
    }
    case "tx_rejected":
    case "block_rejected":
      addRefusal(node, { ...e, kind: e.event === "tx_rejected" ? "tx" : "block" }, true);
      break;
    case "peer_connected":
    case "peer_disconnected":
      scheduleRefresh(node);
      break;
    default:
      return;
  }
  changed();
}

const timers = new Map();
function debounce(key, ms, fn) {
  if (timers.has(key)) return;
  timers.set(key, setTimeout(() => {
    timers.delete(key);
    fn();
  }, ms));
}
const scheduleRefresh = (node) => debounce("refresh:" + node.name, 300, () => refreshNode(node));
const scheduleBalances = () => debounce("balances", 400, refreshBalances);

// -- the model: blocks, transactions, refusals --------------------------------------------------

function addBlock(block, live) {
  const known = S.blocks.get(block.hash);
  if (known) {
    if (!known.miner && block.miner) known.miner = block.miner;
    return;
  }
  block.seenAt = live ? Date.now() : 0;
  if (live) setTimeout(changed, NEW_MS + 100);  // the "new" highlight fades
  S.blocks.set(block.hash, block);
  block.txids.slice(1).forEach((txid) => noteTx(txid, live ? Date.now() : block.time * 1000).blocks.add(block.hash));
  const top = Math.max(...[...S.blocks.values()].map((b) => b.height));
  for (const [hash, b] of S.blocks) if (b.height < top - KEEP) S.blocks.delete(hash);
  // a tx whose blocks are all forgotten, and in no mempool, is no longer recent
  for (const [txid, tx] of S.txs) {
    if (tx.blocks.size && ![...tx.blocks].some((h) => S.blocks.has(h)) && !S.nodes.some((n) => n.mempool.has(txid))) {
      S.txs.delete(txid);
    }
  }
}

function noteTx(txid, first = Date.now()) {
  let tx = S.txs.get(txid);
  if (!tx) {
    tx = { txid, first, fee: null, size: null, arrivals: new Map(), blocks: new Set(), dropped: new Map(),
           info: null, loading: false, failures: 0 };
    S.txs.set(txid, tx);
    if (S.txs.size > MAX_TXS) {
      const oldest = [...S.txs.values()].sort((a, b) => a.first - b.first)[0];
      S.txs.delete(oldest.txid);
    }
  }
  return tx;
}

// Who paid whom: decoded once per tx, from a node that has it.
async function loadTxInfo(tx) {
  const node = S.nodes.find((n) => n.up && (n.mempool.has(tx.txid) || tx.blocks.size));
  if (!node || tx.loading || tx.info || tx.failures > 3) return;
  tx.loading = true;
  try {
    const raw = await rpc(node, "getrawtransaction", [tx.txid]);
    const decoded = await rpc(node, "decoderawtransaction", [raw.hex]);
    const senders = [...new Set(decoded.vin.map((i) => i.address))];
    const paid = decoded.vout.filter((o) => !senders.includes(o.address));
    const shown = paid.length ? paid : decoded.vout;
    tx.info = { from: senders, to: [...new Set(shown.map((o) => o.address))],
                amount: shown.reduce((sum, o) => sum + o.amount, 0) };
    changed();
  } catch {
    tx.failures += 1;
  } finally {
    tx.loading = false;
  }
}

function addRefusal(node, r, live) {
  const key = `${r.kind}|${r.id}|${r.reject_reason}`;
  const entry = S.refusals.find((x) => x.key === key && Math.abs(x.time - r.time) <= MERGE_SECONDS);
  if (entry) {
    if (entry.where.has(node.name)) {
      if (live) {
        entry.count += 1;
        entry.time = r.time;
        entry.seenAt = Date.now();
      }
    } else {
      entry.where.set(node.name, r.source);
    }
  } else {
    S.refusals.unshift({ key, time: r.time, kind: r.kind, id: r.id, reason: r.reject_reason,
                      message: r.message, where: new Map([[node.name, r.source]]), count: 1,
                      seenAt: live ? Date.now() : 0 });
  }
  if (live) setTimeout(changed, NEW_MS + 100);
  S.refusals.sort((a, b) => b.time - a.time);  // stable: the latest of one second stays first
  S.refusals.length = Math.min(S.refusals.length, MAX_REFUSALS);
}

// The chain of a tip: hash -> block, through the blocks we know.
function chainOf(tip) {
  const chain = new Map();
  for (let b = S.blocks.get(tip); b && !chain.has(b.hash); b = S.blocks.get(b.prev)) chain.set(b.hash, b);
  return chain;
}

// Which of two blocks has more chain work (64 hex digits each, so text order is number order): > 0 if a.
function moreWork(a, b) {
  const [x, y] = [a.chainwork || "", b.chainwork || ""];
  return x > y ? 1 : x < y ? -1 : 0;
}

// The best tip as a node chooses it: the most chain work, never the most height; between
// equal work, the tip of the most nodes, then the first seen. Among the up nodes' tips, else any block.
function bestTip() {
  const tips = S.nodes.filter((n) => n.up && S.blocks.has(n.tip)).map((n) => S.blocks.get(n.tip));
  const count = (b) => tips.filter((t) => t === b).length;
  const candidates = tips.length ? tips : [...S.blocks.values()];
  const best = candidates.sort((a, b) => moreWork(b, a) || count(b) - count(a) || a.seenAt - b.seenAt)[0];
  return best ? best.hash : null;
}

// -- balances ----------------------------------------------------------------------------------

let balanceCalls = 0;
async function refreshBalances() {
  const call = ++balanceCalls;  // an older answer arriving late must not overwrite a newer one
  const node = S.nodes.find((n) => n.up) || null;
  S.balanceNode = node && node.name;
  if (!node) {
    S.balanceError = "no node is up";
    changed();
    return;
  }
  try {
    const addresses = S.accounts.map((a) => a.address);
    const rows = [];
    for (let i = 0; i < addresses.length; i += ADDRESSES) {
      rows.push(...await allPages(node, "listunspent", [addresses.slice(i, i + ADDRESSES), 0]));
    }
    if (call !== balanceCalls) return;
    const coins = new Map(S.accounts.map((a) => [a.address, []]));
    for (const row of rows) if (coins.has(row.address)) coins.get(row.address).push(row);
    S.coins = coins;
    S.balanceError = null;
  } catch (error) {
    if (call === balanceCalls) S.balanceError = error.message;
  }
  changed();
}

function sums(coins) {
  const total = { all: 0, spendable: 0, immature: 0, pending: 0 };
  for (const c of coins) {
    total.all += c.amount;
    if (c.confirmations === 0) total.pending += c.amount;
    else if (c.mature) total.spendable += c.amount;
    else total.immature += c.amount;
  }
  return total;
}

const WATCHED_KEY = "toychain.watched";
function loadWatched() {
  try {
    return JSON.parse(localStorage.getItem(WATCHED_KEY) || "[]").filter((a) => typeof a === "string");
  } catch {
    return [];
  }
}
function saveWatched() {
  const added = S.accounts.filter((a) => !a.demo).map((a) => a.address);
  try {
    localStorage.setItem(WATCHED_KEY, JSON.stringify(added));
  } catch { /* private mode: not kept */ }
}

async function addWatched(event) {
  event.preventDefault();
  const form = event.target;
  const error = document.getElementById("add-address-error");
  const address = form.address.value.trim();
  error.textContent = "";
  if (!address) return;
  if (S.accounts.some((a) => a.address === address)) {
    error.textContent = "already shown";
    return;
  }
  const node = S.nodes.find((n) => n.up);
  if (!node) {
    error.textContent = "no node is up to ask";
    return;
  }
  try {
    await rpc(node, "listunspent", [[address], 0, { limit: 1 }]);  // the node checks the address (a typo is refused)
  } catch (e) {
    error.textContent = e.message;
    return;
  }
  S.accounts.push({ name: null, address, demo: false });
  saveWatched();
  form.address.value = "";
  refreshBalances();
}

// -- rendering -----------------------------------------------------------------------------------

let renderPending = false;
function changed() {
  if (renderPending) return;
  renderPending = true;
  setTimeout(() => {
    renderPending = false;
    render();
  }, 60);
}

function render() {
  const chains = new Map(S.nodes.map((n) => [n.name, chainOf(n.tip)]));
  renderSummary();
  renderNetwork();
  renderBlocks();
  renderTxs(chains);
  renderRefusals();
  renderBalances();
}

function status(node) {
  return node.up === true ? "up" : node.up === false ? "down" : "unknown";
}

function renderSummary() {
  const up = S.nodes.filter((n) => n.up).length;
  const heights = S.nodes.filter((n) => n.up).map((n) => n.height);
  const pending = new Set(S.nodes.filter((n) => n.up).flatMap((n) => [...n.mempool])).size;
  const summary = document.getElementById("summary");
  summary.dataset.up = up;
  summary.textContent = `${up} of ${S.nodes.length} node${S.nodes.length === 1 ? "" : "s"} up` +
    (heights.length ? ` · height ${Math.max(...heights)}` : "") +
    ` · ${pending} tx pending · ${S.refusals.length} refusal${S.refusals.length === 1 ? "" : "s"}`;
}

function renderNetwork() {
  // Watched nodes on a circle, peers we do not watch (grey) on a wider one; the
  // viewBox is then fitted around them, so the drawing fills its box.
  const n = S.nodes.length;
  const radius = n > 8 ? 40 : 56;
  const ring = n === 1 ? 0 : Math.max(120, (n * (2 * radius + 24)) / (2 * Math.PI));
  const pos = new Map(), extent = [];
  S.nodes.forEach((node, i) => {
    const angle = -Math.PI / 2 + (2 * Math.PI * i) / n;
    const [x, y] = [ring * Math.cos(angle), ring * Math.sin(angle)];
    pos.set(node.name, [x, y]);
    extent.push([x - radius, y - radius], [x + radius, y + radius]);
  });
  const external = [...new Set(S.nodes.filter((x) => x.up).flatMap((x) => x.peers.map((p) => p.addr)))]
    .filter((addr) => !nodeAt(addr));
  external.forEach((addr, i) => {
    const angle = Math.PI / 2 + (2 * Math.PI * (i + 0.5)) / external.length;
    const r = ring + radius + 70;
    const [x, y] = [r * Math.cos(angle), r * Math.sin(angle)];
    pos.set(addr, [x, y]);
    extent.push([x - 5.8 * addr.length, y - 16], [x + 5.8 * addr.length, y + 44]);
  });
  const edges = new Set();
  for (const node of S.nodes) {
    if (!node.up) continue;
    for (const peer of node.peers) {
      const other = nodeAt(peer.addr);
      const to = other ? other.name : peer.addr;
      if (other && !other.up) continue;
      edges.add([node.name, to].sort().join("\n"));
    }
  }
  const svg = document.getElementById("net-graph");
  const [x0, y0] = [Math.min(...extent.map((p) => p[0])) - 8, Math.min(...extent.map((p) => p[1])) - 8];
  const [x1, y1] = [Math.max(...extent.map((p) => p[0])) + 8, Math.max(...extent.map((p) => p[1])) + 8];
  svg.setAttribute("viewBox", `${x0} ${y0} ${x1 - x0} ${y1 - y0}`);
  const parts = [...edges].map((edge) => {
    const [a, b] = edge.split("\n").map((k) => pos.get(k));
    return sv("line", { class: "graph-edge", x1: a[0], y1: a[1], x2: b[0], y2: b[1] });
  });
  for (const addr of external) {
    const [x, y] = pos.get(addr);
    parts.push(sv("g", { class: "graph-node external" },
      sv("circle", { cx: x, cy: y, r: 14 }),
      sv("text", { x, y: y + 36, "text-anchor": "middle", class: "small", text: addr })));
  }
  for (const node of S.nodes) {
    const [x, y] = pos.get(node.name);
    const st = status(node);
    parts.push(sv("g", { class: `graph-node ${st}`, "data-node": node.name },
      sv("circle", { cx: x, cy: y, r: radius }),
      sv("text", { x, y: y - 4, "text-anchor": "middle", class: "big", text: label(node.name),
                   "font-size": Math.min(26, Math.floor((2 * radius - 10) / (0.62 * Math.min(node.name.length, 9)))) }),
      sv("text", { x, y: y + 24, "text-anchor": "middle", class: "small",
                   text: st === "down" ? "DOWN" : node.height !== undefined ? `#${node.height}` : "…" })));
  }
  svg.replaceChildren(...parts);

  const cards = S.nodes.map((node) => {
    const st = status(node);
    return el("article", { class: "node-card", "data-node": node.name, "data-status": st },
      el("h3", {}, el("span", { text: node.name }),
         el("span", { class: `pill ${st}`, text: st === "up" ? "UP" : st === "down" ? "DOWN" : "…" })),
      el("dl", {},
        el("dt", { text: "height" }), el("dd", { class: "height", text: node.height ?? "–" }),
        el("dt", { text: "tip" }), el("dd", { class: "mono", text: node.tip ? short(node.tip, 12) : "–" }),
        el("dt", { text: "mempool" }), el("dd", { class: "mempool",
          text: node.mempool ? `${node.mempool.size} tx` : "–" }),
        el("dt", { text: "peers" }), el("dd", { text: st === "up" ? peerNames(node) : "–" }),
        el("dt", { text: "URL" }), el("dd", { class: "mono", text: hostPort(node.url) })));
  });
  document.getElementById("node-cards").replaceChildren(...cards);
}

function peerNames(node) {
  if (!node.peers.length) return "none";
  const rank = (p) => (nodeAt(p.addr) ? S.nodes.indexOf(nodeAt(p.addr)) : S.nodes.length);
  return node.peers.slice().sort((a, b) => rank(a) - rank(b))
    .map((p) => (nodeAt(p.addr) ? nodeAt(p.addr).name : p.addr)).join(", ");
}

function renderBlocks() {
  const svg = document.getElementById("block-tree");
  const best = bestTip();
  const active = chainOf(best);
  const all = [...S.blocks.values()];
  if (!all.length) {
    svg.setAttribute("viewBox", "0 0 1240 60");
    svg.replaceChildren(sv("text", { x: 10, y: 40, class: "empty", text: "waiting for blocks…" }));
    return;
  }
  const columns = document.body.dataset.view === "blocks" || window.innerWidth < 900 ? 6 : WINDOW;
  const top = Math.max(...all.map((b) => b.height));
  const low = top - columns + 1;
  const visible = all.filter((b) => b.height >= low).sort((a, b) => a.height - b.height || a.seenAt - b.seenAt);

  // Lanes: 0 is the active chain; each stale branch gets the first lane free at its heights.
  const lane = new Map(), lanes = [{ height: Infinity }];
  for (const b of visible) {
    if (active.has(b.hash)) {
      lane.set(b.hash, 0);
      continue;
    }
    let L = lane.get(b.prev);
    if (!(L > 0 && lanes[L].hash === b.prev)) {
      L = lanes.findIndex((l, i) => i > 0 && l.height < b.height - 1);
      if (L < 0) L = lanes.push({}) - 1;
    }
    lanes[L] = { height: b.height, hash: b.hash };
    lane.set(b.hash, L);
  }
  const tipsAt = new Map();
  for (const node of S.nodes) {
    if (!node.tip || !lane.has(node.tip)) continue;
    if (!tipsAt.has(node.tip)) tipsAt.set(node.tip, []);
    tipsAt.get(node.tip).push(node);
  }
  // Each lane is as tall as a block plus the tip tags under its blocks (at most 3 rows).
  const COL = 136, BW = 120, BH = 110, TAG = 30, left = 20, MAX_TAGS = 3;
  const tagRows = (hash) => Math.min(MAX_TAGS, (tipsAt.get(hash) || []).length);
  const laneTop = [10];
  lanes.forEach((_, L) => {
    const rows = Math.max(0, ...visible.filter((b) => lane.get(b.hash) === L).map((b) => tagRows(b.hash)));
    laneTop.push(laneTop[L] + BH + 16 + rows * TAG);
  });
  const xOf = (b) => left + (b.height - low) * COL;
  const yOf = (b) => laneTop[lane.get(b.hash)];
  const W = left + columns * COL;
  const H = laneTop[lanes.length];
  const links = [], boxes = [], tags = [];
  const now = Date.now();
  for (const b of visible) {
    const x = xOf(b), y = yOf(b);
    const stale = !active.has(b.hash);
    const parent = S.blocks.get(b.prev);
    if (parent && lane.has(parent.hash)) {
      const px = xOf(parent) + BW, py = yOf(parent) + BH / 2;
      links.push(sv("path", { class: `link${stale ? " stale" : ""}`,
                              d: `M${px},${py} C${px + 12},${py} ${x - 12},${y + BH / 2} ${x},${y + BH / 2}` }));
    } else if (b.height === low && b.height > 0) {
      links.push(sv("line", { class: `link${stale ? " stale" : ""}`, x1: 0, y1: y + BH / 2, x2: x, y2: y + BH / 2 }));
    }
    const isNew = b.seenAt && now - b.seenAt < NEW_MS;
    const ntx = b.txids.length - 1;
    boxes.push(sv("g", { class: `block ${stale ? "stale" : "active"}${isNew ? " new" : ""}`,
                         "data-hash": b.hash, "data-height": b.height, "data-best": b.hash === best ? "true" : null },
      sv("title", { text: `block ${b.hash}\nheight ${b.height}\nmined by ${who(b.miner)}\n${b.txids.length} txs (with the coinbase)` +
                          (b.chainwork ? `\nchain work ${BigInt("0x" + b.chainwork)} hashes expected` : "") }),
      sv("rect", { x, y, width: BW, height: BH, rx: 10 }),
      sv("text", { x: x + 10, y: y + 28, class: "height", text: `#${b.height}` }),
      stale ? sv("text", { x: x + BW - 8, y: y + 26, "text-anchor": "end", class: "status", text: "stale" })
        : b.hash === best ? sv("text", { x: x + BW - 8, y: y + 26, "text-anchor": "end", class: "status", text: "best" }) : null,
      sv("text", { x: x + 10, y: y + 50, class: "hash mono", text: b.hash.slice(0, 10) }),
      sv("text", { x: x + 10, y: y + 76, class: "miner", text: who(b.miner) }),
      sv("text", { x: x + 10, y: y + 100, class: "ntx", text: `${ntx} tx${ntx === 1 ? "" : "s"}` })));
    const here = tipsAt.get(b.hash) || [];
    const shown = here.length > MAX_TAGS ? here.slice(0, MAX_TAGS - 1) : here;
    const labels = shown.map((n) => [n.name, status(n)]);
    if (here.length > shown.length) labels.push([`+${here.length - shown.length} more`, "up"]);
    labels.forEach(([name, st], i) => {
      const ty = y + BH + 8 + i * TAG;
      tags.push(sv("g", { class: `tip-tag ${st}`, "data-tip-of": name },
        sv("rect", { x, y: ty, width: BW, height: TAG - 4, rx: 6 }),
        sv("text", { x: x + BW / 2, y: ty + 19, "text-anchor": "middle",
                     text: (st === "down" ? "✕ " : "▲ ") + label(name, 10) })));
    });
  }
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.replaceChildren(...links, ...boxes, ...tags);

  document.getElementById("reorgs").replaceChildren(...S.reorgs.slice(0, 3).map((r) => {
    const describe = (hashes) => hashes.map((h) => {
      const b = S.blocks.get(h);
      return b ? `#${b.height} ${short(b.hash, 10)} (${who(b.miner)})` : short(h, 10);
    }).join(" → ");
    const blocks = (n) => `${n} block${n === 1 ? "" : "s"}`;
    return el("li", { "data-node": r.node, "data-fork": r.fork },
      el("b", { text: `${clock(r.time)} reorg at ${r.node}: ` }),
      `left ${blocks(r.dropped.length)}: ${describe([...r.dropped].reverse())}; ` +
      `joined the branch with more work, ${blocks(r.now.length)}: ${describe(r.now)}.`);
  }));
}

function txState(node, tx, chain) {
  if (!node.up) return { cls: "down", text: "node down" };
  if (node.mempool.has(tx.txid)) return { cls: "pool", text: "mempool" };
  for (const hash of tx.blocks) {
    if (chain.has(hash)) {
      const conf = node.height - chain.get(hash).height + 1;
      return { cls: "conf", text: `${conf} conf`, conf };
    }
  }
  if (tx.dropped.has(node.name)) return { cls: "dropped", text: `dropped (${tx.dropped.get(node.name)})` };
  return { cls: "missing", text: "—" };
}

function renderTxs(chains) {
  const recent = [...S.txs.values()].sort((a, b) => b.first - a.first).slice(0, RECENT_TXS);
  const table = document.getElementById("tx-table");
  const head = el("tr", {}, el("th", { text: "transaction" }), el("th", { class: "num", text: "fee (units)" }),
    ...S.nodes.map((n) => el("th", { text: n.name })), el("th", { text: "status" }));
  if (!recent.length) {
    table.replaceChildren(el("thead", {}, head), el("tbody", {}, el("tr", {},
      el("td", { colspan: S.nodes.length + 3, class: "empty", text: "no transactions yet: send one from “Try it” or a wallet" }))));
    return;
  }
  const rows = recent.map((tx) => {
    if (!tx.info) loadTxInfo(tx);
    const states = S.nodes.map((n) => txState(n, tx, chains.get(n.name)));
    const confs = states.filter((s) => s.cls === "conf").map((s) => s.conf);
    const have = states.filter((s) => s.cls === "pool" || s.cls === "conf").length;
    const up = S.nodes.filter((n) => n.up).length;
    const summary = confs.length ? `confirmed (${Math.max(...confs)})`
      : have ? `pending at ${have} of ${up}` : tx.dropped.size ? "dropped" : "not seen";
    const first = Math.min(...[...tx.arrivals.values()].map((a) => a.ms));
    const info = tx.info;
    return el("tr", { "data-txid": tx.txid, "data-status": confs.length ? "confirmed" : have ? "pending" : "other" },
      el("td", {},
        el("span", { class: "txid", title: tx.txid, text: short(tx.txid, 10) }),
        info ? el("span", { class: "sub", text: `${info.from.map(who).join(", ")} → ${info.to.map(who).join(", ")}: ${toy(info.amount)} TOY` })
             : null),
      el("td", { class: "num", text: tx.fee === null ? "–" : `${tx.fee}` }),
      ...S.nodes.map((n, i) => {
        const s = states[i], arrival = tx.arrivals.get(n.name);
        const delay = arrival && Number.isFinite(first) && s.cls === "pool" ? `+${((arrival.ms - first) / 1000).toFixed(2)} s` : null;
        return el("td", { class: `cell-${s.cls}`, "data-node": n.name, "data-state": s.cls },
          s.text, delay ? el("span", { class: "sub", text: delay }) : null);
      }),
      el("td", { class: "tx-status", text: summary }));
  });
  table.replaceChildren(el("thead", {}, head), el("tbody", {}, ...rows));
}

function describeSource(source) {
  if (source === "rpc") return "from an RPC client (a wallet, a demo or this page)";
  const peer = nodeAt(source);
  return peer ? `relayed by ${peer.name} (${source})` : `relayed by peer ${source}`;
}

function renderRefusals() {
  const feed = document.getElementById("refusal-feed");
  if (!S.refusals.length) {
    feed.replaceChildren(el("li", { class: "empty", text: "no refusals yet" }));
    return;
  }
  const now = Date.now();
  feed.replaceChildren(...S.refusals.map((r) => {
    const message = r.message && r.message.startsWith(r.reason + ": ") ? r.message.slice(r.reason.length + 2) : r.message;
    const bySource = new Map();  // "node1, node2, node3, from an RPC client" rather than three times
    const order = (name) => S.nodes.findIndex((n) => n.name === name);
    for (const [node, source] of [...r.where].sort((a, b) => order(a[0]) - order(b[0]))) bySource.set(describeSource(source), [...(bySource.get(describeSource(source)) || []), node]);
    const where = [...bySource].map(([source, nodes]) => `${nodes.join(", ")}, ${source}`);
    const open = () => openTrace(r);
    const explainable = r.kind === "tx";  // a block has no trace: explaintransaction checks a tx
    return el("li", { class: [r.seenAt && now - r.seenAt < NEW_MS ? "new" : "", explainable ? "explainable" : ""].join(" ").trim() || null,
                      "data-reason": r.reason, "data-id": r.id, "data-kind": r.kind,
                      ...(explainable ? { tabindex: 0, role: "button", "aria-haspopup": "dialog",
                                          title: "show the node's whole check of this transaction", onclick: open,
                                          onkeydown: (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); open(); } } } : {}) },
      el("div", { class: "refusal-head" },
        el("span", { class: "refusal-time", text: clock(r.time) }),
        el("span", { class: "refusal-kind", text: r.kind }),
        el("span", { class: "refusal-code", text: r.reason }),
        r.count > 1 ? el("span", { text: `×${r.count}` }) : null,
        explainable ? el("span", { class: "refusal-open", text: "▸ the whole check" }) : null),
      el("div", { class: "refusal-message", text: message }),
      el("div", { class: "refusal-where" },
        `refused by ${where.join("; ")} · ${r.kind} `, el("span", { class: "mono", title: r.id, text: short(r.id, 12) })));
  }));
}

let balancesDrawn = "";
function renderBalances() {
  const drawn = JSON.stringify([S.balanceError, S.balanceNode, S.accounts, [...S.expanded],
                                S.coins && [...S.coins]]);
  if (drawn === balancesDrawn) return;
  balancesDrawn = drawn;
  document.getElementById("balance-source").textContent = S.balanceError
    ? `(cannot read balances: ${S.balanceError})` : S.balanceNode ? `As seen by ${S.balanceNode}.` : "";
  const rows = [el("tr", {}, el("th", { text: "account" }), el("th", { class: "num", text: "balance (TOY)" }),
    el("th", { text: "made of" }))];
  for (const account of S.accounts) {
    const coins = S.coins && S.coins.get(account.address);
    const t = coins ? sums(coins) : null;
    const open = S.expanded.has(account.address);
    const toggle = () => {
      if (open) S.expanded.delete(account.address);
      else S.expanded.add(account.address);
      renderBalances();
    };
    rows.push(el("tr", { class: "account", tabindex: 0, "aria-expanded": String(open), "data-account": account.name || account.address,
                         onclick: toggle, onkeydown: (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); toggle(); } } },
      el("td", {}, el("b", { text: (open ? "▾ " : "▸ ") + (account.name || "address") }),
        account.demo ? null : el("button", { class: "remove", type: "button", title: "stop watching",
          onclick: (e) => {
            e.stopPropagation();
            S.accounts = S.accounts.filter((a) => a !== account);
            saveWatched();
            changed();
          } }, "×"),
        el("span", { class: "address", title: account.address, text: short(account.address, 18) })),
      el("td", { class: "num total", text: t ? toy(t.all) : "…" }),
      el("td", { class: "parts", text: t ? `${coins.length} coin${coins.length === 1 ? "" : "s"}: spendable ${toy(t.spendable)}` +
        (t.immature ? ` · immature ${toy(t.immature)}` : "") + (t.pending ? ` · pending ${toy(t.pending)}` : "") : "" })));
    if (open && coins) {
      const list = coins.slice().sort((a, b) => a.confirmations - b.confirmations).slice(0, 50).map((c) =>
        el("tr", {}, el("td", { class: "txid", title: `${c.txid}:${c.index}`, text: `${short(c.txid, 12)}:${c.index}` }),
          el("td", { class: "num", text: toy(c.amount) }),
          el("td", { text: c.confirmations === 0 ? "pending (in a mempool tx)" : `${c.confirmations} conf` }),
          el("td", { text: c.coinbase ? (c.mature ? "block reward" : "block reward, immature") : "payment" })));
      if (coins.length > 50) list.push(el("tr", {}, el("td", { colspan: 4, text: `… and ${coins.length - 50} more` })));
      rows.push(el("tr", { class: "coins" }, el("td", { colspan: 3 },
        el("div", { class: "mono", text: account.address }),
        coins.length ? el("table", {}, el("tbody", {}, ...list)) : el("span", { class: "empty", text: "no coins: balance 0" }))));
    }
  }
  document.getElementById("balance-table").replaceChildren(el("tbody", {}, ...rows));
}

// -- traces: a node's whole check of a transaction (explaintransaction) ---------------------------

// The value names that hold amounts in units (PROTOCOL.md section 8: explaintransaction).
const AMOUNTS = new Set(["amount", "running_sum", "max_money", "total_in", "total_out", "fee", "min_fee"]);

function traceValue(name, v) {
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (AMOUNTS.has(name) && Number.isSafeInteger(v)) return `${toy(v)} TOY`;
  return String(v);
}

function traceValues(values) {
  const names = Object.keys(values);
  if (names.length === 1 && names[0] === "unlisted") {
    return el("div", { class: "unlisted", text: `… and ${values.unlisted} more like the ones above, not listed` });
  }
  return el("div", { class: "values" }, ...names.map((name) =>
    el("div", { class: "value" }, el("span", { class: "value-name", text: `${name}: ` }),
      el("span", { class: "mono", text: traceValue(name, values[name]) }))));
}

// An explaintransaction answer as a table, the verdict under it; `note` says whose check, and when.
function traceView(x, note) {
  const sentence = x.message && x.message.startsWith(x.reject_reason + ": ") ? x.message.slice(x.reject_reason.length + 2) : x.message;
  const verdict = x.allowed
    ? el("p", { class: "verdict allowed", "data-allowed": "true" }, el("b", { text: "allowed" }), `, fee ${toy(x.fee)} TOY`)
    : el("p", { class: "verdict refused", "data-allowed": "false" }, el("b", { text: "refused: " }),
      el("code", { class: "verdict-code", text: x.reject_reason }), `: ${sentence}`);
  const rows = x.steps.map((step, i) => el("tr", { class: step.ok ? "pass" : "fail", "data-ok": String(step.ok),
                                                   "data-reason": step.reject_reason || null },
    el("td", { class: "num", text: String(i + 1) }),
    el("td", {}, el("div", { class: "rule", text: step.rule }), el("div", { class: "function mono", text: step.function })),
    el("td", {}, traceValues(step.values)),
    el("td", { class: "result" }, step.ok ? "pass" : el("b", { text: "FAIL " }),
      step.ok ? null : el("code", { class: "step-code", text: step.reject_reason }))));
  return el("div", { class: "trace", "data-txid": x.txid },
    el("p", { class: "note trace-note", text: note }),
    el("div", { class: "mono trace-txid", text: `tx ${x.txid}` }),
    verdict,
    el("div", { class: "trace-steps" }, el("table", { class: "trace-table" },
      el("thead", {}, el("tr", {}, el("th", { class: "num", text: "#" }), el("th", { text: "rule, and the function that holds it" }),
        el("th", { text: "compared" }), el("th", { text: "result" }))),
      el("tbody", {}, ...rows))));
}

// Bring the step where the check stopped into view (a refusal's last row).
function showFailure(container) {
  const failing = container.querySelector('tr[data-ok="false"]');
  if (failing) failing.scrollIntoView({ block: "nearest" });
}

// Open the trace of refusal `r`: from the first node that refused it and still keeps its bytes.
async function openTrace(r) {
  const dialog = document.getElementById("trace-dialog");
  const body = document.getElementById("trace-body");
  S.trace = r.key;
  dialog.dataset.txid = r.id;
  delete dialog.dataset.node;
  document.getElementById("trace-title").textContent = `Why the network refused tx ${short(r.id, 16)}`;
  body.replaceChildren(el("p", { class: "note", text: "Asking the node…" }));
  if (!dialog.open) dialog.showModal();
  const problems = [];
  for (const name of r.where.keys()) {
    const node = S.nodes.find((n) => n.name === name);
    try {
      const kept = (await rpc(node, "getrecentrejects")).find((x) => x.kind === "tx" && x.id === r.id && typeof x.hex === "string");
      if (!kept) {
        problems.push(`${name} no longer keeps its bytes`);
        continue;
      }
      const x = await rpc(node, "explaintransaction", [kept.hex]);
      if (S.trace !== r.key) return;  // another trace was opened meanwhile
      dialog.dataset.node = name;
      const then = x.allowed || x.reject_reason !== r.reason ? ` When it refused it, ${name} said ${r.reason}: what changed is in the steps.` : "";
      body.replaceChildren(traceView(x, `${name}'s check of the bytes it refused, run again now against its current coins and ` +
        `mempool (a block or a payment since the refusal can change the answer).${then}`));
      showFailure(body);
      return;
    } catch (error) {
      problems.push(`${name}: ${error.message}`);
    }
  }
  if (S.trace !== r.key) return;
  body.replaceChildren(el("p", { class: "error", text: `No trace: ${problems.join("; ")}. ` +
    "A node keeps the bytes of its last refused transactions only (up to 1 MB)." }));
}

function setupTraceDialog() {
  const dialog = document.getElementById("trace-dialog");
  document.getElementById("trace-close").addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => { S.trace = null; });
}

// -- try it: sending and demos (the devnet's page only) -------------------------------------------

function setupTryIt() {
  document.getElementById("try").hidden = false;
  document.querySelector("#views .try-only").hidden = false;
  const form = document.getElementById("send-form");
  const demos = S.accounts.filter((a) => a.demo).map((a) => a.name);
  form.from.replaceChildren(...demos.map((name) => el("option", { value: name, text: name })));
  document.getElementById("account-names").replaceChildren(...demos.map((name) => el("option", { value: name })));
  form.node.append(...S.nodes.map((n) => el("option", { value: n.name, text: n.name })));
  form.addEventListener("submit", send);
  const buttons = document.getElementById("demo-buttons");
  for (const demo of S.config.demos) {
    buttons.append(el("button", { type: "button", "data-demo": demo.name, disabled: demo.unavailable !== null,
                                  title: demo.unavailable || `${demo.title}: ${demo.summary}`,
                                  onclick: () => runDemo(demo.name) }, demo.name));
  }
  const off = S.config.demos.filter((d) => d.unavailable);
  if (off.length) {
    buttons.after(el("p", { class: "note", text: off.map((d) => `${d.name}: ${d.unavailable}.`).join(" ") }));
  }
}

// One line of a demo's narration (JSON lines, demos/narrator.py) as a list item.
function demoLine(line) {
  const item = (cls, ...children) => el("li", { class: cls, "data-type": line.type || null }, ...children);
  const amounts = (balances) => Object.entries(balances).map(([name, b]) =>
    `${name} ${toy(b.confirmed)}${b.pending ? ` (${b.pending > 0 ? "+" : ""}${toy(b.pending)} pending)` : ""}`).join(" · ");
  switch (line.type) {
    case "start":
      return item("start", el("b", { text: line.title }), el("div", { text: line.summary }));
    case "step":
      return item(line.answers.some((a) => !a.accepted) ? "step refused" : "step",
        el("div", {}, el("b", { text: `${line.step}. ${line.actor} ` }), line.action),
        line.hope ? el("div", { class: "extra", text: `hopes: ${line.hope}` }) : null,
        ...line.answers.map((a) => el("div", { class: a.accepted ? "answer accepted" : "answer refused" },
          `${a.node}: `, el("b", { text: a.accepted ? "accepted" : "refused" }),
          a.accepted ? (a.message ? ` ${a.message}` : "") : " ",
          a.accepted ? null : el("code", { text: a.reject_reason || "" }),
          a.accepted || !a.message ? null : `: ${a.message}`)),
        line.note ? el("div", { text: line.note }) : null,
        line.table ? el("table", {}, el("caption", { text: line.table.title || "" }),
          el("tr", {}, ...line.table.columns.map((c) => el("th", { text: c }))),
          ...line.table.rows.map((row) => el("tr", {}, ...row.map((c) => el("td", { text: String(c) }))))) : null,
        line.balances ? el("div", { class: "extra",
          text: `balances${line.seen_at ? ` at ${line.seen_at}` : ""}: ${amounts(line.balances)}` }) : null);
    case "lesson": {
      const failed = ((line.outcome && line.outcome.checks) || []).filter((c) => !c.holds);
      return item(failed.length ? "lesson failed" : "lesson", `Lesson: ${line.lesson}`,
        ...failed.map((c) => el("div", { text: `NOT VERIFIED: ${c.claim}` })));
    }
    case "skipped":
      return item("", `${line.demo} skipped: ${line.reason}`);
    case "error":
      return item("failed", `${line.demo} could not finish: ${line.message}`);
    default:
      if ("exit" in line) return item(line.exit === 0 ? "" : "failed", line.exit === 0 ? "Demo finished." : `The demo stopped (exit ${line.exit}).`);
      return item("", line.text !== undefined ? String(line.text) : JSON.stringify(line));
  }
}

async function send(event) {
  event.preventDefault();
  const form = event.target;
  const result = document.getElementById("send-result");
  const button = form.querySelector("button");
  button.disabled = true;
  result.textContent = "Sending…";
  document.getElementById("send-trace").replaceChildren();
  delete result.dataset.ok;
  delete result.dataset.txid;
  try {
    const response = await fetch("/api/send", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ from: form.from.value, to: form.to.value, amount: form.amount.value,
                             node: form.node.value || null }),
    });
    const answer = await response.json();
    result.dataset.ok = answer.ok ? "true" : "false";
    if (answer.txid) result.dataset.txid = answer.txid;
    if (answer.reject_reason) result.dataset.reason = answer.reject_reason;
    else delete result.dataset.reason;
    const what = answer.to ? `${answer.from} → ${who(answer.to)} ${toy(answer.amount)} TOY` : "";
    if (answer.ok) {
      result.textContent = `${answer.node} accepted ${what} (tx ${short(answer.txid, 12)}). Watch it travel under “Transactions”.`;
      noteTx(answer.txid);
    } else if (answer.node) {
      result.textContent = (answer.overspend ? `${answer.from} does not have that much; the page signed it anyway. ` : "") +
        `${answer.node} refused ${what}: ${answer.message}`;
    } else {
      result.textContent = answer.message;
    }
    if (answer.explain) {
      document.getElementById("send-trace").replaceChildren(traceView(answer.explain,
        `${answer.node}'s check of what the page signed, run just before sending it, against its current coins and mempool:`));
    }
  } catch (error) {
    result.dataset.ok = "false";
    result.textContent = `The dashboard server did not answer: ${error.message}`;
  } finally {
    button.disabled = false;
    changed();
  }
}

async function runDemo(name) {
  const buttons = [...document.querySelectorAll("#demo-buttons button")];
  const log = document.getElementById("demo-log");
  buttons.forEach((b) => { b.disabled = true; });
  log.replaceChildren(el("li", { class: "extra", text: `toychain demo ${name}: starting…` }));
  try {
    const response = await fetch(`/api/demo/${encodeURIComponent(name)}`, { method: "POST" });
    if (!response.ok) {
      const answer = await response.json().catch(() => ({ message: response.statusText }));
      log.append(el("li", { class: "failed", text: answer.message }));
      return;
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value: chunk, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(chunk, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 1);
        if (!line.trim()) continue;
        let parsed = null;
        try {
          parsed = JSON.parse(line);
        } catch { /* shown as text */ }
        log.append(parsed && typeof parsed === "object" ? demoLine(parsed) : el("li", { text: line }));
        log.lastChild.scrollIntoView({ block: "nearest" });
      }
    }
  } catch (error) {
    log.append(el("li", { class: "failed", text: `The demo stream broke: ${error.message}` }));
  } finally {
    buttons.forEach((b) => { b.disabled = S.config.demos.find((d) => d.name === b.dataset.demo).unavailable !== null; });
  }
}

// -- views and start ----------------------------------------------------------------------------------

const VIEWS = ["all", "network", "blocks", "txs", "refusals", "balances", "try"];
function showView() {
  const wanted = location.hash.slice(1);
  const view = VIEWS.includes(wanted) && (wanted !== "try" || S.config?.try_it) ? wanted : "all";
  document.body.dataset.view = view;
  for (const a of document.querySelectorAll("#views a")) a.classList.toggle("current", a.getAttribute("href") === "#" + view);
  if (S.config) changed();
}

async function start() {
  showView();
  window.addEventListener("hashchange", showView);
  window.addEventListener("resize", changed);
  try {
    S.config = await (await fetch("/dashboard/config")).json();
  } catch (error) {
    document.getElementById("summary").textContent = `Cannot load the dashboard's config: ${error.message}`;
    return;
  }
  document.title = S.config.title;
  document.getElementById("title").textContent = S.config.title;
  for (const account of S.config.accounts) {
    S.names.set(account.address, account.name);
    S.accounts.push({ name: account.name, address: account.address, demo: true });
  }
  for (const address of loadWatched()) {
    if (!S.accounts.some((a) => a.address === address)) S.accounts.push({ name: null, address, demo: false });
  }
  S.nodes = S.config.nodes.map((n) => ({ name: n.name, url: n.url.replace(/\/$/, ""), up: null, wsOpen: false,
                                         mempool: new Set(), peers: [], tip: null, height: undefined }));
  if (S.config.try_it) setupTryIt();
  showView();
  document.getElementById("add-address").addEventListener("submit", addWatched);
  setupTraceDialog();
  S.nodes.forEach(connect);
  setInterval(() => {
    S.nodes.forEach(refreshNode);
    refreshBalances();
  }, POLL_MS);
  render();
}

start();
