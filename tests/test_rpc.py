"""The node API of PROTOCOL.md section 8 over real HTTP: every JSON-RPC
method, its result shapes and values, its errors (-26, -27, -22, -5, -8,
-32601, -32700), the admin cookie (HTTP 401 without it) and the /events
WebSocket. Each test runs real nodes (tests/nodes.py) on 127.0.0.1 and talks
to them with aiohttp, as any client would.
"""

import asyncio
import contextlib
import os
import re
import stat
import time

import aiohttp

from chain.address import decode_address
from chain.amounts import COIN
from chain.block import Block, Header
from chain.coins import Coin
from chain.mining import mine_block
from chain.pow import compact_to_target, hash_meets_target
from chain.params import GENESIS_TIME, REGTEST
from chain.tx import OutPoint, TxOut, coinbase_tx

from .helpers import make_tx, owner
from .nodes import address, run, start_node, wait_for

GENESIS_HASH = "430b418b4179c472266f3439c14619ff916b3092486af8dbc8bb4997ad9a22c5"
GENESIS_TXID = "d0b8ebf92535c280b483b8c3fd50ab00c77beba7bb6703d76c653a6c3788ea90"
GENESIS_HEX = REGTEST.genesis.raw.hex()
WORK = 2  # work of one regtest block: 2**256 // (target(0x207fffff) + 1)
ADMIN = ("generatetoaddress", "addnode", "disconnectnode", "listbanned", "clearbanned", "stop")
USER_AGENT = "/toychain:0.1.0/"


def chainwork(blocks: int) -> str:
    return f"{WORK * blocks:064x}"


class Client:
    """JSON-RPC over HTTP to one node."""

    def __init__(self, session: aiohttp.ClientSession, server):
        self.session = session
        self.server = server
        self.base = f"http://127.0.0.1:{server.port}"
        self.url = self.base + "/rpc"
        self.next_id = 0

    @property
    def token(self) -> str:
        return (self.server.datadir / ".cookie").read_text()

    async def post(self, body, token: str | None = None, raw: str | None = None):
        """(HTTP status, decoded JSON reply)."""
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        kwargs = {"data": raw} if raw is not None else {"json": body}
        async with self.session.post(self.url, headers=headers, **kwargs) as response:
            return response.status, await response.json(content_type=None)

    async def request(self, method: str, *params, admin: bool = False):
        self.next_id += 1
        status, reply = await self.post({"jsonrpc": "2.0", "id": self.next_id, "method": method,
                                         "params": list(params)},
                                        token=self.token if admin else None)
        assert status == 200, (method, status, reply)
        assert reply["jsonrpc"] == "2.0" and reply["id"] == self.next_id
        return reply

    async def call(self, method: str, *params, admin: bool = False):
        reply = await self.request(method, *params, admin=admin)
        assert "error" not in reply, (method, reply)
        return reply["result"]

    async def error(self, method: str, *params, admin: bool = False) -> dict:
        reply = await self.request(method, *params, admin=admin)
        assert "result" not in reply, (method, reply)
        return reply["error"]

    async def generate(self, count: int, name: str = "alice") -> list[str]:
        return await self.call("generatetoaddress", count, address(name), admin=True)


@contextlib.asynccontextmanager
async def node_and_client(path, **kwargs):
    server = await start_node(path, **kwargs)
    try:
        async with aiohttp.ClientSession() as session:
            yield server, Client(session, server)
    finally:
        if not server.stopped.is_set():
            server.stopped.set()
            await server.stop()


class Events:
    """A subscriber to /events that remembers everything it received."""

    def __init__(self, ws):
        self.ws = ws
        self.seen: list[dict] = []
        self._taken: set[int] = set()

    @classmethod
    async def open(cls, client: Client) -> "Events":
        subscribers = client.server.events._subscribers
        before = len(subscribers)
        ws = await client.session.ws_connect(client.base + "/events")
        await wait_for(lambda: len(subscribers) == before + 1, 5, "the /events subscription")
        return cls(ws)

    async def next(self, event: str, timeout: float = 5.0, **match) -> dict:
        """The oldest event named ``event`` whose fields include ``match`` and
        that no earlier call returned."""
        deadline = time.monotonic() + timeout
        while True:
            for index, item in enumerate(self.seen):
                if index not in self._taken and item["event"] == event \
                        and all(item.get(k) == v for k, v in match.items()):
                    self._taken.add(index)
                    return item
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {event} event {match} within {timeout} s; saw {self.seen}")
            try:
                message = await asyncio.wait_for(self.ws.receive(), remaining)
            except asyncio.TimeoutError:
                raise AssertionError(f"no {event} event {match} within {timeout} s; "
                                     f"saw {self.seen}") from None
            assert message.type == aiohttp.WSMsgType.TEXT, message
            self.seen.append(message.json())

    def names(self) -> list[str]:
        return [item["event"] for item in self.seen]


def coins_from(listunspent: list[dict]) -> list[tuple[OutPoint, Coin]]:
    """What make_tx needs from listunspent entries."""
    return [(OutPoint(bytes.fromhex(c["txid"]), c["index"]),
             Coin(c["amount"], decode_address(c["address"]), 0, c["coinbase"]))
            for c in listunspent]


async def mature_coins(client: Client, name: str) -> list[tuple[OutPoint, Coin]]:
    coins = await client.call("listunspent", [address(name)])
    return coins_from([c for c in coins if c["mature"]])


def side_block(server, parent_hash: str, txs=(), to="dave", fees: int = 0, time_: int | None = None,
               extra: int = 0) -> Block:
    """A solved block on ``parent_hash`` built the way a miner would."""
    chain = server.node.chain
    parent = chain.index[bytes.fromhex(parent_hash)]
    height = parent.height + 1
    when = time_ if time_ is not None else max(parent.header.time, chain.median_time_past(parent)) + 1
    return mine_block(parent.hash, height, chain.next_required_bits(parent), when, list(txs),
                      [TxOut(REGTEST.subsidy(height) + fees + extra, owner(to))])


# -- the cookie --------------------------------------------------------------------------------

def test_cookie_is_64_hex_digits_mode_0600_new_at_every_start(tmp_path):
    async def scenario():
        tokens = []
        for _ in range(2):
            async with node_and_client(tmp_path / "n") as (server, client):
                path = tmp_path / "n" / ".cookie"
                text = path.read_text()
                assert re.fullmatch(r"[0-9a-f]{64}", text), text
                assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
                assert text == server.token
                tokens.append(text)
                assert await client.call("listbanned", admin=True) == []
        assert tokens[0] != tokens[1]
    run(scenario())


# -- chain queries -------------------------------------------------------------------------------

def test_chain_queries(tmp_path):
    async def scenario():
        async with node_and_client(tmp_path / "n") as (server, client):
            info = await client.call("getblockchaininfo")
            assert info == {"network": "regtest", "height": 0, "best_block_hash": GENESIS_HASH,
                            "chainwork": chainwork(1), "mediantime": GENESIS_TIME,
                            "pow_limit_bits": "207fffff", "supply": 50 * COIN}
            assert await client.call("getbestblockhash") == GENESIS_HASH
            assert await client.call("getblockhash", 0) == GENESIS_HASH

            before = int(time.time())
            hashes = await client.generate(3, "bob")
            after = int(time.time())
            assert len(hashes) == 3 and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes)
            info = await client.call("getblockchaininfo")
            assert info["height"] == 3 and info["best_block_hash"] == hashes[-1]
            assert info["chainwork"] == chainwork(4) and len(info["chainwork"]) == 64
            assert info["supply"] == 200 * COIN
            assert all(type(info[k]) is int for k in ("height", "mediantime", "supply"))
            tip = server.node.chain.tip
            assert info["mediantime"] == server.node.chain.median_time_past(tip)
            assert await client.call("getbestblockhash") == hashes[-1]
            assert [await client.call("getblockhash", h) for h in (1, 2, 3)] == hashes

            error = await client.error("getblockhash", 4)
            assert error["code"] == -8 and error["message"] == "block height 4 out of range [0, 3]"
            assert (await client.error("getblockhash", -1))["code"] == -8
            assert (await client.error("getblockhash", "1"))["code"] == -8

            header = await client.call("getblockheader", GENESIS_HASH)
            assert header == {"hash": GENESIS_HASH, "height": 0, "version": 1,
                              "prev_hash": "00" * 32, "merkle_root": GENESIS_TXID,
                              "time": GENESIS_TIME, "bits": "207fffff", "nonce": 0,
                              "chainwork": chainwork(1), "mediantime": GENESIS_TIME,
                              "confirmations": 4}
            # time = max(now, MTP + 1): the first block takes the clock, the next ones MTP + 1 at least.
            first = await client.call("getblockheader", hashes[0])
            assert before <= first["time"] <= after
            for h in hashes[1:]:
                this = await client.call("getblockheader", h)
                block_time = this["time"]
                parent = await client.call("getblockheader", this["prev_hash"])
                floor = parent["mediantime"] + 1
                assert block_time >= max(before, floor)
                assert block_time == floor or block_time <= after
            top = await client.call("getblockheader", hashes[-1])
            assert (top["height"], top["prev_hash"], top["confirmations"], top["bits"],
                    top["chainwork"]) == (3, hashes[1], 1, "207fffff", chainwork(4))
            assert top["time"] > top["mediantime"] - 1 and isinstance(top["nonce"], int)

            unknown = "ab" * 32
            error = await client.error("getblockheader", unknown)
            assert error["code"] == -5 and error["message"] == f"block {unknown} not found"
            assert (await client.error("getblock", unknown))["code"] == -5
            assert (await client.error("getblockheader", "xyz"))["code"] == -8

            assert await client.call("getblock", GENESIS_HASH, 0) == GENESIS_HEX
            block = await client.call("getblock", GENESIS_HASH)
            assert block == {**header, "size": len(REGTEST.genesis.raw), "tx": [GENESIS_TXID]}
            assert await client.call("getblock", GENESIS_HASH, 1) == block
            raw = await client.call("getblock", hashes[0], 0)
            assert Block.decode(bytes.fromhex(raw)).hash.hex() == hashes[0]
            block1 = await client.call("getblock", hashes[0])
            coinbase = Block.decode(bytes.fromhex(raw)).txs[0]
            assert block1["tx"] == [coinbase.txid.hex()] and block1["height"] == 1
            assert coinbase.outputs[0] == TxOut(50 * COIN, owner("bob"))
            assert (await client.error("getblock", GENESIS_HASH, 2))["code"] == -8
    run(scenario())


# -- transactions ---------------------------------------------------------------------------------

def test_transaction_methods(tmp_path):
    async def scenario():
        async with node_and_client(tmp_path / "n") as (server, client):
            await client.generate(10)   # block 11 may spend the coinbases of heights 0 and 1
            mature = await mature_coins(client, "alice")
            assert [(op.txid.hex(), c.amount) for op, c in mature][:1] == [(GENESIS_TXID, 50 * COIN)]
            assert len(mature) == 2
            genesis_coin = mature[0]
            tx = make_tx([genesis_coin], "alice", [("bob", 10 * COIN), ("alice", 40 * COIN - 1000)])
            txid = tx.txid.hex()

            decoded = await client.call("decoderawtransaction", tx.raw.hex().upper())
            assert decoded == {
                "txid": txid, "version": 1, "locktime": 0, "size": 199,
                "vin": [{"txid": GENESIS_TXID, "index": 0, "pubkey": tx.inputs[0].pubkey.hex(),
                         "signature": tx.inputs[0].signature.hex(), "address": address("alice")}],
                "vout": [{"index": 0, "amount": 10 * COIN, "address": address("bob")},
                         {"index": 1, "amount": 40 * COIN - 1000, "address": address("alice")}]}
            for bad in ("zz", "abc"):
                error = await client.error("decoderawtransaction", bad)
                assert error["code"] == -22 and error["data"] == {"reject_reason": "bad-encoding"}
                assert error["message"].startswith("bad-encoding: ")
            for undecodable in ("00", tx.raw.hex() + "00", tx.raw.hex()[:-2]):
                error = await client.error("decoderawtransaction", undecodable)
                assert error["code"] == -22 and error["data"]["reject_reason"] == "bad-encoding"

            assert await client.call("testmempoolaccept", [tx.raw.hex()]) == [
                {"txid": txid, "allowed": True}]
            assert await client.call("getrawmempool") == []   # testing adds nothing
            assert await client.call("sendrawtransaction", tx.raw.hex()) == txid
            assert await client.call("getrawmempool") == [txid]
            assert await client.call("getmempoolinfo") == {"size": 1, "bytes": 199,
                                                           "min_fee_rate": 1, "orphans": 0}
            assert await client.call("getrawtransaction", txid) == {
                "hex": tx.raw.hex(), "txid": txid, "blockhash": None, "confirmations": 0}
            [result] = await client.call("testmempoolaccept", [tx.raw.hex()])
            assert result == {"txid": txid, "allowed": False, "reject_reason": "txn-already-in-mempool",
                              "message": f"txn-already-in-mempool: tx {txid} is already in the mempool"}

            # An overspend: 10 TOY in, 15 TOY out.
            ten = (OutPoint(tx.txid, 0), Coin(10 * COIN, owner("bob"), 0, False))
            overspend = make_tx([ten], "bob", [("carol", 15 * COIN)])
            error = await client.error("sendrawtransaction", overspend.raw.hex())
            assert error == {"code": -26, "message": "bad-txns-in-belowout: inputs 10.00000000 TOY "
                                                     "< outputs 15.00000000 TOY",
                             "data": {"reject_reason": "bad-txns-in-belowout"}}
            [result] = await client.call("testmempoolaccept", [overspend.raw.hex()])
            assert result == {"txid": overspend.txid.hex(), "allowed": False,
                              "reject_reason": "bad-txns-in-belowout",
                              "message": "bad-txns-in-belowout: inputs 10.00000000 TOY < "
                                         "outputs 15.00000000 TOY"}
            assert result["message"] == error["message"]  # the same "CODE: sentence" as the error
            # Missing inputs are -26 too.
            ghost = (OutPoint(b"\x11" * 32, 0), Coin(5 * COIN, owner("bob"), 0, False))
            missing = make_tx([ghost], "bob", [("carol", 4 * COIN)])
            error = await client.error("sendrawtransaction", missing.raw.hex())
            assert error["code"] == -26
            assert error["data"] == {"reject_reason": "bad-txns-inputs-missingorspent"}
            # Over RPC a tx with unknown inputs is refused, not kept as an orphan.
            assert (await client.call("getmempoolinfo"))["orphans"] == 0
            # A coinbase outside a block.
            loose_coinbase = coinbase_tx(11, [TxOut(50 * COIN, owner("mallory"))])
            error = await client.error("sendrawtransaction", loose_coinbase.raw.hex())
            assert error["code"] == -26 and error["data"] == {"reject_reason": "coinbase"}
            # A double spend of the mempool's coin.
            rival = make_tx([genesis_coin], "alice", [("carol", 49 * COIN)])
            error = await client.error("sendrawtransaction", rival.raw.hex())
            assert error["code"] == -26 and error["data"]["reject_reason"] == "txn-mempool-conflict"

            rejects = await client.call("getrecentrejects")
            assert [(r["id"], r["reject_reason"], r["kind"], r["source"]) for r in rejects] == [
                (rival.txid.hex(), "txn-mempool-conflict", "tx", "rpc"),
                (loose_coinbase.txid.hex(), "coinbase", "tx", "rpc"),
                (missing.txid.hex(), "bad-txns-inputs-missingorspent", "tx", "rpc"),
                (overspend.txid.hex(), "bad-txns-in-belowout", "tx", "rpc")]
            assert rejects[3]["message"] == "inputs 10.00000000 TOY < outputs 15.00000000 TOY"
            assert all(type(r["time"]) is int and abs(r["time"] - time.time()) < 60
                       for r in rejects)
            assert [r["time"] for r in rejects] == sorted((r["time"] for r in rejects), reverse=True)

            [block_hash] = await client.generate(1, "carol")
            assert await client.call("getrawmempool") == []
            assert await client.call("getmempoolinfo") == {"size": 0, "bytes": 0,
                                                           "min_fee_rate": 1, "orphans": 0}
            assert await client.call("getrawtransaction", txid) == {
                "hex": tx.raw.hex(), "txid": txid, "blockhash": block_hash, "confirmations": 1}
            assert (await client.call("getblock", block_hash))["tx"][1] == txid
            await client.generate(2, "carol")
            assert (await client.call("getrawtransaction", txid))["confirmations"] == 3
            genesis_tx = await client.call("getrawtransaction", GENESIS_TXID)
            assert genesis_tx == {"hex": REGTEST.genesis.txs[0].raw.hex(), "txid": GENESIS_TXID,
                                  "blockhash": GENESIS_HASH, "confirmations": 14}

            error = await client.error("sendrawtransaction", tx.raw.hex())
            assert error == {"code": -27, "message": f"txn-already-known: tx {txid} is already confirmed",
                             "data": {"reject_reason": "txn-already-known"}}
            error = await client.error("sendrawtransaction", "not hex")
            assert error["code"] == -22 and error["data"] == {"reject_reason": "bad-encoding"}
            error = await client.error("sendrawtransaction", "0100")
            assert error["code"] == -22 and error["data"] == {"reject_reason": "bad-encoding"}

            unknown = "cd" * 32
            error = await client.error("getrawtransaction", unknown)
            assert error["code"] == -5
            assert error["message"] == f"no transaction {unknown} in the chain or the mempool"
            assert (await client.error("getrawtransaction", "1234"))["code"] == -8
            assert (await client.error("testmempoolaccept", tx.raw.hex()))["code"] == -8
            assert (await client.error("testmempoolaccept", ["zz"]))["code"] == -22
    run(scenario())


def test_resending_a_mempool_tx_returns_its_txid_and_is_no_reject(tmp_path):
    """sendrawtransaction of a tx already in the mempool succeeds (section 8):
    a success is neither a recent reject nor a tx_rejected event."""
    async def scenario():
        async with node_and_client(tmp_path / "n") as (server, client):
            await client.generate(10)
            genesis_coin = (await mature_coins(client, "alice"))[0]
            tx = make_tx([genesis_coin], "alice", [("bob", 50 * COIN - 500)])
            txid = tx.txid.hex()
            events = await Events.open(client)
            assert await client.call("sendrawtransaction", tx.raw.hex()) == txid
            assert await client.call("sendrawtransaction", tx.raw.hex()) == txid
            assert await client.call("getrawmempool") == [txid]
            assert await client.call("getmempoolinfo") == {"size": 1, "bytes": 171,
                                                           "min_fee_rate": 1, "orphans": 0}
            # A later genuine reject is the only entry and the next event after tx_accepted.
            ghost = (OutPoint(b"\x11" * 32, 0), Coin(5 * COIN, owner("bob"), 0, False))
            missing = make_tx([ghost], "bob", [("carol", 4 * COIN)])
            await client.error("sendrawtransaction", missing.raw.hex())
            assert (await events.next("tx_accepted"))["txid"] == txid
            rejected = await events.next("tx_rejected")
            assert rejected["id"] == missing.txid.hex(), rejected
            assert [r["id"] for r in await client.call("getrecentrejects")] == [missing.txid.hex()]
            await events.ws.close()
    run(scenario())


def test_hex_input_in_either_case_output_lower_case(tmp_path):
    """Section 1: hex input is accepted in either case; hex output is lower-case."""
    async def scenario():
        async with node_and_client(tmp_path / "n") as (server, client):
            [block] = await client.generate(1)
            await client.generate(9)
            genesis_coin = (await mature_coins(client, "alice"))[0]
            tx = make_tx([genesis_coin], "alice", [("bob", 50 * COIN - 500)])
            txid = tx.txid.hex()
            assert await client.call("sendrawtransaction", tx.raw.hex().upper()) == txid
            assert (await client.call("decoderawtransaction", tx.raw.hex().upper()))["txid"] == txid
            assert await client.call("testmempoolaccept", [tx.raw.hex().upper()]) == [
                {"txid": txid, "allowed": False, "reject_reason": "txn-already-in-mempool",
                 "message": f"txn-already-in-mempool: tx {txid} is already in the mempool"}]
            assert await client.call("gettxout", txid.upper(), 0) == {
                "amount": 50 * COIN - 500, "address": address("bob"), "confirmations": 0,
                "coinbase": False}
            assert (await client.call("getblockheader", block.upper()))["hash"] == block
            assert (await client.call("getblock", block.upper()))["hash"] == block
            assert await client.call("getblockhash", 1) == block
            in_pool = await client.call("getrawtransaction", txid.upper())
            [confirmed] = await client.generate(1)
            assert await client.call("getrawtransaction", txid.upper()) == {
                "hex": tx.raw.hex(), "txid": txid, "blockhash": confirmed, "confirmations": 1}
            # The mempool answer too must be lower-case (it echoes the input).
            assert in_pool == {"hex": tx.raw.hex(), "txid": txid, "blockhash": None,
                               "confirmations": 0}
    run(scenario())


# -- coins and addresses ----------------------------------------------------------------------------

def test_coin_and_address_queries(tmp_path):
    async def scenario():
        async with node_and_client(tmp_path / "n") as (server, client):
            hashes = await client.generate(11)
            coinbase_txids = [(await client.call("getblock", h))["tx"][0] for h in hashes]
            genesis_coin = (OutPoint(bytes.fromhex(GENESIS_TXID), 0),
                            Coin(50 * COIN, owner("alice"), 0, True))
            tx1 = make_tx([genesis_coin], "alice", [("bob", 10 * COIN), ("bob", 5 * COIN),
                                                    ("alice", 35 * COIN - 1000)])
            await client.call("sendrawtransaction", tx1.raw.hex())
            [block12] = await client.generate(1)
            cb12 = (await client.call("getblock", block12))["tx"][0]
            t1 = tx1.txid.hex()

            # tx1's outputs are confirmed coins.
            assert await client.call("gettxout", t1, 0) == {
                "amount": 10 * COIN, "address": address("bob"), "confirmations": 1, "coinbase": False}
            assert await client.call("gettxout", GENESIS_TXID, 0) is None  # spent
            assert await client.call("gettxout", t1, 3) is None
            assert await client.call("gettxout", cb12, 0) == {
                "amount": 50 * COIN + 1000, "address": address("alice"), "confirmations": 1,
                "coinbase": True}
            assert await client.call("gettxout", coinbase_txids[0], 0) == {
                "amount": 50 * COIN, "address": address("alice"), "confirmations": 12,
                "coinbase": True}

            # tx2 spends tx1:0 in the mempool: 4 TOY to carol, change to bob.
            ten = (OutPoint(tx1.txid, 0), Coin(10 * COIN, owner("bob"), 12, False))
            tx2 = make_tx([ten], "bob", [("carol", 4 * COIN), ("bob", 6 * COIN - 500)])
            t2 = tx2.txid.hex()
            assert await client.call("sendrawtransaction", tx2.raw.hex()) == t2
            assert await client.call("gettxout", t1, 0) is None              # spent in the mempool
            assert await client.call("gettxout", t1, 0, True) is None
            assert await client.call("gettxout", t1, 0, False) == {
                "amount": 10 * COIN, "address": address("bob"), "confirmations": 1, "coinbase": False}
            assert await client.call("gettxout", t2, 0) == {
                "amount": 4 * COIN, "address": address("carol"), "confirmations": 0, "coinbase": False}
            assert await client.call("gettxout", t2, 0, False) is None
            assert await client.call("gettxout", t2, 2) is None
            assert (await client.error("gettxout", t1, -1))["code"] == -8
            assert (await client.error("gettxout", t1, 0, "yes"))["code"] == -8

            # listunspent: minconf 1 by default, coins spent in the mempool left out.
            assert await client.call("listunspent", [address("bob")]) == [
                {"txid": t1, "index": 1, "amount": 5 * COIN, "address": address("bob"),
                 "confirmations": 1, "coinbase": False, "mature": True}]
            assert await client.call("listunspent", [address("bob")], 1) == \
                await client.call("listunspent", [address("bob")])
            with_pool = await client.call("listunspent", [address("bob")], 0)
            assert with_pool == [
                {"txid": t1, "index": 1, "amount": 5 * COIN, "address": address("bob"),
                 "confirmations": 1, "coinbase": False, "mature": True},
                {"txid": t2, "index": 1, "amount": 6 * COIN - 500, "address": address("bob"),
                 "confirmations": 0, "coinbase": False, "mature": True}]
            assert await client.call("listunspent", [address("carol")]) == []
            assert await client.call("listunspent", [address("carol")], 0) == [
                {"txid": t2, "index": 0, "amount": 4 * COIN, "address": address("carol"),
                 "confirmations": 0, "coinbase": False, "mature": True}]
            assert await client.call("listunspent", [address("bob")], 2) == []
            alice = {(c["txid"], c["index"]): c for c in
                     await client.call("listunspent", [address("alice")])}
            assert len(alice) == 13   # 12 coinbases (heights 1..12) and tx1's change
            # Block 13 may spend coinbases of heights <= 3.
            assert [alice[(coinbase_txids[h - 1], 0)]["mature"] for h in (1, 2, 3, 4, 11)] == [
                True, True, True, False, False]
            assert alice[(coinbase_txids[2], 0)]["confirmations"] == 10
            assert alice[(cb12, 0)] == {"txid": cb12, "index": 0, "amount": 50 * COIN + 1000,
                                        "address": address("alice"), "confirmations": 1,
                                        "coinbase": True, "mature": False}
            assert alice[(t1, 2)]["mature"] is True and alice[(t1, 2)]["coinbase"] is False
            everyone = await client.call("listunspent")
            assert len(everyone) == 14 and {(c["txid"], c["index"]) for c in everyone} == \
                set(alice) | {(t1, 1)}
            assert (await client.error("listunspent", "not a list"))["code"] == -8
            assert (await client.error("listunspent", ["toy1notanaddress"]))["code"] == -5
            assert (await client.error("listunspent", [address("bob")], -1))["code"] == -8
            # Integers past 64 bits reach the method as integers (jsonrpc.parse): each is
            # refused with -8 and a sentence, never an OverflowError from SQLite (-32603).
            huge = 10 ** 23
            for params in ([[address("bob")], huge],
                           [[address("bob")], 1, {"after": {"txid": "00" * 32, "index": huge,
                                                            "confirmations": 1}}],
                           [[address("bob")], 1, {"after": {"txid": "00" * 32, "index": 0,
                                                            "confirmations": huge}}]):
                error = await client.error("listunspent", *params)
                assert error["code"] == -8 and "out of range" in error["message"], error
            assert (await client.error("getblockhash", huge))["code"] == -8

            # getaddresshistory: oldest first, mempool last with height null.
            assert await client.call("getaddresshistory", address("bob")) == [
                {"txid": t1, "height": 12, "delta": 15 * COIN},
                {"txid": t2, "height": None, "delta": -4 * COIN - 500}]
            assert await client.call("getaddresshistory", address("carol")) == [
                {"txid": t2, "height": None, "delta": 4 * COIN}]
            # Carol spends her unconfirmed coin: it leaves listunspent, joins her history.
            four = (OutPoint(tx2.txid, 0), Coin(4 * COIN, owner("carol"), 13, False))
            tx3 = make_tx([four], "carol", [("erin", 4 * COIN - 300)])
            t3 = await client.call("sendrawtransaction", tx3.raw.hex())
            assert t3 == tx3.txid.hex()
            assert await client.call("listunspent", [address("carol")], 0) == []
            assert await client.call("gettxout", t2, 0) is None
            assert await client.call("getaddresshistory", address("carol")) == [
                {"txid": t2, "height": None, "delta": 4 * COIN},
                {"txid": t3, "height": None, "delta": -4 * COIN}]
            assert await client.call("listunspent", [address("erin")], 0) == [
                {"txid": t3, "index": 0, "amount": 4 * COIN - 300, "address": address("erin"),
                 "confirmations": 0, "coinbase": False, "mature": True}]
            history = await client.call("getaddresshistory", address("alice"))
            assert history[0] == {"txid": GENESIS_TXID, "height": 0, "delta": 50 * COIN}
            assert [e["height"] for e in history] == list(range(13)) + [12]
            assert history[-2:] == [{"txid": cb12, "height": 12, "delta": 50 * COIN + 1000},
                                    {"txid": t1, "height": 12, "delta": -15 * COIN - 1000}]
            assert await client.call("getaddresshistory", address("dave")) == []
            error = await client.error("getaddresshistory", "toy1qqqqqqqq")
            assert error["code"] == -5 and error["message"].startswith("invalid address")
            assert (await client.error("getaddresshistory", address("bob").upper()[:-1] + "x"))["code"] == -5

            # The UTXO set: 12 coinbases + tx1's 3 outputs; the money supply.
            info = await client.call("gettxoutsetinfo")
            assert info == {"utxos": 15, "total_amount": 13 * 50 * COIN, "height": 12,
                            "best_block_hash": block12}
            assert (await client.call("getblockchaininfo"))["supply"] == info["total_amount"]
    run(scenario())


# -- blocks --------------------------------------------------------------------------------------------

def test_submitblock(tmp_path):
    async def scenario():
        async with node_and_client(tmp_path / "n") as (server, client):
            await client.generate(2)
            tip = await client.call("getbestblockhash")
            good = side_block(server, tip, to="bob")
            assert await client.call("submitblock", good.raw.hex()) is None
            assert await client.call("getbestblockhash") == good.hash.hex()
            assert await client.call("submitblock", good.raw.hex()) == "duplicate"
            assert await client.call("submitblock", good.raw.hex().upper()) == "duplicate"

            greedy = side_block(server, good.hash.hex(), extra=1)
            assert await client.call("submitblock", greedy.raw.hex()) == "bad-cb-amount"
            assert await client.call("submitblock", greedy.raw.hex()) == "duplicate-invalid"
            assert await client.call("getbestblockhash") == good.hash.hex()
            rejects = await client.call("getrecentrejects")
            reject = rejects[-1]   # the first refusal of the greedy block
            assert (reject["kind"], reject["id"], reject["reject_reason"], reject["source"]) == (
                "block", greedy.hash.hex(), "bad-cb-amount", "rpc")
            assert {r["id"] for r in rejects} == {greedy.hash.hex()}
            assert reject["message"] == ("coinbase claims 50.00000001 TOY > subsidy 50.00000000 TOY "
                                         "+ fees 0.00000000 TOY")

            # Its child: the parent is known invalid.
            child = mine_block(greedy.hash, 4, REGTEST.pow_limit_bits, greedy.header.time + 1, [],
                               [TxOut(50 * COIN, owner("dave"))])
            assert await client.call("submitblock", child.raw.hex()) == "bad-prevblk"

            # Without the work: high-hash, not remembered as invalid.
            unsolved = side_block(server, good.hash.hex(), to="erin")
            header = unsolved.header
            target = compact_to_target(header.bits)[0]
            nonce = 0
            while hash_meets_target(Header(1, header.prev_hash, header.merkle_root, header.time,
                                           header.bits, nonce).hash, target):
                nonce += 1
            lazy = Block(Header(1, header.prev_hash, header.merkle_root, header.time, header.bits,
                                nonce), unsolved.txs)
            assert await client.call("submitblock", lazy.raw.hex()) == "high-hash"
            assert await client.call("submitblock", lazy.raw.hex()) == "high-hash"

            # Too far in the future: refused, and not cached (it may be valid later).
            future = side_block(server, good.hash.hex(), to="erin", time_=int(time.time()) + 3 * 3600)
            assert await client.call("submitblock", future.raw.hex()) == "time-too-new"
            assert await client.call("submitblock", future.raw.hex()) == "time-too-new"

            # A side branch (less work than the active chain) is stored: null.
            fork = await client.call("getblockhash", 1)
            side = side_block(server, fork, to="carol")
            assert await client.call("submitblock", side.raw.hex()) is None
            assert await client.call("getbestblockhash") == good.hash.hex()
            assert (await client.call("getblockheader", side.hash.hex()))["confirmations"] == -1

            # An orphan: its parent is unknown.
            orphan = mine_block(b"\x42" * 32, 10, REGTEST.pow_limit_bits, GENESIS_TIME + 10_000, [],
                                [TxOut(50 * COIN, owner("dave"))])
            assert await client.call("submitblock", orphan.raw.hex()) == "prev-blk-not-found"

            for bad in ("zz", "00", good.raw.hex() + "00"):
                error = await client.error("submitblock", bad)
                assert error["code"] == -22 and error["data"] == {"reject_reason": "bad-encoding"}
            assert (await client.call("getblockchaininfo"))["height"] == 3
    run(scenario())


def test_admin_methods_need_the_cookie(tmp_path):
    async def scenario():
        async with node_and_client(tmp_path / "n") as (server, client):
            params = {"generatetoaddress": [1, address("bob")], "addnode": ["127.0.0.1:1"],
                      "disconnectnode": ["127.0.0.1:1"], "listbanned": [], "clearbanned": [],
                      "stop": []}
            for method in ADMIN:
                for token in (None, "00" * 32, client.token + "0", client.token.upper()):
                    status, reply = await client.post(
                        {"jsonrpc": "2.0", "id": 7, "method": method, "params": params[method]},
                        token=token)
                    assert status == 401, (method, token)
                    assert reply["error"]["code"] == -32600
            # A batch holding an admin method is refused as a whole.
            status, _ = await client.post([{"jsonrpc": "2.0", "id": 1, "method": "getbestblockhash"},
                                           {"jsonrpc": "2.0", "id": 2, "method": "clearbanned"}])
            assert status == 401
            assert server.node.chain.height == 0 and not server.stopped.is_set()
            # Raw Authorization header (not via the helper): the exact "Bearer <cookie>".
            async with client.session.post(client.url, json={"jsonrpc": "2.0", "id": 1,
                                                              "method": "listbanned"},
                                           headers={"Authorization": client.token}) as response:
                assert response.status == 401

            # With the cookie each one works.
            [block] = await client.call("generatetoaddress", 1, address("bob"), admin=True)
            assert await client.call("getbestblockhash") == block
            assert (await client.error("generatetoaddress", 1, "toy1bad", admin=True))["code"] == -5
            assert (await client.error("generatetoaddress", -1, address("bob"), admin=True))["code"] == -8
            assert await client.call("listbanned", admin=True) == []
            assert await client.call("clearbanned", admin=True) is None
            assert (await client.error("addnode", "nonsense", admin=True))["code"] == -8
            assert (await client.error("disconnectnode", "nonsense", admin=True))["code"] == -8
            assert await client.call("stop", admin=True) is None
            await wait_for(server.stopped.is_set, 5, "the node to stop")
    run(scenario())


def test_addnode_disconnectnode_getpeerinfo_getnetworkinfo(tmp_path):
    async def scenario():
        async with node_and_client(tmp_path / "a") as (a, client), \
                node_and_client(tmp_path / "b") as (b, client_b):
            assert await client.call("getpeerinfo") == []
            assert await client.call("getnetworkinfo") == {
                "version": 1, "user_agent": USER_AGENT, "network": "regtest", "connections": 0,
                "listen": f"127.0.0.1:{a.port}"}
            await client_b.generate(2)
            events = await Events.open(client)
            before = int(time.time())
            assert await client.call("addnode", b.node.listen, admin=True) is None
            connected = await events.next("peer_connected")
            assert (connected["addr"], connected["inbound"], connected["height"]) == (
                b.node.listen, False, 2)
            [peer] = await client.call("getpeerinfo")
            assert peer == {"id": connected["id"], "addr": b.node.listen, "inbound": False,
                            "height": 2, "user_agent": USER_AGENT,
                            "connected_since": peer["connected_since"]}
            assert before <= peer["connected_since"] <= int(time.time())
            await wait_for(lambda: len(b.node.peers) == 1 and all(
                p.handshake_done for p in b.node.peers.values()), 5, "b's side of the link")
            [seen_by_b] = await client_b.call("getpeerinfo")
            assert (seen_by_b["addr"], seen_by_b["inbound"]) == (a.node.listen, True)
            assert (await client.call("getnetworkinfo"))["connections"] == 1
            await wait_for(lambda: a.node.chain.height == 2, 5, "a to sync b's blocks")

            assert await client.call("disconnectnode", b.node.listen, admin=True) is None
            gone = await events.next("peer_disconnected")
            assert (gone["addr"], gone["reason"], gone["id"]) == (
                b.node.listen, "disconnectnode", connected["id"])
            await events.ws.close()
    run(scenario())


def test_listbanned_and_clearbanned(tmp_path):
    async def scenario():
        async with node_and_client(tmp_path / "n") as (server, client):
            async with client.session.ws_connect(client.base + "/p2p") as ws:
                local_port = ws.get_extra_info("sockname")[1]
                await ws.send_bytes(b"\x00binary")
                message = await asyncio.wait_for(ws.receive(), 5)
                assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                                        aiohttp.WSMsgType.CLOSING)
            await wait_for(lambda: server.node.banlist.bans, 5, "a ban")
            [ban] = await client.call("listbanned", admin=True)
            assert ban["reason"] == "binary frame"
            # No listen announced: the ban key is the source host:port.
            assert ban["addr"] == f"127.0.0.1:{local_port}"
            assert abs(ban["until"] - (time.time() + 600)) < 30 and isinstance(ban["until"], int)
            assert await client.call("clearbanned", admin=True) is None
            assert await client.call("listbanned", admin=True) == []
    run(scenario())


def test_protocol_errors(tmp_path):
    async def scenario():
        async with node_and_client(tmp_path / "n") as (server, client):
            error = await client.error("getblockcount")
            assert error == {"code": -32601, "message": "method 'getblockcount' not found"}
            error = await client.error("getbestblockhash", 1)
            assert error["code"] == -8
            assert error["message"] == "getbestblockhash takes 0 to 0 params (), got 1"
            assert (await client.error("getblockhash"))["code"] == -8
            assert (await client.error("getblockhash", 1, 2))["code"] == -8
            assert (await client.error("getblockhash", 1.5))["code"] == -8
            assert (await client.error("getblockhash", True))["code"] == -8
            assert (await client.error("getblockheader", 5))["code"] == -8
            status, reply = await client.post({"jsonrpc": "2.0", "id": 3, "method": "getblockhash",
                                               "params": {"height": 0}})
            assert status == 200 and reply["error"]["code"] == -8 and reply["id"] == 3
            status, reply = await client.post(None, raw="{this is not json")
            assert status == 200
            assert reply == {"jsonrpc": "2.0", "id": None, "error": {
                "code": -32700, "message": "parse error: invalid JSON (Expecting property name enclosed "
                                           "in double quotes: line 1 column 2 (char 1))"}}
            status, reply = await client.post({"jsonrpc": "2.0", "id": 4})
            assert status == 200 and reply["error"]["code"] == -32600
            # A batch answers each request.
            status, replies = await client.post([
                {"jsonrpc": "2.0", "id": 1, "method": "getbestblockhash"},
                {"jsonrpc": "2.0", "id": 2, "method": "nope"}])
            assert status == 200
            assert replies == [{"jsonrpc": "2.0", "id": 1, "result": GENESIS_HASH},
                               {"jsonrpc": "2.0", "id": 2, "error": {
                                   "code": -32601, "message": "method 'nope' not found"}}]
    run(scenario())


# -- the /events WebSocket --------------------------------------------------------------------

def test_events_for_txs_and_blocks(tmp_path):
    async def scenario():
        async with node_and_client(tmp_path / "n") as (server, client):
            await client.generate(10)
            events = await Events.open(client)
            genesis_coin = (OutPoint(bytes.fromhex(GENESIS_TXID), 0),
                            Coin(50 * COIN, owner("alice"), 0, True))
            tx = make_tx([genesis_coin], "alice", [("bob", 10 * COIN), ("alice", 40 * COIN - 700)])
            await client.call("sendrawtransaction", tx.raw.hex())
            accepted = await events.next("tx_accepted")
            assert {k: accepted[k] for k in ("txid", "fee", "size", "source")} == {
                "txid": tx.txid.hex(), "fee": 700, "size": 199, "source": "rpc"}
            assert isinstance(accepted["time"], int)

            ten = (OutPoint(tx.txid, 0), Coin(10 * COIN, owner("bob"), 0, False))
            overspend = make_tx([ten], "bob", [("carol", 15 * COIN)])
            await client.error("sendrawtransaction", overspend.raw.hex())
            rejected = await events.next("tx_rejected")
            assert {k: rejected[k] for k in ("id", "reject_reason", "message", "source")} == {
                "id": overspend.txid.hex(), "reject_reason": "bad-txns-in-belowout",
                "message": "inputs 10.00000000 TOY < outputs 15.00000000 TOY", "source": "rpc"}

            [block_hash] = await client.generate(1, "carol")
            connected = await events.next("block_connected")
            coinbase_txid = (await client.call("getblock", block_hash))["tx"][0]
            assert {k: connected[k] for k in ("hash", "height", "txids", "miner", "source")} == {
                "hash": block_hash, "height": 11, "txids": [coinbase_txid, tx.txid.hex()],
                "miner": address("carol"), "source": "generatetoaddress"}
            assert connected["prev_hash"] == (await client.call("getblockhash", 10))
            removed = await events.next("tx_removed")
            assert (removed["txid"], removed["reason"]) == (tx.txid.hex(), "block")

            # A block whose tx spends the coin of a mempool tx: the mempool tx and
            # its child are removed as conflicts.
            mine = (await mature_coins(client, "alice"))[0]
            pooled = make_tx([mine], "alice", [("bob", 50 * COIN - 400)])
            pooled_child = make_tx([(OutPoint(pooled.txid, 0), Coin(50 * COIN - 400, owner("bob"), 0, False))],
                                   "bob", [("carol", 50 * COIN - 800)])
            for item in (pooled, pooled_child):
                await client.call("sendrawtransaction", item.raw.hex())
            winner = make_tx([mine], "alice", [("erin", 50 * COIN - 1000)])
            block = side_block(server, block_hash, [winner], to="erin", fees=1000)
            assert await client.call("submitblock", block.raw.hex()) is None
            conflicts = [await events.next("tx_removed") for _ in range(2)]
            assert sorted((e["txid"], e["reason"]) for e in conflicts) == sorted(
                [(pooled.txid.hex(), "conflict"), (pooled_child.txid.hex(), "conflict")])
            assert await client.call("getrawmempool") == []
            connected = await events.next("block_connected", hash=block.hash.hex())
            assert (connected["height"], connected["source"], connected["miner"]) == (
                12, "rpc", address("erin"))

            greedy = side_block(server, block.hash.hex(), extra=1)
            assert await client.call("submitblock", greedy.raw.hex()) == "bad-cb-amount"
            block_rejected = await events.next("block_rejected")
            assert (block_rejected["id"], block_rejected["reject_reason"], block_rejected["source"]) == (
                greedy.hash.hex(), "bad-cb-amount", "rpc")
            assert block_rejected["message"] == ("coinbase claims 50.00000001 TOY > subsidy "
                                                 "50.00000000 TOY + fees 0.00000000 TOY")
            await events.ws.close()
    run(scenario())


def test_events_for_a_full_mempool(tmp_path):
    """A node whose mempool holds 171 bytes: a better-paying tx evicts the
    other (tx_removed, reason size); a worse one is refused as mempool-full."""
    async def scenario():
        async with node_and_client(tmp_path / "n", max_mempool_bytes=171) as (server, client):
            await client.generate(11)
            first, second, third = (await mature_coins(client, "alice"))[:3]
            cheap = make_tx([first], "alice", [("bob", 50 * COIN - 171)])
            better = make_tx([second], "alice", [("bob", 50 * COIN - 5 * 171)])
            worse = make_tx([third], "alice", [("bob", 50 * COIN - 2 * 171)])
            events = await Events.open(client)
            await client.call("sendrawtransaction", cheap.raw.hex())
            await client.call("sendrawtransaction", better.raw.hex())
            removed = await events.next("tx_removed")
            assert (removed["txid"], removed["reason"]) == (cheap.txid.hex(), "size")
            assert (await events.next("tx_accepted"))["txid"] == cheap.txid.hex()
            assert (await events.next("tx_accepted"))["txid"] == better.txid.hex()
            assert await client.call("getrawmempool") == [better.txid.hex()]
            error = await client.error("sendrawtransaction", worse.raw.hex())
            assert error == {"code": -26, "message": "mempool-full: mempool holds 171 of 171 bytes "
                             "and this tx's fee rate 2.00 units/byte is not above the lowest",
                             "data": {"reject_reason": "mempool-full"}}
            assert (await client.call("getmempoolinfo"))["bytes"] == 171
            await events.ws.close()
    run(scenario())


def test_events_for_a_reorg(tmp_path):
    async def scenario():
        async with node_and_client(tmp_path / "n") as (server, client):
            hashes = await client.generate(10)
            genesis_coin = (OutPoint(bytes.fromhex(GENESIS_TXID), 0),
                            Coin(50 * COIN, owner("alice"), 0, True))
            tx = make_tx([genesis_coin], "alice", [("bob", 50 * COIN - 300)])
            await client.call("sendrawtransaction", tx.raw.hex())
            [old_tip] = await client.generate(1)
            assert await client.call("getrawmempool") == []
            old_coinbase = (await client.call("getblock", old_tip))["tx"][0]
            events = await Events.open(client)

            # Two blocks on block 10: more work than the active chain's block 11.
            side1 = side_block(server, hashes[-1], to="dave")
            assert await client.call("submitblock", side1.raw.hex()) is None
            assert await client.call("getbestblockhash") == old_tip
            side2 = side_block(server, side1.hash.hex(), to="dave")
            assert await client.call("submitblock", side2.raw.hex()) is None
            assert await client.call("getbestblockhash") == side2.hash.hex()

            gone = await events.next("block_disconnected")
            assert (gone["hash"], gone["txids"]) == (old_tip, [old_coinbase, tx.txid.hex()])
            first = await events.next("block_connected")
            second = await events.next("block_connected")
            assert [(e["hash"], e["height"], e["source"]) for e in (first, second)] == [
                (side1.hash.hex(), 11, "rpc"), (side2.hash.hex(), 12, "rpc")]
            assert first["miner"] == address("dave")
            assert [n for n in events.names() if n.startswith("block")] == [
                "block_disconnected", "block_connected", "block_connected"]
            # The disconnected tx is back in the mempool, the coinbase is not.
            assert await client.call("getrawmempool") == [tx.txid.hex()]
            assert await client.call("getrawtransaction", tx.txid.hex()) == {
                "hex": tx.raw.hex(), "txid": tx.txid.hex(), "blockhash": None, "confirmations": 0}
            assert await client.error("getrawtransaction", old_coinbase) == {
                "code": -5, "message": f"no transaction {old_coinbase} in the chain or the mempool"}
            assert (await client.call("getblockheader", old_tip))["confirmations"] == -1
            info = await client.call("getblockchaininfo")
            assert (info["height"], info["chainwork"]) == (12, chainwork(13))
            await events.ws.close()
    run(scenario())


def test_events_for_peers(tmp_path):
    async def scenario():
        async with node_and_client(tmp_path / "a") as (a, client):
            events = await Events.open(client)
            b = await start_node(tmp_path / "b", peers=[a.node.listen])
            try:
                connected = await events.next("peer_connected")
                assert (connected["addr"], connected["inbound"], connected["height"]) == (
                    b.node.listen, True, 0)
                [peer] = await client.call("getpeerinfo")
                assert (peer["id"], peer["addr"], peer["inbound"], peer["height"], peer["user_agent"]) == (
                    connected["id"], b.node.listen, True, 0, USER_AGENT)
                assert (await client.call("getnetworkinfo"))["connections"] == 1
            finally:
                b.stopped.set()
                await b.stop()
            gone = await events.next("peer_disconnected")
            assert (gone["id"], gone["addr"]) == (connected["id"], b.node.listen)
            assert gone["reason"] == "connection closed"
            assert await client.call("getpeerinfo") == []
            assert (await client.call("getnetworkinfo"))["connections"] == 0
            await events.ws.close()
    run(scenario())
