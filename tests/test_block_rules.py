"""PROTOCOL.md sections 4-5, block rules: every reject code a block can get,
asserted exactly through ``ChainState.process_block`` (the outcome's status
and error code), what is remembered as invalid and what is not, and the
order of checks when several rules are broken ("When several rules are
broken", block list).

The broken transactions of test_tx_rules.py (``FAULTS``) are mined here
inside blocks and must give the same codes. The two rules the real UTXO set
can never reach (input values and accumulated fees out of range) are reached
by planting coins with impossible amounts in the chain's database
(``plant``) and mining blocks that spend them, through the same path.
"""

import dataclasses
import os
import signal
import threading

import pytest

from chain import sigcheck, tx_rules
from chain.amounts import COIN, MAX_MONEY
from chain.block import Block, Header, ZERO_HASH, merkle_root
from chain.sigcheck import ParallelVerifier
from chain.chainstate import BlockOutcome
from chain.errors import CODES, RuleError
from chain.pow import compact_to_target, target_to_compact
from chain.sigcache import SignatureCache
from chain.params import DEVNET, MAX_BLOCK_SIZE, MAX_FUTURE_SECONDS, REGTEST
from chain.tx import Tx, coinbase_tx
from node.mempool import Mempool

from .helpers import NOW, Coin, Harness, OutPoint, TxOut, make_tx, owner, resolve, wait_until
from .test_tx_rules import (FAULTS, check, coin_at, fake_coin, genesis_coin, high_s_twin, plant,
                            reject, with_input)

ALICE = owner("alice")
BOB = owner("bob")


# -- helpers ------------------------------------------------------------------------------

@pytest.fixture
def h() -> Harness:
    """Regtest at height 10: alice's genesis and block-1 coins are mature for block 11."""
    harness = Harness()
    harness.mine_empty(10)
    return harness


def snapshot(h: Harness):
    return h.chain.height, h.chain.tip.hash, h.chain.store.utxo_stats()


def submit(h: Harness, block: Block, status: str, code: str | None = None) -> BlockOutcome:
    """Process ``block``; the status (and error code) must be as given. An
    invalid or orphan block leaves the active chain and the UTXO set untouched."""
    before = snapshot(h)
    outcome = h.chain.process_block(block)
    assert outcome.status == status, outcome
    if code is None:
        assert outcome.error is None, outcome
    else:
        assert outcome.error is not None and outcome.error.code == code, outcome
        assert outcome.error.kind == CODES[code]
    if status in ("invalid", "orphan", "duplicate-invalid"):
        assert snapshot(h) == before
    return outcome


def invalid(h: Harness, block: Block, code: str) -> RuleError:
    return submit(h, block, "invalid", code).error


def assert_remembered(h: Harness, block: Block, code: str) -> None:
    """Known invalid: the same block again is ``duplicate-invalid`` with the original code."""
    assert h.chain.invalid_reason(block.hash) == code
    error = submit(h, block, "duplicate-invalid", code).error
    assert error.message == f"block {block.hash.hex()} is known to be invalid"


def assert_not_remembered(h: Harness, block: Block) -> None:
    assert h.chain.invalid_reason(block.hash) is None
    assert block.hash not in h.chain.index


def cb(height: int, amount: int = 50 * COIN, to: bytes = ALICE, extra: int = 0) -> Tx:
    """A coinbase for ``height``; ``extra`` zero-unit outputs make it bigger."""
    return coinbase_tx(height, [TxOut(amount, to)] + [TxOut(0, to)] * extra)


def assemble(h: Harness, txs, *, parent=None, prev_hash=None, time=None, bits=None, version=1,
             root=None, solve_pow=True) -> Block:
    """A block holding exactly ``txs`` (no coinbase added) on ``parent`` (default
    the tip) or on ``prev_hash`` (a block with no index entry: give ``time``)."""
    parent = parent or h.tip
    header = Header(version,
                    parent.hash if prev_hash is None else prev_hash,
                    merkle_root([tx.txid for tx in txs]) if root is None else root,
                    h.next_time(parent) if time is None else time,
                    h.chain.next_required_bits(parent) if bits is None else bits,
                    0)
    block = Block(header, tuple(txs))
    return resolve(block) if solve_pow else block


def with_header(block: Block, solve_pow: bool = True, **fields) -> Block:
    """``block`` with header fields changed (proof of work redone unless told not to)."""
    changed = Block(dataclasses.replace(block.header, **fields), block.txs)
    return resolve(changed) if solve_pow else changed


def failing_nonce(block: Block) -> Block:
    """``block`` with the first nonce whose hash is above the header's own target."""
    target = compact_to_target(block.header.bits)[0]
    nonce = 0
    while True:
        candidate = with_header(block, solve_pow=False, nonce=nonce)
        if int.from_bytes(candidate.hash, "big") > target:
            return candidate
        nonce += 1


def outputs_of(tx: Tx, index: int | None = None):
    """(OutPoint, Coin) pairs for outputs of an unconfirmed ``tx`` (as if in the next block)."""
    pairs = [(OutPoint(tx.txid, i), Coin(o.amount, o.owner, 0, False)) for i, o in enumerate(tx.outputs)]
    return pairs if index is None else pairs[index]


# -- the baseline -----------------------------------------------------------------------------

def test_valid_block_with_a_fee_connects(h):
    count, supply = h.chain.store.utxo_stats()
    tx = make_tx([genesis_coin(h)], "alice", [(BOB, 10 * COIN), (ALICE, 39 * COIN)])
    outcome = submit(h, h.block([tx], fees=COIN), "connected")
    assert outcome.connected[0].txs[1] == tx
    assert h.chain.height == 11
    assert h.chain.store.utxo_stats() == (count - 1 + 3, supply + 50 * COIN)  # fee is re-claimed


# -- the loose-tx faults, inside a block ------------------------------------------------------------

@pytest.mark.parametrize("code", list(FAULTS))
def test_tx_fault_inside_a_block(h, code):
    block = h.block([FAULTS[code](h)])
    error = invalid(h, block, code)
    assert error.message.startswith(f"tx 1 ({block.txs[1].txid.hex()[:16]}): ")
    assert_remembered(h, block, code)


def test_a_coinbase_as_second_tx_is_bad_cb_multiple(h):
    error = invalid(h, h.block([cb(11, COIN, BOB)]), "bad-cb-multiple")
    assert "tx 1 is a second coinbase" in error.message


def test_an_oversize_tx_can_only_come_as_an_oversize_block(h):
    """bad-txns-oversize is unreachable in a block: the block is then over the
    size limit too, and bad-blk-length is checked first."""
    coin = genesis_coin(h)
    huge = make_tx([coin], "alice", [(BOB, 50 * COIN)] + [(BOB, 0)] * 35_710)
    assert huge.size > MAX_BLOCK_SIZE
    invalid(h, h.block([huge]), "bad-blk-length")


def test_premature_coinbase_spend_boundary_in_blocks(h):
    early = make_tx([coin_at(h, 2)], "alice", [(BOB, 50 * COIN)])
    invalid(h, h.block([early]), "bad-txns-premature-spend-of-coinbase")
    h.mine_empty(1)  # now block 12: 12 - 2 = maturity
    submit(h, h.block([early]), "connected")


def test_coinbase_output_spent_in_its_own_block_is_premature(h):
    reward = cb(11)
    spend_it = make_tx([(OutPoint(reward.txid, 0), Coin(50 * COIN, ALICE, 11, True))], "alice",
                       [(BOB, 50 * COIN)])
    error = invalid(h, assemble(h, [reward, spend_it]), "bad-txns-premature-spend-of-coinbase")
    assert "0 confirmations" in error.message


def test_nonfinal_boundary_in_blocks(h):
    tx_now = make_tx([genesis_coin(h)], "alice", [(BOB, 50 * COIN)], locktime=11)
    tx_later = make_tx([coin_at(h, 1)], "alice", [(BOB, 50 * COIN)], locktime=12)
    error = invalid(h, h.block([tx_later]), "bad-txns-nonfinal")
    assert "locktime 12 > height 11" in error.message
    submit(h, h.block([tx_now]), "connected")
    submit(h, h.block([tx_later]), "connected")  # at height 12 it is final


def test_coinbase_context_free_faults(h):
    error = invalid(h, h.block(coinbase_outputs=[TxOut(-1, ALICE)]), "bad-txns-vout-negative")
    assert error.message.startswith("tx 0 ")
    invalid(h, h.block(coinbase_outputs=[]), "bad-txns-vout-empty")
    invalid(h, assemble(h, [Tx(2, (), (TxOut(50 * COIN, ALICE),), 11)]), "bad-txns-version")


# -- rules only planted coins can reach ------------------------------------------------------------

def test_inputvalues_outofrange_in_a_block(h):
    coin = fake_coin(MAX_MONEY + 1)
    plant(h, [coin])
    tx = make_tx([coin], "alice", [(BOB, 1)])
    error = invalid(h, h.block([tx]), "bad-txns-inputvalues-outofrange")
    assert error.message == (f"tx 1 ({tx.txid.hex()[:16]}): input 0 value 21000000.00000001 TOY, "
                             f"running sum 21000000.00000001 TOY, outside [0, 21000000.00000000 TOY]")


def _fee_txs(h, amounts, pay=1):
    """One tx per planted coin of ``amounts``, each paying ``pay`` to bob: fee = amount - pay."""
    coins = [fake_coin(a, tag=i) for i, a in enumerate(amounts)]
    plant(h, coins)
    return coins, [make_tx([c], "alice", [(BOB, min(pay, c[1].amount))]) for c in coins]


def test_accumulated_fee_outofrange(h):
    coins, txs = _fee_txs(h, [MAX_MONEY, MAX_MONEY])
    error = invalid(h, h.block(txs, coinbase_outputs=[TxOut(0, ALICE)]),
                    "bad-txns-accumulated-fee-outofrange")
    assert error.message == f"tx 2 ({txs[1].txid.hex()[:16]}): fees so far 41999999.99999998 TOY > MAX_MONEY"
    for tx in txs:  # each on its own is fine (a coinbase cannot claim such a fee: it takes 0)
        assert check(h, tx) == MAX_MONEY - 1
        submit(h, h.block([tx], coinbase_outputs=[TxOut(0, ALICE)]), "connected")


def test_accumulated_fee_of_exactly_max_money_is_fine(h):
    coins, txs = _fee_txs(h, [MAX_MONEY, 1])  # fees MAX_MONEY - 1 and 1 (the second pays 0 of 1)
    txs[1] = make_tx([coins[1]], "alice", [(BOB, 0)])
    submit(h, h.block(txs, coinbase_outputs=[TxOut(0, ALICE)]), "connected")
    assert all(h.chain.get_coin(op) is None for op, _ in coins)


def test_bad_signature_of_the_same_tx_comes_before_the_fee_overflow(h):
    coins, txs = _fee_txs(h, [MAX_MONEY, MAX_MONEY])
    txs[1] = with_input(txs[1], 0, signature=high_s_twin(txs[1].inputs[0].signature))
    error = invalid(h, h.block(txs, coinbase_outputs=[TxOut(0, ALICE)]), "bad-txns-bad-signature")
    assert error.message.startswith("tx 2 ")
    txs[0] = with_input(txs[0], 0, signature=high_s_twin(txs[0].inputs[0].signature))
    error = invalid(h, h.block(txs, coinbase_outputs=[TxOut(0, ALICE)]), "bad-txns-bad-signature")
    assert error.message.startswith("tx 1 ")


# -- bad-encoding ----------------------------------------------------------------------------

BAD_BLOCK_BYTES = {
    "empty": lambda raw: b"",
    "header-only-truncated": lambda raw: raw[:87],
    "truncated": lambda raw: raw[:-1],
    "trailing": lambda raw: raw + b"\x00",
    "non-minimal-tx-count": lambda raw: raw[:88] + b"\xfd" + raw[88:89] + b"\x00" + raw[89:],
    "tx-count-cannot-fit": lambda raw: raw[:88] + bytes([raw[88] + 1]) + raw[89:],
    "tx-count-over-a-million": lambda raw: raw[:88] + b"\xfe" + (1_000_001).to_bytes(4, "little") + raw[89:],
}


@pytest.mark.parametrize("mangle", list(BAD_BLOCK_BYTES))
def test_block_bad_encoding(h, mangle):
    block = h.block([make_tx([genesis_coin(h)], "alice", [(BOB, 50 * COIN)])])
    assert Block.decode(block.raw) == block
    error = reject(Block.decode, BAD_BLOCK_BYTES[mangle](block.raw))
    assert error.code == "bad-encoding"


def test_header_decode_needs_exactly_88_bytes(h):
    assert Header.decode(h.tip.header.raw) == h.tip.header
    assert reject(Header.decode, h.tip.header.raw + b"\x00").code == "bad-encoding"


# -- proof of work and bits --------------------------------------------------------------------------

def test_high_hash_is_not_remembered(h):
    block = h.block(solve_pow=False)
    unsolved = failing_nonce(block)
    error = invalid(h, unsolved, "high-hash")
    assert unsolved.hash.hex() in error.message
    assert_not_remembered(h, unsolved)
    invalid(h, unsolved, "high-hash")  # the same answer again, not duplicate-invalid
    submit(h, resolve(unsolved), "connected")


def test_harder_bits_without_the_work_is_high_hash_not_bad_diffbits(h):
    block = failing_nonce(h.block(bits=0x1D00FFFF, solve_pow=False))  # Bitcoin's difficulty 1
    invalid(h, block, "high-hash")


BAD_BITS = {
    "zero": 0x00000000,
    "zero-mantissa": 0x20000000,
    "shifted-to-zero": 0x01003456,
    "negative": 0x04923456,
    "negative-big": 0x20FFFFFF,
    "overflow-size": 0xFF123456,
    "overflow-word": 0x22010000,
    "above-regtest-limit": 0x2100FFFF,
    "just-above-limit": 0x21008000,  # 2**255 > 0x7fffff * 2**232
}


@pytest.mark.parametrize("case", list(BAD_BITS))
def test_bad_diffbits_encoding(h, case):
    block = h.block(bits=BAD_BITS[case], solve_pow=False)  # no target to solve against
    error = invalid(h, block, "bad-diffbits")
    assert f"{BAD_BITS[case]:08x}" in error.message
    assert_not_remembered(h, block)  # documented choice: no proof of work, not stored


def test_bad_diffbits_not_the_required_target_on_regtest(h):
    block = h.block(bits=0x207FFFFE)  # a valid, slightly harder target: not the one required
    error = invalid(h, block, "bad-diffbits")
    assert "207ffffe" in error.message and "207fffff" in error.message
    assert_remembered(h, block, "bad-diffbits")  # its proof of work is valid: remembered


@pytest.fixture(scope="module")
def devnet():
    """A devnet chain with one real block (about 65 thousand hashes)."""
    d = Harness(net=DEVNET)
    d.mine_empty(1)
    return d


def test_devnet_block_connects_with_the_required_bits(devnet):
    assert devnet.chain.height >= 1
    assert devnet.tip.header.bits == DEVNET.pow_limit_bits
    assert devnet.chain.next_required_bits(devnet.tip) == 0x1F00FFFF


@pytest.mark.parametrize("bits", [0x1F01FFFF, 0x207FFFFF], ids=["above-devnet-limit", "regtest-limit"])
def test_devnet_bits_above_its_pow_limit(devnet, bits):
    block = devnet.block(bits=bits, solve_pow=False)
    error = invalid(devnet, block, "bad-diffbits")
    assert "easier than the network's limit 1f00ffff" in error.message


def test_devnet_harder_bits_than_required(devnet):
    block = devnet.block(bits=0x1F00FFFE)  # valid and solved, but not the required target
    error = invalid(devnet, block, "bad-diffbits")
    assert "1f00fffe" in error.message and "requires 1f00ffff" in error.message
    assert_remembered(devnet, block, "bad-diffbits")


def test_devnet_unsolved_block_is_high_hash(devnet):
    invalid(devnet, failing_nonce(devnet.block(solve_pow=False)), "high-hash")


def test_devnet_retargets_every_20_blocks():
    """PROTOCOL.md section 6: at a height that is a multiple of 20, devnet's
    target scales by how long the last interval took (from block 0 to block
    19: 95 s here against 20 x 5 s planned, so 5 % harder); at any other
    height a block carries its parent's bits."""
    d = Harness(net=DEVNET)
    start = DEVNET.genesis.header.time
    for height in range(1, 20):
        submit(d, d.block(time=start + 5 * height), "connected")
    limit = DEVNET.pow_limit_bits
    harder = target_to_compact(compact_to_target(limit)[0] * 95 // 100)
    assert harder != limit
    error = invalid(d, d.block(time=start + 100, bits=limit), "bad-diffbits")
    assert error.message == f"bits {limit:08x}, but this height requires {harder:08x}"
    submit(d, d.block(time=start + 100, bits=harder), "connected")
    assert d.tip.height == 20
    invalid(d, d.block(time=start + 105, bits=limit), "bad-diffbits")  # height 21: the parent's
    submit(d, d.block(time=start + 105, bits=harder), "connected")


# -- the headers path: the same header rules ---------------------------------------------------

def refused_header(h: Harness, header: Header, code: str) -> RuleError:
    before = snapshot(h)
    error = reject(h.chain.accept_header, header)
    assert error.code == code, error
    assert snapshot(h) == before
    return error


def test_headers_path_runs_the_header_rules(h):
    """``ChainState.accept_header`` (what a headers message reaches) refuses
    with the codes a block would get and remembers the same ones: never a
    header whose proof of work was not shown valid."""
    no_work = failing_nonce(h.block(solve_pow=False)).header
    refused_header(h, no_work, "high-hash")
    bad_bits = h.block(bits=0x20000000, solve_pow=False).header
    refused_header(h, bad_bits, "bad-diffbits")
    for header in (no_work, bad_bits):
        assert h.chain.invalid_reason(header.hash) is None and header.hash not in h.chain.index
    for header, code in [(with_header(h.block(), version=2).header, "bad-version"),
                         (h.block(bits=0x207FFFFE).header, "bad-diffbits"),
                         (h.block(time=h.chain.median_time_past(h.tip)).header, "time-too-old")]:
        refused_header(h, header, code)
        assert h.chain.invalid_reason(header.hash) == code
        again = refused_header(h, header, code)  # remembered: refused before any check
        assert again.message == f"block {header.hash.hex()} is known to be invalid"
    entry = h.chain.accept_header(h.block().header)
    assert entry.height == 11 and h.chain.height == 10


# -- header version -------------------------------------------------------------------------------

@pytest.mark.parametrize("version", [0, 2])
def test_bad_version_is_remembered_and_its_child_is_bad_prevblk(h, version):
    block = with_header(h.block(), version=version)
    error = invalid(h, block, "bad-version")
    assert f"version {version} is not 1" in error.message
    assert_remembered(h, block, "bad-version")
    child = assemble(h, [cb(12)], prev_hash=block.hash, time=block.header.time + 1)
    invalid(h, child, "bad-prevblk")
    assert h.chain.invalid_reason(child.hash) == "bad-prevblk"


# -- time ------------------------------------------------------------------------------------------

def test_time_too_old_boundary(h):
    mtp = h.chain.median_time_past(h.tip)
    error = invalid(h, h.block(time=mtp), "time-too-old")
    assert f"time {mtp} <= median time past {mtp}" in error.message
    block = h.block(time=mtp + 1)
    assert block.header.time < h.tip.header.time  # earlier than the parent, later than the median
    submit(h, block, "connected")


def test_median_time_past_is_of_the_last_11_blocks(h):
    """At height 12 the median time past of the tip is the median of the
    times of blocks 2..12 (the tip and the 10 before it), not of 12 blocks
    nor of the 11 before the tip."""
    h.mine_empty(2)
    times = [entry.header.time for entry in h.chain.active]
    assert len(times) == 13 and times == sorted(set(times))
    mtp = sorted(times[-11:])[5]
    assert h.chain.median_time_past(h.tip) == mtp == times[7]
    invalid(h, h.block(time=mtp), "time-too-old")
    submit(h, h.block(time=mtp + 1), "connected")


def test_time_too_old_is_remembered(h):
    block = h.block(time=h.chain.median_time_past(h.tip))
    invalid(h, block, "time-too-old")
    assert_remembered(h, block, "time-too-old")


def test_time_too_new_boundary_and_retry():
    clock = [NOW]
    h = Harness(clock=lambda: clock[0])
    late = h.block(time=NOW + MAX_FUTURE_SECONDS + 1)
    error = invalid(h, late, "time-too-new")
    assert f"time {NOW + MAX_FUTURE_SECONDS + 1} > node clock {NOW}" in error.message
    assert_not_remembered(h, late)
    submit(h, h.block(time=NOW + MAX_FUTURE_SECONDS), "connected")  # exactly 2 h ahead is fine
    clock[0] += 1
    late = h.block(time=NOW + MAX_FUTURE_SECONDS + 1)
    submit(h, late, "connected")  # the clock caught up


# -- merkle root and duplicates (mutation) ---------------------------------------------------------

def test_bad_merkle_root_is_not_remembered(h):
    tx = make_tx([genesis_coin(h)], "alice", [(BOB, 50 * COIN)])
    genuine = h.block([tx])
    altered = with_header(genuine, merkle_root=b"\x01" * 32)
    error = invalid(h, altered, "bad-txnmrklroot")
    assert genuine.header.merkle_root.hex() in error.message
    assert_not_remembered(h, altered)
    submit(h, genuine, "connected")


def test_body_swapped_in_transit_then_genuine(h):
    """Same header (same hash) with a different body: not the hash's fault."""
    a = make_tx([genesis_coin(h)], "alice", [(BOB, 50 * COIN)])
    b = make_tx([coin_at(h, 1)], "alice", [(BOB, 50 * COIN)])
    genuine = h.block([a, b])
    swapped = Block(genuine.header, (genuine.txs[0], b, a))
    assert swapped.hash == genuine.hash
    invalid(h, swapped, "bad-txnmrklroot")
    dropped = Block(genuine.header, genuine.txs[:2])
    invalid(h, dropped, "bad-txnmrklroot")
    assert_not_remembered(h, genuine)
    submit(h, genuine, "connected")


def test_honestly_committed_duplicate_txs(h):
    tx = make_tx([genesis_coin(h)], "alice", [(BOB, 50 * COIN)])
    other = make_tx([coin_at(h, 1)], "alice", [(BOB, 50 * COIN)])
    for txs in ([cb(11), tx, tx], [cb(11), tx, other, tx]):
        block = assemble(h, txs)
        error = invalid(h, block, "bad-txns-duplicate")
        assert error.message == ("the same txid appears twice in the block "
                                 "(a mutated block, CVE-2012-2459)")
        assert_not_remembered(h, block)


# -- size and coinbase placement ---------------------------------------------------------------------

def test_empty_block_is_bad_blk_length(h):
    block = assemble(h, [], root=ZERO_HASH)
    assert block.header.merkle_root == ZERO_HASH
    error = invalid(h, block, "bad-blk-length")
    assert error.message.startswith("0 txs")
    assert_remembered(h, block, "bad-blk-length")


def test_empty_block_with_another_root_is_bad_merkle_root(h):
    invalid(h, assemble(h, [], root=b"\x02" * 32), "bad-txnmrklroot")


def test_block_size_limit_boundary(h):
    h.mine_empty(1)  # block 12 next: alice's coins of heights 0, 1 and 2 are mature
    coins = [coin_at(h, height) for height in (0, 1, 2)]
    # size = 88 + 1 + (12 + 28 k) + (4 + 1 + 3 * 133 + 3 + 28 m + 4) = 512 + 28 (k + m)
    tx = make_tx(coins, "alice", [(BOB, 150 * COIN)] + [(BOB, 0)] * (35_396 - 1))
    exact = assemble(h, [cb(12, extra=299), tx])
    assert exact.size == MAX_BLOCK_SIZE
    over = assemble(h, [cb(12, extra=300), tx])
    assert over.size == MAX_BLOCK_SIZE + 28
    error = invalid(h, over, "bad-blk-length")
    assert f"{MAX_BLOCK_SIZE + 28} bytes" in error.message
    submit(h, exact, "connected")


def test_first_tx_not_a_coinbase(h):
    tx = make_tx([genesis_coin(h)], "alice", [(BOB, 50 * COIN)])
    error = invalid(h, assemble(h, [tx]), "bad-cb-missing")
    assert error.message == "the first transaction is not a coinbase"
    invalid(h, assemble(h, [tx, cb(11)]), "bad-cb-missing")  # a coinbase, but not first


def test_two_coinbases(h):
    block = assemble(h, [cb(11), cb(11, COIN, BOB)])
    invalid(h, block, "bad-cb-multiple")
    assert_remembered(h, block, "bad-cb-multiple")


@pytest.mark.parametrize("locktime", [0, 10, 12])
def test_coinbase_height(h, locktime):
    error = invalid(h, h.block(height=locktime), "bad-cb-height")
    assert f"coinbase locktime {locktime} != block height 11" in error.message


def test_coinbase_amount_boundary(h):
    tx = make_tx([genesis_coin(h)], "alice", [(BOB, 49 * COIN)])  # 1 TOY fee
    error = invalid(h, h.block([tx], fees=COIN + 1), "bad-cb-amount")
    assert ("coinbase claims 51.00000001 TOY > subsidy 50.00000000 TOY + fees 1.00000000 TOY"
            in error.message)
    block = h.block([tx], fees=COIN + 1)
    assert_remembered(h, block, "bad-cb-amount")
    submit(h, h.block([tx], fees=COIN), "connected")


def test_coinbase_without_fees_claimed_too_much(h):
    invalid(h, h.block(fees=1), "bad-cb-amount")


def test_coinbase_may_claim_less(h):
    _, supply = h.chain.store.utxo_stats()
    submit(h, h.block(coinbase_outputs=[TxOut(COIN, ALICE)]), "connected")
    assert h.chain.store.utxo_stats()[1] == supply + COIN


def test_subsidy_halves_at_150(h):
    h.mine_empty(149 - h.chain.height)
    assert h.chain.height == 149
    invalid(h, h.block(coinbase_outputs=[TxOut(50 * COIN, ALICE)]), "bad-cb-amount")
    submit(h, h.block(), "connected")
    assert h.chain.get_block(h.tip.hash).txs[0].outputs[0].amount == 25 * COIN


# -- BIP30 ---------------------------------------------------------------------------------

def test_bip30_tx_included_again_while_its_outputs_are_unspent(h):
    tx = make_tx([genesis_coin(h)], "alice", [(BOB, 20 * COIN), (ALICE, 30 * COIN)])
    submit(h, h.block([tx]), "connected")
    again = h.block([tx])
    error = invalid(h, again, "bad-txns-BIP30")
    assert tx.txid.hex() in error.message and error.message.startswith("tx 1 ")
    assert_remembered(h, again, "bad-txns-BIP30")
    # one output spent, one still unspent: still BIP30
    submit(h, h.block([make_tx([(OutPoint(tx.txid, 1), Coin(30 * COIN, ALICE, 11, False))],
                                "alice", [(BOB, 30 * COIN)])]), "connected")
    invalid(h, h.block([tx]), "bad-txns-BIP30")
    # every output spent: BIP30 no longer applies; its inputs are gone instead
    submit(h, h.block([make_tx([(OutPoint(tx.txid, 0), Coin(20 * COIN, BOB, 11, False))],
                                "bob", [(ALICE, 20 * COIN)])]), "connected")
    invalid(h, h.block([tx]), "bad-txns-inputs-missingorspent")


def test_bip30_sees_outputs_spent_earlier_in_the_same_block(h):
    """BIP30 looks at the coins as the block has left them so far: a tx whose
    last unspent output is spent by an earlier tx of the same block is no
    BIP30 case; it then fails on its own inputs, spent long ago."""
    tx = make_tx([genesis_coin(h)], "alice", [(BOB, 20 * COIN), (ALICE, 30 * COIN)])
    submit(h, h.block([tx]), "connected")
    submit(h, h.block([make_tx([(OutPoint(tx.txid, 1), Coin(30 * COIN, ALICE, 11, False))],
                                "alice", [(BOB, 30 * COIN)])]), "connected")
    invalid(h, h.block([tx]), "bad-txns-BIP30")  # output 0 is still unspent
    spend_0 = make_tx([(OutPoint(tx.txid, 0), Coin(20 * COIN, BOB, 11, False))], "bob",
                      [(ALICE, 20 * COIN)])
    error = invalid(h, h.block([spend_0, tx]), "bad-txns-inputs-missingorspent")
    assert error.message.startswith("tx 2 ")


# -- parents: orphans and descendants of invalid blocks -----------------------------------------------

def test_unknown_parent_is_an_orphan_then_connects(h):
    parent = h.block()
    child = assemble(h, [cb(12)], prev_hash=parent.hash, time=parent.header.time + 1)
    outcome = submit(h, child, "orphan", "prev-blk-not-found")
    assert outcome.error.kind == "orphan"
    assert parent.hash.hex() in outcome.error.message
    outcome = submit(h, parent, "connected")
    assert [b.hash for b in outcome.connected] == [parent.hash, child.hash]
    assert h.chain.tip.hash == child.hash


def test_descendants_of_an_invalid_block_are_bad_prevblk(h):
    bad = h.block(fees=1)
    invalid(h, bad, "bad-cb-amount")
    bad_entry = h.chain.index[bad.hash]
    child = h.block(parent=bad_entry)
    error = invalid(h, child, "bad-prevblk")
    assert bad.hash.hex() in error.message and "bad-cb-amount" in error.message
    assert_remembered(h, child, "bad-prevblk")
    grandchild = assemble(h, [cb(13)], prev_hash=child.hash, time=child.header.time + 1)
    invalid(h, grandchild, "bad-prevblk")
    submit(h, h.block(), "connected")  # the chain itself goes on


def test_side_branch_found_invalid_when_its_child_makes_it_best(h):
    """A side-branch block is only fully checked when its branch becomes the
    best: then it fails, its child is remembered as bad-prevblk and the chain
    stays where it was."""
    tip_before = h.tip.hash
    fork_point = h.chain.index[h.chain.active[9].hash]
    side = h.block(parent=fork_point, fees=1)  # claims 1 unit too much, unchecked for now
    submit(h, side, "side")
    child = h.block(parent=h.chain.index[side.hash])
    h.chain.process_block(child)
    assert h.tip.hash == tip_before
    assert h.chain.invalid_reason(side.hash) == "bad-cb-amount"
    assert h.chain.invalid_reason(child.hash) == "bad-prevblk"
    submit(h, child, "duplicate-invalid", "bad-prevblk")
    grandchild = assemble(h, [cb(12)], prev_hash=child.hash, time=child.header.time + 1)
    invalid(h, grandchild, "bad-prevblk")


def test_child_of_a_block_that_failed_its_context_free_checks(h):
    bad = assemble(h, [cb(11), cb(11, COIN, BOB)])
    invalid(h, bad, "bad-cb-multiple")
    child = assemble(h, [cb(12)], prev_hash=bad.hash, time=bad.header.time + 1)
    invalid(h, child, "bad-prevblk")


# -- spends inside one block ------------------------------------------------------------------

def test_spending_an_earlier_tx_of_the_same_block(h):
    first = make_tx([genesis_coin(h)], "alice", [(BOB, 50 * COIN)])
    second = make_tx([outputs_of(first, 0)], "bob", [("carol", 50 * COIN)])
    submit(h, h.block([first, second]), "connected")
    assert h.balance("carol") == 50 * COIN and h.balance("bob") == 0


def test_spending_a_later_tx_of_the_same_block(h):
    first = make_tx([genesis_coin(h)], "alice", [(BOB, 50 * COIN)])
    second = make_tx([outputs_of(first, 0)], "bob", [("carol", 50 * COIN)])
    error = invalid(h, h.block([second, first]), "bad-txns-inputs-missingorspent")
    assert error.message.startswith("tx 1 ")


def test_two_txs_of_one_block_spend_the_same_coin(h):
    to_bob = make_tx([genesis_coin(h)], "alice", [(BOB, 50 * COIN)])
    to_carol = make_tx([genesis_coin(h)], "alice", [("carol", 50 * COIN)])
    error = invalid(h, h.block([to_bob, to_carol]), "bad-txns-inputs-missingorspent")
    assert error.message.startswith("tx 2 ")


def test_double_spend_across_blocks(h):
    coin = genesis_coin(h)
    submit(h, h.block([make_tx([coin], "alice", [(BOB, 50 * COIN)])]), "connected")
    invalid(h, h.block([make_tx([coin], "alice", [("carol", 50 * COIN)])]),
            "bad-txns-inputs-missingorspent")


# -- "When several rules are broken" (block list) ---------------------------------------------------

def test_order_bad_diffbits_encoding_first(h):
    invalid(h, with_header(h.block(), solve_pow=False, bits=0, version=2,
                           merkle_root=b"\x03" * 32), "bad-diffbits")


def test_order_high_hash_before_bad_version(h):
    invalid(h, failing_nonce(with_header(h.block(), solve_pow=False, version=2)), "high-hash")


def test_order_bad_version_before_bad_merkle_root(h):
    invalid(h, with_header(h.block(), version=2, merkle_root=b"\x03" * 32), "bad-version")


def test_order_merkle_root_before_duplicates_and_coinbase(h):
    tx = make_tx([genesis_coin(h)], "alice", [(BOB, 50 * COIN)])
    invalid(h, assemble(h, [tx, tx], root=b"\x04" * 32), "bad-txnmrklroot")


def test_order_duplicate_before_coinbase_checks(h):
    tx = make_tx([genesis_coin(h)], "alice", [(BOB, 50 * COIN)])
    invalid(h, assemble(h, [tx, tx]), "bad-txns-duplicate")


def test_order_size_before_coinbase_missing(h):
    huge = make_tx([genesis_coin(h)], "alice", [(BOB, 50 * COIN)] + [(BOB, 0)] * 35_710)
    invalid(h, assemble(h, [huge]), "bad-blk-length")


def test_order_cb_multiple_before_tx_context_free_checks(h):
    invalid(h, assemble(h, [cb(11), FAULTS["bad-txns-vout-negative"](h), cb(11, COIN, BOB)]),
            "bad-cb-multiple")


def test_order_tx_context_free_before_orphan(h):
    parent = h.block()
    child = assemble(h, [cb(12), FAULTS["bad-txns-vout-negative"](h)], prev_hash=parent.hash,
                     time=parent.header.time + 1)
    invalid(h, child, "bad-txns-vout-negative")
    assert child.hash not in h.chain.orphans


def test_order_orphan_before_time_and_bits(h):
    submit(h, assemble(h, [cb(12)], prev_hash=b"\x05" * 32, time=0, bits=0x207FFFFE),
           "orphan", "prev-blk-not-found")


def test_order_bad_prevblk_before_time_and_bits(h):
    bad = h.block(fees=1)
    invalid(h, bad, "bad-cb-amount")
    child = assemble(h, [cb(12)], prev_hash=bad.hash, time=0, bits=0x207FFFFE)
    invalid(h, child, "bad-prevblk")


def test_order_required_bits_before_time(h):
    invalid(h, h.block(bits=0x207FFFFE, time=0), "bad-diffbits")


def test_order_time_too_old_before_nonfinal_and_cb_height(h):
    tx = FAULTS["bad-txns-nonfinal"](h)
    invalid(h, h.block([tx], height=99, time=h.chain.median_time_past(h.tip)), "time-too-old")


def test_order_time_too_new_before_nonfinal(h):
    invalid(h, h.block([FAULTS["bad-txns-nonfinal"](h)], time=NOW + 3 * 3600), "time-too-new")


def test_order_nonfinal_before_cb_height(h):
    invalid(h, h.block([FAULTS["bad-txns-nonfinal"](h)], height=99), "bad-txns-nonfinal")


def test_order_cb_height_before_connecting(h):
    invalid(h, h.block([FAULTS["bad-txns-inputs-missingorspent"](h)], height=99), "bad-cb-height")


def test_order_bip30_before_the_input_checks_of_the_same_tx(h):
    tx = make_tx([genesis_coin(h)], "alice", [(BOB, 20 * COIN), (ALICE, 30 * COIN)])
    submit(h, h.block([tx]), "connected")
    # the tx's own input is spent now, but BIP30 is checked first
    invalid(h, h.block([tx]), "bad-txns-BIP30")


def _bad_sig(tx: Tx) -> Tx:
    return with_input(tx, 0, signature=high_s_twin(tx.inputs[0].signature))


def test_order_bad_signature_before_bad_cb_amount(h):
    tx = _bad_sig(make_tx([genesis_coin(h)], "alice", [(BOB, 50 * COIN)]))
    error = invalid(h, h.block([tx], fees=5 * COIN), "bad-txns-bad-signature")
    assert error.message.startswith("tx 1 ")


def test_order_bad_signature_in_tx1_before_missing_inputs_in_tx2(h):
    tx1 = _bad_sig(make_tx([genesis_coin(h)], "alice", [(BOB, 50 * COIN)]))
    tx2 = FAULTS["bad-txns-inputs-missingorspent"](h)
    error = invalid(h, h.block([tx1, tx2]), "bad-txns-bad-signature")
    assert error.message.startswith("tx 1 ")


def test_order_missing_inputs_in_tx1_before_bad_signature_in_tx2(h):
    tx1 = FAULTS["bad-txns-inputs-missingorspent"](h)
    tx2 = _bad_sig(make_tx([genesis_coin(h)], "alice", [(BOB, 50 * COIN)]))
    error = invalid(h, h.block([tx1, tx2]), "bad-txns-inputs-missingorspent")
    assert error.message.startswith("tx 1 ")


def test_order_bad_signature_in_tx1_before_bip30_in_tx2(h):
    old = make_tx([genesis_coin(h)], "alice", [(BOB, 20 * COIN), (ALICE, 30 * COIN)])
    submit(h, h.block([old]), "connected")
    tx1 = _bad_sig(make_tx([coin_at(h, 1)], "alice", [(BOB, 50 * COIN)]))
    error = invalid(h, h.block([tx1, old]), "bad-txns-bad-signature")
    assert error.message.startswith("tx 1 ")


# -- parallel signature checks give the serial answer ---------------------------------------------

@pytest.fixture(params=[sigcheck.CHUNK, 7], ids=["chunk-256", "chunk-7"])
def verifier(request, monkeypatch):
    """The node's verifier, also with chunks of 7 checks: the 40-tx blocks
    below then span 6 chunks, with bad signatures in different ones."""
    monkeypatch.setattr(sigcheck, "CHUNK", request.param)
    v = ParallelVerifier(workers=2, min_jobs=1)
    yield v
    v.close()


def test_parallel_verifier_reports_the_same_first_error(verifier):
    serial, parallel = Harness(), Harness(verifier=verifier)

    def both(block, status):
        outcomes = [c.process_block(block) for c in (serial.chain, parallel.chain)]
        assert [o.status for o in outcomes] == [status, status], outcomes
        errors = [(o.error.code, o.error.message) if o.error else None for o in outcomes]
        assert errors[0] == errors[1]
        return outcomes[0].error

    for _ in range(10):
        both(serial.block(), "connected")
    fan = make_tx([genesis_coin(serial)], "alice", [(ALICE, COIN)] * 40 + [(ALICE, 10 * COIN)])
    both(serial.block([fan]), "connected")
    coins = [(OutPoint(fan.txid, i), Coin(COIN, ALICE, 11, False)) for i in range(40)]
    good = [make_tx([c], "alice", [(BOB, COIN)]) for c in coins]

    def block_with(bad_sigs=(), missing=(), wrong_owner=(), **kwargs):
        """Tx at block position p (1..40) broken as asked."""
        txs = list(good)
        for p in bad_sigs:
            txs[p - 1] = _bad_sig(txs[p - 1])
        for p in wrong_owner:  # bob signs for alice's coin
            txs[p - 1] = make_tx([coins[p - 1]], "bob", [(BOB, COIN)])
        for p in missing:
            txs[p - 1] = make_tx([(OutPoint(b"\x66" * 32, p), coins[0][1])], "alice", [(BOB, COIN)])
        return serial.block(txs, **kwargs)

    cases = [
        (dict(bad_sigs=[1]), "bad-txns-bad-signature", 1),
        (dict(bad_sigs=[9, 23, 37]), "bad-txns-bad-signature", 9),
        (dict(bad_sigs=[37, 23]), "bad-txns-bad-signature", 23),
        (dict(bad_sigs=[40]), "bad-txns-bad-signature", 40),
        (dict(bad_sigs=[23, 37], missing=[30]), "bad-txns-bad-signature", 23),
        (dict(bad_sigs=[9, 23], missing=[5]), "bad-txns-inputs-missingorspent", 5),
        (dict(bad_sigs=[40], fees=1), "bad-txns-bad-signature", 40),
        (dict(bad_sigs=[23], wrong_owner=[30]), "bad-txns-bad-signature", 23),
        (dict(bad_sigs=[23], wrong_owner=[9, 37]), "bad-txns-wrong-owner", 9),
        (dict(fees=1), "bad-cb-amount", None),
    ]
    for kwargs, code, position in cases:
        error = both(block_with(**kwargs), "invalid")
        assert error.code == code, (kwargs, error)
        if position is not None:
            assert error.message.startswith(f"tx {position} ("), (kwargs, error)
    both(block_with(), "connected")
    assert serial.tip.hash == parallel.tip.hash
    assert serial.chain.store.utxo_stats() == parallel.chain.store.utxo_stats()


def worker_pids(verifier: ParallelVerifier) -> list[int]:
    return [worker.process.pid for worker in verifier._pool]


def kill(pids: list[int]) -> None:
    """What the kernel's OOM killer would do to the worker processes."""
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    for pid in pids:
        wait_until(lambda: not os.path.exists(f"/proc/{pid}") or
                   open(f"/proc/{pid}/stat").read().split()[2] == "Z", 10, f"worker {pid} to die")


def test_a_dead_worker_costs_new_workers_not_a_block(monkeypatch):
    """Workers killed between blocks (the next block's first chunk finds the
    pipe broken) or while a block's chunks are in flight (their answers never
    come): the block gets the same verdict, the chunks those workers had are
    checked in the calling thread, and the next block gets new workers."""
    monkeypatch.setattr(sigcheck, "CHUNK", 4)
    verifier = ParallelVerifier(workers=2, min_jobs=1)
    try:
        h = Harness(verifier=verifier)
        h.mine_empty(10)
        fan = make_tx([genesis_coin(h)], "alice", [(ALICE, COIN)] * 30 + [(ALICE, 10 * COIN)])
        submit(h, h.block([fan]), "connected")  # the first block worth it starts the workers
        coins = [(OutPoint(fan.txid, i), Coin(COIN, ALICE, 11, False)) for i in range(30)]
        txs = [make_tx([c], "alice", [(BOB, COIN)]) for c in coins]
        first = worker_pids(verifier)
        kill(first)
        error = invalid(h, h.block(txs[:10] + [_bad_sig(txs[10])]), "bad-txns-bad-signature")
        assert error.message.startswith("tx 11 (")
        assert verifier._pool == []  # replaced at the next block

        batch = verifier.start(h.net.magic, 12)  # new workers
        second = worker_pids(verifier)
        assert len(second) == 2 and not set(second) & set(first)
        for pid in second:  # stopped: the chunks below stay unanswered until the kill
            os.kill(pid, signal.SIGSTOP)
        for pos, tx in enumerate(txs[:11] + [_bad_sig(txs[11])], start=1):
            batch.add((pos, 2, 0), tx, 0, coins[pos - 1][1])
        kill(second)
        key, tx, error = batch.verdict()
        assert (key, error.code) == ((12, 2, 0), "bad-txns-bad-signature")
        assert verifier._pool == []

        monkeypatch.setattr(sigcheck, "ANSWER_TIMEOUT", 0.2)  # stuck workers: never answer
        batch = verifier.start(h.net.magic, 12)
        third = worker_pids(verifier)
        for pid in third:
            os.kill(pid, signal.SIGSTOP)
        for pos, tx in enumerate([_bad_sig(txs[0])] + txs[1:12], start=1):
            batch.add((pos, 2, 0), tx, 0, coins[pos - 1][1])
        key, tx, error = batch.verdict()
        assert (key, error.code) == ((1, 2, 0), "bad-txns-bad-signature")
        assert verifier._pool == [] and all(not os.path.exists(f"/proc/{pid}") for pid in third)
        monkeypatch.setattr(sigcheck, "ANSWER_TIMEOUT", 30.0)  # new workers take a while to start
        sent = verifier.sent
        submit(h, h.block(txs), "connected")
        assert verifier.sent - sent == 30 and len(worker_pids(verifier)) == 2
    finally:
        verifier.close()


def test_a_workers_pipe_holds_a_blocks_chunks():
    """The caller never waits for a worker to read: its input pipe holds
    ``PIPE_SIZE`` bytes, a 2,000-tx block's chunks of one-input txs (Linux)."""
    import fcntl
    verifier = ParallelVerifier(workers=1, min_jobs=1)
    try:
        verifier.start(b"TOYR", 1)
        pipe = verifier._pool[0].process.stdin.fileno()
        assert fcntl.fcntl(pipe, fcntl.F_GETPIPE_SZ) == sigcheck.PIPE_SIZE
    finally:
        verifier.close()


def record_verifications(monkeypatch) -> list[str]:
    """Make every signature verification in this process note the name of
    the thread it ran on (the worker processes' checks are counted by
    ``ParallelVerifier.sent``)."""
    threads: list[str] = []
    real = tx_rules.verify_with

    def noting(key, signature, digest):
        threads.append(threading.current_thread().name)
        return real(key, signature, digest)
    monkeypatch.setattr(tx_rules, "verify_with", noting)
    return threads


def test_the_nodes_verifier(monkeypatch):
    """The verifier as node/server.py builds it: ``ParallelVerifier(cache=...)``
    with the signature cache the mempool shares. A block with fewer than 64
    signatures is checked in the calling thread, one with 64 or more in the
    worker processes (one per CPU); each signature exactly once, none the
    mempool already checked, and a bad one is refused on either path with
    its exact error (the one check a worker found bad is run again in the
    caller for it)."""
    threads = record_verifications(monkeypatch)
    caller = threading.current_thread().name
    parallel = (os.cpu_count() or 1) > 1
    cache = SignatureCache()
    verifier = ParallelVerifier(cache=cache)
    try:
        h = Harness(verifier=verifier)
        h.mine_empty(10)
        fan = make_tx([genesis_coin(h)], "alice",
                      [(ALICE, COIN // 4)] * 127 + [(ALICE, 50 * COIN - 127 * (COIN // 4) - 10_000)])
        assert Mempool(h.chain, sigcache=cache).accept(fan)[0] == 10_000
        assert threads == [caller]
        submit(h, h.block([fan], fees=10_000), "connected")
        assert threads == [caller] and verifier.sent == 0  # checked in the mempool: not again
        coins = [(OutPoint(fan.txid, i), Coin(COIN // 4, ALICE, 11, False)) for i in range(127)]
        for group in (coins[:63], coins[63:]):
            tx = make_tx(group, "alice", [(BOB, len(group) * (COIN // 4))])
            remote = parallel and len(group) >= 64
            bad = with_input(tx, 0, signature=high_s_twin(tx.inputs[0].signature))
            before, sent = len(threads), verifier.sent
            error = invalid(h, h.block([bad]), "bad-txns-bad-signature")
            assert error.message.startswith(f"tx 1 ({bad.txid.hex()[:16]}): input 0 ")
            if remote:  # all sent; the bad one checked again here for its message
                assert (verifier.sent - sent, threads[before:]) == (len(group), [caller])
            else:
                assert verifier.sent == sent and threads[before:] == [caller]  # stops at the bad one
            before, sent = len(threads), verifier.sent
            submit(h, h.block([tx]), "connected")
            if remote:  # each signature once, all in the workers
                assert (verifier.sent - sent, len(threads) - before) == (len(group), 0)
            else:
                assert verifier.sent == sent and threads[before:] == [caller] * len(group)
        assert verifier.sent == (64 + 64 if parallel else 0)
    finally:
        verifier.close()


def test_a_worker_decodes_a_tx_spanning_several_chunks_once(monkeypatch):
    """A tx whose inputs fill several chunks comes whole in each; the worker
    decodes it once (``last``) and still finds a bad signature in a later
    chunk at its position there."""
    coins = [(OutPoint(bytes([i]) * 32, i), Coin(COIN, ALICE, 1, False)) for i in range(10)]
    tx = make_tx(coins, "alice", [(BOB, 10 * COIN - 1000)])
    tx = with_input(tx, 7, signature=high_s_twin(tx.inputs[7].signature))
    decoded = []
    real_decode = Tx.decode
    monkeypatch.setattr(Tx, "decode", staticmethod(lambda raw: decoded.append(1) or real_decode(raw)))

    def chunk(indexes):
        return sigcheck.encode_chunk(REGTEST.magic, [tx.raw], [
            sigcheck._CHECK.pack(0, i, COIN) + ALICE for i in indexes])
    last = [b"", None]
    assert sigcheck.first_invalid(chunk(range(0, 5)), last) == -1
    assert sigcheck.first_invalid(chunk(range(5, 10)), last) == 2  # input 7
    assert len(decoded) == 1
    assert sigcheck.first_invalid(chunk(range(5, 10))) == 2 and len(decoded) == 2  # no memo: decoded
