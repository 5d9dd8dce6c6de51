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
7,000-input tx would otherwise hash 6.5 GB). Inputs have a fixed size, so
the blanked bytes are slices of the raw bytes with zeros where each
signature sits, never a re-serialization.

``Tx`` objects are immutable values; their bytes, txid and the hashed
signing prefix are computed once and cached.
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
_I64 = struct.Struct("<q")
_SIGHASH_SUFFIX = struct.Struct("<Iq")  # index, amount (the owner follows)


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
        inputs = tuple(TxIn(data[p:p + 32], _U32.unpack_from(data, p + 32)[0], data[p + 36:p + 69],
                            data[p + 69:p + 133]) for p in range(pos, pos + n_in * INPUT_SIZE, INPUT_SIZE))
        reader.pos = pos + n_in * INPUT_SIZE
        n_out = reader.count(OUTPUT_SIZE, "output")  # and of every output
        pos = reader.pos
        outputs = tuple(TxOut(_I64.unpack_from(data, p)[0], data[p + 8:p + 28])
                        for p in range(pos, pos + n_out * OUTPUT_SIZE, OUTPUT_SIZE))
        reader.pos = pos + n_out * OUTPUT_SIZE
        locktime = reader.u32()
        tx = cls(version, inputs, outputs, locktime)
        tx.__dict__["raw"] = data[start:reader.pos]
        return tx

    @classmethod
    def decode(cls, data: bytes) -> "Tx":
        """Exactly one transaction from ``data``, or RuleError bad-encoding."""
        if len(data) < MIN_TX_SIZE:
            raise bad_encoding(f"a transaction takes at least {MIN_TX_SIZE} bytes, got {len(data)}")
        reader = Reader(data)
        tx = cls.read(reader)
        reader.finish()
        return tx


def coinbase_tx(height: int, outputs: list[TxOut] | tuple[TxOut, ...]) -> Tx:
    """The reward transaction of the block at ``height`` (locktime = height)."""
    return Tx(1, (), tuple(outputs), height)
