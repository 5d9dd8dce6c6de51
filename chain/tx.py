"""Transactions: the byte format, the txid and the signature hash.

    tx     = version:u32 | n_in:varint | input* | n_out:varint | output* | locktime:u32
    input  = prev_txid:32 | prev_index:u32 | pubkey:33 | signature:64    (133 bytes)
    output = amount:i64 | owner:20                                        (28 bytes)

A transaction with no inputs is a *coinbase*: it creates the block reward
and its locktime is the block height. ``txid = sha256d(bytes)``.

What input *i* signs (``sighash``) is the network's magic, the whole
transaction with every signature blanked, ``i``, and the amount and owner of
the coin it spends. So a signature commits to every input and output (a
relay cannot change an amount or a recipient), to the coin (it cannot be
pointed at another), and to the network (it cannot be replayed elsewhere).

Every input's digest starts with the same bytes (magic + blanked tx), so
they are hashed once per tx and network, and each input continues from a
copy of that SHA-256 state with its own 32 bytes: checking a tx costs
SHA-256 over its size plus its inputs, not its size times its inputs (a
7,000-input tx would otherwise hash 6.5 GB); a one-input tx, with nothing
to share, is hashed in one go (1.2-2.4 us less per check than keeping the
state and copying it). Inputs have a fixed size, so
the blanked bytes are slices of the raw bytes with zeros where each
signature sits, never a re-serialization.

``Tx`` objects are immutable values; their bytes, txid and the hashed
signing prefix are computed once and cached. Decoding checks that every
input and output is there from the counts, then unpacks them as fixed-size
records (``struct.iter_unpack``); a tx whose counts take one byte each
(below 253, nearly all) is found by offsets alone (``read_common``), the
rest through the strict ``Reader``, which also refuses every malformed one.
"""

import hashlib
import struct
from dataclasses import dataclass
from typing import NamedTuple

from .encoding import Reader, cached, i64, sha256d, u32, varint
from .errors import bad_encoding

INPUT_SIZE = 32 + 4 + 33 + 64
OUTPUT_SIZE = 8 + 20
MIN_TX_SIZE = 4 + 1 + 1 + 4
BLANK_SIGNATURE = bytes(64)
SIGNATURE_OFFSET = 32 + 4 + 33  # of the signature within an input
_U32 = struct.Struct("<I")
_SIGHASH_SUFFIX = struct.Struct("<Iq")  # index, amount (the owner follows)
_INPUT = struct.Struct("<32sI33s64s")  # prev_txid, prev_index, pubkey, signature
_OUTPUT = struct.Struct("<q20s")  # amount, owner


class OutPoint(NamedTuple):
    """A reference to one output of one transaction: the coin an input spends."""
    txid: bytes
    index: int

    def __str__(self) -> str:
        return f"{self.txid.hex()}:{self.index}"


class TxIn(NamedTuple):
    prev_txid: bytes
    prev_index: int
    pubkey: bytes
    signature: bytes

    @property
    def outpoint(self) -> OutPoint:
        return OutPoint(self.prev_txid, self.prev_index)

    def serialize(self) -> bytes:
        return self.prev_txid + u32(self.prev_index) + self.pubkey + self.signature


class TxOut(NamedTuple):
    amount: int
    owner: bytes

    def serialize(self) -> bytes:
        return i64(self.amount) + self.owner


@dataclass(frozen=True, eq=False)
class Tx:
    version: int
    inputs: tuple[TxIn, ...]
    outputs: tuple[TxOut, ...]
    locktime: int

    # -- identity -----------------------------------------------------------
    @cached
    def raw(self) -> bytes:
        parts = [u32(self.version), varint(len(self.inputs))]
        parts += [txin.serialize() for txin in self.inputs]
        parts.append(varint(len(self.outputs)))
        parts += [txout.serialize() for txout in self.outputs]
        parts.append(u32(self.locktime))
        return b"".join(parts)

    @cached
    def txid(self) -> bytes:
        return sha256d(self.raw)

    @property
    def size(self) -> int:
        return len(self.raw)

    @property
    def is_coinbase(self) -> bool:
        return not self.inputs

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tx) and self.raw == other.raw

    def __hash__(self) -> int:
        return hash(self.txid)

    def __repr__(self) -> str:
        return (f"Tx({self.txid.hex()[:16]}..., {len(self.inputs)} in, "
                f"{len(self.outputs)} out, locktime {self.locktime})")

    # -- bytes ----------------------------------------------------------------
    @property
    def blanked(self) -> bytes:
        """The bytes with every signature set to 64 zero bytes (what is signed):
        the raw bytes between the signatures, joined by zeros."""
        raw = self.raw
        first = 4 + len(varint(len(self.inputs))) + SIGNATURE_OFFSET
        parts, pos = [], 0
        for sig in range(first, first + INPUT_SIZE * len(self.inputs), INPUT_SIZE):
            parts += (raw[pos:sig], BLANK_SIGNATURE)
            pos = sig + 64
        parts.append(raw[pos:])
        return b"".join(parts)

    @cached
    def _signing_prefixes(self) -> dict:
        return {}  # magic -> SHA-256 state after magic + blanked bytes

    def sighash(self, index: int, spent: TxOut, magic: bytes) -> bytes:
        """The 32-byte digest that input ``index`` signs (PROTOCOL.md 3):
        ``sha256d(magic | blanked tx | index:u32 | amount:i64 | owner:20)``."""
        if len(self.inputs) == 1:  # no other input to share the prefix with
            return sha256d(b"".join((magic, self.blanked,
                                     _SIGHASH_SUFFIX.pack(index, spent.amount), spent.owner)))
        prefix = self._signing_prefixes.get(magic)
        if prefix is None:  # two threads may both build it: the states are equal
            prefix = hashlib.sha256(magic + self.blanked)
            self._signing_prefixes[magic] = prefix
        state = prefix.copy()
        state.update(_SIGHASH_SUFFIX.pack(index, spent.amount) + spent.owner)
        return hashlib.sha256(state.digest()).digest()

    @classmethod
    def read(cls, reader: Reader) -> "Tx":
        start = reader.pos
        data = reader.data
        version = reader.u32()
        n_in = reader.count(INPUT_SIZE, "input")  # the bytes of every input are there
        pos = reader.pos
        reader.pos = pos + n_in * INPUT_SIZE
        n_out = reader.count(OUTPUT_SIZE, "output")  # and of every output
        outputs_at = reader.pos
        reader.pos = outputs_at + n_out * OUTPUT_SIZE
        locktime = reader.u32()
        return cls._from_bytes(data, start, version, pos, n_in, outputs_at, n_out, locktime,
                               reader.pos)

    @classmethod
    def read_common(cls, data: bytes, start: int) -> "tuple[Tx, int] | None":
        """The tx at ``start`` of ``data`` and the offset after it, when both
        counts take one byte and every byte is there (the common case, read
        without a ``Reader``: a third of decoding a block); None otherwise,
        for ``read`` to decode (and refuse) it."""
        n_in_at = start + 4
        if n_in_at >= len(data) or data[n_in_at] >= 0xFD:
            return None
        n_out_at = n_in_at + 1 + data[n_in_at] * INPUT_SIZE
        if n_out_at >= len(data) or data[n_out_at] >= 0xFD:
            return None
        end = n_out_at + 1 + data[n_out_at] * OUTPUT_SIZE + 4
        if end > len(data):
            return None
        return cls._from_bytes(data, start, _U32.unpack_from(data, start)[0], n_in_at + 1,
                               data[n_in_at], n_out_at + 1, data[n_out_at],
                               _U32.unpack_from(data, end - 4)[0], end), end

    @classmethod
    def _from_bytes(cls, data: bytes, start: int, version: int, inputs_at: int, n_in: int,
                    outputs_at: int, n_out: int, locktime: int, end: int) -> "Tx":
        """The tx whose fields were found at these offsets of ``data``: inputs
        and outputs unpacked by fixed-size records, the fields set without
        the frozen dataclass's ``__init__`` (one ``object.__setattr__`` per
        field), its bytes kept."""
        tx = object.__new__(cls)
        tx.__dict__.update(
            version=version, locktime=locktime, raw=data[start:end],
            inputs=tuple(map(TxIn._make, _INPUT.iter_unpack(
                data[inputs_at:inputs_at + n_in * INPUT_SIZE]))),
            outputs=tuple(map(TxOut._make, _OUTPUT.iter_unpack(
                data[outputs_at:outputs_at + n_out * OUTPUT_SIZE]))))
        return tx

    @classmethod
    def decode(cls, data: bytes) -> "Tx":
        """Exactly one transaction from ``data``, or RuleError bad-encoding."""
        if len(data) < MIN_TX_SIZE:
            raise bad_encoding(f"a transaction takes at least {MIN_TX_SIZE} bytes, got {len(data)}")
        data = bytes(data)
        common = cls.read_common(data, 0)
        if common is not None and common[1] == len(data):
            return common[0]
        reader = Reader(data)
        tx = cls.read(reader)
        reader.finish()
        return tx


def coinbase_tx(height: int, outputs: list[TxOut] | tuple[TxOut, ...]) -> Tx:
    """The reward transaction of the block at ``height`` (locktime = height)."""
    return Tx(1, (), tuple(outputs), height)
