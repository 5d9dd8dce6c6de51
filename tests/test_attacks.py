"""Historic attacks on Bitcoin (and the obvious ones on any ledger), replayed
against Toychain as named tests. Each docstring tells the story; each test
shows the attack refused with the exact reject code, on the mempool path
(``Mempool.accept`` on the real chain) and inside a mined block
(``ChainState.process_block``), and that the money supply did not move.
"""

import dataclasses

import ecdsa
import pytest

from chain.amounts import COIN, MAX_MONEY
from chain.block import Block
from chain.params import DEVNET, REGTEST
from chain.tx import coinbase_tx

from .helpers import Coin, Harness, OutPoint, TxOut, make_tx, owner
from .test_block_rules import invalid, submit
from .test_tx_rules import check, genesis_coin, high_s_twin, rejected, with_input

ALICE, BOB = owner("alice"), owner("bob")


@pytest.fixture
def h() -> Harness:
    harness = Harness()
    harness.mine_empty(10)  # alice's genesis coin is mature for block 11
    return harness


def supply(h: Harness):
    return h.chain.store.utxo_stats()


def refused_everywhere(h: Harness, tx, code: str, block: Block | None = None):
    """``tx`` gets ``code`` from the mempool's checks and inside a block (by
    default the next block holding just ``tx``), and the UTXO set is unchanged."""
    before = supply(h)
    error = rejected(h, tx, code)
    invalid(h, h.block([tx]) if block is None else block, code)
    assert supply(h) == before
    return error


def unconfirmed_output(tx, index: int, height: int = 11) -> tuple[OutPoint, Coin]:
    out = tx.outputs[index]
    return OutPoint(tx.txid, index), Coin(out.amount, out.owner, height, False)


def test_cve_2010_5139_value_overflow(h):
    """August 2010, block 74638: one tx paid two outputs of 92 billion BTC each.
    Their sum wrapped around a signed 64-bit integer to a tiny number, passed
    "inputs >= outputs", and created 184 billion BTC out of nothing. Every
    output, and the running sum of outputs, must now stay within MAX_MONEY."""
    coin = genesis_coin(h)
    # the original amounts: 2 * 9223372036854277039 overflows int64
    original = make_tx([coin], "alice", [(BOB, 9223372036854277039)] * 2)
    refused_everywhere(h, original, "bad-txns-vout-toolarge")
    two_62 = make_tx([coin], "alice", [(BOB, 2**62), (ALICE, 2**62)])  # 2**63 would wrap to < 0
    assert 2**62 > MAX_MONEY
    error = refused_everywhere(h, two_62, "bad-txns-vout-toolarge")
    assert error.message.startswith("output 0 ")
    # each output is legal on its own; only the running sum gives them away
    two_max = make_tx([coin], "alice", [(BOB, MAX_MONEY), (ALICE, MAX_MONEY)])
    error = refused_everywhere(h, two_max, "bad-txns-txouttotal-toolarge")
    assert "outputs 0..1 sum to 42000000.00000000 TOY" in error.message


def test_cve_2018_17144_duplicate_inputs(h):
    """September 2018: to save time, Bitcoin Core 0.14-0.16 stopped checking
    blocks for a coin spent twice by one tx. Such a block crashed nodes when
    the coin came from an earlier block, and on 0.15+ silently minted money
    when the coin was created earlier in the same block."""
    before = supply(h)
    coin = genesis_coin(h)
    # a coin from an earlier block, listed twice: pays out 100 TOY from 50
    twice = make_tx([coin, coin], "alice", [(BOB, 100 * COIN)])
    error = refused_everywhere(h, twice, "bad-txns-inputs-duplicate")
    assert error.message.startswith("input 1 ")
    # a coin created by an earlier tx of the same block, listed twice
    parent = make_tx([coin], "alice", [(ALICE, 50 * COIN)])
    child = make_tx([unconfirmed_output(parent, 0)] * 2, "alice", [(BOB, 100 * COIN)])
    block = h.block([parent, child])
    error = refused_everywhere(h, child, "bad-txns-inputs-duplicate", block=block)
    assert supply(h) == before
    # without the duplicate, the same pair of txs is fine
    honest = make_tx([unconfirmed_output(parent, 0)], "alice", [(BOB, 50 * COIN)])
    submit(h, h.block([parent, honest]), "connected")
    assert supply(h)[1] == before[1] + 50 * COIN  # only the block subsidy was added


@pytest.mark.parametrize("n_txs", [3, 5])
def test_cve_2012_2459_mutated_block_then_genuine(h, n_txs):
    """2012: the merkle tree pairs an odd last txid with itself, so a block
    ending [.., c] and its copy ending [.., c, c] have the same root and the
    same hash. Bitcoin nodes marked the hash invalid on seeing the mutated
    copy and then refused the genuine block forever (a chain split by relay)."""
    txs, coin = [], genesis_coin(h)
    for _ in range(n_txs - 1):  # a chain of spends: tx k spends tx k-1's output
        tx = make_tx([coin], "alice", [(ALICE, coin[1].amount)])
        txs.append(tx)
        coin = unconfirmed_output(tx, 0)
    genuine = h.block(txs)
    assert len(genuine.txs) == n_txs and n_txs % 2 == 1
    mutated = Block(genuine.header, genuine.txs + genuine.txs[-1:])
    assert mutated.hash == genuine.hash and mutated.raw != genuine.raw
    error = invalid(h, mutated, "bad-txns-duplicate")
    assert "CVE-2012-2459" in error.message
    assert h.chain.invalid_reason(genuine.hash) is None  # the hash is not blamed
    outcome = submit(h, genuine, "connected")
    assert outcome.connected == [genuine]
    assert h.chain.tip.hash == genuine.hash
    submit(h, mutated, "duplicate")  # known by hash now


def test_bip30(h):
    """2010-2012: blocks 91812 and 91842 (and 91722/91880) held byte-identical
    coinbase txs; the second overwrote the first's unspent coins and 100 BTC
    vanished. BIP30 forbids a tx whose txid still has unspent outputs; here
    coinbase locktime = height also makes every coinbase txid unique."""
    tx = make_tx([genesis_coin(h)], "alice", [(BOB, 20 * COIN), (ALICE, 30 * COIN)])
    submit(h, h.block([tx]), "connected")
    before = supply(h)
    error = invalid(h, h.block([tx]), "bad-txns-BIP30")
    assert tx.txid.hex() in error.message
    assert supply(h) == before and h.balance("bob") == 20 * COIN
    outputs = [TxOut(50 * COIN, ALICE)]
    assert coinbase_tx(12, outputs).txid != coinbase_tx(13, outputs).txid
    replayed = h.block(height=11)  # block 11's very coinbase again, in block 12
    assert replayed.txs[0].txid == h.chain.get_block(h.tip.hash).txs[0].txid
    invalid(h, replayed, "bad-cb-height")


def test_replay_other_network(h):
    """A tx signed on one network must not be valid on another, or a payment
    made on a test network could be replayed where the coins are real. The
    network's magic is part of every signature hash."""
    tx = make_tx([genesis_coin(h)], "alice", [(BOB, 50 * COIN)], net=DEVNET)
    refused_everywhere(h, tx, "bad-txns-bad-signature")
    assert DEVNET.magic != REGTEST.magic
    # valid where it was signed: on a chain with devnet's magic (regtest otherwise)
    there = Harness(net=dataclasses.replace(REGTEST, magic=DEVNET.magic))
    there.mine_empty(10)
    assert check(there, tx) == 0
    submit(there, there.block([tx]), "connected")


def test_high_s_twin(h):
    """ECDSA signature (r, s) has a twin (r, n - s) that also verifies, so
    anyone could flip s and change a txid without the key (the malleability
    that hurt Mt. Gox in 2014 and that BIP-66/146 closed). Here high S is
    invalid by consensus: only the signer can change a txid."""
    tx = make_tx([genesis_coin(h)], "alice", [(BOB, 50 * COIN)])
    sig = tx.inputs[0].signature
    twin_sig = high_s_twin(sig)
    digest = tx.sighash(0, genesis_coin(h)[1].txout, REGTEST.magic)
    key = ecdsa.VerifyingKey.from_string(tx.inputs[0].pubkey, curve=ecdsa.SECP256k1)
    for signature in (sig, twin_sig):  # plain ECDSA accepts both
        assert key.verify_digest(signature, digest, sigdecode=ecdsa.util.sigdecode_string) is True
    twin = with_input(tx, 0, signature=twin_sig)
    assert twin.txid != tx.txid
    refused_everywhere(h, twin, "bad-txns-bad-signature")
    submit(h, h.block([tx]), "connected")  # the original is fine


def test_overspend(h):
    """The rule the whole ledger exists for: alice holds 10 TOY and tries to
    pay 15. Inputs must cover outputs; the sentence says by how much not."""
    fund = make_tx([genesis_coin(h)], "alice", [(ALICE, 10 * COIN), (BOB, 40 * COIN)])
    submit(h, h.block([fund]), "connected")
    ten = (OutPoint(fund.txid, 0), Coin(10 * COIN, ALICE, 11, False))
    assert h.chain.get_coin(ten[0]) == ten[1]
    pay = make_tx([ten], "alice", [(BOB, 15 * COIN)])
    error = refused_everywhere(h, pay, "bad-txns-in-belowout")
    assert "inputs 10.00000000 TOY < outputs 15.00000000 TOY" in error.message
    assert h.chain.get_coin(ten[0]) == ten[1]  # alice still has her 10


def test_negative_output_to_inflate(h):
    """Pay bob 60 and mallory -10 from a 50 coin: the sum still says 50, so
    only the per-output sign check stops 10 TOY from being created."""
    tx = make_tx([genesis_coin(h)], "alice", [(BOB, 60 * COIN), ("mallory", -10 * COIN)])
    assert sum(o.amount for o in tx.outputs) == 50 * COIN
    refused_everywhere(h, tx, "bad-txns-vout-negative")


def test_theft_with_own_key(h):
    """mallory points an input at alice's coin and signs it, correctly, with
    her own key. The coin is locked to alice's key hash, so it is not hers."""
    tx = make_tx([genesis_coin(h)], "mallory", [("mallory", 50 * COIN)])
    refused_everywhere(h, tx, "bad-txns-wrong-owner")


def test_relay_redirects_payment(h):
    """A relaying node swaps the recipient of alice's signed payment for its
    own. The signature covers every output, so the altered tx is invalid."""
    tx = make_tx([genesis_coin(h)], "alice", [(BOB, 50 * COIN)])
    stolen = type(tx)(tx.version, tx.inputs, (TxOut(50 * COIN, owner("mallory")),), tx.locktime)
    refused_everywhere(h, stolen, "bad-txns-bad-signature")


def test_double_spend_race(h):
    """alice pays bob and carol with the same coin. Whichever is mined first
    wins; the other is then a spend of a spent coin, everywhere."""
    coin = genesis_coin(h)
    to_bob = make_tx([coin], "alice", [(BOB, 50 * COIN)])
    to_carol = make_tx([coin], "alice", [("carol", 50 * COIN)])
    invalid(h, h.block([to_bob, to_carol]), "bad-txns-inputs-missingorspent")
    submit(h, h.block([to_bob]), "connected")
    refused_everywhere(h, to_carol, "bad-txns-inputs-missingorspent")
    assert h.balance("bob") == 50 * COIN and h.balance("carol") == 0
