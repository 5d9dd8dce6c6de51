"""PROTOCOL.md section 1 (encoding) and the amount helpers.

Varints are Bitcoin's CompactSize in their shortest form only; decoding is
strict (non-minimal varints, huge or impossible counts, truncation and
trailing bytes are all ``bad-encoding``); amounts are exact integers.
"""

import pytest

from chain.amounts import COIN, MAX_MONEY, format_toy, money_range, parse_toy
from chain.block import Block, Header
from chain.encoding import MAX_COUNT, Reader, from_hex, i64, sha256d, u32, u64, varint
from chain.errors import RuleError
from chain.tx import INPUT_SIZE, MIN_TX_SIZE, OUTPUT_SIZE, Tx, TxIn, TxOut

from .helpers import owner, pub


def assert_bad_encoding(fn, *args):
    with pytest.raises(RuleError) as info:
        fn(*args)
    assert info.value.code == "bad-encoding"
    assert info.value.kind == "consensus"
    return info.value


# -- sizes stated by the protocol -----------------------------------------------

def test_element_sizes_match_protocol():
    assert INPUT_SIZE == 133
    assert OUTPUT_SIZE == 28
    assert MIN_TX_SIZE == 10
    assert MAX_COUNT == 1_000_000


# -- varint ---------------------------------------------------------------------

VARINT_CASES = [
    (0, "00"),
    (1, "01"),
    (0xFC, "fc"),
    (0xFD, "fdfd00"),
    (0xFE, "fdfe00"),
    (0xFF, "fdff00"),
    (0x100, "fd0001"),
    (0xFFFF, "fdffff"),
    (0x10000, "fe00000100"),
    (0xFFFFFFFF, "feffffffff"),
    (2**32, "ff0000000001000000"),
    (2**64 - 1, "ffffffffffffffffff"),
]


@pytest.mark.parametrize("n, encoded", VARINT_CASES, ids=[hex(n) for n, _ in VARINT_CASES])
def test_varint_encoding_and_round_trip(n, encoded):
    raw = varint(n)
    assert raw.hex() == encoded
    reader = Reader(raw + b"\xaa")
    assert reader.varint() == n
    assert reader.remaining() == 1  # read exactly its own bytes


@pytest.mark.parametrize("n", [0, 0xFC, 0xFD, 0xFFFF, 0x10000, 0xFFFFFFFF, 2**32])
def test_varint_sizes(n):
    expected = 1 if n < 0xFD else 3 if n <= 0xFFFF else 5 if n <= 0xFFFFFFFF else 9
    assert len(varint(n)) == expected


NON_MINIMAL = (
    # 0xfd prefix with a value that fits in one byte
    [("fd", v, 2) for v in (0, 1, 0x7F, 0xFC)]
    # 0xfe prefix with a value that fits in 0xfd+u16
    + [("fe", v, 4) for v in (0, 1, 0xFC, 0xFD, 0xFFFF)]
    # 0xff prefix with a value that fits in 0xfe+u32
    + [("ff", v, 8) for v in (0, 1, 0xFC, 0xFD, 0xFFFF, 0x10000, 0xFFFFFFFF)]
)


@pytest.mark.parametrize("prefix, value, width", NON_MINIMAL,
                         ids=[f"{p}-{v:x}" for p, v, _ in NON_MINIMAL])
def test_non_minimal_varint_rejected(prefix, value, width):
    raw = bytes.fromhex(prefix) + value.to_bytes(width, "little")
    assert_bad_encoding(Reader(raw).varint)


@pytest.mark.parametrize("prefix, value, width", [("fd", 0xFD, 2), ("fe", 0x10000, 4),
                                                  ("ff", 2**32, 8)])
def test_smallest_value_of_each_width_accepted(prefix, value, width):
    raw = bytes.fromhex(prefix) + value.to_bytes(width, "little")
    assert Reader(raw).varint() == value


@pytest.mark.parametrize("raw", ["", "fd", "fdff", "fe", "feffffff", "ff", "ffffffffffffffff"])
def test_truncated_varint_rejected(raw):
    assert_bad_encoding(Reader(bytes.fromhex(raw)).varint)


def coinbase_like(n_out=1):
    return Tx(1, (), tuple(TxOut(COIN + i, owner("alice")) for i in range(n_out)), 7)


def spending_tx(n_in=1):
    ins = tuple(TxIn(bytes([i]) * 32, i, pub("alice"), bytes([0x11]) * 64) for i in range(n_in))
    return Tx(1, ins, (TxOut(5, owner("bob")), TxOut(6, owner("carol"))), 0)


@pytest.mark.parametrize("non_minimal_one", ["fd0100", "fe01000000", "ff0100000000000000"])
def test_non_minimal_output_count_in_tx_rejected(non_minimal_one):
    """A non-minimal varint is an error inside a real tx too, even when the
    count it encodes (1) would otherwise be fine."""
    tx = coinbase_like(1)
    good = tx.raw
    assert Tx.decode(good) == tx
    assert good[5] == 1  # n_out, after version (4) and n_in = 0 (1)
    bad = good[:5] + bytes.fromhex(non_minimal_one) + good[6:]
    assert_bad_encoding(Tx.decode, bad)


def test_non_minimal_input_count_in_tx_rejected():
    tx = spending_tx(1)
    bad = tx.raw[:4] + b"\xfd\x01\x00" + tx.raw[5:]
    assert_bad_encoding(Tx.decode, bad)


def test_non_minimal_tx_count_in_block_rejected():
    tx = coinbase_like(1)
    header = Header(1, bytes(32), bytes(32), 1, 0x207FFFFF, 0)
    good = header.raw + b"\x01" + tx.raw
    assert Block.decode(good).txs == (tx,)
    for non_minimal in (b"\xfd\x01\x00", b"\xfe\x01\x00\x00\x00", b"\xff" + (1).to_bytes(8, "little")):
        assert_bad_encoding(Block.decode, header.raw + non_minimal + tx.raw)


# -- counts ---------------------------------------------------------------------

@pytest.mark.parametrize("n", [MAX_COUNT + 1, 2**32, 2**64 - 1])
def test_count_over_limit_rejected_even_with_room(n):
    # plenty of bytes left: it is the limit, not the room, that refuses it
    reader = Reader(varint(n) + bytes(10))
    assert_bad_encoding(reader.count, 0, "thing")


def test_count_at_limit_accepted_when_it_fits():
    reader = Reader(varint(MAX_COUNT) + bytes(MAX_COUNT))
    assert reader.count(1, "thing") == MAX_COUNT


@pytest.mark.parametrize("size", [INPUT_SIZE, OUTPUT_SIZE, MIN_TX_SIZE])
def test_count_must_fit_in_remaining_bytes(size):
    assert Reader(varint(3) + bytes(3 * size)).count(size, "x") == 3
    assert_bad_encoding(Reader(varint(3) + bytes(3 * size - 1)).count, size, "x")


def test_huge_input_count_rejected_without_reading_inputs():
    # 1,000,000 inputs announced, a handful of bytes present
    raw = u32(1) + varint(MAX_COUNT) + bytes(200)
    assert_bad_encoding(Tx.decode, raw)


def test_input_count_that_cannot_fit_rejected():
    tx = spending_tx(2)
    assert Tx.decode(tx.raw) == tx
    # claim 3 inputs: 2*133 + outputs + locktime < 3*133
    bad = tx.raw[:4] + b"\x03" + tx.raw[5:]
    assert_bad_encoding(Tx.decode, bad)


def test_output_count_that_cannot_fit_rejected():
    tx = coinbase_like(2)
    bad = tx.raw[:5] + b"\x03" + tx.raw[6:]  # 3 outputs need 84 bytes, 60 left
    assert_bad_encoding(Tx.decode, bad)


def test_block_tx_count_that_cannot_fit_rejected():
    header = Header(1, bytes(32), bytes(32), 1, 0x207FFFFF, 0)
    tx = coinbase_like(1)
    assert_bad_encoding(Block.decode, header.raw + varint(MAX_COUNT) + tx.raw)
    assert_bad_encoding(Block.decode, header.raw + varint(MAX_COUNT + 1) + tx.raw * 3)


# -- truncation and trailing bytes -----------------------------------------------

def sample_block():
    header = Header(1, bytes(32), bytes.fromhex("ab" * 32), 1764547200, 0x207FFFFF, 5)
    return Block(header, (coinbase_like(2), spending_tx(2)))


def test_every_truncation_of_a_tx_rejected():
    raw = spending_tx(2).raw
    for cut in range(len(raw)):
        assert_bad_encoding(Tx.decode, raw[:cut])


def test_every_truncation_of_a_block_rejected():
    raw = sample_block().raw
    for cut in range(len(raw)):
        assert_bad_encoding(Block.decode, raw[:cut])


@pytest.mark.parametrize("extra", [b"\x00", b"\xff", bytes(100)])
def test_trailing_bytes_rejected(extra):
    tx = spending_tx(1)
    assert_bad_encoding(Tx.decode, tx.raw + extra)
    block = sample_block()
    assert_bad_encoding(Block.decode, block.raw + extra)
    assert_bad_encoding(Header.decode, block.header.raw + extra)


def test_header_must_be_exactly_88_bytes():
    raw = sample_block().header.raw
    assert len(raw) == 88
    assert Header.decode(raw) == sample_block().header
    assert_bad_encoding(Header.decode, raw[:-1])
    assert_bad_encoding(Header.decode, b"")


def test_tx_shorter_than_minimum_rejected():
    for n in range(MIN_TX_SIZE):
        assert_bad_encoding(Tx.decode, bytes(n))


def test_smallest_tx_decodes():
    # version 1, no inputs, no outputs, locktime 0: 10 bytes, decodable (rules refuse it later)
    tx = Tx.decode(u32(1) + b"\x00\x00" + u32(0))
    assert tx.inputs == () and tx.outputs == () and tx.size == 10


def test_integers_are_little_endian():
    assert u32(1) == b"\x01\x00\x00\x00"
    assert u64(0x0102030405060708) == bytes.fromhex("0807060504030201")
    assert i64(-1) == b"\xff" * 8
    assert Reader(i64(-5 * COIN)).i64() == -5 * COIN
    assert Reader(b"\xff" * 8).u64() == 2**64 - 1


def test_negative_amount_is_decodable():
    """Amounts are signed on the wire: a negative amount decodes (and a rule refuses it)."""
    tx = Tx(1, (), (TxOut(-1, owner("alice")),), 0)
    assert Tx.decode(tx.raw).outputs[0].amount == -1


def test_sha256d():
    # sha256d("") per Bitcoin
    assert sha256d(b"").hex() == "5df6e0e2761359d30a8275058e299fcc0381534545f55cf43e41983f5d4c9456"


# -- hex --------------------------------------------------------------------------

def test_from_hex_either_case():
    assert from_hex("00ffAbCd") == b"\x00\xff\xab\xcd"
    assert from_hex("ABCDEF") == from_hex("abcdef")
    assert from_hex("") == b""


@pytest.mark.parametrize("text", ["0", "abc", "zz", "0g", "0x00", "--", "\u0660\u0660", "é0"])
def test_from_hex_bad_hex(text):
    assert_bad_encoding(from_hex, text)


@pytest.mark.parametrize("text", [" 00", "00 ", "00 11", "0011\n", "\t00"])
def test_from_hex_rejects_whitespace(text):
    """The protocol is silent, so Core's rule: decoderawtransaction uses IsHex,
    which refuses whitespace. Hex with spaces is not a tx's encoding."""
    assert_bad_encoding(from_hex, text)


@pytest.mark.parametrize("value", [None, b"00", 0, 12, ["00"], bytearray(b"00")])
def test_from_hex_non_str(value):
    assert_bad_encoding(from_hex, value)


# -- amounts ----------------------------------------------------------------------

@pytest.mark.parametrize("text, units", [
    ("0.1", 10_000_000),
    ("0.00000001", 1),
    ("1", COIN),
    ("1.5", 150_000_000),
    ("21000000", MAX_MONEY),
    ("0", 0),
    ("0.30000000", 30_000_000),
    ("1.12345678", 112_345_678),
    ("20999999.99999999", MAX_MONEY - 1),
    ("-1", -COIN),
])
def test_parse_toy_exact(text, units):
    assert parse_toy(text) == units
    assert isinstance(parse_toy(text), int)


def test_parse_toy_no_float_rounding():
    # 0.1 + 0.2 style errors cannot happen: every value with <= 8 decimals is exact
    for k in range(0, 100_000_000, 9_999_991):
        assert parse_toy(f"{k // COIN}.{k % COIN:08d}") == k


@pytest.mark.parametrize("text", ["1.123456789", "0.000000001", "0.1000000001", "20999999.999999999"])
def test_parse_toy_refuses_more_than_8_decimals(text):
    with pytest.raises(ValueError):
        parse_toy(text)


@pytest.mark.parametrize("text", [
    "1." + "0" * 30 + "1",
    "21000000." + "0" * 22 + "1",
    "0." + "0" * 40 + "1",
])
def test_parse_toy_refuses_long_fractions(text):
    """A 9th (or 40th) decimal digit must be refused however long the text is:
    decimal's 28-digit context must not round it away."""
    with pytest.raises(ValueError):
        parse_toy(text)


@pytest.mark.parametrize("text", ["abc", "", "1.2.3", "1,5", "NaN", "nan", "sNaN", "Infinity",
                                  "-Infinity", "inf", "0x10", "1 2"])
def test_parse_toy_refuses_non_numbers(text):
    with pytest.raises(ValueError):
        parse_toy(text)


@pytest.mark.parametrize("text", ["1e999999", "1e9999999999", "-1e999999"])
def test_parse_toy_huge_exponent_is_valueerror(text):
    """parse_toy promises ValueError with a sentence for bad input, never another exception."""
    with pytest.raises(ValueError):
        parse_toy(text)


@pytest.mark.parametrize("units, text", [
    (0, "0.00000000 TOY"),
    (1, "0.00000001 TOY"),
    (10_000_000, "0.10000000 TOY"),
    (1_500_000_000, "15.00000000 TOY"),
    (MAX_MONEY, "21000000.00000000 TOY"),
    (-1, "-0.00000001 TOY"),
    (-COIN, "-1.00000000 TOY"),
    (-150_000_000, "-1.50000000 TOY"),
    (-MAX_MONEY - 1, "-21000000.00000001 TOY"),
])
def test_format_toy(units, text):
    assert format_toy(units) == text


@pytest.mark.parametrize("units", [0, 1, 99, COIN, 123_456_789, MAX_MONEY, -1, -COIN - 7])
def test_format_parse_round_trip(units):
    assert parse_toy(format_toy(units).removesuffix(" TOY")) == units


def test_money_range():
    assert money_range(0) and money_range(MAX_MONEY)
    assert not money_range(-1) and not money_range(MAX_MONEY + 1)


def test_cached_computes_once_per_instance():
    from chain.encoding import cached

    class Thing:
        calls = 0

        @cached
        def value(self):
            """The doc."""
            Thing.calls += 1
            return object()

    a, b = Thing(), Thing()
    assert a.value is a.value and b.value is not a.value and Thing.calls == 2
    assert isinstance(Thing.value, cached) and Thing.value.__doc__ == "The doc."
