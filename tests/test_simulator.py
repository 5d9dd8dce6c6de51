"""The deterministic network simulator (sim/): real nodes, simulated links.

Each test builds a small ``World`` of honest nodes, runs it in simulated
time and checks what every node ended up with. Nothing here sleeps or
polls a clock: ``run_for`` / ``run_until`` advance simulated time until a
condition holds, and the same seed gives the same run every time.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from node.blocksync import BLOCK_TIMEOUT, STALL_SECONDS, WINDOW
from node import messages as m
from node import rpc
from node.addrman import ADDR_RATE, MAX_BACKOFF, MAX_MANUAL_PEERS, RETRY_SECONDS
from node.messages import tx_msg
from node.node import (HANDSHAKE_SECONDS, MAX_INBOUND, MAX_OUTBOUND, MAX_RECENT_REJECTS, PING_SECONDS,
                       PING_TIMEOUT)
from node.peers import KNOWN_LIMIT, MAX_GETDATA_ITEMS, MAX_SEND_BYTES, SEND_BUDGET
from node.orphans import MAX_ORPHAN_BYTES, MAX_ORPHAN_TXS
from node.txrequest import MAX_PEER_ANNOUNCEMENTS, MAX_PEER_TX_IN_FLIGHT, TX_REQUEST_TIMEOUT
from sim import invariants
from sim.adversaries import (Deaf, Flooder, ForkHeaders, Idle, ListenLiar, NotFounder, Scripted,
                            Withholder)
from sim.funding import big_orphan, spend_outputs
from sim.runner import run_seeds
from sim.scenarios import CONVERGE_SECONDS, World

ROOT = Path(__file__).resolve().parent.parent


def small_run(seed: int) -> str:
    """Three nodes, two txs and a block: the digest of every frame, dial and close."""
    world = World.build(seed, 3)
    sim = world.sim
    sim.run_for(3)
    world.honest[0].submit(world.payment())
    world.honest[2].submit(world.payment())
    sim.run_for(2)
    world.mine_at(world.honest[1])
    sim.run_for(5)
    return sim.digest()


def test_same_seed_replays_the_same_run_and_another_seed_does_not():
    assert small_run(7) == small_run(7)
    assert small_run(7) != small_run(8)


def test_same_seed_replays_in_another_process_with_another_hash_seed():
    """A seed printed by scripts/simulate must replay in a new process, where
    Python hashes str and bytes differently (PYTHONHASHSEED)."""
    code = "from tests.test_simulator import small_run; print(small_run(7))"
    digests = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True,
                             capture_output=True, text=True, timeout=120)
        digests.add(out.stdout.strip())
    assert digests == {small_run(7)}


# -- block download ----------------------------------------------------------------------------

def syncing_world(seed: int, blocks: int):
    """An honest node H ``blocks`` ahead, and a victim V (fresh) that will dial it."""
    world = World.build(seed, 1)
    (h,) = world.honest
    for _ in range(blocks):
        world.mine_at(h)
    return world, h, world.add_honest("v")


def test_fork_headers_without_bodies_do_not_stop_sync_from_an_honest_peer():
    """Issue 10: a peer sends 20 headers of a fork and never the blocks. Today they
    sit at the front of the download queue: the victim stays behind its honest peer
    for good, asking both peers for blocks only the attacker claims, in a loop."""
    for length, answer in ((20, "notfound"), (20, None), (45, "notfound"), (45, None)):
        world, h, v = syncing_world(11, 30)  # H at 41; the fork ends at 31 or (more work) 56
        fork = ForkHeaders(world.sim, "fork", 30_001, length=length, answer=answer)
        world.place(fork, dials=0, dialled_by=0)
        World.connect(v, fork)
        world.sim.run_for(1.0)  # the fork's headers arrive first
        World.connect(v, h)
        assert world.sim.run_for(30, lambda: v.chain.tip.hash == h.chain.tip.hash), \
            f"V stuck at {v.chain.height}, H at {h.chain.height} (fork {length}, {answer})"
        getdata_before = v.sent_types["getdata"]
        world.sim.run_for(BLOCK_TIMEOUT + 60)
        assert v.sent_types["getdata"] - getdata_before < 20, "V keeps asking for the fork"
        # A peer that sits on requested blocks is dropped (not banned) after the timeout;
        # one that answers notfound is simply asked for nothing more on that branch.
        stalled = answer is None
        assert v.closes["block download timeout"] == (1 if stalled else 0)
        assert v.node.banlist.bans == {}


def race_world(seed: int, adversary_kind):
    """M mines; V hears of it through a line M - R1 - R2 - V (three hops) and
    from the adversary A, which M tells directly and which tells V (two hops):
    A is always first to announce to V. Every link has the same latency."""
    world = World.build(seed, 4, line=True, latency=(0.01, 0.01))
    m_, r1, r2, v = world.honest
    adversary = adversary_kind(world.sim, "a", 30_001)
    world.place(adversary, dials=0, dialled_by=0)
    World.connect(v, adversary)
    World.connect(m_, adversary)
    world.sim.run_for(3)
    return world, m_, v, adversary


@pytest.mark.parametrize("kind", [Withholder, NotFounder])
def test_block_announced_first_by_a_peer_that_never_delivers_still_arrives(kind):
    """Issue 10, censorship by announcing first: today the first peer to announce a
    block owns its request, and the honest announcers are never asked."""
    world, m_, v, adversary = race_world(3, kind)
    world.mine_at(m_)
    tip = m_.chain.tip.hash
    started = world.sim.now
    assert world.sim.run_for(10, lambda: v.chain.tip.hash == tip), "the block never reached V"
    assert world.sim.now - started < STALL_SECONDS + 1
    assert v.node.banlist.bans == {}


# -- transaction requests --------------------------------------------------------------------

@pytest.mark.parametrize("kind", [Withholder, NotFounder])
def test_tx_announced_first_by_a_peer_that_never_delivers_still_arrives(kind):
    """Issue 10, censorship by announcing first: today the first peer to announce a tx
    owns its request; the honest announcers are never asked. Now a notfound moves the
    request to the next announcer at once, and a request left unanswered moves after
    TX_REQUEST_TIMEOUT."""
    world, m_, v, adversary = race_world(4, kind)
    tx = world.payment()
    m_.submit(tx)
    started = world.sim.now
    assert world.sim.run_for(TX_REQUEST_TIMEOUT + 5, lambda: tx.txid in v.mempool), \
        "the tx never reached V"
    waited = world.sim.now - started
    assert waited < (1 if kind is NotFounder else TX_REQUEST_TIMEOUT + 1)
    assert v.node.banlist.bans == {}


def test_inv_flood_of_random_tx_hashes_is_tracked_within_bounds():
    """Issue 10: 40 inv frames of random hashes grew a node by 513 MB. A peer's
    announcements are tracked up to MAX_PEER_ANNOUNCEMENTS, at most
    MAX_PEER_TX_IN_FLIGHT of them requested at a time; an honest tx still gets through."""
    world = World.build(5, 2)
    a, v = world.honest
    flooder = Flooder(world.sim, "flood", 30_001, "inv", frames=12, size=2_000, period=0.01,
                      kinds=("tx",))
    world.place(flooder, dials=0, dialled_by=0)
    World.connect(v, flooder)
    world.sim.run_for(3)
    tracker = v.node.tx_requests
    flooder_id = next(p.id for p in v.node.peers.values() if p.addr == flooder.listen)
    assert tracker.tracked(flooder_id) == MAX_PEER_ANNOUNCEMENTS
    assert tracker.in_flight(flooder_id) == MAX_PEER_TX_IN_FLIGHT
    tx = world.payment()
    a.submit(tx)
    assert world.sim.run_for(2, lambda: tx.txid in v.mempool)
    assert len(v.node.peers[flooder_id].known) <= KNOWN_LIMIT


# -- what a peer can make a node queue ------------------------------------------------------

def test_peer_that_never_reads_cannot_grow_the_send_queue_past_the_budget():
    """Issue 10: 168 kB of getheaders from a peer that never reads grew a node by 511 MB
    (its send queue was capped by count, not bytes). Now the node stops reading a peer
    whose replies are not drained once SEND_BUDGET bytes wait for it, and drops it
    (not banned) when its liveness ping goes unanswered."""
    world = World.build(6, 1)
    (h,) = world.honest
    for _ in range(289):
        world.mine_at(h)  # 300 blocks: each getheaders answer is about 53 kB
    other = world.add_honest("other")
    World.connect(other, h)
    deaf = Deaf(world.sim, "deaf", 30_001, requests=300, period=0.001)
    world.place(deaf, dials=0, dialled_by=0)
    world.sim.dial(deaf, h.listen)
    world.sim.run_for(2)
    deaf_id = next(p.id for p in h.node.peers.values() if p.inbound and p.addr != other.listen
                   and p.listen == deaf.listen)
    assert h.sent_types["headers"] < 150, "the node kept answering a peer that does not read"
    queued = h.node.peers[deaf_id].send_queued
    assert SEND_BUDGET <= queued <= MAX_SEND_BYTES and not h.node.reading(deaf_id)
    tx = world.payment()
    other.submit(tx)  # the node still serves everyone else
    assert world.sim.run_for(1, lambda: tx.txid in h.mempool)
    world.sim.run_for(PING_SECONDS + PING_TIMEOUT + 2)
    assert deaf_id not in h.node.peers and h.closes["ping timeout"] == 1
    assert h.node.banlist.bans == {}


def test_getdata_repeating_one_block_is_answered_once():
    """Issue 10: one 22 kB getdata repeating a block hash added 462 MB."""
    world = World.build(7, 1)
    (h,) = world.honest
    flooder = Flooder(world.sim, "flood", 30_001, "getdata", frames=3, size=5_000)
    world.place(flooder, dials=1, dialled_by=0)
    world.sim.run_for(3)
    assert h.sent_types["block"] == 3  # one per getdata


def test_idle_connections_are_limited_and_timed_out():
    """Issue 10: no inbound limit and no handshake timeout; 180 idle sockets stayed open
    for good. Now at most MAX_INBOUND inbound connections are accepted, and one that has
    not finished its handshake within HANDSHAKE_SECONDS is closed (not banned)."""
    world = World.build(8, 1)
    (h,) = world.honest
    idle = Idle(world.sim, "idle", 30_001, h.listen, MAX_INBOUND + 20)
    world.sim.run_for(1)
    assert len(h.node.peers) == MAX_INBOUND and idle.refused == 20
    late = world.add_honest("late")
    World.connect(late, h)
    world.sim.run_for(HANDSHAKE_SECONDS + 2)
    assert h.closes["handshake timeout"] == MAX_INBOUND
    assert world.sim.run_for(MAX_BACKOFF + 5, lambda: any(p.handshake_done for p in h.node.peers.values()))
    assert h.node.banlist.bans == {}


# -- addresses ---------------------------------------------------------------------------------

@pytest.mark.parametrize("outbound", [False, True])
def test_addr_flood_is_rate_limited_and_dials_stay_within_the_outbound_limit(outbound):
    """Issue 10: one addr with 50 addresses made a node dial all 50, past MAX_OUTBOUND.
    Now an inbound peer's addrs are processed at ADDR_RATE per second (a token bucket, as
    Core), an outbound peer may answer our getaddr with up to MAX_ADDRS, and discovered
    dials, those in progress included, never exceed the outbound limit (one per tick)."""
    world = World.build(9, 1, max_outbound=MAX_OUTBOUND)
    (v,) = world.honest
    flooder = Flooder(world.sim, "flood", 30_001, "addr", frames=10, size=1_000, period=0.1)
    world.place(flooder, dials=0, dialled_by=0)
    if outbound:
        World.connect(v, flooder)
    else:
        world.sim.dial(flooder, v.listen)
    seconds = 20
    world.sim.run_for(seconds)
    learned = len(v.node.addrs.known)
    assert learned <= (1_000 + 1 if outbound else 1 + ADDR_RATE * seconds)
    assert v.dials <= seconds + 2  # one dial per tick at most


# -- orphan transactions -------------------------------------------------------------------------

def two_parents_and_a_child(world):
    """Two payments to bob and one tx of bob's spending both outputs."""
    p1, p2 = world.payment(to="bob"), world.payment(to="bob")
    child = spend_outputs([p1, p2], "bob")
    world.txs[child.txid] = child
    return p1, p2, child


def test_orphan_with_two_missing_parents_waits_for_both():
    """Issue 10: an orphan tx with two missing parents was dropped when the first parent
    arrived. Now it stays in the orphan pool until every parent is in."""
    world = World.build(10, 1)
    (v,) = world.honest
    p1, p2, child = two_parents_and_a_child(world)
    peer = Scripted(world.sim, "relay", 30_001, [(0.1, tx_msg(child)), (0.5, tx_msg(p1)),
                                                 (1.0, tx_msg(p2))])
    world.place(peer, dials=0, dialled_by=0)
    world.sim.dial(peer, v.listen)
    world.sim.run_for(0.5)
    assert child.txid in v.node.orphans and child.txid not in v.mempool
    assert world.sim.run_for(3, lambda: child.txid in v.mempool), "the orphan was lost"
    assert len(v.node.orphans) == 0 and len(v.node.recent_rejects) == 0


def test_orphan_pool_is_bounded_in_bytes_and_cleaned_when_the_peer_leaves():
    world = World.build(11, 1, max_outbound=0)  # V does not dial the peer back
    (v,) = world.honest
    big = [big_orphan(n) for n in range(30)]
    assert sum(tx.size for tx in big) > 2 * MAX_ORPHAN_BYTES
    peer = Scripted(world.sim, "orphans", 30_001, [(0.01 * n, tx_msg(tx)) for n, tx in enumerate(big)])
    world.place(peer, dials=0, dialled_by=0)
    world.sim.dial(peer, v.listen)
    world.sim.run_for(2)
    assert 0 < v.node.orphans.bytes <= MAX_ORPHAN_BYTES and len(v.node.orphans) <= MAX_ORPHAN_TXS
    for side in list(peer.sides):
        world.sim.close(side, "bye")
    world.sim.run_for(1)
    assert len(v.node.orphans) == 0 and v.node.orphans.bytes == 0


# -- reorgs --------------------------------------------------------------------------------------

def test_tx_returned_by_a_reorg_is_announced_and_published():
    """Issue 10 and PROTOCOL.md section 7: a node announces every tx it accepts, a tx a
    reorg returns to its mempool included (within 100 ms), and publishes tx_accepted."""
    world = World.build(12, 2)
    a, b = world.honest
    sim = world.sim
    sim.run_for(3)
    sim.partition([[a], [b]])
    tx = world.payment()
    assert a.submit(tx)
    world.mine_at(a)  # tx confirmed on A's side only
    world.mine_at(b)
    world.mine_at(b)  # B's side has more work
    sim.heal()
    assert sim.run_for(60, lambda: a.chain.tip.hash == b.chain.tip.hash), "no reorg"
    reorged = sim.now
    assert tx.txid in a.mempool and a.events["tx_accepted"] == 2
    assert sim.run_for(1, lambda: tx.txid in b.mempool), "the returned tx was never announced"
    assert sim.now - reorged < 0.1 + 3 * max(sim.latency)


def test_settle_breaks_a_tie_mined_by_a_node_that_missed_the_last_block():
    """Seed 7356 of the standard scenario: after the heal, a node still redialling its
    peers missed the block ``settle`` mined and, holding the most txs, mined a rival at
    the same height. Each node keeps the tip it saw first (as Core does), so only one
    more block ends such a tie: ``settle`` mines it on a node with the most work."""
    world = World.build(20, 2, max_outbound=0)
    a, b = world.honest  # B dials A (--peer)
    sim = world.sim
    sim.run_for(3)
    sim.partition([[a], [b]])
    tx = world.payment()
    assert a.submit(tx) and b.submit(tx)
    sim.run_for(28)  # B's redials back off; the one in flight at the heal fails, the next is 8 s later
    sim.heal()
    height = a.chain.height
    world.settle()
    rivals = {f["hash"] for n in world.honest for f in n.of("block_connected") if f["height"] == height + 1}
    assert len(rivals) == 2, "no tie: the test no longer covers what it is for"
    invariants.check_converged(world.honest)
    assert a.chain.height == height + 2


# -- bans -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("b_is_manual_peer_of_a", [False, True])
def test_a_peer_claiming_an_honest_nodes_address_cannot_get_it_banned(b_is_manual_peer_of_a):
    """Issue 10, ban framing: a process that claimed honest B's listen port and sent one
    bad frame got B banned. Now a listen claim becomes the ban key only when nothing else
    answers at that address (the node probes it); the liar, which even copied the nonce B
    sends, is banned by its own source port."""
    world = World.build(13, 2, max_outbound=0)
    a, b = world.honest  # B dials A (--peer)
    if b_is_manual_peer_of_a:
        World.connect(a, b)
    world.sim.run_for(3)
    liar = ListenLiar(world.sim, "liar", 30_001, victim=b.listen, target=a.listen)
    world.adversaries.append(liar)
    world.sim.run_for(3)
    assert a.closes[next(r for r in a.closes if r.startswith("banned"))] == 1
    (key,) = a.node.banlist.bans
    assert key.startswith("127.0.0.1:4") and key != b.listen  # the liar's source port
    world.sim.partition([[b]])  # B goes away and comes back: A still takes it
    world.sim.run_for(1)
    world.sim.heal()
    assert world.sim.run_for(MAX_BACKOFF + 5, lambda: any(
        p.handshake_done and p.inbound and p.ban_key == b.listen for p in a.node.peers.values()))


def test_a_manual_peer_that_misbehaves_is_disconnected_never_banned_and_dialled_again():
    """PROTOCOL.md section 7: a ban never applies to the peers the operator named."""
    world = World.build(14, 1)
    (a,) = world.honest
    rude = Scripted(world.sim, "rude", 30_001, [(0.1, '{"type": "ping"')])
    world.place(rude, dials=0, dialled_by=0)
    World.connect(a, rude)
    world.sim.run_for(5)
    assert a.node.banlist.bans == {} and a.dials >= 2
    assert any(r.startswith("misbehaved") for r in a.closes)


# -- the suite's seeds ------------------------------------------------------------------------------

SUITE_SEEDS = range(200)


def test_200_seeds_of_a_20_node_network_with_20_percent_adversaries():
    """The standard scenario (sim/scenarios.py: traffic, a double spend, a partition and
    its heal, sometimes a private miner) on 200 fixed seeds, 16 honest nodes and 4
    adversaries of random kinds each; every invariant of sim/invariants.py holds on
    every seed. scripts/simulate runs many more."""
    outcomes = run_seeds(SUITE_SEEDS, nodes=20, share=0.2, jobs=2)
    failures = [f"seed {o.seed}:\n{o.error}" for o in outcomes if not o.ok]
    assert not failures, "\n".join(failures[:3]) + f"\n({len(failures)} seeds failed)"
    reports = [o.report for o in outcomes]
    assert all(len(r.adversaries) == 4 and r.nodes == 20 for r in reports)
    assert max(r.converged_after for r in reports) <= CONVERGE_SECONDS
    kinds = {kind for r in reports for kind in r.adversaries}
    assert kinds >= {"Withholder", "NotFounder", "Deaf", "Flooder", "ForkHeaders", "ListenLiar",
                     "private-miner"}


def test_getdata_of_many_distinct_items_is_served_up_to_the_cap():
    world = World.build(16, 1, max_outbound=0)
    (h,) = world.honest
    asked = [("tx", world.sim.rng.randbytes(32)) for _ in range(MAX_GETDATA_ITEMS + 500)]
    peer = Scripted(world.sim, "asker", 30_001, [(0.1, m.inv(asked, "getdata"))])
    world.place(peer, dials=0, dialled_by=0)
    world.sim.dial(peer, h.listen)
    world.sim.run_for(2)
    assert peer.received["notfound"] == [MAX_GETDATA_ITEMS]  # one answer, the first 1,000


def test_fork_headers_past_the_download_window_are_walked_a_window_at_a_time():
    world, h, v = syncing_world(17, 5)
    fork = ForkHeaders(world.sim, "fork", 30_001, length=WINDOW + 100, answer="notfound")
    world.place(fork, dials=0, dialled_by=0)
    World.connect(v, fork)
    world.sim.run_for(1)
    World.connect(v, h)
    assert world.sim.run_for(20, lambda: v.chain.tip.hash == h.chain.tip.hash)
    assert v.node.blocks.limits()[1][1] <= WINDOW  # the largest path cached


def test_recent_rejects_keep_the_last_100():
    world = World.build(18, 1)
    (v,) = world.honest
    bad = [big_orphan(n, outputs=1) for n in range(MAX_RECENT_REJECTS + 1)]
    for tx in bad:  # spending coins nobody has: refused over RPC
        assert not v.submit(tx)
    rejects = rpc.call(v.node, "getrecentrejects", [])
    assert [r["id"] for r in rejects] == [tx.txid.hex() for tx in reversed(bad[1:])]


def test_addnode_takes_at_most_max_manual_peers():
    world = World.build(19, 1)
    (v,) = world.honest
    for n in range(MAX_MANUAL_PEERS):
        assert rpc.call(v.node, "addnode", [f"127.0.0.1:{50_000 + n}"]) is None
    with pytest.raises(rpc.RpcError) as error:
        rpc.call(v.node, "addnode", ["127.0.0.1:60000"])
    assert error.value.code == -8 and str(MAX_MANUAL_PEERS) in error.value.message


def test_disconnectnode_keeps_a_learnt_address_away_until_the_operator_dials_it():
    """Two nodes linked by a one-shot addnode: disconnectnode on both sides keeps them
    apart for good (the demos cut the network this way, for as long as a class needs),
    although each has the other's address in its book; addnode links them again."""
    world = World.build(27, 1)
    (a,) = world.honest
    b = world.add_honest("b")

    def call(node, method, *params):
        rpc.call(node.node, method, list(params))
        node.apply(node.node.take_actions())
    call(b, "addnode", a.listen, "onetry")
    world.sim.run_for(2)
    assert b.listen in a.node.addrs.known and a.listen in b.node.addrs.known
    call(a, "disconnectnode", b.listen)
    call(b, "disconnectnode", a.listen)
    assert not world.sim.run_for(10 * RETRY_SECONDS, lambda: bool(a.node.peers or b.node.peers))
    call(a, "addnode", b.listen, "onetry")
    assert world.sim.run_for(2, lambda: any(p.handshake_done for p in a.node.peers.values()))
