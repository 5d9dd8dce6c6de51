"""Multi-node integration tests (PROTOCOL.md sections 5, 7 and 8).

Every node here is a real ``NodeServer``: an aiohttp server on 127.0.0.1 with
an ephemeral port, talking to its peers over real WebSockets and answering
JSON-RPC over real HTTP where the test says so. Nothing waits by sleeping:
each step waits for a condition with a timeout (``wait_for``) or for a frame
to arrive (``RawPeer.recv``).

A misbehaving or merely unusual peer is a ``RawPeer``: a bare aiohttp
WebSocket client that speaks the protocol by hand, so the test controls every
frame it sends and sees every frame the node sends back.

What the simulator can show deterministically (gossip, sync from several
peers, reorgs, double spends, every attack on the peer logic) is in
tests/test_network_sim.py and tests/test_simulator.py; what stays here is
what only real sockets, processes and files show.
"""

import asyncio
import contextlib
import json
import multiprocessing
import random
import socket
import time

import aiohttp
import pytest

from chain.amounts import COIN
from chain.block import Block, Header
from chain import chainstate
from chain.chainstate import HAVE_DATA, ChainState
from chain.coins import Coin
from chain.mining import mine_block, solve
from chain.params import DEVNET, REGTEST
from chain.pow import compact_to_target, hash_meets_target
from chain.storage import Store
from chain.tx import OutPoint, Tx, TxOut
from node import messages, rpc
from node.node import HANDLERS, MAX_INBOUND
from node.peers import MAX_SEND_BYTES, SEND_BUDGET
from node import server as node_server
from node.server import NodeServer

from .helpers import make_tx, owner
from .nodes import Network, address, run, settle, start_node, wait_for

FEE = 10_000  # units; far above the 1 unit/byte minimum for a one-input tx
MiB4 = 4 * 1024 * 1024


# -- helpers -------------------------------------------------------------------------------------

def call(server, method, *params):
    return Network.call(server, method, *params)


async def http_rpc(server, method, *params, admin: bool = False):
    """A JSON-RPC call over real HTTP (with the cookie for admin methods); returns the result."""
    headers = {"Authorization": f"Bearer {server.token}"} if admin else {}
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
    async with aiohttp.ClientSession() as session:
        async with session.post(f"http://{server.node.listen}/rpc", json=body,
                                headers=headers) as response:
            assert response.status == 200, (method, response.status)
            reply = await response.json()
    assert "error" not in reply, reply
    return reply["result"]


def mature_coins(server, name):
    """(OutPoint, Coin) of ``name`` spendable in the next block and not spent in the mempool,
    oldest first."""
    settle(server)
    chain = server.node.chain
    next_height = chain.height + 1
    coins = [(op, c) for op, c in chain.store.coins_of(owner(name))
             if (not c.coinbase or next_height - c.height >= chain.net.coinbase_maturity)
             and op not in server.node.mempool.spends]
    return sorted(coins, key=lambda item: (item[1].height, item[0].txid, item[0].index))


def pay(coin, to, amount, fee=FEE, signer="alice", net=REGTEST) -> Tx:
    """Spend one coin: ``amount`` to ``to``, the change (minus ``fee``) back to the signer."""
    change = coin[1].amount - amount - fee
    outputs = [(to, amount)] + ([(signer, change)] if change else [])
    return make_tx([coin], signer, outputs, net=net)


def handshaked(server) -> list:
    return [p for p in server.node.peers.values() if p.handshake_done]


def peer_keys(server) -> set[str]:
    return {p.ban_key for p in handshaked(server)}


def in_chain(server, txid: bytes) -> bool:
    settle(server)
    return server.node.chain.find_tx(txid) is not None


def rejects_for(server, txid: bytes) -> list[dict]:
    return [r for r in call(server, "getrecentrejects") if r["id"] == txid.hex()]


def record_calls(monkeypatch, server, kind: str) -> list:
    """Record every (peer, msg) of type ``kind`` that ``server``'s node dispatches
    (through the table ``node.node.HANDLERS``)."""
    seen = []
    handler, early = HANDLERS[kind]

    def wrapper(node, peer, msg):
        if node is server.node:
            seen.append((peer, msg))
        return handler(node, peer, msg)
    monkeypatch.setitem(HANDLERS, kind, (wrapper, early))
    return seen


def record_closes(server) -> list[tuple[str, str]]:
    """Record (peer addr, reason) of every connection the node closes or loses."""
    seen = []
    original = server.node._forget

    def wrapper(peer, reason):
        if peer.id in server.node.peers:
            seen.append((peer.addr, reason))
        return original(peer, reason)
    server.node._forget = wrapper
    return seen


class Events:
    """A subscriber to a node's event bus (what ``/events`` streams)."""

    def __init__(self, server):
        self.queue = server.events.subscribe()
        self.seen: list[dict] = []

    def of(self, kind: str) -> list[dict]:
        while not self.queue.empty():
            self.seen.append(json.loads(self.queue.get_nowait()))
        return [e for e in self.seen if e["event"] == kind]


@pytest.fixture
def unused_listen():
    """Allocate "127.0.0.1:PORT" strings for fake peers to announce as their listen
    address: each port is bound (so nobody else gets it) but not listening, so a node
    that tries to dial it is refused at once."""
    held = []

    def allocate() -> str:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        held.append(sock)
        return f"127.0.0.1:{sock.getsockname()[1]}"
    yield allocate
    for sock in held:
        sock.close()


def version_msg(listen, network="regtest", genesis=None, nonce=None) -> dict:
    genesis = genesis or REGTEST.genesis.hash.hex()
    return {"type": "version", "network": network, "genesis": genesis, "protocol": 1,
            "nonce": random.getrandbits(63) if nonce is None else nonce, "height": 0,
            "best": genesis, "user_agent": "evil", "listen": listen}


class RawPeer:
    """A hand-driven P2P connection to a node's ``/p2p`` (inbound from the node's view)."""

    def __init__(self, session, ws, listen):
        self.session = session
        self.ws = ws
        self.listen = listen

    @classmethod
    async def open(cls, server, listen, compress: int = 0) -> "RawPeer":
        session = aiohttp.ClientSession()
        ws = await session.ws_connect(f"http://{server.node.listen}/p2p",
                                      max_msg_size=64 * 1024 * 1024, compress=compress)
        return cls(session, ws, listen)

    async def send(self, message: dict) -> None:
        await self.ws.send_str(json.dumps(message))

    async def recv(self, timeout: float = 5.0) -> dict | None:
        """The next JSON message, or None once the connection is closed."""
        try:
            msg = await asyncio.wait_for(self.ws.receive(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"no frame from the node within {timeout} s") from None
        if msg.type == aiohttp.WSMsgType.TEXT:
            return json.loads(msg.data)
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING,
                        aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
            return None
        raise AssertionError(f"unexpected frame {msg.type} from the node")

    async def expect(self, kind: str, where=lambda msg: True, timeout: float = 5.0) -> dict:
        """Read (skipping others) until a ``kind`` message satisfying ``where``."""
        deadline = time.monotonic() + timeout
        while True:
            msg = await self.recv(max(0.01, deadline - time.monotonic()))
            if msg is None:
                raise AssertionError(f"connection closed while waiting for {kind!r}")
            if msg["type"] == kind and where(msg):
                return msg

    async def handshake(self, **version_fields) -> dict:
        """version -> (their version, verack) -> verack; returns their version once the
        node has finished the handshake (it then asks us for headers)."""
        await self.send(version_msg(self.listen, **version_fields))
        theirs, got_verack = None, False
        while theirs is None or not got_verack:
            msg = await self.recv()
            assert msg is not None, "closed during the handshake"
            if msg["type"] == "version":
                theirs = msg
            elif msg["type"] == "verack":
                assert theirs is not None, "verack before version"
                got_verack = True
        await self.send({"type": "verack"})
        await self.expect("getheaders")
        return theirs

    async def wait_closed(self, timeout: float = 10.0) -> list[dict]:
        """Read until the node closes the connection; returns the frames seen before."""
        frames = []
        deadline = time.monotonic() + timeout
        while (msg := await self.recv(max(0.01, deadline - time.monotonic()))) is not None:
            frames.append(msg)
        return frames

    async def ping(self) -> None:
        """Prove the connection is alive: a ping answered by the matching pong."""
        nonce = random.getrandbits(63)
        await self.send({"type": "ping", "nonce": nonce})
        await self.expect("pong", lambda msg: msg["nonce"] == nonce)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close()
        await self.session.close()


def block_on_tip(chain, txs=(), to="mallory", time_=None, parent=None) -> Block:
    """A valid block (proof of work solved) on ``parent`` (default: the tip)."""
    parent = parent or chain.tip
    height = parent.height + 1
    when = time_ or max(int(time.time()), chain.median_time_past(parent) + 1)
    return mine_block(parent.hash, height, chain.next_required_bits(parent), when, list(txs),
                      [TxOut(chain.net.subsidy(height), owner(to))])


def without_pow(block: Block) -> Block:
    """The same block with the first nonce whose hash is *above* its target."""
    header = block.header
    target = compact_to_target(header.bits)[0]
    nonce = 0
    while True:
        candidate = Header(header.version, header.prev_hash, header.merkle_root, header.time,
                           header.bits, nonce)
        if not hash_meets_target(candidate.hash, target):
            return Block(candidate, block.txs)
        nonce += 1


# -- 3: headers-first sync longer than one headers message (the rest of sections 1-5 of these
# tests moved to tests/test_network_sim.py, in the simulator) ---------------------------------------

def test_sync_longer_than_one_headers_message(tmp_path, monkeypatch):
    """2,100 blocks: more than the 2,000 headers one message may carry, so the joiner must
    ask again from the last header it got."""
    async def scenario():
        async with Network(tmp_path, 1, topology="none") as net:
            a = net.nodes[0]
            call(a, "generatetoaddress", 2100, address("alice"))
            b = await start_node(tmp_path / "b", [a.node.listen])
            net.nodes.append(b)
            headers_seen = record_calls(monkeypatch, b, "headers")
            await wait_for(lambda: b.node.chain.tip.hash == a.node.chain.tip.hash, 60,
                           "B synced 2,100 blocks")
            sizes = [len(msg["headers"]) for _, msg in headers_seen]
            assert sizes[:2] == [2000, 100], sizes
            assert call(b, "getblockhash", 2000) == call(a, "getblockhash", 2000)
    run(scenario())


# -- 6: misbehaviour is punished by a ban keyed by host:announced port ---------------------------

def _bad_pow_block(server) -> Block:
    return without_pow(block_on_tip(server.node.chain))


def _greedy_block(server) -> Block:
    """Valid proof of work, but the coinbase claims one unit more than the subsidy."""
    chain = server.node.chain
    parent, height = chain.tip, chain.height + 1
    return mine_block(parent.hash, height, chain.next_required_bits(parent),
                      max(int(time.time()), chain.median_time_past(parent) + 1), [],
                      [TxOut(chain.net.subsidy(height) + 1, owner("mallory"))])


def _unlinked_headers(server) -> list[str]:
    """Two headers with valid proof of work where the second does not follow the first."""
    first = block_on_tip(server.node.chain)
    second = mine_block(random.randbytes(32), 2, REGTEST.pow_limit_bits, int(time.time()), [],
                        [TxOut(REGTEST.subsidy(2), owner("mallory"))])
    return [first.header.raw.hex(), second.header.raw.hex()]


def _frame_of(size: int) -> str:
    """A JSON object of exactly ``size`` bytes (ASCII) with an unknown type."""
    head, tail = '{"type": "padding", "pad": "', '"}'
    return head + "x" * (size - len(head) - len(tail)) + tail


# name -> (what the peer sends, a fragment of the ban reason, or a tuple of alternatives)
MISBEHAVIOURS = {
    "malformed-json": (lambda peer, server: peer.ws.send_str('{"type": "ping", "nonce": 1'),
                       "not valid JSON"),
    "frame-over-4MiB": (lambda peer, server: peer.ws.send_str(_frame_of(MiB4 + 1)),
                        ("exceeds limit", "frame over 4194304 bytes")),
    "binary-frame": (lambda peer, server: peer.ws.send_bytes(b'{"type": "ping", "nonce": 1}'),
                     "binary frame"),
    "json-without-type": (lambda peer, server: peer.ws.send_str('{"nonce": 1}'),
                          "string 'type'"),
    "json-not-an-object": (lambda peer, server: peer.ws.send_str('["ping", 1]'),
                           "not a JSON object"),
    "field-of-wrong-shape": (lambda peer, server: peer.send({"type": "inv", "items": "tx"}),
                             "'items'"),
    "ping-nonce-past-64-bits": (lambda peer, server: peer.ws.send_str(  # read as a float
        '{"type": "ping", "nonce": 18446744073709551616}'), "'nonce'"),
    "inv-over-50000-items": (lambda peer, server: peer.send(
        {"type": "inv", "items": [["tx", "00" * 32]] * 50_001}), "50001 items > limit 50000"),
    "locator-over-101": (lambda peer, server: peer.send(
        {"type": "getheaders", "locator": ["00" * 32] * 102, "stop": None}), "> limit 101"),
    "undecodable-tx-hex": (lambda peer, server: peer.send({"type": "tx", "tx": "0100ff"}), "tx:"),
    "block-with-bad-pow": (lambda peer, server: peer.send(
        {"type": "block", "block": _bad_pow_block(server).raw.hex()}), "high-hash"),
    "header-with-bad-pow": (lambda peer, server: peer.send(
        {"type": "headers", "headers": [_bad_pow_block(server).header.raw.hex()]}), "high-hash"),
    "headers-that-do-not-link": (lambda peer, server: peer.send(
        {"type": "headers", "headers": _unlinked_headers(server)}), "do not link"),
    "block-breaking-consensus": (lambda peer, server: peer.send(
        {"type": "block", "block": _greedy_block(server).raw.hex()}), "bad-cb-amount"),
}


@pytest.mark.parametrize("how", list(MISBEHAVIOURS))
def test_misbehaving_peer_is_banned_by_announced_port_while_honest_nodes_sync(
        tmp_path, unused_listen, how):
    async def scenario():
        async with Network(tmp_path, 3, topology="line") as net:
            honest, middle, far = net.nodes
            key = unused_listen()
            evil = await RawPeer.open(honest, key)
            try:
                theirs = await evil.handshake()
                assert theirs["network"] == "regtest" and theirs["listen"] == honest.node.listen
                assert key in {p["addr"] for p in call(honest, "getpeerinfo")}

                with contextlib.suppress(ConnectionError):  # the node may hang up mid-frame
                    await MISBEHAVIOURS[how][0](evil, honest)
                await evil.wait_closed()
                await wait_for(lambda: key not in honest.node.connected_keys(), 5,
                               "the node dropped the peer")
                banned = await http_rpc(honest, "listbanned", admin=True)
                assert [entry["addr"] for entry in banned] == [key], banned
                assert banned[0]["until"] >= time.time() + 590  # 10 minutes by default
                fragments = MISBEHAVIOURS[how][1]
                fragments = (fragments,) if isinstance(fragments, str) else fragments
                assert any(f in banned[0]["reason"] for f in fragments), banned[0]["reason"]
            finally:
                await evil.close()

            # The honest nodes are neither banned nor cut off: a new block still spreads.
            assert call(middle, "listbanned") == [] and call(far, "listbanned") == []
            assert middle.node.listen in peer_keys(honest)
            (block_hash,) = call(far, "generatetoaddress", 1, address("alice"))
            await wait_for(lambda: all(s.node.chain.tip.hash.hex() == block_hash for s in net.nodes),
                           10, "the new block on every honest node")

            # Coming back with the same announced listen address is refused after its version.
            again = await RawPeer.open(honest, key)
            try:
                await again.send(version_msg(key))
                assert await again.wait_closed() == [], "a banned peer got a version or verack"
            finally:
                await again.close()
            assert [entry["addr"] for entry in call(honest, "listbanned")] == [key]
            assert key not in peer_keys(honest)
    run(scenario())


def test_oversize_frame_after_decompression_is_banned(tmp_path, unused_listen):
    """permessage-deflate is negotiated by default: 4 MiB of text compresses to a few KiB on
    the wire, and the limit applies to the message, not to its compressed form."""
    async def scenario():
        async with Network(tmp_path, 1, topology="none") as net:
            (server,) = net.nodes
            key = unused_listen()
            evil = await RawPeer.open(server, key, compress=15)
            try:
                await evil.handshake()
                assert evil.ws.compress, "the server did not negotiate compression"
                await evil.send({"type": "ping", "nonce": 1, "pad": "y" * MiB4})
                await evil.wait_closed()
            finally:
                await evil.close()
            await wait_for(lambda: not server.node.peers, 5, "the peer dropped")
            assert [entry["addr"] for entry in call(server, "listbanned")] == [key]
    run(scenario())


def test_frame_of_exactly_4MiB_is_not_punished(tmp_path, unused_listen):
    """The limit is *over* 4 MiB: a frame of exactly 4,194,304 bytes is read (here an unknown
    type, so ignored) and the peer stays connected."""
    async def scenario():
        async with Network(tmp_path, 1, topology="none") as net:
            (server,) = net.nodes
            key = unused_listen()
            peer = await RawPeer.open(server, key)
            try:
                await peer.handshake()
                text = _frame_of(MiB4)
                assert len(text.encode()) == MiB4
                try:
                    await peer.ws.send_str(text)
                    await peer.ping()
                except (ConnectionError, AssertionError) as error:
                    raise AssertionError(f"a frame of exactly 4 MiB closed the connection: "
                                         f"bans {server.node.banlist.bans}") from error
                assert call(server, "listbanned") == []
                assert key in peer_keys(server)
            finally:
                await peer.close()
    run(scenario())


def test_peer_announcing_no_listen_is_banned_by_its_source_port(tmp_path):
    async def scenario():
        async with Network(tmp_path, 1, topology="none") as net:
            (server,) = net.nodes
            evil = await RawPeer.open(server, None)
            try:
                host, port = evil.ws.get_extra_info("sockname")[:2]
                await evil.handshake()
                await evil.ws.send_bytes(b"\x00")
                await evil.wait_closed()
            finally:
                await evil.close()
            await wait_for(lambda: not server.node.peers, 5, "the peer dropped")
            assert [entry["addr"] for entry in call(server, "listbanned")] == [f"{host}:{port}"]
    run(scenario())


def test_messages_before_verack_are_ignored_but_bad_frames_still_close(tmp_path, unused_listen):
    async def scenario():
        async with Network(tmp_path, 1, topology="none") as net:
            (server,) = net.nodes
            call(server, "generatetoaddress", 10, address("alice"))
            overspend = make_tx([mature_coins(server, "alice")[0]], "alice", [("mallory", 51 * COIN)])

            early = unused_listen()
            peer = await RawPeer.open(server, early)
            try:
                await peer.send(version_msg(early))
                await peer.expect("verack")
                # Before our verack: a tx and a ping are ignored, not answered, not punished.
                await peer.send({"type": "tx", "tx": overspend.raw.hex()})
                await peer.send({"type": "ping", "nonce": 7})
                await peer.send({"type": "verack"})
                await peer.expect("getheaders")
                await peer.ping()  # processed in order: everything before it has been handled
                assert rejects_for(server, overspend.txid) == []
                assert server.node.banlist.bans == {}
            finally:
                await peer.close()

            rude = unused_listen()
            peer = await RawPeer.open(server, rude)
            try:
                await peer.send(version_msg(rude))
                await peer.expect("verack")
                await peer.ws.send_str("{oops")
                await peer.wait_closed()
            finally:
                await peer.close()
            await wait_for(lambda: rude in server.node.banlist.bans, 5, "the ban")
            assert [entry["addr"] for entry in call(server, "listbanned")] == [rude]
    run(scenario())


def test_a_process_claiming_an_honest_nodes_port_gets_itself_banned_not_the_node(tmp_path):
    """Issue 10 over real sockets: a local process that claimed honest B's listen port
    and sent one bad frame got B banned, and A's --peer B stayed cut off for 10 minutes
    after B restarted. Now something answers at B's address, so the claim is not
    believed: the ban falls on the liar's own source port; and a --peer is never banned."""
    async def scenario():
        async with Network(tmp_path, 2, topology="line") as net:
            a, b = net.nodes  # B dials A
            call(a, "addnode", b.node.listen)  # and A names B too
            liar = await RawPeer.open(a, b.node.listen)
            try:
                source = "127.0.0.1:%d" % liar.ws.get_extra_info("sockname")[1]
                await liar.handshake()
                await liar.ws.send_str("{oops")
                await liar.wait_closed()
            finally:
                await liar.close()
            await wait_for(lambda: a.node.banlist.bans, 5, "the liar's ban")
            assert [entry["addr"] for entry in call(a, "listbanned")] == [source]

            port = b.port  # B restarts on the same port: A takes it back at once
            await b.stop()
            b.stopped.set()
            b = NodeServer(REGTEST, b.datadir, port=port, peers=[a.node.listen])
            await b.start()
            net.nodes[1] = b
            await wait_for(lambda: b.node.listen in peer_keys(a), 20, "A and B linked again")
            assert [entry["addr"] for entry in call(a, "listbanned")] == [source]
    run(scenario())


# -- 7: what is *not* misbehaviour ------------------------------------------------------------------

def test_invalid_or_refused_txs_and_orphan_or_mutated_blocks_are_not_punished(
        tmp_path, unused_listen):
    async def scenario():
        async with Network(tmp_path, 2, topology="line") as net:
            honest, other = net.nodes
            call(honest, "generatetoaddress", 13, address("alice"))
            await net.wait_synced()
            c0, c1, c2, c3, c4 = mature_coins(honest, "alice")[:5]
            key = unused_listen()
            evil = await RawPeer.open(honest, key)
            try:
                await evil.handshake()

                async def relay(tx: Tx) -> None:
                    """inv -> the node's getdata -> tx, as an honest relay would."""
                    await evil.send({"type": "inv", "items": [["tx", tx.txid.hex()]]})
                    await evil.expect("getdata", lambda m: ["tx", tx.txid.hex()] in m["items"])
                    await evil.send({"type": "tx", "tx": tx.raw.hex()})

                async def refused(tx: Tx, code: str) -> None:
                    await wait_for(lambda: rejects_for(honest, tx.txid), 5, f"the {code} reject")
                    (reject,) = rejects_for(honest, tx.txid)
                    assert (reject["reject_reason"], reject["source"]) == (code, key)
                    assert tx.txid not in honest.node.mempool
                    await evil.ping()  # still connected
                    assert honest.node.banlist.bans == {}

                # Consensus-invalid loose txs: an overspend and a bad signature.
                overspend = make_tx([c0], "alice", [("mallory", c0[1].amount + 1)])
                await relay(overspend)
                await refused(overspend, "bad-txns-in-belowout")

                good = pay(c1, "bob", COIN)
                signature = bytearray(good.inputs[0].signature)
                signature[10] ^= 0x01
                forged = Tx(good.version, (good.inputs[0]._replace(signature=bytes(signature)),),
                            good.outputs, good.locktime)
                await evil.send({"type": "tx", "tx": forged.raw.hex()})  # unsolicited
                await refused(forged, "bad-txns-bad-signature")

                # A valid tx from this peer is accepted and relayed on like any other.
                await relay(good)
                await wait_for(lambda: good.txid in other.node.mempool, 5, "relayed to the other node")
                assert rejects_for(honest, good.txid) == []

                # Policy refusals: a conflict with that mempool tx, and a fee below the minimum.
                conflict = pay(c1, "carol", 2 * COIN)
                await relay(conflict)
                await refused(conflict, "txn-mempool-conflict")
                cheap = pay(c2, "bob", COIN, fee=0)
                await relay(cheap)
                await refused(cheap, "min-relay-fee-not-met")

                # An orphan block (valid proof of work, unknown parent): we get asked for headers.
                unknown_parent = random.randbytes(32)
                orphan = mine_block(unknown_parent, 50, REGTEST.pow_limit_bits, int(time.time()), [],
                                    [TxOut(REGTEST.subsidy(50), owner("mallory"))])
                tip = honest.node.chain.tip.hash
                await evil.send({"type": "block", "block": orphan.raw.hex()})
                asked = await evil.expect("getheaders")
                assert asked["locator"][0] == tip.hex()
                assert orphan.hash in honest.node.chain.orphans
                assert honest.node.chain.tip.hash == tip
                await evil.ping()
                assert honest.node.banlist.bans == {}

                chain = honest.node.chain

                async def block_refused(block: Block, code: str) -> None:
                    before = len(rejects_for(honest, block.hash))
                    await evil.send({"type": "block", "block": block.raw.hex()})
                    await evil.ping()
                    rejects = rejects_for(honest, block.hash)  # newest first
                    assert len(rejects) == before + 1
                    assert (rejects[0]["kind"], rejects[0]["reject_reason"], rejects[0]["source"]) \
                        == ("block", code, key)
                    assert chain.invalid_reason(block.hash) is None  # not cached as invalid
                    assert chain.tip.hash == tip and honest.node.banlist.bans == {}

                # A block too far in the future: it may become valid later.
                too_new = block_on_tip(chain, time_=int(time.time()) + 3 * 3600)
                await block_refused(too_new, "time-too-new")

                # Blocks mutated in transit (CVE-2012-2459 and a plain merkle mismatch): the
                # genuine block with the same header must still be accepted afterwards.
                t1, t2 = pay(c3, "bob", COIN), pay(c4, "carol", COIN)
                genuine = block_on_tip(chain, [t1, t2])
                await block_refused(Block(genuine.header, genuine.txs + (t2,)), "bad-txns-duplicate")
                await block_refused(Block(genuine.header, genuine.txs[:2]), "bad-txnmrklroot")
                await evil.send({"type": "block", "block": genuine.raw.hex()})
                await evil.ping()
                assert chain.tip.hash == genuine.hash
                await wait_for(lambda: other.node.chain.tip.hash == genuine.hash, 5,
                               "the genuine block relayed on")

                assert call(honest, "listbanned") == []
                assert key in {p["addr"] for p in call(honest, "getpeerinfo")}
                assert call(honest, "getrawmempool") == [good.txid.hex()]
            finally:
                await evil.close()
    run(scenario())


def test_orphan_tx_from_a_peer_waits_for_its_parent(tmp_path, unused_listen):
    """PROTOCOL.md section 5: a tx with unknown inputs is refused over RPC but kept in the
    orphan pool when a peer relays it; the node asks that peer for the parent."""
    async def scenario():
        async with Network(tmp_path, 2, topology="line") as net:
            honest, other = net.nodes
            call(honest, "generatetoaddress", 10, address("alice"))
            await net.wait_synced()
            parent = pay(mature_coins(honest, "alice")[0], "bob", 10 * COIN)
            child = make_tx([(OutPoint(parent.txid, 0), Coin(10 * COIN, owner("bob"), 11, False))],
                            "bob", [("carol", 10 * COIN - FEE)])

            with pytest.raises(rpc.RpcError) as error:
                call(honest, "sendrawtransaction", child.raw.hex())
            assert (error.value.code, error.value.reject_reason) == \
                (-26, "bad-txns-inputs-missingorspent")
            assert call(honest, "getmempoolinfo")["orphans"] == 0

            key = unused_listen()
            peer = await RawPeer.open(honest, key)
            try:
                await peer.handshake()
                await peer.send({"type": "tx", "tx": child.raw.hex()})
                await peer.expect("getdata", lambda m: m["items"] == [["tx", parent.txid.hex()]])
                assert call(honest, "getmempoolinfo")["orphans"] == 1
                assert child.txid not in honest.node.mempool
                await peer.send({"type": "tx", "tx": parent.raw.hex()})
                await wait_for(lambda: {parent.txid, child.txid} <= set(other.node.mempool.entries),
                               5, "parent and child accepted and relayed")
                assert set(call(honest, "getrawmempool")) == {parent.txid.hex(), child.txid.hex()}
                assert call(honest, "getmempoolinfo")["orphans"] == 0
                await peer.ping()
                assert call(honest, "listbanned") == []
            finally:
                await peer.close()
    run(scenario())


# -- 7b: what a peer can make the node hold ---------------------------------------------------------

def test_peer_that_never_reads_is_paused_at_the_send_budget_and_resumed(tmp_path, unused_listen,
                                                                      monkeypatch):
    """Issue 10 over real sockets: a peer asks for headers 120 times and reads nothing.
    Today each 352 kB answer is queued (168 kB of getheaders grew a node by 511 MB).
    Now the node stops reading the peer once SEND_BUDGET bytes wait for it (the kernel's
    socket buffers take some first), answers the local user's RPC meanwhile, and
    resumes when the peer reads."""
    async def scenario():
        async with Network(tmp_path, 1, topology="none") as net:
            (server,) = net.nodes
            call(server, "generatetoaddress", 2000, address("alice"))
            answered = record_calls(monkeypatch, server, "getheaders")
            key = unused_listen()
            peer = await RawPeer.open(server, key)
            try:
                await peer.handshake()
                (theirs,) = [p for p in server.node.peers.values() if p.listen == key]
                ask = {"type": "getheaders", "locator": [REGTEST.genesis.hash.hex()], "stop": None}
                for _ in range(120):
                    await peer.send(ask)
                await wait_for(lambda: not server.node.reading(theirs.id), 30, "the node to pause")
                assert SEND_BUDGET <= theirs.send_queued <= MAX_SEND_BYTES
                assert len(answered) < 120, "the node kept reading a peer that does not read"
                assert (await http_rpc(server, "getblockchaininfo"))["height"] == 2000
                headers = 0
                while headers < 120:  # now read: the node resumes and answers every request
                    msg = await peer.recv(timeout=30)
                    assert msg is not None, "the node closed the connection"
                    headers += msg["type"] == "headers"
                assert len(answered) == 120 and server.node.banlist.bans == {}
            finally:
                await peer.close()
    run(scenario())


def test_frames_queued_together_are_written_in_one_corked_burst_in_order(tmp_path, unused_listen,
                                                                         monkeypatch):
    """A getdata for 60 blocks is answered by 60 frames queued at once: the peer
    link writes them as one burst under TCP_CORK (PeerLink), in the order asked,
    each counted off the peer's send queue (which ends at 0: the budget sees every byte)."""
    corks = []
    real_cork = node_server._cork

    def recording_cork(sock, on):
        done = real_cork(sock, on)
        corks.append((on, done))
        return done
    monkeypatch.setattr(node_server, "_cork", recording_cork)

    async def scenario():
        async with Network(tmp_path, 1, topology="none") as net:
            (server,) = net.nodes
            hashes = call(server, "generatetoaddress", 60, address("alice"))
            key = unused_listen()
            peer = await RawPeer.open(server, key)
            try:
                await peer.handshake()
                (theirs,) = [p for p in server.node.peers.values() if p.listen == key]
                corks.clear()
                await peer.send({"type": "getdata", "items": [["block", h] for h in hashes]})
                got = []
                while len(got) < len(hashes):
                    msg = await peer.recv()
                    assert msg is not None, "the node closed the connection"
                    if msg["type"] == "block":
                        got.append(Block.decode(bytes.fromhex(msg["block"])).hash.hex())
                assert got == hashes
                await wait_for(lambda: theirs.send_queued == 0, 10, "the send queue to drain")
                assert corks and corks[0] == (True, True), corks
                assert corks.count((True, True)) == corks.count((False, True))
            finally:
                await peer.close()
    run(scenario())


def test_connection_flood_is_capped_timed_out_and_the_rpc_still_answers(tmp_path):
    """Issue 10 over real sockets: idle WebSockets to /p2p were never closed and never
    limited. Now MAX_INBOUND are accepted (the rest get HTTP 503), the local user's RPC
    is answered meanwhile, and a connection that does not finish its handshake in time
    is closed (here the timeout is 1 s instead of HANDSHAKE_SECONDS)."""
    async def scenario():
        server = await start_node(tmp_path / "n", handshake_seconds=1.0)
        session = aiohttp.ClientSession()
        opened = []
        try:
            async def connect():
                try:
                    opened.append(await session.ws_connect(f"http://{server.node.listen}/p2p"))
                    return 101
                except aiohttp.WSServerHandshakeError as error:
                    return error.status
            statuses = await asyncio.gather(*[connect() for _ in range(MAX_INBOUND + 30)])
            assert sorted(statuses) == [101] * MAX_INBOUND + [503] * 30
            started = time.monotonic()
            assert (await http_rpc(server, "getblockchaininfo"))["height"] == 0
            assert time.monotonic() - started < 1.0
            for ws in opened:  # each is closed by the node, none banned
                assert (await ws.receive(timeout=10)).type in (aiohttp.WSMsgType.CLOSE,
                                                               aiohttp.WSMsgType.CLOSED)
            assert server.node.peers == {} and call(server, "listbanned") == []
            again = await session.ws_connect(f"http://{server.node.listen}/p2p")
            await again.close()
        finally:
            for ws in opened:
                await ws.close()
            await session.close()
            await server.stop()
    run(scenario())


def test_an_unsolicited_block_on_a_weaker_branch_keeps_only_its_header(tmp_path, unused_listen):
    """Core's AcceptBlock rule (chain/chainstate.py): a block a peer pushes unasked
    is stored only if its chain has at least our tip's work; the node asks for it
    after an inv, and a block it asked for is stored whatever its work."""
    async def scenario():
        async with Network(tmp_path, 1, topology="none") as net:
            (server,) = net.nodes
            call(server, "generatetoaddress", 3, address("alice"))
            chain = server.node.chain
            weaker = block_on_tip(chain, parent=chain.entry_at(1))
            peer = await RawPeer.open(server, unused_listen())
            try:
                await peer.handshake()
                await peer.send({"type": "block", "block": weaker.raw.hex()})
                await peer.ping()
                assert not chain.index[weaker.hash].status & HAVE_DATA  # the header only
                assert chain.store.get_block_raw(weaker.hash) is None

                await peer.send({"type": "inv", "items": [["block", weaker.hash.hex()]]})
                await peer.expect("getdata", lambda m: m["items"] == [["block", weaker.hash.hex()]])
                await peer.send({"type": "block", "block": weaker.raw.hex()})
                await peer.ping()
                assert chain.index[weaker.hash].status & HAVE_DATA
                assert chain.store.get_block_raw(weaker.hash) == weaker.raw
                assert chain.height == 3

                stronger = block_on_tip(chain)  # unasked, but more work than the tip: connected
                await peer.send({"type": "block", "block": stronger.raw.hex()})
                await peer.ping()
                assert chain.tip.hash == stronger.hash
                assert call(server, "listbanned") == []
            finally:
                await peer.close()
    run(scenario())


@pytest.mark.parametrize("room", [3000, 5])
def test_headers_sync_pauses_while_the_chain_has_no_room_for_side_entries(
        tmp_path, unused_listen, monkeypatch, room):
    """A full headers message asks for the next one, unless the chain state forgot
    its last header because its side entries (off the active chain: here
    headers without bodies) are at their bound: then the node stops asking,
    instead of fetching headers that would be forgotten at once."""
    monkeypatch.setattr(chainstate, "MAX_SIDE_ENTRIES", room)

    async def scenario():
        async with Network(tmp_path, 1, topology="none") as net:
            (server,) = net.nodes
            chain = server.node.chain
            headers, parent, when = [], chain.tip, chain.tip.header.time
            for _ in range(messages.MAX_HEADERS):
                when += 1
                header = solve(Header(1, parent.hash if not headers else headers[-1].hash,
                                      bytes(32), when, REGTEST.pow_limit_bits, 0))
                headers.append(header)
            peer = await RawPeer.open(server, unused_listen())
            try:
                await peer.handshake()
                await peer.send(messages.headers_msg(headers))
                await peer.send({"type": "ping", "nonce": 7})
                frames = []
                while (msg := await peer.recv())["type"] != "pong":
                    frames.append(msg)
                asked = [f for f in frames if f["type"] == "getheaders"]
                if room > len(headers):
                    assert [f["locator"][0] for f in asked] == [headers[-1].hash.hex()]
                else:
                    assert asked == [] and len(chain._side) == room
                    assert headers[-1].hash not in chain.index
                assert call(server, "listbanned") == []
            finally:
                await peer.close()
    run(scenario())


# -- 8: other networks and self-connections --------------------------------------------------------

def test_peer_of_another_network_is_closed_without_verack_or_ban(tmp_path, unused_listen):
    async def scenario():
        async with Network(tmp_path, 1, topology="none") as net:
            (server,) = net.nodes
            closes = record_closes(server)
            events = Events(server)
            for fields in ({"network": "devnet", "genesis": DEVNET.genesis.hash.hex()},
                           {"network": "regtest", "genesis": DEVNET.genesis.hash.hex()},
                           {"network": "devnet", "genesis": REGTEST.genesis.hash.hex()}):
                key = unused_listen()
                stranger = await RawPeer.open(server, key)
                try:
                    await stranger.send(version_msg(key, **fields))
                    assert await stranger.wait_closed() == [], "sent version/verack to a stranger"
                finally:
                    await stranger.close()
            assert [reason for _, reason in closes] == ["other network"] * 3

            # A real devnet node dialling the regtest node: no link, no ban on either side.
            devnet = await start_node(tmp_path / "devnet", [server.node.listen], net=DEVNET)
            net.nodes.append(devnet)
            await wait_for(lambda: len(closes) >= 4, 10, "the devnet node's connection closed")
            assert closes[3][1] == "other network"
            assert handshaked(server) == [] and handshaked(devnet) == []
            assert call(server, "listbanned") == [] and call(devnet, "listbanned") == []
            assert events.of("peer_connected") == []
    run(scenario())


def test_self_connection_is_closed(tmp_path):
    async def scenario():
        async with Network(tmp_path, 1, topology="none") as net:
            (server,) = net.nodes
            closes = record_closes(server)
            events = Events(server)
            call(server, "addnode", server.node.listen)
            await wait_for(lambda: ("connected to self" in [r for _, r in closes]
                                    and not server.node.peers), 10, "the self-connection closed")
            assert events.of("peer_connected") == []
            assert call(server, "getpeerinfo") == []
            assert call(server, "getnetworkinfo")["connections"] == 0
            assert call(server, "listbanned") == []
    run(scenario())


# -- 9: restart from the data directory -----------------------------------------------------------------

def test_restarted_node_resumes_its_chain_and_reconnects(tmp_path):
    async def scenario():
        async with Network(tmp_path, 2, topology="line") as net:
            a, b = net.nodes  # B dials A (a persistent --peer)
            call(a, "generatetoaddress", 15, address("alice"))
            await net.wait_synced()
            tip, old_token = b.node.chain.tip.hash, b.token

            await b.stop()
            b.stopped.set()
            await wait_for(lambda: not a.node.peers, 5, "A saw B go")
            call(a, "generatetoaddress", 3, address("alice"))  # while B is down

            b = await start_node(b.datadir, [a.node.listen])
            net.nodes[1] = b
            # Straight from disk, before any peer has said anything:
            assert (b.node.chain.height, b.node.chain.tip.hash) == (15, tip)
            assert call(b, "getblockchaininfo")["best_block_hash"] == tip.hex()
            assert b.token != old_token and (b.datadir / ".cookie").read_text() == b.token
            await wait_for(lambda: b.node.chain.tip.hash == a.node.chain.tip.hash, 10,
                           "B reconnected and caught up")
            assert b.node.chain.height == 18

            # Now A goes away and comes back on the same port: B's persistent dial retries.
            port, a_tip = a.port, a.node.chain.tip.hash
            await a.stop()
            a.stopped.set()
            await wait_for(lambda: not b.node.peers, 5, "B saw A go")
            a = NodeServer(REGTEST, a.datadir, port=port)
            await a.start()
            net.nodes[0] = a
            assert (a.node.chain.height, a.node.chain.tip.hash) == (18, a_tip)
            await wait_for(lambda: a.node.listen in peer_keys(b), 20, "B redialled A")
            (block_hash,) = call(a, "generatetoaddress", 1, address("alice"))
            await wait_for(lambda: b.node.chain.tip.hash.hex() == block_hash, 10, "B follows A again")
    run(scenario())


# -- 10: mining inside the node ---------------------------------------------------------------------

def test_automine_mines_a_block_once_a_tx_is_in_the_mempool(tmp_path):
    async def scenario():
        async with Network(tmp_path, 2, topology="line", automine=0.2,
                           miner_owner=owner("alice")) as net:
            miner, watcher = net.nodes
            call(miner, "generatetoaddress", 10, address("alice"))
            await net.wait_synced()
            assert miner.node.chain.height == 10  # an empty mempool gives no blocks
            tx = pay(mature_coins(miner, "alice")[0], "bob", COIN)
            call(watcher, "sendrawtransaction", tx.raw.hex())
            await wait_for(lambda: all(in_chain(s, tx.txid) for s in net.nodes), 10,
                           "the tx confirmed by an automined block")
            block_hash = call(miner, "getrawtransaction", tx.txid.hex())["blockhash"]
            block = call(miner, "getblock", block_hash)
            assert block["height"] == 11 and block["tx"][1:] == [tx.txid.hex()]
            coinbase = call(miner, "decoderawtransaction",
                            call(miner, "getrawtransaction", block["tx"][0])["hex"])
            assert coinbase["vout"] == [{"index": 0, "amount": REGTEST.subsidy(11) + FEE,
                                         "address": address("alice")}]
            assert len(miner.node.mempool) == len(watcher.node.mempool) == 0
    run(scenario())


def test_devnet_proof_of_work_mining_in_a_separate_process(tmp_path):
    async def scenario():
        assert multiprocessing.active_children() == []
        server = await start_node(tmp_path / "dev", net=DEVNET, mine=True,
                                  miner_owner=owner("carol"))
        latencies: list[float] = []
        workers_seen = []

        async def ask_continuously():
            async with aiohttp.ClientSession() as session:
                body = {"jsonrpc": "2.0", "id": 1, "method": "getblockchaininfo", "params": []}
                while True:
                    started = time.monotonic()
                    async with session.post(f"http://{server.node.listen}/rpc", json=body) as reply:
                        info = (await reply.json())["result"]
                    latencies.append(time.monotonic() - started)
                    assert info["network"] == "devnet" and info["pow_limit_bits"] == "1f00ffff"
                    workers_seen.append(bool(multiprocessing.active_children()))
        try:
            asker = asyncio.get_running_loop().create_task(ask_continuously())
            try:
                await wait_for(lambda: server.node.chain.height >= 2 and len(latencies) >= 20
                               or asker.done(), 60, "two devnet blocks mined")
            finally:
                asker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await asker  # re-raises an assertion failure of the asker
            assert any(workers_seen), "no worker process: PoW is not in a separate process"
            assert max(latencies) < 1.0, f"RPC took {max(latencies):.2f} s while mining"
            settle(server)  # the miner may be connecting a block on the validation thread
            height = server.node.chain.height
            assert height >= 2
            target = DEVNET.pow_limit
            for h in range(1, height + 1):
                entry = server.node.chain.entry_at(h)
                assert int.from_bytes(entry.hash, "big") <= target
                if h < DEVNET.retarget_interval:
                    assert entry.header.bits == DEVNET.pow_limit_bits
            coinbase = server.node.chain.get_block(server.node.chain.entry_at(1).hash).txs[0]
            assert coinbase.outputs[0].owner == owner("carol")
        finally:
            await asyncio.wait_for(server.stop(), 15)
        assert multiprocessing.active_children() == [], "the PoW worker outlived stop()"
        # The chain it mined is on disk, whole, up to the tip it stopped at.
        reopened = ChainState(DEVNET, Store(tmp_path / "dev" / "chain.sqlite"))
        try:
            assert (reopened.height, reopened.tip.hash) == (server.node.chain.height,
                                                           server.node.chain.tip.hash)
            assert reopened.height >= 2
        finally:
            reopened.close()
    run(scenario())
