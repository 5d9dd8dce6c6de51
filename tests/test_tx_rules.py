"""PROTOCOL.md section 5, transaction rules: every consensus reject code a
loose transaction can get, each asserted exactly, and the order in which
they are checked when several are broken ("When several rules are broken").

Every check goes through ``Mempool.accept`` (node/mempool.py), built on a
real ``ChainState`` the way the node builds it (with a signature cache), for
a tx going into block tip + 1. The pool has no fee floor, so the consensus
rules alone decide (the fee policy and the other policy codes are tested in
test_mempool.py). Rules the real UTXO set can never reach (input values out
of range) are reached with ``plant``: coins written straight into the chain's
database, then spent through the same real path.

The fault builders (``FAULTS``) are shared with test_block_rules.py, which
puts the same broken transactions inside mined blocks.
"""

import dataclasses

import pytest

from chain.address import encode_address
from chain.amounts import COIN, MAX_MONEY
from chain.encoding import from_hex, u32
from chain.errors import CODES, RuleError
from chain.keys import HALF_N, N, sign, signature_in_range
from chain.params import DEVNET, MAX_BLOCK_SIZE, REGTEST
from chain.sigcache import SignatureCache
from chain.tx import Tx, coinbase_tx
from node.mempool import Mempool

from .helpers import Coin, Harness, OutPoint, TxOut, make_tx, owner, pub, secret


# -- small helpers ------------------------------------------------------------------

def plant(h: Harness, coins) -> None:
    """Write ``coins`` [(OutPoint, Coin)] straight into the chain's UTXO table:
    amounts no valid chain can hold (over MAX_MONEY, negative), so that the
    range rules guarding against a forged or corrupted coin set are reached
    through the real mempool and block paths."""
    h.chain.store.db.executemany(
        "INSERT INTO utxo VALUES (?,?,?,?,?,?)",
        [(op.txid, op.index, c.amount, c.owner, c.height, int(c.coinbase)) for op, c in coins])
    for op, coin in coins:
        assert h.chain.get_coin(op) == coin


def fake_coin(amount: int, name: str = "alice", height: int = 0, coinbase: bool = False, tag: int = 0):
    """(OutPoint, Coin) for a made-up coin; ``tag`` makes distinct outpoints."""
    return OutPoint(bytes([0xC0 + tag]) * 32, 0), Coin(amount, owner(name), height, coinbase)


def reject(fn, *args) -> RuleError:
    """Call ``fn`` and return the RuleError it must raise."""
    with pytest.raises(RuleError) as info:
        fn(*args)
    return info.value


def mempool(h: Harness) -> Mempool:
    """An empty mempool on ``h``'s chain as node/server.py builds it (a
    signature cache shared with nothing else here), without a fee floor."""
    return Mempool(h.chain, min_fee_rate=0, sigcache=SignatureCache())


def check(h: Harness, tx: Tx) -> int:
    """``tx`` accepted into an empty mempool for block tip + 1: returns the fee."""
    pool = mempool(h)
    fee, evicted = pool.accept(tx)
    assert pool.get(tx.txid) == tx and evicted == []
    return fee


def rejected(h: Harness, tx: Tx, code: str) -> RuleError:
    """``tx`` refused by an empty mempool with ``code``, a consensus code; the pool stays empty."""
    pool = mempool(h)
    error = reject(pool.accept, tx)
    assert error.code == code, error
    assert error.kind == CODES[code] == "consensus"
    assert len(pool) == 0 and pool.bytes == 0 and pool.spends == {}
    return error


def with_input(tx: Tx, index: int, **changes) -> Tx:
    """``tx`` with fields of input ``index`` replaced (signatures untouched elsewhere)."""
    inputs = list(tx.inputs)
    inputs[index] = inputs[index]._replace(**changes)
    return dataclasses.replace(tx, inputs=tuple(inputs))


def resign(tx: Tx, index: int, name: str, coin: Coin, magic: bytes = REGTEST.magic) -> Tx:
    """Input ``index`` signed again by ``name`` over the tx as it is now."""
    return with_input(tx, index, signature=sign(secret(name), tx.sighash(index, coin.txout, magic)))


def sig_from_ints(r: int, s: int) -> bytes:
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def high_s_twin(signature: bytes) -> bytes:
    """(r, s) -> (r, n - s): verifies under plain ECDSA, but is high-S."""
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    return sig_from_ints(r, N - s)


def big_tx(h: Harness, n_outputs: int) -> Tx:
    """alice's genesis coin, all 50 TOY to bob, plus zero-unit outputs up to
    ``n_outputs`` outputs in all: size 145 + 28 * n_outputs bytes."""
    coin, bob = genesis_coin(h), owner("bob")  # owner bytes: no key derivation per output
    return make_tx([coin], "alice", [(bob, coin[1].amount)] + [(bob, 0)] * (n_outputs - 1))


def genesis_coin(h):
    """alice's 50 TOY genesis coinbase output (height 0)."""
    op = OutPoint(h.net.genesis.txs[0].txid, 0)
    coin = h.chain.get_coin(op)
    assert coin == Coin(50 * COIN, owner("alice"), 0, True)
    return op, coin


def coin_at(h: Harness, height: int, name: str = "alice"):
    """``name``'s coinbase coin of block ``height``."""
    return next((op, c) for op, c in h.coins_of(name) if c.height == height and c.coinbase)


def missing_coin():
    """An outpoint nobody ever created, dressed as alice's 50 TOY."""
    return OutPoint(b"\x77" * 32, 0), Coin(50 * COIN, owner("alice"), 1, False)


# -- fixtures ---------------------------------------------------------------------------

@pytest.fixture
def h() -> Harness:
    """Regtest at height 10: alice's genesis coin and block-1 coin are mature
    for the next block (height 11), the block-2 coin is not."""
    harness = Harness()
    harness.mine_empty(10)
    return harness


@pytest.fixture
def h10(h) -> Harness:
    """As ``h`` plus one confirmed, non-coinbase 10 TOY coin of alice's (and 40 of bob's)."""
    tx = make_tx([genesis_coin(h)], "alice", [("alice", 10 * COIN), ("bob", 40 * COIN)])
    assert h.mine([tx]).status == "connected"
    return h


def ten_toy_coin(h: Harness):
    return next((op, c) for op, c in h.coins_of("alice") if not c.coinbase and c.amount == 10 * COIN)


# -- one builder per fault, shared with the block tests ------------------------------------------
# Each takes a harness in the state of the ``h`` fixture and returns a tx that
# breaks exactly one rule (and would otherwise be valid in the next block).

def fault_version(h):
    return make_tx([genesis_coin(h)], "alice", [("bob", COIN)], version=2)


def fault_vout_empty(h):
    return make_tx([genesis_coin(h)], "alice", [])


def fault_vout_negative(h):
    return make_tx([genesis_coin(h)], "alice", [("bob", COIN), ("bob", -1)])


def fault_vout_toolarge(h):
    return make_tx([genesis_coin(h)], "alice", [("bob", MAX_MONEY + 1)])


def fault_txouttotal(h):
    return make_tx([genesis_coin(h)], "alice", [("bob", MAX_MONEY), ("bob", 1)])


def fault_inputs_duplicate(h):
    coin = genesis_coin(h)
    return make_tx([coin, coin], "alice", [("bob", 100 * COIN)])


def fault_nonfinal(h):
    return make_tx([genesis_coin(h)], "alice", [("bob", COIN)], locktime=h.chain.height + 2)


def fault_missing(h):
    return make_tx([missing_coin()], "alice", [("bob", COIN)])


def fault_premature(h):
    return make_tx([coin_at(h, 2)], "alice", [("bob", COIN)])


def fault_in_belowout(h):
    return make_tx([genesis_coin(h)], "alice", [("bob", 50 * COIN + 1)])


def fault_bad_pubkey(h):
    tx = make_tx([genesis_coin(h)], "alice", [("bob", COIN)])
    return with_input(tx, 0, pubkey=b"\x02" + b"\xff" * 32)  # x >= field prime: no such point


def fault_wrong_owner(h):
    return make_tx([genesis_coin(h)], "bob", [("bob", COIN)])  # bob's key on alice's coin


def fault_bad_signature(h):
    tx = make_tx([genesis_coin(h)], "alice", [("bob", COIN)])
    return with_input(tx, 0, signature=high_s_twin(tx.inputs[0].signature))


FAULTS = {
    "bad-txns-version": fault_version,
    "bad-txns-vout-empty": fault_vout_empty,
    "bad-txns-vout-negative": fault_vout_negative,
    "bad-txns-vout-toolarge": fault_vout_toolarge,
    "bad-txns-txouttotal-toolarge": fault_txouttotal,
    "bad-txns-inputs-duplicate": fault_inputs_duplicate,
    "bad-txns-nonfinal": fault_nonfinal,
    "bad-txns-inputs-missingorspent": fault_missing,
    "bad-txns-premature-spend-of-coinbase": fault_premature,
    "bad-txns-in-belowout": fault_in_belowout,
    "bad-txns-bad-pubkey": fault_bad_pubkey,
    "bad-txns-wrong-owner": fault_wrong_owner,
    "bad-txns-bad-signature": fault_bad_signature,
}


# -- the baseline: a valid spend passes ------------------------------------------------------

def test_valid_spend_passes_and_returns_the_fee(h):
    tx = make_tx([genesis_coin(h)], "alice", [("bob", 10 * COIN), ("alice", 39 * COIN)])
    assert check(h, tx) == 1 * COIN


def test_spend_of_exactly_all_inputs_has_zero_fee(h):
    tx = make_tx([genesis_coin(h)], "alice", [("bob", 50 * COIN)])
    assert check(h, tx) == 0


@pytest.mark.parametrize("code", list(FAULTS))
def test_each_fault_gets_its_code(h, code):
    error = rejected(h, FAULTS[code](h), code)
    assert error.message and str(error).startswith(code + ": ")


def test_every_tx_consensus_code_is_covered_here():
    """The codes a loose tx can get from the chain core: FAULTS plus the ones
    that need special inputs (tested below)."""
    special = {"bad-encoding", "bad-txns-oversize", "coinbase", "bad-txns-inputvalues-outofrange"}
    tx_codes = {c for c in CODES if c.startswith("bad-txns-") and c not in
                ("bad-txns-duplicate", "bad-txns-BIP30", "bad-txns-accumulated-fee-outofrange")}
    assert tx_codes | {"bad-encoding", "coinbase"} == set(FAULTS) | special


# -- bad-encoding ---------------------------------------------------------------------------

def _raw(h):
    return make_tx([genesis_coin(h)], "alice", [("bob", COIN), ("alice", 48 * COIN)]).raw


BAD_TX_BYTES = {
    "empty": lambda raw: b"",
    "too-short": lambda raw: raw[:9],
    "truncated": lambda raw: raw[:-1],
    "trailing": lambda raw: raw + b"\x00",
    "non-minimal-input-count": lambda raw: raw[:4] + b"\xfd\x01\x00" + raw[5:],
    "count-over-a-million": lambda raw: raw[:4] + b"\xfe" + u32(1_000_001) + raw[5:],
    "count-cannot-fit": lambda raw: raw[:4] + b"\x02" + raw[5:],
    "output-count-cannot-fit": lambda raw: raw[:4 + 1 + 133] + b"\x03" + raw[4 + 1 + 133 + 1:],
}


@pytest.mark.parametrize("mangle", list(BAD_TX_BYTES))
def test_bad_encoding(h, mangle):
    raw = _raw(h)
    assert Tx.decode(raw).raw == raw  # the genuine bytes decode
    error = reject(Tx.decode, BAD_TX_BYTES[mangle](raw))
    assert error.code == "bad-encoding" and error.kind == "consensus"


def test_bad_hex_is_bad_encoding_and_hex_is_case_insensitive(h):
    raw = _raw(h)
    assert Tx.decode(from_hex(raw.hex().upper())) == Tx.decode(raw)
    assert reject(from_hex, "zz" + raw.hex()).code == "bad-encoding"
    assert reject(from_hex, raw.hex()[:-1]).code == "bad-encoding"  # odd length


# -- context-free checks (check_transaction) ---------------------------------------------------

@pytest.mark.parametrize("version", [0, 2, 0xFFFFFFFF])
def test_bad_version(h, version):
    tx = make_tx([genesis_coin(h)], "alice", [("bob", COIN)], version=version)
    error = rejected(h, tx, "bad-txns-version")
    assert str(version) in error.message


def test_vout_empty(h):
    error = rejected(h, fault_vout_empty(h), "bad-txns-vout-empty")
    assert error.message == "the transaction has no outputs"


def test_oversize_boundary(h):
    # size = 4 + 1 + 133 + 3 + 28 * n + 4 = 145 + 28 n
    largest = big_tx(h, 35_709)
    assert largest.size == 999_997 <= MAX_BLOCK_SIZE
    assert check(h, largest) == 0  # not oversize, and valid (0-unit outputs are consensus-valid)
    too_big = big_tx(h, 35_710)
    assert too_big.size == 1_000_025
    error = rejected(h, too_big, "bad-txns-oversize")
    assert error.message == "size 1000025 bytes > block limit 1000000 bytes"


def test_vout_negative_message(h):
    error = rejected(h, fault_vout_negative(h), "bad-txns-vout-negative")
    assert "output 1 amount -0.00000001 TOY < 0" in error.message


def test_vout_toolarge_boundary(h):
    rich = fake_coin(MAX_MONEY)
    plant(h, [rich])
    assert check(h, make_tx([rich], "alice", [("bob", MAX_MONEY)])) == 0
    error = rejected(h, fault_vout_toolarge(h), "bad-txns-vout-toolarge")
    assert "21000000.00000001 TOY" in error.message


def test_txouttotal_toolarge_boundary(h):
    rich = fake_coin(MAX_MONEY)
    plant(h, [rich])
    assert check(h, make_tx([rich], "alice", [("bob", MAX_MONEY - 1), ("bob", 1)])) == 0
    error = rejected(h, fault_txouttotal(h), "bad-txns-txouttotal-toolarge")
    assert "outputs 0..1 sum to 21000000.00000001 TOY" in error.message


def test_inputs_duplicate(h):
    error = rejected(h, fault_inputs_duplicate(h), "bad-txns-inputs-duplicate")
    assert f"input 1 spends {genesis_coin(h)[0]}" in error.message


def test_duplicate_among_several_inputs(h):
    a, b = genesis_coin(h), coin_at(h, 1)
    tx = make_tx([a, b, a], "alice", [("bob", COIN)])
    error = rejected(h, tx, "bad-txns-inputs-duplicate")
    assert error.message.startswith("input 2 ")


def test_same_txid_other_index_is_not_a_duplicate(h):
    tx = make_tx([genesis_coin(h)], "alice", [("alice", 20 * COIN), ("alice", 30 * COIN)])
    assert h.mine([tx]).status == "connected"
    coins = [(op, c) for op, c in h.coins_of("alice") if op.txid == tx.txid]
    assert [op.index for op, _ in coins] == [0, 1]
    assert check(h, make_tx(coins, "alice", [("bob", 50 * COIN)])) == 0


# -- coinbase outside a block ---------------------------------------------------------------

def test_coinbase_outside_a_block(h):
    cb = coinbase_tx(h.chain.height + 1, [TxOut(50 * COIN, owner("alice"))])
    error = rejected(h, cb, "coinbase")
    assert error.message == ("a transaction with no inputs (a coinbase) is only valid as the "
                             "first transaction of a block")


# -- locktime ---------------------------------------------------------------------------------

def test_nonfinal_boundary(h):
    height = h.chain.height + 1
    assert check(h, make_tx([genesis_coin(h)], "alice", [("bob", COIN)], locktime=height)) > 0
    error = rejected(h, make_tx([genesis_coin(h)], "alice", [("bob", COIN)], locktime=height + 1),
                     "bad-txns-nonfinal")
    assert error.message == (f"locktime {height + 1} > height {height} of the block that "
                             f"would include it")
    assert check(h, make_tx([genesis_coin(h)], "alice", [("bob", COIN)], locktime=0)) > 0  # any height


# -- coins: missing or spent, maturity, ranges, overspend ------------------------------------------

def test_missing_input(h):
    error = rejected(h, fault_missing(h), "bad-txns-inputs-missingorspent")
    assert error.message == (f"input 0 spends {missing_coin()[0]}, which does not exist "
                             f"or is already spent")


def test_output_index_that_does_not_exist(h):
    op, coin = genesis_coin(h)
    tx = make_tx([(OutPoint(op.txid, 1), coin)], "alice", [("bob", COIN)])
    rejected(h, tx, "bad-txns-inputs-missingorspent")


def test_already_spent_coin(h):
    first = make_tx([genesis_coin(h)], "alice", [("bob", 50 * COIN)])
    double = make_tx([genesis_coin(h)], "alice", [("carol", 50 * COIN)])
    assert check(h, double) == 0  # valid until the first spend confirms
    assert h.mine([first]).status == "connected"
    rejected(h, double, "bad-txns-inputs-missingorspent")


def test_each_input_is_checked_against_its_own_coin(h10):
    """Input i's signature commits to the coin input i spends (its amount):
    the coins are looked up in input order."""
    ten, fifty = ten_toy_coin(h10), coin_at(h10, 1)
    assert check(h10, make_tx([ten, fifty], "alice", [("bob", 59 * COIN)])) == COIN
    assert check(h10, make_tx([fifty, ten], "alice", [("bob", 59 * COIN)])) == COIN


def test_coinbase_maturity_boundary(h):
    next_height = h.chain.height + 1  # 11
    ok = make_tx([coin_at(h, next_height - REGTEST.coinbase_maturity)], "alice", [("bob", COIN)])
    assert check(h, ok) == 49 * COIN
    early = make_tx([coin_at(h, next_height - REGTEST.coinbase_maturity + 1)], "alice",
                    [("bob", COIN)])
    error = rejected(h, early, "bad-txns-premature-spend-of-coinbase")
    assert error.message == ("input 0 spends a coinbase output from height 2 at height 11: "
                             "9 confirmations < maturity 10")


def test_non_coinbase_coin_needs_no_maturity(h10):
    assert h10.chain.get_coin(ten_toy_coin(h10)[0]).height == h10.chain.height  # 0 confirmations deep
    assert check(h10, make_tx([ten_toy_coin(h10)], "alice", [("bob", 10 * COIN)])) == 0


OUT_OF_RANGE = {
    "over-max-money": [fake_coin(MAX_MONEY + 1)],
    "negative": [fake_coin(-1)],
    "running-sum": [fake_coin(MAX_MONEY, tag=1), fake_coin(1, tag=2)],
}


OUT_OF_RANGE_MESSAGES = {
    "over-max-money": "input 0 value 21000000.00000001 TOY, running sum 21000000.00000001 TOY",
    "negative": "input 0 value -0.00000001 TOY, running sum -0.00000001 TOY",
    "running-sum": "input 1 value 0.00000001 TOY, running sum 21000000.00000001 TOY",
}


@pytest.mark.parametrize("case", list(OUT_OF_RANGE))
def test_inputvalues_outofrange(h, case):
    coins = OUT_OF_RANGE[case]
    plant(h, coins)
    tx = make_tx(coins, "alice", [("bob", 1)])
    error = rejected(h, tx, "bad-txns-inputvalues-outofrange")
    assert error.message == OUT_OF_RANGE_MESSAGES[case] + ", outside [0, 21000000.00000000 TOY]"


def test_inputs_at_max_money_are_in_range(h):
    coins = [fake_coin(MAX_MONEY - 1, tag=1), fake_coin(1, tag=2)]
    plant(h, coins)
    assert check(h, make_tx(coins, "alice", [("bob", MAX_MONEY)])) == 0
    zero = fake_coin(0, tag=3)  # an input worth 0 is in range too
    plant(h, [zero])
    assert check(h, make_tx([zero], "alice", [("bob", 0)])) == 0


def test_overspend_message_has_the_numbers(h10):
    tx = make_tx([ten_toy_coin(h10)], "alice", [("bob", 15 * COIN)])
    error = rejected(h10, tx, "bad-txns-in-belowout")
    assert error.message == "inputs 10.00000000 TOY < outputs 15.00000000 TOY"
    assert str(error) == "bad-txns-in-belowout: inputs 10.00000000 TOY < outputs 15.00000000 TOY"


def test_overspend_by_one_unit(h10):
    tx = make_tx([ten_toy_coin(h10)], "alice", [("bob", 5 * COIN), ("carol", 5 * COIN + 1)])
    error = rejected(h10, tx, "bad-txns-in-belowout")
    assert error.message == "inputs 10.00000000 TOY < outputs 10.00000001 TOY"


def test_fee_is_the_sum_over_several_inputs(h):
    coins = [genesis_coin(h), coin_at(h, 1)]
    tx = make_tx(coins, "alice", [("bob", 99 * COIN)])
    assert check(h, tx) == COIN


# -- authorization: pubkey, owner, signature --------------------------------------------------------

@pytest.mark.parametrize("pubkey", [
    b"\x02" + b"\xff" * 32,           # x >= p
    b"\x04" + pub("alice")[1:],       # uncompressed prefix on 33 bytes
    b"\x00" * 33,                     # point at infinity style
    b"\x05" + pub("alice")[1:],       # unknown prefix
    b"\x02" + (5).to_bytes(32, "big"),  # x = 5: x^3 + 7 = 132 is not a square mod p
], ids=["x-over-p", "prefix-04", "zeros", "prefix-05", "not-on-curve"])
def test_bad_pubkey(h, pubkey):
    tx = with_input(make_tx([genesis_coin(h)], "alice", [("bob", COIN)]), 0, pubkey=pubkey)
    error = rejected(h, tx, "bad-txns-bad-pubkey")
    assert error.message == f"input 0 pubkey {pubkey.hex()} is not a valid compressed point"


def test_wrong_owner_names_both_addresses(h):
    error = rejected(h, fault_wrong_owner(h), "bad-txns-wrong-owner")
    assert error.message == (f"input 0 pubkey belongs to {encode_address(owner('bob'))}, but the "
                             f"coin {genesis_coin(h)[0]} belongs to {encode_address(owner('alice'))}")


def test_alice_pubkey_with_bobs_signature(h):
    tx = make_tx([genesis_coin(h)], "alice", [("bob", COIN)])
    digest = tx.sighash(0, genesis_coin(h)[1].txout, REGTEST.magic)
    forged = with_input(tx, 0, signature=sign(secret("bob"), digest))
    error = rejected(h, forged, "bad-txns-bad-signature")
    assert error.message == (f"input 0 signature does not verify for the owner of "
                             f"{genesis_coin(h)[0]} (wrong key, altered tx, other network, or high S)")


def _outputs_changed(tx: Tx, outputs) -> Tx:
    return dataclasses.replace(tx, outputs=tuple(outputs))


def test_amount_tampered_after_signing(h):
    tx = make_tx([genesis_coin(h)], "alice", [("bob", 10 * COIN), ("alice", 40 * COIN)])
    # the relay moves 10 TOY of alice's change to bob: same total, so only the signature can tell
    tampered = _outputs_changed(tx, [TxOut(20 * COIN, owner("bob")), TxOut(30 * COIN, owner("alice"))])
    assert check(h, tx) == 0 and tampered.txid != tx.txid
    rejected(h, tampered, "bad-txns-bad-signature")


def test_recipient_tampered_after_signing(h):
    tx = make_tx([genesis_coin(h)], "alice", [("bob", 10 * COIN)])
    tampered = _outputs_changed(tx, [TxOut(10 * COIN, owner("mallory"))])
    rejected(h, tampered, "bad-txns-bad-signature")


def test_locktime_tampered_after_signing(h):
    tx = make_tx([genesis_coin(h)], "alice", [("bob", 10 * COIN)], locktime=0)
    rejected(h, dataclasses.replace(tx, locktime=5), "bad-txns-bad-signature")


def test_high_s_twin_is_rejected(h):
    tx = make_tx([genesis_coin(h)], "alice", [("bob", COIN)])
    assert int.from_bytes(tx.inputs[0].signature[32:], "big") <= HALF_N  # signer gives low S
    twin = with_input(tx, 0, signature=high_s_twin(tx.inputs[0].signature))
    assert twin.txid != tx.txid
    # refused by the range rule itself (libsecp256k1 would refuse it too)
    assert signature_in_range(tx.inputs[0].signature)
    assert not signature_in_range(twin.inputs[0].signature)
    rejected(h, twin, "bad-txns-bad-signature")


@pytest.mark.parametrize("rs", [
    ("zero-r", lambda r, s: (0, s)),
    ("zero-s", lambda r, s: (r, 0)),
    ("r-equals-n", lambda r, s: (N, s)),
    ("r-over-n", lambda r, s: (N + 1, s)),
    ("s-equals-n", lambda r, s: (r, N)),
    ("s-just-over-half", lambda r, s: (r, HALF_N + 1)),
    ("all-zero", lambda r, s: (0, 0)),
    ("all-ff", lambda r, s: (2**256 - 1, 2**256 - 1)),
], ids=lambda case: case[0])
def test_signature_out_of_range(h, rs):
    tx = make_tx([genesis_coin(h)], "alice", [("bob", COIN)])
    sig = tx.inputs[0].signature
    r, s = rs[1](int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    rejected(h, with_input(tx, 0, signature=sig_from_ints(r, s)), "bad-txns-bad-signature")


def test_signed_for_the_other_network(h):
    tx = make_tx([genesis_coin(h)], "alice", [("bob", COIN)], net=DEVNET)
    rejected(h, tx, "bad-txns-bad-signature")
    # the very same tx is valid on a chain whose magic is devnet's (regtest otherwise)
    other = Harness(net=dataclasses.replace(REGTEST, magic=DEVNET.magic))
    other.mine_empty(10)
    assert genesis_coin(other) == genesis_coin(h)
    assert check(other, tx) == 49 * COIN


def test_signature_commits_to_the_spent_coin_amount(h):
    op, coin = genesis_coin(h)
    lied = make_tx([(op, coin._replace(amount=coin.amount - 1))], "alice", [("bob", COIN)])
    rejected(h, lied, "bad-txns-bad-signature")


def test_signature_commits_to_the_input_index(h):
    a, b = genesis_coin(h), coin_at(h, 1)
    tx = make_tx([a, b], "alice", [("bob", 100 * COIN)])
    swapped = with_input(with_input(tx, 0, signature=tx.inputs[1].signature),
                         1, signature=tx.inputs[0].signature)
    assert check(h, tx) == 0
    error = rejected(h, swapped, "bad-txns-bad-signature")
    assert error.message.startswith("input 0 ")


def test_each_input_needs_its_own_owner(h10):
    # alice's coin and bob's coin in one tx: alice cannot sign for bob's
    bobs = next((op, c) for op, c in h10.coins_of("bob"))
    good = make_tx([ten_toy_coin(h10), bobs], ["alice", "bob"], [("carol", 50 * COIN)])
    assert check(h10, good) == 0
    error = rejected(h10, make_tx([ten_toy_coin(h10), bobs], "alice", [("carol", 50 * COIN)]),
                     "bad-txns-wrong-owner")
    assert error.message.startswith("input 1 ")


# -- "When several rules are broken": the first failing check names it ------------------------------

def _order_case(h, code, *, version=1, outputs=(("bob", COIN),), coins=None, locktime=0,
                signer="alice"):
    coins = [genesis_coin(h)] if coins is None else coins
    tx = make_tx(coins, signer, list(outputs), locktime=locktime, version=version)
    return rejected(h, tx, code)


def test_order_version_first(h):
    _order_case(h, "bad-txns-version", version=2, outputs=[],
                coins=[genesis_coin(h), genesis_coin(h)])


def test_order_vout_empty_before_duplicate_input(h):
    _order_case(h, "bad-txns-vout-empty", outputs=[], coins=[genesis_coin(h), genesis_coin(h)])


def test_order_oversize_before_negative_output(h):
    tx = big_tx(h, 35_710)
    bad = _outputs_changed(tx, list(tx.outputs[:-1]) + [TxOut(-1, owner("bob"))])
    rejected(h, bad, "bad-txns-oversize")


def test_order_negative_output_before_duplicate_input(h):
    _order_case(h, "bad-txns-vout-negative", outputs=[("bob", -5)],
                coins=[genesis_coin(h), genesis_coin(h)])


def test_order_outputs_one_by_one(h):
    # a too-large output 0 wins over a negative output 1, and vice versa
    e = _order_case(h, "bad-txns-vout-toolarge", outputs=[("bob", MAX_MONEY + 1), ("bob", -1)])
    assert e.message.startswith("output 0 ")
    e = _order_case(h, "bad-txns-vout-negative", outputs=[("bob", -1), ("bob", MAX_MONEY + 1)])
    assert e.message.startswith("output 0 ")
    # the running total overflows at output 1, before output 2 is looked at
    e = _order_case(h, "bad-txns-txouttotal-toolarge",
                    outputs=[("bob", MAX_MONEY), ("bob", 1), ("bob", -1)])
    assert "outputs 0..1 " in e.message


def test_order_duplicate_input_before_nonfinal_and_missing(h):
    coin = missing_coin()
    _order_case(h, "bad-txns-inputs-duplicate", coins=[coin, coin], locktime=h.chain.height + 5)


def test_order_coinbase_before_nonfinal(h):
    cb = coinbase_tx(h.chain.height + 100, [TxOut(COIN, owner("alice"))])
    rejected(h, cb, "coinbase")


def test_order_context_free_before_coinbase(h):
    cb = coinbase_tx(h.chain.height + 1, [TxOut(-1, owner("alice"))])
    rejected(h, cb, "bad-txns-vout-negative")


def test_order_nonfinal_before_missing(h):
    _order_case(h, "bad-txns-nonfinal", coins=[missing_coin()], locktime=h.chain.height + 2)


def test_order_missing_before_premature(h):
    # input 0 is premature, input 1 missing: every input is looked up first
    e = _order_case(h, "bad-txns-inputs-missingorspent", coins=[coin_at(h, 5), missing_coin()])
    assert e.message.startswith("input 1 ")


def test_order_premature_before_overspend(h):
    _order_case(h, "bad-txns-premature-spend-of-coinbase", coins=[coin_at(h, 5)],
                outputs=[("bob", 100 * COIN)])


def test_order_inputs_checked_one_by_one_for_maturity_and_range(h):
    premature = fake_coin(COIN, height=h.chain.height - 4, coinbase=True, tag=1)  # 5 confirmations
    too_big = fake_coin(MAX_MONEY + 1, tag=2)
    plant(h, [premature, too_big])
    for coins, code in [([premature, too_big], "bad-txns-premature-spend-of-coinbase"),
                        ([too_big, premature], "bad-txns-inputvalues-outofrange")]:
        error = rejected(h, make_tx(coins, "alice", [("bob", 1)]), code)
        assert error.message.startswith("input 0 ")


def test_order_outofrange_before_overspend(h):
    coins = [fake_coin(-COIN)]
    plant(h, coins)
    rejected(h, make_tx(coins, "alice", [("bob", COIN)]), "bad-txns-inputvalues-outofrange")


def test_order_overspend_before_signature(h):
    _order_case(h, "bad-txns-in-belowout", outputs=[("bob", 51 * COIN)], signer="bob")


def test_order_missing_input_before_bad_signature(h):
    tx = fault_missing(h)
    bad = with_input(tx, 0, signature=high_s_twin(tx.inputs[0].signature))
    rejected(h, bad, "bad-txns-inputs-missingorspent")


def test_order_authorization_per_input_in_input_order(h):
    a, b = genesis_coin(h), coin_at(h, 1)
    tx = make_tx([a, b], "alice", [("bob", 100 * COIN)])
    bad_sig_0 = with_input(tx, 0, signature=high_s_twin(tx.inputs[0].signature))
    # input 0 bad signature, input 1 bad pubkey: input 0 is checked first
    e = rejected(h, with_input(bad_sig_0, 1, pubkey=b"\x02" + b"\xff" * 32), "bad-txns-bad-signature")
    assert e.message.startswith("input 0 ")
    # input 0 wrong owner, input 1 bad pubkey
    e = rejected(h, with_input(with_input(tx, 0, pubkey=pub("bob")), 1, pubkey=b"\x05" * 33),
                 "bad-txns-wrong-owner")
    assert e.message.startswith("input 0 ")
    # within one input: bad pubkey before wrong owner before bad signature
    e = rejected(h, with_input(bad_sig_0, 0, pubkey=b"\x05" * 33), "bad-txns-bad-pubkey")
    assert e.message.startswith("input 0 ")
    e = rejected(h, with_input(bad_sig_0, 0, pubkey=pub("bob")), "bad-txns-wrong-owner")
    assert e.message.startswith("input 0 ")
    # input 0 fine (signed again: the sighash covers every pubkey), input 1 bad pubkey
    e = rejected(h, resign(with_input(tx, 1, pubkey=b"\x05" * 33), 0, "alice", a[1]),
                 "bad-txns-bad-pubkey")
    assert e.message.startswith("input 1 ")
    # input 0 fine, input 1 (a coin of the same amount and owner) with a bad signature
    e = rejected(h, with_input(tx, 1, signature=high_s_twin(tx.inputs[1].signature)),
                 "bad-txns-bad-signature")
    assert e.message.startswith("input 1 ")


def test_rules_leave_the_chain_untouched(h):
    before = (h.chain.height, h.chain.tip.hash, h.chain.store.utxo_stats())
    for build in FAULTS.values():
        reject(check, h, build(h))
    assert check(h, make_tx([genesis_coin(h)], "alice", [("bob", COIN)])) == 49 * COIN
    assert (h.chain.height, h.chain.tip.hash, h.chain.store.utxo_stats()) == before


def test_messages_never_contain_a_float_repr(h10):
    """Amounts are shown as exact 8-decimal TOY, never as Python floats."""
    error = rejected(h10, make_tx([ten_toy_coin(h10)], "alice", [("bob", 10 * COIN + 1)]),
                     "bad-txns-in-belowout")
    assert "10.00000001 TOY" in error.message and "e+" not in error.message
