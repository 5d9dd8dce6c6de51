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
from chain.chainstate import HAVE_DATA, MAX_CACHED_BODY_BYTES, MAX_INVALID_HASHES, ChainState
from chain.encoding import sha256
from chain.errors import RuleError
from chain.mining import mine_block, solve
from chain.orphans import MAX_ORPHAN_BLOCKS, MAX_ORPHAN_BYTES
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
    assert child.hash in h.chain.orphans  # the honest sender's one block survived
    kept = [b.hash for b in floods if b.hash in h.chain.orphans]
    assert 0 < len(kept) < len(floods)
    assert kept == [b.hash for b in floods[-len(kept):]]  # the flooder's oldest went first
    assert h.chain.orphans.bytes == child.size + sum(b.size for b in floods[-len(kept):])
    assert h.chain.orphans.bytes_of("127.0.0.1:1001") == child.size

    out = h.chain.process_block(parent)
    assert out.status == "connected" and out.connected == [parent, child]
    assert child.hash not in h.chain.orphans


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


# -- cached bodies ----------------------------------------------------------------------------

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
