"""Multi-node behaviour (PROTOCOL.md sections 5, 7 and 8) shown in the simulator.

These were tests over real sockets that waited by polling; the simulator
runs the same nodes (chain state, mempool, Node) deterministically in
simulated time, so each step waits for exactly what it needs. What only
real sockets show (frames, the shell, restarts, mining processes) stays in
tests/test_network.py.
"""

import logging

import pytest

from chain.address import encode_address
from chain.mining import mine_block
from chain.tx import TxOut
from node import rpc
from node.node import INV_INTERVAL, MAX_INV_INTERVAL, SUMMARY_SECONDS
from sim import invariants
from sim.funding import owner, pay
from sim.scenarios import FEE, World


def call(node, method, *params):
    """An RPC call straight into the node's method table, as the shell makes it."""
    result = rpc.call(node.node, method, list(params))
    node.apply(node.node.take_actions())
    return result


def block_on(chain, parent, txs=(), to="mallory"):
    """A valid block (proof of work solved) on ``parent`` paying its subsidy and fees."""
    height = parent.height + 1
    fees = sum(FEE for _ in txs)
    return mine_block(parent.hash, height, chain.next_required_bits(parent),
                      chain.median_time_past(parent) + 1, list(txs),
                      [TxOut(chain.net.subsidy(height) + fees, owner(to))])


# -- 1, 2: gossip -----------------------------------------------------------------------------------

def test_tx_sent_to_one_node_reaches_all_five_mempools_fetched_once_each():
    world = World.build(21, 5, line=True)
    sim, nodes = world.sim, world.honest
    sim.run_for(3)
    origin = nodes[2]
    tx = world.payment()
    assert call(origin, "sendrawtransaction", tx.raw.hex()) == tx.txid.hex()
    assert sim.run_for(2, lambda: all(tx.txid in n.mempool for n in nodes))
    for node in nodes:
        assert call(node, "getrawmempool") == [tx.txid.hex()]
        info = call(node, "getrawtransaction", tx.txid.hex())
        assert info["blockhash"] is None and info["confirmations"] == 0
        (accepted,) = node.of("tx_accepted")
        assert accepted["txid"] == tx.txid.hex() and accepted["fee"] == FEE
        fetched = sum(count for (_, kind), count in node.received.items() if kind == "tx")
        if node is origin:
            assert accepted["source"] == "rpc"
            assert fetched == 0, "the tx was echoed back to the node it came from"
        else:
            assert accepted["source"] in {p.ban_key for p in node.node.peers.values()}
            assert fetched == 1, "each node fetches the tx exactly once"


def test_block_mined_on_one_node_reaches_every_node_once():
    world = World.build(22, 5, line=True)
    sim, nodes = world.sim, world.honest
    sim.run_for(3)
    (block_hash,) = call(nodes[4], "generatetoaddress", 1, encode_address(owner("carol")))
    assert sim.run_for(2, lambda: invariants.converged(nodes))
    for node in nodes:
        assert call(node, "getblockhash", node.chain.height) == block_hash
        assert call(node, "getblockheader", block_hash)["confirmations"] == 1
        blocks = sum(count for (_, kind), count in node.received.items() if kind == "block")
        assert blocks == (0 if node is nodes[4] else 1)


# -- 3: headers-first sync of a late joiner from several peers ---------------------------------

def test_late_joiner_syncs_520_blocks_each_fetched_once_from_two_peers():
    world = World.build(23, 1, max_outbound=0, check_every_action=False)
    (a,) = world.honest
    hashes = call(a, "generatetoaddress", 520, encode_address(owner("alice")))
    b = world.add_honest("b", max_outbound=0)
    World.connect(b, a)
    assert world.sim.run_for(60, lambda: b.chain.tip.hash == a.chain.tip.hash)
    c = world.add_honest("c", max_outbound=0)
    World.connect(c, a)
    World.connect(c, b)
    assert world.sim.run_for(60, lambda: c.chain.tip.hash == a.chain.tip.hash)
    first = a.chain.height - 520 + 1
    assert [call(c, "getblockhash", h) for h in range(first, a.chain.height + 1)] == hashes
    assert [e["height"] for e in c.of("block_connected")] == list(range(first, a.chain.height + 1))
    from_a, from_b = c.received["n0", "block"], c.received["b", "block"]
    assert from_a and from_b, f"A served {from_a} blocks, B served {from_b}"
    assert from_a + from_b == 520, "every block fetched exactly once, from one of the two"
    assert not c.node.blocks.requests


# -- 4: reorg from a reconnected peer ----------------------------------------------------------------

def test_longer_branch_from_a_reconnected_peer_reorgs_and_returns_displaced_txs():
    world = World.build(24, 1, max_outbound=0)
    (a,) = world.honest
    b = world.add_honest("b", max_outbound=0)
    sim = world.sim
    call(b, "addnode", a.listen, "onetry")
    sim.run_for(2)
    coin0, coin1 = world.coin(), world.coin()
    tx1 = world.payment(coin0, "bob")     # will come back to the mempool
    tx2 = world.payment(coin1, "carol")   # will be double-spent on the other branch
    for tx in (tx1, tx2):
        call(a, "sendrawtransaction", tx.raw.hex())
    assert sim.run_for(2, lambda: tx1.txid in b.mempool and tx2.txid in b.mempool)
    (old_hash,) = call(a, "generatetoaddress", 1, encode_address(owner("alice")))
    assert sim.run_for(2, lambda: b.chain.tip.hash.hex() == old_hash)
    for node in (a, b):
        for tx in (tx1, tx2):
            assert call(node, "getrawtransaction", tx.txid.hex())["blockhash"] == old_hash
        assert len(node.mempool) == 0

    # Split them (both ways, in the same instant), then give B a longer branch.
    call(a, "disconnectnode", b.listen)
    call(b, "disconnectnode", a.listen)
    assert sim.run_for(2, lambda: not a.node.peers and not b.node.peers)
    chain_b = b.chain
    fork = chain_b.entry_at(chain_b.height - 1)
    rival = pay(coin1, "alice", "dave", FEE)
    branch1 = block_on(chain_b, fork, [rival], to="bob")
    assert call(b, "submitblock", branch1.raw.hex()) is None  # equal work: side branch
    assert b.chain.tip.hash.hex() == old_hash
    branch2 = block_on(chain_b, chain_b.index[branch1.hash], to="bob")
    assert call(b, "submitblock", branch2.raw.hex()) is None
    assert b.chain.tip.hash == branch2.hash
    assert call(b, "getrawmempool") == [tx1.txid.hex()]

    # Reconnect: A learns the longer branch and reorganises.
    published = len(a.published)
    call(a, "addnode", b.listen, "onetry")
    assert sim.run_for(5, lambda: a.chain.tip.hash == branch2.hash)
    events = a.published[published:]
    (gone,) = [f for e, f in events if e == "block_disconnected"]
    assert gone["hash"] == old_hash and set(gone["txids"]) >= {tx1.txid.hex(), tx2.txid.hex()}
    assert [f["hash"] for e, f in events if e == "block_connected"] == [branch1.hash.hex(),
                                                                         branch2.hash.hex()]
    assert [f["txid"] for e, f in events if e == "tx_accepted"] == [tx1.txid.hex()]
    assert call(a, "getrawmempool") == [tx1.txid.hex()], \
        "the displaced tx is back; the one double-spent by the branch is not"
    assert call(a, "getrawtransaction", rival.txid.hex())["blockhash"] == branch1.hash.hex()
    with pytest.raises(rpc.RpcError) as error:
        call(a, "getrawtransaction", tx2.txid.hex())
    assert error.value.code == -5
    assert call(a, "gettxout", coin1[0].txid.hex(), coin1[0].index) is None
    (again,) = call(a, "generatetoaddress", 1, encode_address(owner("alice")))
    assert call(a, "getrawtransaction", tx1.txid.hex())["blockhash"] == again
    assert sim.run_for(2, lambda: b.chain.tip.hash.hex() == again)
    assert len(a.mempool) == len(b.mempool) == 0


# -- 5: a double spend submitted at two nodes at once --------------------------------------------

def test_same_coin_spent_at_two_nodes_ends_with_one_spend_everywhere():
    world = World.build(25, 3, max_outbound=0)
    n1, n2, n3 = world.honest  # a triangle: each dials up to two earlier nodes
    sim = world.sim
    sim.run_for(3)
    assert all(len([p for p in n.node.peers.values() if p.handshake_done]) == 2 for n in world.honest)
    coin = world.coin()
    to_bob, to_carol = world.payment(coin, "bob"), world.payment(coin, "carol")
    call(n1, "sendrawtransaction", to_bob.raw.hex())  # the same instant: neither heard of the other
    call(n3, "sendrawtransaction", to_carol.raw.hex())
    both = {to_bob.txid, to_carol.txid}

    def rejects_for(node, txid):
        return [r for r in call(node, "getrecentrejects") if r["id"] == txid.hex()]

    def settled(node) -> bool:
        pooled = both & set(node.mempool.entries)
        return len(pooled) == 1 and bool(rejects_for(node, (both - pooled).pop()))
    assert sim.run_for(3, lambda: all(settled(n) for n in world.honest))
    assert to_bob.txid in n1.mempool and to_carol.txid in n3.mempool
    for node in world.honest:
        (kept,) = both & set(node.mempool.entries)
        for reject in rejects_for(node, (both - {kept}).pop()):
            assert (reject["kind"], reject["reject_reason"]) == ("tx", "txn-mempool-conflict")
            assert reject["source"] in {p.ban_key for p in node.node.peers.values()}

    (block_hash,) = call(n2, "generatetoaddress", 1, encode_address(owner("dave")))
    assert sim.run_for(2, lambda: invariants.converged(world.honest))
    (winner,) = both & {bytes.fromhex(t) for t in call(n2, "getblock", block_hash)["tx"]}
    (loser,) = both - {winner}
    for node in world.honest:
        assert node.chain.find_tx(winner) is not None and node.chain.find_tx(loser) is None
        assert len(node.mempool) == 0
        assert call(node, "gettxout", coin[0].txid.hex(), coin[0].index) is None
    loser_end = n1 if loser == to_bob.txid else n3
    assert [(e["txid"], e["reason"]) for e in loser_end.of("tx_removed")] == [(loser.hex(), "conflict")]
    invariants.check_end(world.honest, world.txs)


# -- logging: one info line about txs per SUMMARY_SECONDS ------------------------------------------

def test_txs_are_logged_at_debug_and_summed_up_at_info_every_summary_period(caplog):
    """Each accepted or refused tx is a debug line; at info level one line per
    SUMMARY_SECONDS counts them, from peers and by RPC, and says what the mempool holds."""
    world = World.build(24, 3, line=True)
    sim, nodes = world.sim, world.honest
    sim.run_for(3)
    caplog.set_level(logging.DEBUG, logger="toychain")
    first, second = world.payment(), world.payment()
    assert nodes[0].submit(first) and nodes[0].submit(second)
    assert not nodes[0].submit(first)  # txn-already-in-mempool: a refusal
    assert sim.run_for(2, lambda: all(second.txid in n.mempool for n in nodes))
    assert sim.run_for(SUMMARY_SECONDS + 1.5,
                       lambda: sum("txs in the last" in r.getMessage() for r in caplog.records) == 3)
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert sum(line.startswith(f"accepted tx {first.txid.hex()} from ") for line in debug) == 3
    assert sum(line.startswith(f"rejected tx {first.txid.hex()} from rpc: txn-already-in-mempool") for line in debug) == 1
    summaries = {r.getMessage().split("txs in the last ")[1].split(" s: ")[1]
                 for r in caplog.records if r.levelno == logging.INFO and "txs in the last" in r.getMessage()}
    size = first.size + second.size
    assert summaries == {f"2 accepted (0 from peers, 2 by RPC), 1 refused; mempool 2 txs, {size} bytes",
                         f"2 accepted (2 from peers, 0 by RPC), 0 refused; mempool 2 txs, {size} bytes"}
    assert not any("accepted tx" in r.getMessage() for r in caplog.records if r.levelno >= logging.INFO)
    sim.run_for(2 * SUMMARY_SECONDS)  # no txs since: no more summaries
    assert sum("txs in the last" in r.getMessage() for r in caplog.records) == 3


# -- announcements: batched per INV_INTERVAL --------------------------------------------------------

def test_announcements_are_batched_per_interval_and_reach_every_peer():
    """A lone tx is announced at once; txs that follow within INV_INTERVAL wait
    for the rest of it and go out together: one inv per peer per batch, and
    every peer gets (and fetches) every tx."""
    world = World.build(25, 5)
    sim, nodes = world.sim, world.honest
    sim.run_for(3)
    hub = max(nodes, key=lambda n: len(n.sides))
    neighbours = [side.remote for side in hub.sides]
    assert len(neighbours) >= 2
    invs_before = {n: n.received[hub.name, "inv"] for n in neighbours}

    lone, start = world.payment(), sim.now
    assert hub.submit(lone)
    sim.run_for(0)
    assert hub.inv_flushes[-1] == start  # nothing went out lately: at once
    assert {n: n.received[hub.name, "inv"] - invs_before[n] for n in neighbours} == {n: 0 for n in neighbours}
    burst = [world.payment() for _ in range(6)]
    sim.run_for(INV_INTERVAL / 5)
    for tx in burst[:3]:
        assert hub.submit(tx)
    sim.run_for(INV_INTERVAL / 5)
    for tx in burst[3:]:
        assert hub.submit(tx)
    everything = [lone, *burst]
    assert sim.run_for(3, lambda: all(tx.txid in n.mempool for n in nodes for tx in everything))
    batches = [t for t in hub.inv_flushes if t >= start]
    assert batches[:2] == [start, start + INV_INTERVAL]  # the burst: one batch, an interval after the first
    for n in neighbours:
        assert n.received[hub.name, "inv"] - invs_before[n] == 2, "one inv per batch to each peer"
    frames = {n: sum(c for (sender, kind), c in n.received.items() if kind == "tx") for n in nodes}
    assert all(count == len(everything) for n, count in frames.items() if n is not hub), frames


def test_the_interval_grows_under_a_stream_of_txs_within_its_bound_and_shrinks_when_it_thins():
    """A tx every millisecond: the batches spread out from INV_INTERVAL to
    MAX_INV_INTERVAL (fewer, bigger invs), no announcement waits longer than
    MAX_INV_INTERVAL, and every tx still reaches every mempool, fetched once
    by each node. Once the stream stops, lone txs go out at once again and
    the interval is back to INV_INTERVAL."""
    world = World.build(26, 5)
    sim, nodes = world.sim, world.honest
    sim.run_for(3)
    hub = max(nodes, key=lambda n: len(n.sides))
    neighbours = [side.remote for side in hub.sides]
    invs_before = {n: n.received[hub.name, "inv"] for n in neighbours}
    stream, start = [world.payment() for _ in range(40)], sim.now
    submitted = [start + i * 0.001 for i in range(len(stream))]
    for when, tx in zip(submitted, stream):
        sim.at(when, hub.submit, tx)
    assert sim.run_for(3, lambda: all(tx.txid in n.mempool for n in nodes for tx in stream))

    batches = [t for t in hub.inv_flushes if t >= start]
    gaps = [b - a for a, b in zip(batches, batches[1:])]
    assert max(gaps) == pytest.approx(MAX_INV_INTERVAL)  # it grew to its bound ...
    assert all(gap <= MAX_INV_INTERVAL + 1e-9 for gap in gaps)  # ... and never past it
    for when in submitted:  # each tx went out in the first batch after it, within the bound
        assert next(b for b in batches if b >= when) - when <= MAX_INV_INTERVAL + 1e-9
    assert len(batches) < len(stream) / 4, batches  # an inv per peer per batch, not per tx
    for n in neighbours:
        assert n.received[hub.name, "inv"] - invs_before[n] <= len(batches)
    for n in nodes:
        if n is not hub:
            fetched = sum(c for (_, kind), c in n.received.items() if kind == "tx")
            assert fetched == len(stream), "each node fetches each tx exactly once"

    sim.run_for(1)  # the stream is over
    for _ in range(4):  # lone txs: each at once, each batch of one halves the interval
        lone, now = world.payment(), sim.now
        assert hub.submit(lone)
        sim.run_for(0)
        assert hub.inv_flushes[-1] == now
        assert sim.run_for(1, lambda: all(lone.txid in n.mempool for n in nodes))
    assert hub.node.inv_interval == INV_INTERVAL


def test_the_shell_is_reminded_of_actions_only_by_calls_that_do_not_return_them():
    """``on_actions`` tells the shell to empty the outbox after a call that does
    not hand back what it decided (an RPC's ``accept_tx``); ``frame``, ``sent``,
    ``flush`` and ``timer`` hand it back, and the shell takes it at once: no
    reminder, which cost a relaying node a callback per frame."""
    world = World.build(27, 3, line=True)
    sim, nodes = world.sim, world.honest
    sim.run_for(3)
    reminders = {n: [] for n in nodes}
    for n in nodes:
        n.node.on_actions = lambda n=n: reminders[n].append(sim.now)
    origin = nodes[0]
    tx = world.payment()
    assert origin.submit(tx)
    assert sim.run_for(2, lambda: all(tx.txid in n.mempool for n in nodes))
    assert len(reminders[origin]) == 1  # the RPC's accept_tx: its tx_accepted event and announcement
    for n in nodes[1:]:  # each got inv, tx (and getdata) by frame: all returned, never a reminder
        assert n.received and reminders[n] == [], n.name
        assert any(kind == "tx" for (_, kind) in n.received)


def test_actions_decided_before_an_error_still_remind_the_shell():
    """If a frame's handler raises after deciding something, the shell is
    reminded to take it (nothing stays stranded in the outbox until some
    later call), and the error still reaches the shell."""
    world = World.build(28, 2, line=True)
    sim, (a, b) = world.sim, world.honest
    sim.run_for(3)
    peer_id = next(iter(a.node.peers))
    reminders = []
    a.node.on_actions = lambda: reminders.append(sim.now)

    def decide_then_fail(peer, msg):
        a.node._send(peer, {"type": "ping", "nonce": 1})
        raise RuntimeError("a bug")
    with pytest.raises(RuntimeError):
        a.node._answer(decide_then_fail, a.node.peers[peer_id], {})
    assert len(reminders) == 1 and a.node.take_actions()
