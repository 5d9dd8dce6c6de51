"""Decoders on hostile bytes (PROTOCOL.md section 1: "decoding is strict").

Whatever bytes ``Tx.decode``, ``Block.decode`` and ``Header.decode`` are fed,
they either return an object whose bytes are exactly the input (and that
re-serialises from its fields to exactly the input: one value, one
encoding), or raise ``RuleError`` with code ``bad-encoding``. Never any other
exception: a peer's garbage must not crash the node.
"""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chain.amounts import COIN
from chain.block import Block, Header
from chain.encoding import u32, varint
from chain.errors import RuleError
from chain.tx import Tx

from .helpers import Harness, make_tx

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- the oracle --------------------------------------------------------------------------

def rebuild_tx(tx: Tx) -> Tx:
    return Tx(tx.version, tuple(tx.inputs), tuple(tx.outputs), tx.locktime)


def rebuild_header(h: Header) -> Header:
    return Header(h.version, h.prev_hash, h.merkle_root, h.time, h.bits, h.nonce)


def rebuild_block(b: Block) -> Block:
    return Block(rebuild_header(b.header), tuple(rebuild_tx(tx) for tx in b.txs))


DECODERS = {"tx": (Tx.decode, rebuild_tx), "block": (Block.decode, rebuild_block),
            "header": (Header.decode, rebuild_header)}


def check(kind: str, data: bytes):
    """Decode ``data``; assert the contract; return the object or None."""
    decode, rebuild = DECODERS[kind]
    try:
        obj = decode(data)
    except RuleError as err:
        assert err.code == "bad-encoding", err
        assert err.kind == "consensus"
        return None
    assert isinstance(obj.raw, bytes)
    assert obj.raw == data
    assert rebuild(obj).raw == data  # canonical: no second encoding of the same value
    if kind == "tx":
        assert len(obj.inputs) <= 1_000_000 and len(obj.outputs) <= 1_000_000
        assert all(len(i.prev_txid) == 32 and len(i.pubkey) == 33 and len(i.signature) == 64
                   for i in obj.inputs)
        assert all(len(o.owner) == 20 for o in obj.outputs)
    if kind == "block":
        assert len(obj.header.raw) == 88
    return obj


# -- a real block to mutate ----------------------------------------------------------------

def _real_block() -> Block:
    h = Harness()
    h.mine_empty(11)
    coins = h.mature_coins_of("alice")
    tx1 = make_tx([coins[0]], "alice", [("bob", 20 * COIN), ("alice", 30 * COIN - 500)])
    tx2 = make_tx([coins[1], coins[2]], "alice",
                  [("carol", 60 * COIN), ("dave", 10 * COIN), ("erin", 30 * COIN - 700)])
    block = h.block([tx1, tx2], fees=1200)
    assert h.chain.process_block(block).status == "connected"
    return block


BLOCK = _real_block()
BLOCK_RAW = BLOCK.raw
TX_RAW = BLOCK.txs[2].raw
HEADER_RAW = BLOCK.header.raw


def test_real_encodings_decode_to_themselves():
    assert len(BLOCK.txs) == 3 and len(BLOCK.txs[2].inputs) == 2
    assert check("block", BLOCK_RAW) == BLOCK
    assert check("header", HEADER_RAW) == BLOCK.header
    for tx in BLOCK.txs:
        assert check("tx", tx.raw) == tx


# -- arbitrary bytes ------------------------------------------------------------------------------

@FUZZ
@given(st.binary(max_size=2000))
def test_tx_decode_arbitrary_bytes(data):
    check("tx", data)


@FUZZ
@given(st.binary(max_size=2000))
def test_block_decode_arbitrary_bytes(data):
    check("block", data)


@FUZZ
@given(st.binary(max_size=2000))
def test_header_decode_arbitrary_bytes(data):
    obj = check("header", data)
    assert (obj is not None) == (len(data) == 88)  # any 88 bytes are a header


# -- plausible bytes: a real prefix, then a count, then junk ------------------------------------------

COUNTS = st.one_of(st.integers(0, 300), st.sampled_from([0xFC, 0xFD, 0xFFFF, 0x10000, 1_000_000,
                                                          1_000_001, 2**32, 2**64 - 1]))
RAW_VARINT = st.one_of(COUNTS.map(varint),
                       st.sampled_from([b"\xfd\x01\x00", b"\xfe\x01\x00\x00\x00",
                                        b"\xff" + bytes(8), b"\xfd", b"\xfe\xff"]))


@FUZZ
@given(version=st.integers(0, 2**32 - 1), n_in=RAW_VARINT, n_out=RAW_VARINT,
       body=st.binary(max_size=600), tail=st.binary(max_size=8))
def test_tx_decode_structured_junk(version, n_in, n_out, body, tail):
    check("tx", u32(version) + n_in + body + n_out + tail)
    check("tx", u32(version) + n_in + n_out + body + tail)


@FUZZ
@given(n_tx=RAW_VARINT, body=st.binary(max_size=600), n_copies=st.integers(0, 3))
def test_block_decode_structured_junk(n_tx, body, n_copies):
    check("block", HEADER_RAW + n_tx + body)
    check("block", HEADER_RAW + n_tx + TX_RAW * n_copies + body)


# -- mutations of real encodings ---------------------------------------------------------------------

@st.composite
def mutated(draw, raw: bytes):
    data = bytearray(raw)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "duplicate"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[pos] = draw(st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0xFC, 0xFD, 0xFE, 0xFF]))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=140))
        elif op == "delete" and data:
            del data[pos:pos + draw(st.integers(1, 140))]
        elif op == "truncate":
            del data[pos:]
        elif op == "duplicate" and data:
            end = min(len(data), pos + draw(st.integers(1, 200)))
            data[end:end] = data[pos:end]
    return bytes(data)


@FUZZ
@given(mutated(BLOCK_RAW))
def test_block_decode_mutated(data):
    obj = check("block", data)
    if obj is not None and data != BLOCK_RAW:
        assert obj != BLOCK


@FUZZ
@given(mutated(TX_RAW))
def test_tx_decode_mutated(data):
    obj = check("tx", data)
    if obj is not None and data != TX_RAW:
        assert obj.txid != BLOCK.txs[2].txid


@FUZZ
@given(mutated(HEADER_RAW))
def test_header_decode_mutated(data):
    obj = check("header", data)
    assert (obj is not None) == (len(data) == 88)


@FUZZ
@given(mutated(BLOCK_RAW))
def test_block_tx_and_header_decoders_agree(data):
    """A block that decodes is a header and txs that decode on their own."""
    block = check("block", data)
    if block is not None:
        assert Header.decode(data[:88]) == block.header
        for tx in block.txs:
            assert Tx.decode(tx.raw) == tx


# -- specific edges that random search is unlikely to hit --------------------------------------------

def test_every_single_byte_change_of_a_tx_field_prefix():
    """Exhaustive over the first 8 bytes of a real tx (version and counts):
    every value of every byte either decodes canonically or is bad-encoding."""
    raw = TX_RAW
    for pos in range(8):
        for value in range(256):
            check("tx", raw[:pos] + bytes([value]) + raw[pos + 1:])


def test_every_truncation_and_extension_of_the_real_block():
    for cut in range(0, len(BLOCK_RAW), 7):
        assert check("block", BLOCK_RAW[:cut]) is None
    for extra in (b"\x00", b"\x01" * 10, TX_RAW):
        assert check("block", BLOCK_RAW + extra) is None


def test_payload_bit_flips_still_decode():
    """Flipping a bit inside fixed-size fields (here: the last tx's first
    signature and the header's nonce) changes the value, not the framing."""
    sig_offset = len(BLOCK_RAW) - len(TX_RAW) + 4 + 1 + 32 + 4 + 33
    for offset in (sig_offset, sig_offset + 63, 80, 87):
        data = bytearray(BLOCK_RAW)
        data[offset] ^= 0x40
        block = check("block", bytes(data))
        assert block is not None and block != BLOCK
