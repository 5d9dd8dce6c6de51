"""JSON-RPC 2.0 methods (PROTOCOL.md section 8), as plain functions of the node.

Each method declares its parameters with the checks they need; ``dispatch``
maps a request to a result or a JSON-RPC error object. Errors follow
bitcoind: -26 rejected, -27 already in chain, -22 bad encoding, -5 unknown
address/tx/block, -8 bad parameter, -32601 unknown method. A refusal's
message is ``CODE: sentence`` and its data carries the bare ``reject_reason``.
Methods marked ``admin`` need the cookie (the HTTP layer checks it).
"""

from chain.address import AddressError, decode_address, encode_address
from chain.block import Block
from chain.encoding import from_hex
from chain.errors import RuleError
from chain.keys import owner_of
from chain.tx import OutPoint, Tx

from .addrman import MAX_MANUAL_PEERS
from .messages import is_addr
from .miner import generate
from .node import USER_AGENT, Node

PROTOCOL_VERSION = 1
MAX_TESTMEMPOOLACCEPT = 100
MAX_GENERATE = 10_000


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

def _int(value, name, low=None, high=None) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise RpcError(-8, f"{name} must be an integer")
    if (low is not None and value < low) or (high is not None and value > high):
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
                     "signature": i.signature.hex(), "address": encode_address(owner_of(i.pubkey))}
                    for i in tx.inputs],
            "vout": [{"index": n, "amount": o.amount, "address": encode_address(o.owner)}
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
                            "reject_reason": error.code, "message": error.message})
    return results


def submitblock(node: Node, hexdata):
    block = _decode(Block.decode, hexdata)
    outcome = node.accept_block(block, "rpc")
    if outcome.status in ("connected", "side"):
        return None
    if outcome.status in ("duplicate", "duplicate-invalid"):
        return outcome.status
    return outcome.error.code


def getrawmempool(node: Node) -> list:
    return [txid.hex() for txid in node.mempool.entries]


def getmempoolinfo(node: Node) -> dict:
    pool = node.mempool
    return {"size": len(pool), "bytes": pool.bytes, "min_fee_rate": pool.min_fee_rate,
            "orphans": len(node.orphans)}


def _coin_json(node: Node, outpoint: OutPoint, coin, confirmations: int) -> dict:
    mature = not coin.coinbase or node.chain.height + 1 - coin.height >= node.chain.net.coinbase_maturity
    return {"txid": outpoint.txid.hex(), "index": outpoint.index, "amount": coin.amount,
            "address": encode_address(coin.owner), "confirmations": confirmations,
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
    return {"amount": coin.amount, "address": encode_address(coin.owner),
            "confirmations": confirmations, "coinbase": coin.coinbase}


def listunspent(node: Node, addresses=None, minconf=1) -> list:
    if addresses is None:
        addresses = []
    if not isinstance(addresses, list) or len(addresses) > 1000:
        raise RpcError(-8, "addresses must be a list of at most 1000 addresses")
    owners = {_owner(a) for a in addresses}
    minconf = _int(minconf, "minconf", 0)
    store = node.chain.store
    if owners:
        coins = [item for owner in owners for item in store.coins_of(owner)]
    else:
        coins = sorted(store.all_coins().items(), key=lambda kv: kv[1].height)
    result = []
    for outpoint, coin in coins:
        confirmations = _confirmations(node, coin.height)
        if outpoint not in node.mempool.spends and confirmations >= minconf:
            result.append(_coin_json(node, outpoint, coin, confirmations))
    if minconf == 0:
        for entry in node.mempool.entries.values():
            for index, out in enumerate(entry.tx.outputs):
                outpoint = OutPoint(entry.tx.txid, index)
                if (not owners or out.owner in owners) and outpoint not in node.mempool.spends:
                    coin = node.mempool.get_coin(outpoint)
                    result.append(_coin_json(node, outpoint, coin, 0))
    return result


def getaddresshistory(node: Node, address) -> list:
    owner = _owner(address)
    history = [{"txid": txid.hex(), "height": height, "delta": delta}
               for txid, height, _, delta in node.chain.store.history_of(owner)]
    pool = node.mempool
    for entry in sorted(pool.entries.values(), key=lambda e: e.time):
        delta, touched = 0, False
        for txin in entry.tx.inputs:
            parent = pool.entries.get(txin.prev_txid)
            spent = (parent.tx.outputs[txin.prev_index] if parent else
                     node.chain.get_coin(txin.outpoint))
            if spent is not None and spent.owner == owner:
                delta -= spent.amount
                touched = True
        for out in entry.tx.outputs:
            if out.owner == owner:
                delta += out.amount
                touched = True
        if touched:
            history.append({"txid": entry.tx.txid.hex(), "height": None, "delta": delta})
    return history


def gettxoutsetinfo(node: Node) -> dict:
    count, total = node.chain.store.utxo_stats()
    return {"utxos": count, "total_amount": total, "height": node.chain.height,
            "best_block_hash": node.chain.tip.hash.hex()}


def getrecentrejects(node: Node) -> list:
    return list(node.recent_rejects)


def getpeerinfo(node: Node) -> list:
    return [{"id": p.id, "addr": p.ban_key, "inbound": p.inbound, "height": p.height,
             "user_agent": p.user_agent, "connected_since": p.connected_since}
            for p in node.peers.values() if p.handshake_done]


def getnetworkinfo(node: Node) -> dict:
    return {"version": PROTOCOL_VERSION, "user_agent": USER_AGENT, "network": node.net.name,
            "connections": sum(1 for p in node.peers.values() if p.handshake_done),
            "listen": node.listen}


def generatetoaddress(node: Node, nblocks, address) -> list:
    count = _int(nblocks, "nblocks", 0, MAX_GENERATE)
    return [h.hex() for h in generate(node, count, _owner(address))]


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
    getrawtransaction, decoderawtransaction, sendrawtransaction, testmempoolaccept, submitblock,
    getrawmempool, getmempoolinfo, gettxout, listunspent, getaddresshistory, gettxoutsetinfo,
    getrecentrejects, getpeerinfo, getnetworkinfo, generatetoaddress, addnode, disconnectnode,
    listbanned, clearbanned, stop)}
ADMIN = {"generatetoaddress", "addnode", "disconnectnode", "listbanned", "clearbanned", "stop"}


def call(node: Node, method: str, params) -> object:
    """Run one method; raises RpcError."""
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
    return function(node, *params)
