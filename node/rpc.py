"""JSON-RPC 2.0 methods (PROTOCOL.md section 8), as plain functions of the node.

Each method declares its parameters with the checks they need; ``dispatch``
maps a request to a result or a JSON-RPC error object. Errors follow
bitcoind: -26 rejected, -27 already in chain, -22 bad encoding, -5 unknown
address/tx/block, -8 bad parameter, -32601 unknown method. A refusal's
message is ``CODE: sentence`` and its data carries the bare ``reject_reason``.
Methods marked ``admin`` need the cookie (the HTTP layer checks it).

No call may hold the event loop for long (every peer waits meanwhile):
``listunspent`` and ``getaddresshistory`` answer at most ``MAX_PAGE`` items
per call, read from SQLite page by page (``options`` ``{"limit", "after"}``:
docs/protocol-notes.md), and name at most ``MAX_ADDRESSES``; ``run``, what
the HTTP layer awaits, mines ``generatetoaddress`` blocks with a worker
process and yields between blocks (``miner.mine``), and decodes a
transaction (``decoderawtransaction``: up to 7,000 addresses to encode) on
a worker thread. Validation that may take long (``submitblock``; a
``sendrawtransaction``, ``testmempoolaccept`` or ``explaintransaction`` of
``OFFLOAD_CHARS`` hex digits or more) runs on the validation thread
(``gate.NodeGate``), and every other call waits until it is done, so none
sees the chain or the mempool half-updated. Methods that scan the mempool
(``getrawmempool``, and ``listunspent``/``getaddresshistory`` for its part)
are generators that yield every ``SCAN_CHUNK`` entries: ``run`` lets the
loop in there, ``call`` runs any method straight through (regtest blocks
are solved in place).
HEAVY calls from all clients compute one slice at a time (``Turns``), so
that ten clients cannot stack ten heavy calls into one loop iteration (short
ones, at most ``YIELD_SECONDS`` of them).
"""

import asyncio
import heapq
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from inspect import isgenerator

from chain.address import AddressError, decode_address, encode_address
from chain.block import Block
from chain.encoding import from_hex
from chain.errors import RuleError
from chain.keys import owner_of
from chain.tx import OutPoint, Tx

from . import jsonrpc
from .addrman import MAX_MANUAL_PEERS
from .explain import explain
from .gate import OFFLOAD_CHARS, NodeGate
from .messages import is_addr
from .miner import generate, mine
from .node import USER_AGENT, Node

PROTOCOL_VERSION = 1
MAX_TESTMEMPOOLACCEPT = 100
MAX_GENERATE = 10_000
# Bech32 in pure Python costs ~70 us to decode an address and ~55 us to encode one: these two
# bounds keep a call under ~60 ms whatever addresses it names (scripts/bench_rpc_lag.py).
MAX_ADDRESSES = 500
MAX_PAGE = 1000  # coins or history items per call
MAX_CONFIRMATIONS = 2 ** 31 - 1  # minconf and confirmations: a height, 32 bits as in Core
PURE = {"decoderawtransaction"}  # a function of its params alone: ``run`` computes it on a thread
# Calls whose cost grows with the chain, the mempool or the request (up to tens of ms): they
# take turns (``Turns``). The others cost well under a millisecond and never wait.
# Validation: on the validation thread when big (``_offloaded``); submitblock always (a reorg
# may connect many blocks whatever the size of this one).
CHECKS = {"sendrawtransaction", "testmempoolaccept", "explaintransaction"}
HEAVY = {"listunspent", "getaddresshistory", "getrawmempool", "getblock", "getrawtransaction",
         "sendrawtransaction", "testmempoolaccept", "explaintransaction", "submitblock"}
# What one turn of a long call does, about 10 ms at most:
SCAN_CHUNK = 2000    # mempool entries looked at
ADDRESS_CHUNK = 100  # addresses decoded
COIN_CHUNK = 200     # coins turned into JSON (each may need its address encoded)
ROW_CHUNK = 2000     # coin rows read from SQLite ...
QUERY_ROWS = 20      # ... a query counting as this many (one owner's coins: a query each)
PAUSE_FROM = 0.002  # seconds: a turn that took longer is followed by a pause as long
YIELD_SECONDS = 0.005  # short turns in one turn of the loop add up to about this at most: a tenth of
                       # the 50 ms the loop may stall (every 1 ms cost 6-10% more CPU per small tx)

# A page of coins mostly repeats a few owners.
_address = lru_cache(maxsize=4096)(encode_address)


class RpcError(Exception):
    def __init__(self, code: int, message: str, reject_reason: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.reject_reason = reject_reason

    def to_json(self) -> dict:
        error = {"code": self.code, "message": self.message}
        if self.reject_reason:
            error["data"] = {"reject_reason": self.reject_reason}
        return error


def rejected(error: RuleError) -> RpcError:
    return RpcError(error.fault.rpc, str(error), error.code)


# -- parameter checks -------------------------------------------------------------------------

def _int(value, name, low=-2 ** 63, high=2 ** 63 - 1) -> int:
    """An integer parameter within [low, high]; by default what SQLite's
    INTEGER holds, so no parameter reaches a query as an OverflowError."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise RpcError(-8, f"{name} must be an integer")
    if not low <= value <= high:
        raise RpcError(-8, f"{name} {value} is out of range [{low}, {high}]")
    return value


def _hash(value, name) -> bytes:
    if not isinstance(value, str) or len(value) != 64:
        raise RpcError(-8, f"{name} must be 64 hex digits")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise RpcError(-8, f"{name} must be 64 hex digits") from None


def _owner(value) -> bytes:
    try:
        return decode_address(value)
    except AddressError as error:
        raise RpcError(-5, f"invalid address: {error}") from None


def _bool(value, name) -> bool:
    if not isinstance(value, bool):
        raise RpcError(-8, f"{name} must be true or false")
    return value


def _decode(decoder, value):
    try:
        return decoder(from_hex(value, "hex"))
    except RuleError as error:
        raise rejected(error) from None


# -- views ------------------------------------------------------------------------------------------

def _header_json(node: Node, entry) -> dict:
    header, chain = entry.header, node.chain
    return {"hash": entry.hash.hex(), "height": entry.height, "version": header.version,
            "prev_hash": header.prev_hash.hex(), "merkle_root": header.merkle_root.hex(),
            "time": header.time, "bits": f"{header.bits:08x}", "nonce": header.nonce,
            "chainwork": f"{entry.chainwork:064x}", "mediantime": chain.median_time_past(entry),
            "confirmations": chain.height - entry.height + 1 if chain.is_active(entry) else -1}


def _entry(node: Node, value):
    entry = node.chain.index.get(_hash(value, "block hash"))
    if entry is None:
        raise RpcError(-5, f"block {value} not found")
    return entry


def _tx_json(tx: Tx) -> dict:
    return {"txid": tx.txid.hex(), "version": tx.version, "locktime": tx.locktime, "size": tx.size,
            "vin": [{"txid": i.prev_txid.hex(), "index": i.prev_index, "pubkey": i.pubkey.hex(),
                     "signature": i.signature.hex(), "address": _address(owner_of(i.pubkey))}
                    for i in tx.inputs],
            "vout": [{"index": n, "amount": o.amount, "address": _address(o.owner)}
                     for n, o in enumerate(tx.outputs)]}


def _confirmations(node: Node, height: int) -> int:
    return node.chain.height - height + 1


# -- methods ----------------------------------------------------------------------------------------

def getblockchaininfo(node: Node) -> dict:
    chain = node.chain
    return {"network": chain.net.name, "height": chain.height,
            "best_block_hash": chain.tip.hash.hex(), "chainwork": f"{chain.tip.chainwork:064x}",
            "mediantime": chain.median_time_past(chain.tip),
            "pow_limit_bits": f"{chain.net.pow_limit_bits:08x}",
            "supply": chain.store.utxo_stats()[1]}


def getbestblockhash(node: Node) -> str:
    return node.chain.tip.hash.hex()


def getblockhash(node: Node, height) -> str:
    entry = node.chain.entry_at(_int(height, "height"))
    if entry is None:
        raise RpcError(-8, f"block height {height} out of range [0, {node.chain.height}]")
    return entry.hash.hex()


def getblockheader(node: Node, block_hash) -> dict:
    return _header_json(node, _entry(node, block_hash))


def getblock(node: Node, block_hash, verbosity=1):
    entry = _entry(node, block_hash)
    verbosity = _int(verbosity, "verbosity", 0, 1)
    block = node.chain.get_block(entry.hash)
    if block is None:
        raise RpcError(-5, f"block {block_hash} not available (header only)")
    if verbosity == 0:
        return block.raw.hex()
    return {**_header_json(node, entry), "size": block.size,
            "tx": [tx.txid.hex() for tx in block.txs]}


def getrawtransaction(node: Node, txid) -> dict:
    txid_b = _hash(txid, "txid")
    tx = node.mempool.get(txid_b)
    if tx is not None:
        return {"hex": tx.raw.hex(), "txid": tx.txid.hex(), "blockhash": None, "confirmations": 0}
    found = node.chain.find_tx(txid_b)
    if found is None:
        raise RpcError(-5, f"no transaction {txid} in the chain or the mempool")
    tx, entry = found
    return {"hex": tx.raw.hex(), "txid": tx.txid.hex(), "blockhash": entry.hash.hex(),
            "confirmations": _confirmations(node, entry.height)}


def decoderawtransaction(node: Node, hexstring) -> dict:
    return _tx_json(_decode(Tx.decode, hexstring))


def sendrawtransaction(node: Node, hexstring) -> str:
    tx = _decode(Tx.decode, hexstring)
    if tx.txid in node.mempool:
        return tx.txid.hex()  # already accepted: not a rejection (Core does the same)
    try:
        node.accept_tx(tx, "rpc")
    except RuleError as error:
        raise rejected(error) from None
    return tx.txid.hex()


def testmempoolaccept(node: Node, rawtxs) -> list:
    if not isinstance(rawtxs, list) or len(rawtxs) > MAX_TESTMEMPOOLACCEPT:
        raise RpcError(-8, f"rawtxs must be a list of at most {MAX_TESTMEMPOOLACCEPT} hex strings")
    results = []
    for tx in [_decode(Tx.decode, raw) for raw in rawtxs]:
        try:
            node.mempool.check(tx)
            results.append({"txid": tx.txid.hex(), "allowed": True})
        except RuleError as error:
            results.append({"txid": tx.txid.hex(), "allowed": False,
                            "reject_reason": error.code, "message": str(error)})
    return results


def explaintransaction(node: Node, hexstring) -> dict:
    """``testmempoolaccept`` for one tx, with every step it ran (node/explain.py)."""
    return explain(node.mempool, _decode(Tx.decode, hexstring))


def submitblock(node: Node, hexdata):
    block = _decode(Block.decode, hexdata)
    outcome = node.accept_block(block, "rpc")
    if outcome.status in ("connected", "side"):
        return None
    if outcome.status in ("duplicate", "duplicate-invalid"):
        return outcome.status
    return outcome.error.code


def getrawmempool(node: Node):
    txids, snapshot = [], list(node.mempool.entries)
    for i in range(0, len(snapshot), SCAN_CHUNK):
        txids += [txid.hex() for txid in snapshot[i:i + SCAN_CHUNK]]
        yield  # a full mempool is ~150,000 txids: let the loop in between chunks
    return txids


def getmempoolinfo(node: Node) -> dict:
    pool = node.mempool
    return {"size": len(pool), "bytes": pool.bytes, "min_fee_rate": pool.min_fee_rate,
            "orphans": len(node.orphans)}


def _coin_json(node: Node, outpoint: OutPoint, coin, confirmations: int, names: dict) -> dict:
    """``names``: owner -> address for the owners the caller named (no encoding needed)."""
    mature = not coin.coinbase or node.chain.height + 1 - coin.height >= node.chain.net.coinbase_maturity
    return {"txid": outpoint.txid.hex(), "index": outpoint.index, "amount": coin.amount,
            "address": names.get(coin.owner) or _address(coin.owner), "confirmations": confirmations,
            "coinbase": coin.coinbase, "mature": mature}


def gettxout(node: Node, txid, index, include_mempool=True):
    outpoint = OutPoint(_hash(txid, "txid"), _int(index, "index", 0, 2 ** 32 - 1))
    if _bool(include_mempool, "include_mempool"):
        if outpoint in node.mempool.spends:
            return None
        if outpoint.txid in node.mempool:
            coin = node.mempool.get_coin(outpoint)
            confirmations = 0
        else:
            coin = node.chain.get_coin(outpoint)
            confirmations = coin and _confirmations(node, coin.height)
    else:
        coin = node.chain.get_coin(outpoint)
        confirmations = coin and _confirmations(node, coin.height)
    if coin is None:
        return None
    return {"amount": coin.amount, "address": _address(coin.owner),
            "confirmations": confirmations, "coinbase": coin.coinbase}


def _paging(options) -> tuple[int, dict | None] | None:
    """``options`` {"limit": 1..MAX_PAGE, "after": the last item of the previous
    page}: (limit, after), or None when the caller does not page."""
    if options is None:
        return None
    if not isinstance(options, dict) or not set(options) <= {"limit", "after"}:
        raise RpcError(-8, 'options must be an object with "limit" and/or "after"')
    limit = _int(options.get("limit", MAX_PAGE), "limit", 1, MAX_PAGE)
    after = options.get("after")
    if after is not None and not isinstance(after, dict):
        raise RpcError(-8, '"after" must be the last item of the previous page')
    return limit, after


def _too_many(method: str, example: str) -> RpcError:
    return RpcError(-8, f"{method}: more than {MAX_PAGE} items match; ask for them page by page with "
                        f'the options parameter, {example} {{"limit": {MAX_PAGE}}} and then '
                        f'{{"after": <the last item>}} until a page comes back short')


def _owners(addresses):
    """owner -> its address in the canonical lower case, for each address
    named. A generator (``run`` lets the loop in between chunks): decoding
    one address costs ~70 us."""
    if addresses is None:
        addresses = []
    if not isinstance(addresses, list) or len(addresses) > MAX_ADDRESSES:
        raise RpcError(-8, f"addresses must be a list of at most {MAX_ADDRESSES} addresses")
    owners = {}
    for i in range(0, len(addresses), ADDRESS_CHUNK):
        owners.update((_owner(a), a.lower()) for a in addresses[i:i + ADDRESS_CHUNK])
        yield
    return owners


def _in_chunks(items: list, convert):
    """``[convert(item) for item in items]`` without the Nones, COIN_CHUNK at
    a time (a generator): a coin may need its address encoded, ~55 us."""
    done = []
    for i in range(0, len(items), COIN_CHUNK):
        done += [value for value in map(convert, items[i:i + COIN_CHUNK]) if value is not None]
        yield
    return done


def _pool_first(node: Node, items_of, after, limit: int):
    """The ``limit`` smallest items greater than ``after`` (None: any) that
    ``items_of(entry)`` gives over the whole mempool. A generator: it yields
    every SCAN_CHUNK entries so that ``run`` lets the loop in (a full
    mempool holds ~150,000 txs), and returns the items. It reads a snapshot
    of the entries, so a tx that leaves the mempool meanwhile may still be in."""
    best, entries = [], list(node.mempool.entries.values())
    for i in range(0, len(entries), SCAN_CHUNK):
        found = [item for entry in entries[i:i + SCAN_CHUNK] for item in items_of(entry)
                 if after is None or item > after]
        best = heapq.nsmallest(limit, best + found)
        yield
    return best


def _confirmed(node: Node, owners, start: OutPoint, newest: int, limit: int):
    """The first ``limit`` (OutPoint, Coin) in (txid, index) order, after
    ``start``, of ``owners`` (all coins when empty), created at ``newest`` or
    below, not spent in the mempool. A generator: each slice reads at most
    ROW_CHUNK rows (a query counting as QUERY_ROWS), and closes its SQLite
    cursors before it yields (a block may be written in between); an owner's
    read goes on in the next slice from where it stopped."""
    store, spends = node.chain.store, node.mempool.spends
    todo = [(owner, start) for owner in owners] or [(None, start)]
    best: list = []  # the limit first so far, in order
    while todo:
        budget, found = ROW_CHUNK, []
        while todo and budget > 0:
            owner, after = todo.pop()
            cutoff = best[-1][0] if len(best) == limit else None  # nothing past it can be in
            rows, taken, resume = store.iter_coins(owner, after, newest), 0, None
            budget -= QUERY_ROWS
            for outpoint, coin in rows:
                if cutoff is not None and outpoint > cutoff:
                    break
                if outpoint not in spends:
                    found.append((outpoint, coin))
                    taken += 1
                budget -= 1
                if taken == limit:
                    break
                if budget <= 0:
                    resume = outpoint
                    break
            rows.close()
            if resume is not None:
                todo.append((owner, resume))
        best = heapq.nsmallest(limit, best + found, key=lambda item: item[0])
        yield
    return best


def listunspent(node: Node, addresses=None, minconf=1, options=None):
    """Oldest first, at most MAX_PAGE coins; a page (``options``) lists
    confirmed coins in (txid, index) order, then (minconf 0) mempool outputs
    in (txid, index) order, the order SQLite's indexes read them in."""
    owners = yield from _owners(addresses)
    minconf = _int(minconf, "minconf", 0, MAX_CONFIRMATIONS)
    paging = _paging(options)
    limit, after = paging or (MAX_PAGE + 1, None)
    start, in_pool = OutPoint(b"", -1), False
    if after is not None:
        start = OutPoint(_hash(after.get("txid"), "after.txid"),
                         _int(after.get("index"), "after.index", 0, 2 ** 32 - 1))
        in_pool = _int(after.get("confirmations"), "after.confirmations", 0, MAX_CONFIRMATIONS) == 0
    result = []
    if not in_pool:
        coins = yield from _confirmed(node, owners, start, node.chain.height - max(minconf, 1) + 1, limit)
        result = yield from _in_chunks(coins, lambda item: _coin_json(
            node, item[0], item[1], _confirmations(node, item[1].height), owners))
    if minconf == 0 and len(result) < limit:
        def outputs(entry):
            return [outpoint for index, out in enumerate(entry.tx.outputs)
                    if (not owners or out.owner in owners)
                    and (outpoint := OutPoint(entry.tx.txid, index)) not in node.mempool.spends]

        def unspent(outpoint):  # None if spent or mined since the scan
            coin = node.mempool.get_coin(outpoint)
            if coin is not None and outpoint.txid in node.mempool:
                return _coin_json(node, outpoint, coin, 0, owners)
            return None
        pool = yield from _pool_first(node, outputs, start if in_pool else None, limit - len(result))
        result += yield from _in_chunks(pool, unspent)
    if paging is None:
        if len(result) > MAX_PAGE:
            raise _too_many("listunspent", "[addresses, minconf,")
        result.sort(key=lambda c: (-c["confirmations"], c["txid"], c["index"]))  # oldest first
    return result


def getaddresshistory(node: Node, address, options=None):
    """Confirmed txs by (height, position), then mempool txs by arrival; at
    most MAX_PAGE per call."""
    owner = _owner(address)
    paging = _paging(options)
    limit, after = paging or (MAX_PAGE + 1, None)
    pool = node.mempool
    in_pool, start = False, (-1, -1)
    if after is not None:
        txid = _hash(after.get("txid"), "after.txid")
        in_pool = after.get("height") is None
        if in_pool and txid not in pool:
            raise RpcError(-8, f"after: tx {txid.hex()} left the mempool; start again without after")
        if not in_pool:
            start = node.chain.store.tx_location(txid)
            if start is None:
                raise RpcError(-8, f"after: tx {txid.hex()} is not in the active chain; start again without after")
    history = [] if in_pool else [
        {"txid": txid.hex(), "height": height, "delta": delta}
        for txid, height, _, delta in node.chain.store.history_of(owner, start, limit)]
    if len(history) < limit:
        def touching(entry):
            delta = _mempool_delta(node, entry.tx, owner)
            return [] if delta is None else [(entry.time, entry.tx.txid, delta)]
        cursor = (pool.entries[txid].time, txid, float("inf")) if in_pool else None
        history += [{"txid": txid.hex(), "height": None, "delta": delta} for _, txid, delta in
                    (yield from _pool_first(node, touching, cursor, limit - len(history)))]
    if paging is None and len(history) > MAX_PAGE:
        raise _too_many("getaddresshistory", "[address,")
    return history


def _mempool_delta(node: Node, tx: Tx, owner: bytes) -> int | None:
    """Units ``owner`` gains (or loses) in a mempool tx; None if it is not
    touched. An input's coin belongs to the owner of its pubkey (the
    signature rules make sure), so only the owner's own inputs are looked up."""
    delta, touched = 0, False
    for txin in tx.inputs:
        if owner_of(txin.pubkey) == owner:
            parent = node.mempool.entries.get(txin.prev_txid)
            spent = parent.tx.outputs[txin.prev_index] if parent else node.chain.get_coin(txin.outpoint)
            if spent is not None:
                delta -= spent.amount
                touched = True
    for out in tx.outputs:
        if out.owner == owner:
            delta += out.amount
            touched = True
    return delta if touched else None


def gettxoutsetinfo(node: Node) -> dict:
    count, total = node.chain.store.utxo_stats()
    return {"utxos": count, "total_amount": total, "height": node.chain.height,
            "best_block_hash": node.chain.tip.hash.hex()}


def getrecentrejects(node: Node) -> list:
    """Newest first; a refused tx whose bytes the node still keeps has them as
    ``hex`` (node/rejects.py), so that it can be explained."""
    return node.recent_rejects.entries()


def getpeerinfo(node: Node) -> list:
    return [{"id": p.id, "addr": p.ban_key, "inbound": p.inbound, "height": p.height,
             "user_agent": p.user_agent, "connected_since": p.connected_since}
            for p in node.peers.values() if p.handshake_done]


def getnetworkinfo(node: Node) -> dict:
    return {"version": PROTOCOL_VERSION, "user_agent": USER_AGENT, "network": node.net.name,
            "connections": sum(1 for p in node.peers.values() if p.handshake_done),
            "listen": node.listen}


def _generate_params(nblocks, address) -> tuple[int, bytes]:
    return _int(nblocks, "nblocks", 0, MAX_GENERATE), _owner(address)


def generatetoaddress(node: Node, nblocks, address) -> list:
    return [h.hex() for h in generate(node, *_generate_params(nblocks, address))]


def _addr(value) -> str:
    if not is_addr(value):
        raise RpcError(-8, f"{value!r} is not host:port")
    return value


def addnode(node: Node, addr, command="add"):
    if not node.add_peer(_addr(addr), persistent=command == "add"):
        raise RpcError(-8, f"at most {MAX_MANUAL_PEERS} peers may be added; this one would be one more")
    return None


def disconnectnode(node: Node, addr):
    if not node.disconnect(_addr(addr)):
        raise RpcError(-29, f"node {addr} is not connected")
    return None


def listbanned(node: Node) -> list:
    return node.banlist.entries(node.clock())


def clearbanned(node: Node):
    node.banlist.clear()
    return None


def stop(node: Node):
    node.request_stop()
    return None


METHODS = {f.__name__: f for f in (
    getblockchaininfo, getbestblockhash, getblockhash, getblockheader, getblock,
    getrawtransaction, decoderawtransaction, sendrawtransaction, testmempoolaccept,
    explaintransaction, submitblock,
    getrawmempool, getmempoolinfo, gettxout, listunspent, getaddresshistory, gettxoutsetinfo,
    getrecentrejects, getpeerinfo, getnetworkinfo, generatetoaddress, addnode, disconnectnode,
    listbanned, clearbanned, stop)}
ADMIN = {"generatetoaddress", "addnode", "disconnectnode", "listbanned", "clearbanned", "stop"}


def _arguments(method: str, params) -> list:
    """``params`` checked against the method's signature; raises RpcError."""
    function = METHODS.get(method)
    if function is None:
        raise RpcError(-32601, f"method {method!r} not found")
    if params is None:
        params = []
    if not isinstance(params, list):
        raise RpcError(-8, "params must be a list")
    code = function.__code__
    takes = code.co_argcount - 1
    required = takes - len(function.__defaults__ or ())
    if not required <= len(params) <= takes:
        names = ", ".join(code.co_varnames[1:takes + 1])
        raise RpcError(-8, f"{method} takes {required} to {takes} params ({names}), got {len(params)}")
    return params


def _offloaded(method: str, arguments: list) -> bool:
    """Is this call's validation long enough for the validation thread?"""
    if method == "submitblock":
        return True
    if method not in CHECKS or not arguments:
        return False
    first = arguments[0]
    if isinstance(first, str):  # one tx's hex (every sendrawtransaction)
        return len(first) >= OFFLOAD_CHARS
    texts = first if isinstance(first, list) else ()
    return sum(len(text) for text in texts if isinstance(text, str)) >= OFFLOAD_CHARS


def _step(steps) -> tuple[bool, object]:
    """One slice of a method written as a generator: (finished, its result)."""
    try:
        next(steps)
    except StopIteration as done:
        return True, done.value
    return False, None


def call(node: Node, method: str, params) -> object:
    """Run one method here and now; raises RpcError."""
    result = METHODS[method](node, *_arguments(method, params))
    if not isgenerator(result):
        return result
    while True:
        finished, value = _step(result)
        if finished:
            return value


class Turns:
    """HEAVY calls compute on the loop one slice at a time, whoever asks (a
    slice: a whole call, or one step of a generator method), and each slice
    that took more than ``PAUSE_FROM`` is followed by a pause as long as
    itself before the next one starts. Without it, every client's heavy call
    runs in the same loop iteration (ten clients: ten times one call), and a
    peer's ping, which needs several iterations to be read and answered,
    waits for several rounds of them. With it the loop is held at most one
    turn (below) or one long slice at a time, and after a long slice peers
    and cheap calls get at least half of the loop.

    A turn is a run of short slices in one turn of the loop, at most
    ``YIELD_SECONDS`` of them shared by everyone waiting (``_budget``): the
    task whose turn it is keeps it while it comes back without the loop
    turning (a batch's next ``sendrawtransaction``: Core runs a batch under
    one lock hold), so consecutive short calls pay neither a queued waiter
    nor a turn of the loop each. The turn ends when its budget is spent
    (then a pause lets the loop run), at a slice over ``PAUSE_FROM`` or a
    generator's step (each followed by its pause), or as soon as the loop
    turns (``_turned``: its task went to await something else, or finished).
    Waiters are served in the order they came; with ``n`` of them each turn
    gets a ``1/(n + 1)`` share of ``YIELD_SECONDS``, so a call that arrives
    behind several batches still waits about one ``YIELD_SECONDS`` in all,
    not one per batch. A task that finds the turn kept by one that went away
    (in the same turn of the loop, nobody waiting) carries on its streak."""

    def __init__(self, gate: NodeGate):
        self._lock = asyncio.Lock()  # held by ``_holder``
        self.gate = gate
        self.waiting = 0        # tasks queued for a turn
        self._holder = None     # the task whose turn it is
        self._idle = False      # its last slice ended: the turn is kept for it
        self._streak = 0.0      # when this turn's slices began
        self._ending = False    # ``_turned`` will run at the next turn of the loop

    async def take(self, compute, step: bool = False):
        """``compute()``'s value; ``step``: a generator's step, always followed by a pause."""
        task = asyncio.current_task()
        if self._holder is not task or not self._idle:
            if self._holder is not None and self._idle and not self.waiting:
                self._holder = task  # the kept turn's task went away: carry on its streak
            else:
                suspends = self._lock.locked() or self.waiting > 0  # else the acquire returns at once
                self.waiting += 1
                try:
                    await self._lock.acquire()
                finally:
                    self.waiting -= 1
                self._holder, self._streak = task, time.perf_counter()
                if suspends:  # the loop ran meanwhile: a batch counts its hold of the loop from here
                    jsonrpc.RESUMED.set(self._streak)
        self._idle = False
        started = None
        try:
            if self.gate.free:  # nobody has the node: nothing to wait for
                started = time.perf_counter()
                return compute()
            async with self.gate.held():  # the pause is outside: others may use the node
                started = time.perf_counter()
                return compute()
        finally:
            now = time.perf_counter()
            if started is None:  # cancelled while waiting for the node
                self._release()
            elif step or now - started > PAUSE_FROM or now - self._streak >= self._budget():
                spent = now - started
                try:  # the turn is held through the pause: no other slice runs meanwhile
                    await asyncio.sleep(spent if spent > PAUSE_FROM else 0)
                finally:
                    self._release()
            else:
                self._idle = True
                if not self._ending:
                    self._ending = True
                    asyncio.get_running_loop().call_soon(self._turned)

    def _budget(self) -> float:
        """How long a turn's short slices may add up to: ``YIELD_SECONDS``
        shared with everyone waiting."""
        return YIELD_SECONDS / (1 + self.waiting)

    def _release(self) -> None:
        self._holder, self._idle = None, False
        self._lock.release()

    def _turned(self) -> None:
        """The loop turned: a kept turn ends (the next waiter's begins)."""
        self._ending = False
        if self._idle:
            self._release()


@dataclass
class Workers:
    """Where ``run`` sends work that would hold the event loop."""
    miner: ProcessPoolExecutor   # generatetoaddress's proof of work
    pure: ThreadPoolExecutor     # PURE methods: one thread, so the loop waits at most one GIL
                                 # switch interval (1 ms: server.py) for it
    turns: Turns                 # HEAVY methods' slices on the loop, one at a time
    gate: NodeGate               # the node: held on the loop, or the validation thread's


async def run(node: Node, method: str, params, workers: Workers) -> object:
    """Run one method for the HTTP layer: as ``call``, except that
    ``generatetoaddress`` searches proof of work in a worker process
    (``miner.mine``), a PURE method runs on the worker thread, a big
    validation on the validation thread (``_offloaded``), and a HEAVY one
    takes its turns (``Turns``), while the loop serves everyone else."""
    arguments = _arguments(method, params)
    if method == "generatetoaddress":
        return [h.hex() for h in await mine(node, *_generate_params(*arguments), workers.miner, workers.gate)]
    if method in PURE:
        return await asyncio.get_running_loop().run_in_executor(workers.pure, METHODS[method], node, *arguments)
    if _offloaded(method, arguments):
        return await workers.gate.offload(lambda: METHODS[method](node, *arguments))
    if method not in HEAVY:
        async with workers.gate.held():
            return METHODS[method](node, *arguments)
    result = await workers.turns.take(lambda: METHODS[method](node, *arguments))
    if not isgenerator(result):
        return result
    while True:  # a method that scans the mempool: a turn per chunk
        finished, value = await workers.turns.take(lambda: _step(result), step=True)
        if finished:
            return value
