"""PROTOCOL.md sections 3-4: the tx and block formats, the genesis
cross-check values, the signature hash and the merkle root."""

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.address import encode_address
from chain.amounts import COIN
from chain.block import HEADER_SIZE, Block, Header, merkle_root
from chain.encoding import i64, sha256d, u32, u64, varint
from chain.errors import RuleError
from chain.keys import demo_private_key, owner_of, public_key, verify
from chain.mining import sign_tx
from chain.params import DEVNET, GENESIS_TIME, NETWORKS, REGTEST
from chain.pow import compact_to_target, hash_meets_target
from chain.tx import Tx, TxIn, TxOut, coinbase_tx

from .helpers import Harness, make_tx, owner, pub, secret

ALICE_ADDRESS = "toy1rqssmmpfh936zecsn2hj9ys9efr52fueemg7dm"
GENESIS_COINBASE_HEX = ("01000000000100f2052a0100000018210dec29b963a167109aaf229205ca4745279900000000")
GENESIS_TXID = "d0b8ebf92535c280b483b8c3fd50ab00c77beba7bb6703d76c653a6c3788ea90"
REGTEST_GENESIS_HASH = "430b418b4179c472266f3439c14619ff916b3092486af8dbc8bb4997ad9a22c5"
DEVNET_GENESIS_HASH = "0000cc3fb026f85bf891462fb98d264035bc898f907dc7e33b6c6fa79a4bb01c"


# -- round trips ------------------------------------------------------------------

def sample_tx(n_in=2, n_out=3, locktime=17):
    ins = tuple(TxIn(bytes([(0x10 + i) % 256]) * 32, 1000 + i, pub("bob"), bytes([(0x20 + i) % 256]) * 64)
                for i in range(n_in))
    outs = tuple(TxOut(COIN * (i + 1) + i, owner(["alice", "carol", "dave"][i % 3]))
                 for i in range(n_out))
    return Tx(1, ins, outs, locktime)


def manual_tx_bytes(tx):
    out = u32(tx.version) + varint(len(tx.inputs))
    for txin in tx.inputs:
        out += txin.prev_txid + u32(txin.prev_index) + txin.pubkey + txin.signature
    out += varint(len(tx.outputs))
    for txout in tx.outputs:
        out += txout.amount.to_bytes(8, "little", signed=True) + txout.owner
    return out + u32(tx.locktime)


@pytest.mark.parametrize("n_in, n_out", [(0, 1), (1, 1), (2, 3), (0, 0), (3, 0), (253, 2)])
def test_tx_layout_and_round_trip(n_in, n_out):
    tx = sample_tx(n_in, n_out)
    assert tx.raw == manual_tx_bytes(tx)
    assert tx.size == 4 + len(varint(n_in)) + 133 * n_in + len(varint(n_out)) + 28 * n_out + 4
    again = Tx.decode(tx.raw)
    assert again == tx
    assert again.raw == tx.raw
    assert (again.version, again.inputs, again.outputs, again.locktime) == \
        (tx.version, tx.inputs, tx.outputs, tx.locktime)
    assert again.txid == tx.txid == sha256d(tx.raw)
    assert again.is_coinbase == (n_in == 0)


def test_tx_round_trip_of_extreme_field_values():
    tx = Tx(0xFFFFFFFF, (TxIn(b"\xff" * 32, 0xFFFFFFFF, b"\x02" * 33, b"\xff" * 64),),
            (TxOut(-2**63, bytes(20)), TxOut(2**63 - 1, b"\xff" * 20)), 0xFFFFFFFF)
    again = Tx.decode(tx.raw)
    assert again.version == 0xFFFFFFFF and again.locktime == 0xFFFFFFFF
    assert again.outputs[0].amount == -2**63 and again.outputs[1].amount == 2**63 - 1
    assert again.inputs == tx.inputs


@settings(max_examples=100, deadline=None)
@given(version=st.integers(0, 2**32 - 1), locktime=st.integers(0, 2**32 - 1),
       inputs=st.lists(st.tuples(st.binary(min_size=32, max_size=32), st.integers(0, 2**32 - 1),
                                 st.binary(min_size=33, max_size=33),
                                 st.binary(min_size=64, max_size=64)), max_size=4),
       outputs=st.lists(st.tuples(st.integers(-2**63, 2**63 - 1),
                                  st.binary(min_size=20, max_size=20)), max_size=4))
def test_tx_round_trip_property(version, locktime, inputs, outputs):
    tx = Tx(version, tuple(TxIn(*i) for i in inputs), tuple(TxOut(*o) for o in outputs), locktime)
    again = Tx.decode(tx.raw)
    assert again == tx and again.raw == manual_tx_bytes(tx)
    assert list(again.inputs) == [TxIn(*i) for i in inputs]
    assert list(again.outputs) == [TxOut(*o) for o in outputs]


def test_header_layout_and_round_trip():
    header = Header(1, bytes(range(32)), bytes(range(32, 64)), 2**64 - 1, 0x1F00FFFF, 2**64 - 2)
    assert len(header.raw) == HEADER_SIZE == 88
    assert header.raw == (u32(1) + bytes(range(32)) + bytes(range(32, 64)) + u64(2**64 - 1)
                          + u32(0x1F00FFFF) + u64(2**64 - 2))
    again = Header.decode(header.raw)
    assert again == header
    assert (again.version, again.prev_hash, again.merkle_root, again.time, again.bits,
            again.nonce) == (1, bytes(range(32)), bytes(range(32, 64)), 2**64 - 1,
                             0x1F00FFFF, 2**64 - 2)
    assert again.hash == sha256d(header.raw)


def test_block_layout_and_round_trip():
    txs = (coinbase_tx(3, [TxOut(50 * COIN, owner("alice"))]), sample_tx(2, 2), sample_tx(1, 1, 0))
    header = Header(1, b"\x01" * 32, merkle_root([t.txid for t in txs]), 1764547300, 0x207FFFFF, 9)
    block = Block(header, txs)
    assert block.raw == header.raw + b"\x03" + b"".join(t.raw for t in txs)
    again = Block.decode(block.raw)
    assert again == block
    assert again.header == header and again.txs == txs
    assert again.hash == header.hash == sha256d(header.raw)
    assert again.size == len(block.raw)


def test_block_decode_mixes_the_common_reader_and_the_general_one():
    """Txs whose counts take one byte are read by offsets (``Tx.read_common``),
    others (253 inputs: a 3-byte count) by the ``Reader``: both give the same
    fields, in order, and a tx cut short is refused either way."""
    txs = (coinbase_tx(3, [TxOut(50 * COIN, owner("alice"))]), sample_tx(253, 2),
           sample_tx(1, 2), sample_tx(2, 253), sample_tx(0, 1))
    header = Header(1, b"\x01" * 32, merkle_root([t.txid for t in txs]), 1764547300, 0x207FFFFF, 9)
    raw = Block(header, txs).raw
    again = Block.decode(raw)
    assert [(t.version, t.inputs, t.outputs, t.locktime, t.raw) for t in again.txs] == \
        [(t.version, t.inputs, t.outputs, t.locktime, t.raw) for t in txs]
    assert Tx.read_common(txs[1].raw, 0) is None and Tx.read_common(txs[3].raw, 0) is None
    assert Tx.read_common(txs[2].raw, 0) == (txs[2], len(txs[2].raw))
    for cut in (1, 4, 5, 100, len(txs[2].raw) - 1):
        assert Tx.read_common(txs[2].raw[:cut], 0) is None
        with pytest.raises(RuleError) as caught:
            Tx.decode(txs[2].raw[:cut])
        assert caught.value.code == "bad-encoding"
    with pytest.raises(RuleError) as caught:
        Tx.decode(txs[2].raw + b"\x00")
    assert caught.value.code == "bad-encoding"


def test_harness_block_round_trips():
    h = Harness()
    h.mine_empty(10)
    coin = h.mature_coins_of("alice")[0]
    tx = make_tx([coin], "alice", [("bob", 10 * COIN), ("alice", coin[1].amount - 10 * COIN - 1000)])
    block = h.block([tx], fees=1000)
    again = Block.decode(block.raw)
    assert again == block and again.txs[1] == tx
    assert Tx.decode(tx.raw) == tx


def test_zero_tx_block_decodes():
    header = Header(1, bytes(32), bytes(32), 0, 0x207FFFFF, 0)
    block = Block.decode(header.raw + b"\x00")
    assert block.txs == () and block.header == header


# -- genesis cross-check (PROTOCOL.md section 4) ------------------------------------

def test_alice_address_and_key():
    alice_owner = owner_of(public_key(demo_private_key("alice")))
    assert alice_owner == hashlib.sha256(public_key(hashlib.sha256(
        b"toychain demo account alice").digest())).digest()[:20]
    assert encode_address(alice_owner) == ALICE_ADDRESS


@pytest.mark.parametrize("net", [REGTEST, DEVNET], ids=lambda n: n.name)
def test_genesis_coinbase(net):
    genesis = net.genesis
    assert len(genesis.txs) == 1
    cb = genesis.txs[0]
    assert cb.raw.hex() == GENESIS_COINBASE_HEX
    assert cb.txid.hex() == GENESIS_TXID
    assert sha256d(bytes.fromhex(GENESIS_COINBASE_HEX)).hex() == GENESIS_TXID
    assert cb.version == 1 and cb.locktime == 0 and cb.is_coinbase
    alice_owner = owner_of(public_key(demo_private_key("alice")))
    assert cb.outputs == (TxOut(50 * COIN, alice_owner),)
    # the coinbase hex is exactly: version 1, no inputs, 1 output of 50 TOY to alice, locktime 0
    assert bytes.fromhex(GENESIS_COINBASE_HEX) == (u32(1) + b"\x00" + b"\x01" + i64(50 * COIN)
                                                   + alice_owner + u32(0))
    assert genesis.header.merkle_root.hex() == GENESIS_TXID


@pytest.mark.parametrize("net, nonce, block_hash", [
    (REGTEST, 0, REGTEST_GENESIS_HASH),
    (DEVNET, 61499, DEVNET_GENESIS_HASH),
], ids=["regtest", "devnet"])
def test_genesis_header(net, nonce, block_hash):
    header = net.genesis.header
    assert header.version == 1
    assert header.prev_hash == bytes(32)
    assert header.time == GENESIS_TIME == 1764547200
    assert header.bits == net.pow_limit_bits
    assert header.nonce == nonce
    assert header.hash.hex() == block_hash
    assert net.genesis.hash.hex() == block_hash
    assert hash_meets_target(header.hash, compact_to_target(header.bits)[0])
    # it is a block like any other: its bytes decode to itself
    assert Block.decode(net.genesis.raw) == net.genesis


def test_network_parameters():
    assert (REGTEST.magic, REGTEST.pow_limit_bits, REGTEST.retarget_interval,
            REGTEST.halving_interval, REGTEST.coinbase_maturity, REGTEST.default_port) == \
        (b"TOYR", 0x207FFFFF, None, 150, 10, 18444)
    assert (DEVNET.magic, DEVNET.pow_limit_bits, DEVNET.retarget_interval, DEVNET.target_spacing,
            DEVNET.halving_interval, DEVNET.coinbase_maturity, DEVNET.default_port) == \
        (b"TOYD", 0x1F00FFFF, 20, 5, 150, 10, 8331)
    assert NETWORKS == {"regtest": REGTEST, "devnet": DEVNET}


@pytest.mark.parametrize("net", [REGTEST, DEVNET], ids=lambda n: n.name)
def test_genesis_nonce_is_the_smallest(net):
    """No nonce below the genesis nonce meets the target (PROTOCOL.md 4)."""
    header = net.genesis.header
    target = compact_to_target(header.bits)[0]
    prefix = header.raw[:-8]
    assert prefix + u64(header.nonce) == header.raw
    assert hash_meets_target(sha256d(prefix + u64(header.nonce)), target)
    for nonce in range(header.nonce):
        assert not hash_meets_target(sha256d(prefix + u64(nonce)), target), nonce


# -- signature hash ------------------------------------------------------------------

MAGIC = REGTEST.magic
SPENT = [TxOut(7 * COIN, owner("alice")), TxOut(3 * COIN + 5, owner("bob"))]


def two_in_two_out(**change):
    fields = dict(
        in0=TxIn(b"\xa0" * 32, 0, pub("alice"), bytes([1]) * 64),
        in1=TxIn(b"\xa1" * 32, 4, pub("bob"), bytes([2]) * 64),
        out0=TxOut(6 * COIN, owner("carol")),
        out1=TxOut(4 * COIN, owner("dave")),
        version=1, locktime=0)
    fields.update(change)
    return Tx(fields["version"], (fields["in0"], fields["in1"]), (fields["out0"], fields["out1"]),
              fields["locktime"])


def hand_sighash(tx, index, spent, magic):
    blanked = u32(tx.version) + varint(len(tx.inputs))
    for txin in tx.inputs:
        blanked += txin.prev_txid + u32(txin.prev_index) + txin.pubkey + bytes(64)
    blanked += varint(len(tx.outputs))
    for txout in tx.outputs:
        blanked += i64(txout.amount) + txout.owner
    blanked += u32(tx.locktime)
    data = magic + blanked + u32(index) + i64(spent.amount) + spent.owner
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


@pytest.mark.parametrize("index", [0, 1])
def test_sighash_matches_protocol_formula(index):
    tx = two_in_two_out()
    assert tx.sighash(index, SPENT[index], MAGIC) == hand_sighash(tx, index, SPENT[index], MAGIC)
    assert tx.sighash(index, SPENT[index], DEVNET.magic) == \
        hand_sighash(tx, index, SPENT[index], DEVNET.magic)


def test_sighash_of_a_one_input_tx_matches_protocol_formula():
    """A one-input tx is hashed in one go, not from a kept prefix state: same digest."""
    two = two_in_two_out()
    tx = Tx(two.version, two.inputs[:1], two.outputs, two.locktime)
    for magic in (MAGIC, DEVNET.magic):
        assert tx.sighash(0, SPENT[0], magic) == hand_sighash(tx, 0, SPENT[0], magic)
    assert tx.sighash(0, SPENT[1], MAGIC) == hand_sighash(tx, 0, SPENT[1], MAGIC)


random_txins = st.builds(TxIn, st.binary(min_size=32, max_size=32), st.integers(0, 2 ** 32 - 1),
                         st.binary(min_size=33, max_size=33), st.binary(min_size=64, max_size=64))
random_txouts = st.builds(TxOut, st.integers(-2 ** 63, 2 ** 63 - 1),
                          st.binary(min_size=20, max_size=20))
random_txs = st.builds(Tx, st.integers(0, 2 ** 32 - 1),
                       st.lists(random_txins, min_size=1, max_size=8).map(tuple),
                       st.lists(random_txouts, max_size=5).map(tuple), st.integers(0, 2 ** 32 - 1))


@settings(max_examples=150, deadline=None)
@given(tx=random_txs, spent=st.lists(random_txouts, min_size=8, max_size=8), data=st.data())
def test_sighash_equals_the_plain_definition(tx, spent, data):
    """Random txs with up to 8 inputs, every input on both networks, in any
    order: the hashed-once prefix gives exactly the plain definition."""
    order = data.draw(st.permutations(range(len(tx.inputs))))  # any order: the cache must not leak
    for index in order:
        for net in (REGTEST, DEVNET):
            assert tx.sighash(index, spent[index], net.magic) == \
                hand_sighash(tx, index, spent[index], net.magic)
    decoded = Tx.decode(tx.raw)  # a decoded copy hashes the same
    assert [decoded.sighash(i, spent[i], DEVNET.magic) for i in range(len(tx.inputs))] == \
        [hand_sighash(tx, i, spent[i], DEVNET.magic) for i in range(len(tx.inputs))]



@pytest.mark.parametrize("n_inputs", [0, 252, 253, 300])
def test_sighash_from_raw_slices_past_a_one_byte_input_count(n_inputs):
    """The blanked bytes are slices of the raw bytes: where the signatures sit
    depends on the size of the input count's varint (3 bytes from 253)."""
    inputs = tuple(TxIn(bytes([i % 256]) * 32, i, pub("alice"), bytes([1 + i % 255]) * 64)
                   for i in range(n_inputs))
    tx = Tx.decode(Tx(1, inputs, (TxOut(COIN, owner("bob")),), 7).raw)
    spent = TxOut(2 * COIN, owner("alice"))
    assert tx.blanked == Tx(1, tuple(i._replace(signature=bytes(64)) for i in inputs),
                            tx.outputs, 7).raw
    for index in {0, n_inputs // 2, n_inputs - 1} - {-1}:
        assert tx.sighash(index, spent, MAGIC) == hand_sighash(tx, index, spent, MAGIC)
BASE = two_in_two_out()
MUTATIONS = {
    "out0-amount": two_in_two_out(out0=TxOut(6 * COIN + 1, owner("carol"))),
    "out1-amount": two_in_two_out(out1=TxOut(4 * COIN - 1, owner("dave"))),
    "out0-recipient": two_in_two_out(out0=TxOut(6 * COIN, owner("mallory"))),
    "out1-recipient": two_in_two_out(out1=TxOut(4 * COIN, owner("mallory"))),
    "other-input-txid": two_in_two_out(in1=TxIn(b"\xa2" * 32, 4, pub("bob"), bytes([2]) * 64)),
    "other-input-index": two_in_two_out(in1=TxIn(b"\xa1" * 32, 5, pub("bob"), bytes([2]) * 64)),
    "other-input-pubkey": two_in_two_out(in1=TxIn(b"\xa1" * 32, 4, pub("erin"), bytes([2]) * 64)),
    "own-input-txid": two_in_two_out(in0=TxIn(b"\xb0" * 32, 0, pub("alice"), bytes([1]) * 64)),
    "own-input-index": two_in_two_out(in0=TxIn(b"\xa0" * 32, 1, pub("alice"), bytes([1]) * 64)),
    "own-pubkey": two_in_two_out(in0=TxIn(b"\xa0" * 32, 0, pub("erin"), bytes([1]) * 64)),
    "locktime": two_in_two_out(locktime=1),
    "version": two_in_two_out(version=2),
    "drop-output": Tx(1, BASE.inputs, BASE.outputs[:1], 0),
    "extra-output": Tx(1, BASE.inputs, BASE.outputs + (TxOut(0, owner("erin")),), 0),
    "swap-outputs": Tx(1, BASE.inputs, BASE.outputs[::-1], 0),
}


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_sighash_commits_to_tx(name):
    changed = MUTATIONS[name]
    assert changed.blanked != BASE.blanked
    assert changed.sighash(0, SPENT[0], MAGIC) != BASE.sighash(0, SPENT[0], MAGIC)


@pytest.mark.parametrize("spent", [TxOut(7 * COIN + 1, owner("alice")), TxOut(7 * COIN, owner("bob")),
                                   TxOut(-7 * COIN, owner("alice")), TxOut(0, owner("alice"))])
def test_sighash_commits_to_spent_coin(spent):
    assert BASE.sighash(0, spent, MAGIC) != BASE.sighash(0, SPENT[0], MAGIC)


def test_sighash_commits_to_index_and_magic():
    digests = {BASE.sighash(i, SPENT[0], m) for i in (0, 1, 2) for m in (b"TOYR", b"TOYD", b"TOYX")}
    assert len(digests) == 9


@pytest.mark.parametrize("which", ["own", "other", "both"])
def test_sighash_ignores_signature_content(which):
    in0 = TxIn(b"\xa0" * 32, 0, pub("alice"), b"\x99" * 64)
    in1 = TxIn(b"\xa1" * 32, 4, pub("bob"), bytes(range(64)))
    changed = {"own": two_in_two_out(in0=in0), "other": two_in_two_out(in1=in1),
               "both": two_in_two_out(in0=in0, in1=in1)}[which]
    assert changed.txid != BASE.txid  # the signature is part of the txid...
    for index in (0, 1):             # ...but not of what is signed
        assert changed.sighash(index, SPENT[index], MAGIC) == BASE.sighash(index, SPENT[index], MAGIC)


def test_signed_tx_verifies_over_sighash():
    unsigned = two_in_two_out(in0=TxIn(b"\xa0" * 32, 0, pub("alice"), bytes(64)),
                              in1=TxIn(b"\xa1" * 32, 4, pub("bob"), bytes(64)))
    signed = sign_tx(unsigned, [secret("alice"), secret("bob")], SPENT, MAGIC)
    assert signed.blanked == unsigned.blanked
    for index, (txin, spent) in enumerate(zip(signed.inputs, SPENT)):
        digest = signed.sighash(index, spent, MAGIC)
        assert verify(txin.pubkey, txin.signature, digest)
        assert not verify(txin.pubkey, txin.signature, signed.sighash(index, spent, DEVNET.magic))
        assert not verify(txin.pubkey, txin.signature, signed.sighash(1 - index, spent, MAGIC))


# -- merkle root -----------------------------------------------------------------------

def h2(a, b):
    return hashlib.sha256(hashlib.sha256(a + b).digest()).digest()


TXIDS = [hashlib.sha256(bytes([i])).digest() for i in range(8)]


def test_merkle_empty():
    assert merkle_root([]) == bytes(32)


def test_merkle_one():
    assert merkle_root(TXIDS[:1]) == TXIDS[0]


def test_merkle_two():
    assert merkle_root(TXIDS[:2]) == h2(TXIDS[0], TXIDS[1])


def test_merkle_three():
    a, b, c = TXIDS[:3]
    assert merkle_root([a, b, c]) == h2(h2(a, b), h2(c, c))


def test_merkle_five():
    a, b, c, d, e = TXIDS[:5]
    expected = h2(h2(h2(a, b), h2(c, d)), h2(h2(e, e), h2(e, e)))
    assert merkle_root([a, b, c, d, e]) == expected


def test_merkle_order_matters():
    a, b = TXIDS[:2]
    assert merkle_root([a, b]) != merkle_root([b, a])


def test_merkle_cve_2012_2459_collision_exists():
    """The reason bad-txns-duplicate exists: [a, b, c] and [a, b, c, c] share a root."""
    a, b, c = TXIDS[:3]
    assert merkle_root([a, b, c]) == merkle_root([a, b, c, c])


def test_merkle_does_not_modify_input():
    txids = TXIDS[:3]
    copy = list(txids)
    merkle_root(txids)
    assert txids == copy
