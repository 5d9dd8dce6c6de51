"""What a sender can make the chain state keep is bounded (chain/chainstate.py,
chain/orphans.py), and each bound is pushed past here: orphan blocks by
bytes and count with fair eviction, unrequested bodies on weaker chains,
remembered invalid hashes, index entries off the active chain and cached
bodies.

Proof of work is nearly free on regtest, so every flood below is cheap to
make: the bounds cannot lean on work.
"""

import pytest

from chain import chainstate
from chain.block import Block, Header
from chain.chainstate import (HAVE_DATA, MAX_CACHED_BODIES, MAX_CACHED_BODY_BYTES,
                              MAX_INVALID_HASHES, ChainState)
from chain.encoding import sha256
from chain.errors import RuleError
from chain.mining import mine_block, solve
from chain.orphans import MAX_ORPHAN_BLOCKS, MAX_ORPHAN_BYTES, OrphanPool
from chain.params import GENESIS_TIME, REGTEST
from chain.storage import Store
from chain.tx import TxOut

from .helpers import NOW, Harness, owner


def unknown_parent_block(k: int, outputs: int = 1) -> Block:
    """A block with valid proof of work whose parent nobody has: an orphan.
    Each coinbase output adds 28 bytes."""
    return mine_block(sha256(b"no such parent %d" % k), 5, REGTEST.pow_limit_bits,
                      GENESIS_TIME + 1000 + k, [], [TxOut(0, owner("mallory"))] * outputs)


def parent_and_child():
    source = Harness()
    parent = source.block()
    assert source.chain.process_block(parent).status == "connected"
    return parent, source.block(reward_to="bob")


# Sixteen blocks of exactly 4,000,000 bytes in all (the byte bounds of the orphan
# pool and of the body cache): eight with one coinbase output (127 bytes) and
# eight with 17,849 zero outputs (28 bytes each, 499,873 bytes).
EXACT_FILL = [1] * 8 + [17_849] * 8


def zero_outputs(n: int) -> list[TxOut]:
    return [TxOut(0, owner("mallory"))] * n


def assert_accounted(pool: OrphanPool) -> None:
    """The pool's byte counts are those of the blocks it holds, per source
    and in all; a source that holds nothing has no count left."""
    held: dict[str, int] = {}
    for hash_ in pool:
        orphan = pool._orphans[hash_]
        held[orphan.source] = held.get(orphan.source, 0) + orphan.block.size
    assert pool._bytes_of == held
    assert pool.bytes == sum(held.values())


# -- orphan blocks ---------------------------------------------------------------------------

def test_orphan_pool_is_bounded_by_bytes_and_a_flood_evicts_only_the_flooder():
    parent, child = parent_and_child()
    h = Harness()
    assert h.chain.process_block(child, source="127.0.0.1:1001").status == "orphan"
    floods = [unknown_parent_block(k, outputs=600_000 // 28) for k in range(8)]
    assert sum(b.size for b in floods) > MAX_ORPHAN_BYTES  # 100 of them once fitted (540 MB)
    for block in floods:
        assert h.chain.process_block(block, source="127.0.0.1:6666").status == "orphan"
        assert h.chain.orphans.bytes <= MAX_ORPHAN_BYTES
        assert_accounted(h.chain.orphans)
    assert child.hash in h.chain.orphans  # the honest sender's one block survived
    kept = [b.hash for b in floods if b.hash in h.chain.orphans]
    assert 0 < len(kept) < len(floods)
    assert kept == [b.hash for b in floods[-len(kept):]]  # the flooder's oldest went first
    assert h.chain.orphans.bytes == child.size + sum(b.size for b in floods[-len(kept):])
    assert h.chain.orphans._bytes_of["127.0.0.1:1001"] == child.size

    out = h.chain.process_block(parent)
    assert out.status == "connected" and out.connected == [parent, child]
    assert child.hash not in h.chain.orphans
    assert_accounted(h.chain.orphans)  # the honest sender holds nothing now
    assert "127.0.0.1:1001" not in h.chain.orphans._bytes_of


def test_orphans_filling_the_byte_bound_exactly_are_all_kept():
    """The bound is on more than MAX_ORPHAN_BYTES: a pool holding exactly that
    many keeps everything; the next orphan evicts the oldest."""
    blocks = [unknown_parent_block(k, outputs=n) for k, n in enumerate(EXACT_FILL)]
    assert sum(b.size for b in blocks) == MAX_ORPHAN_BYTES
    h = Harness()
    for block in blocks:
        assert h.chain.process_block(block, source="127.0.0.1:6666").status == "orphan"
    assert list(h.chain.orphans) == [b.hash for b in blocks]
    assert h.chain.orphans.bytes == MAX_ORPHAN_BYTES
    extra = unknown_parent_block(len(blocks))
    assert h.chain.process_block(extra, source="127.0.0.1:6666").status == "orphan"
    assert list(h.chain.orphans) == [b.hash for b in blocks[1:] + [extra]]
    assert_accounted(h.chain.orphans)


def test_an_orphan_keeps_its_own_requested_flag_until_its_parent_comes():
    """When its parent arrives, an orphan is processed as it came: one we
    asked for is stored even on a branch with less work than the tip; one
    pushed to us unasked keeps only its header there (Core's AcceptBlock),
    whatever its parent was."""
    source = Harness()
    source.mine_empty(1)
    h = Harness()
    h.mine_empty(1)
    assert h.tip.hash == source.tip.hash
    h.mine_empty(3)  # our tip: height 4
    branch = source.mine_empty(2, reward_to="bob")  # heights 2 and 3: less work than ours
    other = source.block(parent=source.chain.entry_at(2), reward_to="carol",
                         time=source.next_time(source.chain.entry_at(2)) + 1)  # height 3 too
    assert h.chain.process_block(branch[1], requested=True).status == "orphan"
    assert h.chain.process_block(other, requested=False).status == "orphan"
    out = h.chain.process_block(branch[0], requested=True)
    assert (out.status, out.connected, out.disconnected) == ("side", [], [])
    assert not h.chain.orphans
    index = h.chain.index
    assert index[branch[1].hash].status & HAVE_DATA  # asked for: stored
    assert h.chain.store.get_block_raw(branch[1].hash) == branch[1].raw
    assert not index[other.hash].status & HAVE_DATA  # unasked, less work: header only
    assert h.chain.get_block(other.hash) is None


def test_orphan_pool_is_bounded_in_count_for_tiny_blocks():
    parent, child = parent_and_child()
    h = Harness()
    assert h.chain.process_block(child, source="honest").status == "orphan"
    for k in range(MAX_ORPHAN_BLOCKS + 50):
        assert h.chain.process_block(unknown_parent_block(k), source="flooder").status == "orphan"
        assert len(h.chain.orphans) <= MAX_ORPHAN_BLOCKS
    assert len(h.chain.orphans) == MAX_ORPHAN_BLOCKS and child.hash in h.chain.orphans
    assert h.chain.process_block(parent).connected == [parent, child]


# -- unrequested blocks ----------------------------------------------------------------------

def test_an_unrequested_block_with_less_work_than_the_tip_is_not_stored():
    """Core's AcceptBlock: an unasked block must have at least the tip's work to be
    stored; its header is kept either way. Asked-for blocks are always stored."""
    h = Harness()
    h.mine_empty(3)
    chain = h.chain
    weaker = h.block(parent=chain.entry_at(1), reward_to="bob")
    out = chain.process_block(weaker, requested=False, source="127.0.0.1:6666")
    assert (out.status, out.error, out.connected) == ("unrequested", None, [])
    assert not chain.index[weaker.hash].status & HAVE_DATA
    assert chain.store.get_block_raw(weaker.hash) is None
    assert chain.get_block(weaker.hash) is None  # what a getdata for it finds

    equal = h.block(parent=chain.entry_at(2), reward_to="bob")
    assert chain.process_block(equal, requested=False).status == "side"  # as much work: stored
    assert chain.store.get_block_raw(equal.hash) == equal.raw
    assert chain.process_block(weaker).status == "side"  # asked for (the default): stored
    assert chain.store.get_block_raw(weaker.hash) == weaker.raw
    stronger = h.block(parent=chain.index[equal.hash], reward_to="bob")
    out = chain.process_block(stronger, requested=False)
    assert out.status == "connected" and out.connected == [equal, stronger]


# -- remembered invalid hashes ----------------------------------------------------------------

def test_remembered_invalid_hashes_are_bounded():
    """Headers with valid work but version 2 (bad-version, remembered) and no index
    entry: the latest MAX_INVALID_HASHES are remembered, older ones forgotten."""
    h = Harness()
    chain = h.chain
    genesis = REGTEST.genesis.hash
    headers = [solve(Header(2, genesis, k.to_bytes(32, "little"), GENESIS_TIME + 1,
                            REGTEST.pow_limit_bits, 0)) for k in range(MAX_INVALID_HASHES + 100)]
    for header in headers:
        with pytest.raises(RuleError) as caught:
            chain.accept_header(header)
        assert caught.value.code == "bad-version"
    assert len(chain.invalid) == MAX_INVALID_HASHES
    assert all(chain.invalid_reason(hd.hash) is None for hd in headers[:100])
    assert all(chain.invalid_reason(hd.hash) == "bad-version" for hd in headers[100:])
    with pytest.raises(RuleError) as caught:  # forgotten: simply checked again
        chain.accept_header(headers[0])
    assert caught.value.code == "bad-version"


# -- side index entries ---------------------------------------------------------------------------

def test_side_entries_are_bounded_and_a_cheap_flood_loses_to_more_work(tmp_path, monkeypatch):
    """With room for 30 entries off the active chain: 20 headers of an honest
    chain ahead of our tip, one invalid block (bad-cb-height), one stale side
    block with its body, and 100 free sibling headers at height 2. The
    least-work side leaves go, newest first among equals, from memory and
    disk; the honest headers stay and their bodies then connect; the forgotten
    invalid block is still remembered as invalid."""
    monkeypatch.setattr(chainstate, "MAX_SIDE_ENTRIES", 30)
    path = tmp_path / "chain.sqlite"
    h = Harness(store=Store(path))
    chain = h.chain
    h.mine_empty(3)
    genesis, first = chain.entry_at(0), chain.entry_at(1)
    bad = h.block(parent=genesis, height=2, reward_to="mallory")  # coinbase names height 2
    assert chain.process_block(bad).error.code == "bad-cb-height"
    stale = h.block(parent=genesis, reward_to="bob")
    assert chain.process_block(stale).status == "side"

    source = Harness()
    honest = source.mine_empty(23)[3:]  # heights 4..23 on the same first 3 blocks as ours
    for block in honest:
        chain.accept_header(block.header)
    siblings = [h.block(parent=first, reward_to="mallory", time=h.next_time(first) + k)
                for k in range(100)]
    for block in siblings:
        chain.accept_header(block.header)
        assert len(chain._side) <= 30
    assert all(b.hash in chain.index for b in honest)
    kept = [b.hash for b in siblings if b.hash in chain.index]
    assert kept == [b.hash for b in siblings[:10]]  # the oldest siblings stay
    assert bad.hash not in chain.index and chain.invalid_reason(bad.hash) == "bad-cb-height"
    assert stale.hash not in chain.index and chain.store.get_block_raw(stale.hash) is None
    assert stale.hash not in chain._bodies  # nor its cached body
    assert chain._bodies_bytes == sum(b.size for b in chain._bodies.values())
    rows = {Header.decode(r[0]).hash for r in chain.store.load_index()}
    assert rows == set(chain.index)  # forgotten on disk too
    chain.close()

    reopened = ChainState(REGTEST, Store(path), clock=lambda: NOW)
    try:
        assert set(reopened.index) == rows and len(reopened._side) == 30
        for block in honest:
            reopened.process_block(block)
        assert reopened.tip.hash == honest[-1].hash and reopened.height == 23
        assert len(reopened._side) == 10
    finally:
        reopened.close()


def test_a_side_branch_is_forgotten_leaf_by_leaf_down_to_its_fork(monkeypatch):
    """With room for one side entry: the headers b2, b3 of a branch from
    block 1 (b3 is forgotten at once: b2 is kept), then a header after our
    tip. Forgetting b3 made b2 a side leaf, the least worth keeping: it goes
    next, not the header after the tip, which has more work."""
    source = Harness()
    source.mine_empty(1)
    h = Harness()
    h.mine_empty(3)
    branch = source.mine_empty(2, reward_to="bob")
    monkeypatch.setattr(chainstate, "MAX_SIDE_ENTRIES", 1)
    for block in branch:
        h.chain.accept_header(block.header)
    assert [b.hash in h.chain.index for b in branch] == [True, False]
    ahead = h.block()
    h.chain.accept_header(ahead.header)
    assert branch[0].hash not in h.chain.index
    assert h.chain._side == {h.chain.index[ahead.hash]}


def test_the_side_bound_never_forgets_an_active_block_not_even_the_childless_tip(monkeypatch):
    """Our tip a3 has no children; a branch from a1 runs five headers ahead
    (b2..b6, no bodies). With room for four side entries one goes: the
    eviction walks up by work past a1, a2 and the tip a3, which are not side
    entries, to the only side leaf, b6."""
    source = Harness()
    source.mine_empty(1)
    h = Harness()
    h.mine_empty(1)
    ours = h.mine_empty(2)
    branch = source.mine_empty(5, reward_to="bob")
    monkeypatch.setattr(chainstate, "MAX_SIDE_ENTRIES", 4)
    for block in branch:
        h.chain.accept_header(block.header)
    assert h.tip.hash == ours[-1].hash and not h.tip.children and h.chain.height == 3
    assert all(h.chain.is_active(h.chain.index[b.hash]) for b in ours)
    assert branch[-1].hash not in h.chain.index
    assert all(b.hash in h.chain.index for b in branch[:-1])
    assert len(h.chain._side) == 4


def test_the_heap_of_side_leaves_drops_stale_items(monkeypatch):
    """The memory of the side bound is bounded too. Each index entry is pushed on the heap of eviction candidates when it
    joins the side; once it joins the active chain (or gets a child) its item
    is stale. The heap is compacted when it holds more than 2 x side + 1,024
    items: stale items go, live side leaves stay and can still be forgotten."""
    h = Harness()
    chain = h.chain
    h.mine_empty(1)
    stale_side = h.block(parent=chain.entry_at(0), reward_to="bob")  # a side leaf from now on
    assert chain.process_block(stale_side).status == "side"
    side_leaf = chain.index[stale_side.hash]
    threshold = 2 * 2 + 1024  # two side entries while a block is being added: it and stale_side
    for height in range(2, threshold):
        h.mine_empty(1)
        assert len(chain._evictable) == height + 1  # nothing dropped yet
    assert len(chain._evictable) == threshold
    tip = h.mine_empty(1)[0]  # one more item than the threshold: compacted as it is pushed
    assert {item[2].hash for item in chain._evictable} == {stale_side.hash, tip.hash}
    assert chain._side == {side_leaf}

    monkeypatch.setattr(chainstate, "MAX_SIDE_ENTRIES", 0)
    h.mine_empty(1)
    assert stale_side.hash not in chain.index and not chain._side  # still found and forgotten


# -- candidate tips ---------------------------------------------------------------------------

def test_candidates_are_the_tip_and_what_has_at_least_its_work():
    """A chain-complete entry with less work than the tip can never become
    the tip again (work only grows along the active chain): it is dropped
    from the candidates, as in Core. Equal work stays (Core's rule)."""
    h = Harness()
    chain = h.chain
    h.mine_empty(3)
    weaker = h.block(parent=chain.entry_at(1), reward_to="bob")
    assert chain.process_block(weaker).status == "side"
    assert chain._candidates == {chain.tip}
    equal = h.block(parent=chain.entry_at(2), reward_to="bob")
    assert chain.process_block(equal).status == "side"
    assert chain._candidates == {chain.tip, chain.index[equal.hash]}
    h.mine_empty(1)
    assert chain._candidates == {chain.tip}


# -- cached bodies ----------------------------------------------------------------------------

def test_cached_bodies_are_bounded_in_count_the_oldest_going_first():
    h = Harness()
    blocks = h.mine_empty(MAX_CACHED_BODIES)
    assert list(h.chain._bodies) == [b.hash for b in blocks]  # exactly the bound: all kept
    blocks += h.mine_empty(1)
    assert list(h.chain._bodies) == [b.hash for b in blocks[1:]]
    assert h.chain.get_block(blocks[0].hash).raw == blocks[0].raw  # read from the file again


def test_cached_bodies_filling_the_byte_bound_exactly_are_all_kept():
    h = Harness()
    blocks = []
    for n in EXACT_FILL:
        block = h.block(coinbase_outputs=zero_outputs(n))
        assert h.chain.process_block(block).status == "connected"
        blocks.append(block)
    assert sum(b.size for b in blocks) == MAX_CACHED_BODY_BYTES
    assert len(blocks) == MAX_CACHED_BODIES
    assert list(h.chain._bodies) == [b.hash for b in blocks]
    assert h.chain._bodies_bytes == MAX_CACHED_BODY_BYTES
    blocks += h.mine_empty(1)
    assert list(h.chain._bodies) == [b.hash for b in blocks[1:]]


def test_cached_bodies_are_bounded_by_bytes():
    """Six 840 kB side blocks: the decoded bodies kept for connecting stay under
    MAX_CACHED_BODY_BYTES (16 full blocks once took about 86 MB)."""
    h = Harness()
    h.mine_empty(2)
    fork = h.chain.entry_at(1)
    for k in range(6):
        big = h.block(parent=fork, time=h.next_time(fork) + k,
                      coinbase_outputs=[TxOut(0, owner("mallory"))] * 30_000)
        assert h.chain.process_block(big).status == "side"
        assert h.chain._bodies_bytes <= MAX_CACHED_BODY_BYTES
        assert h.chain._bodies_bytes == sum(b.size for b in h.chain._bodies.values())
    assert 6 * big.size > MAX_CACHED_BODY_BYTES
