"""Blocks: the 88-byte header, the block format and the merkle root.

    header = version:u32 | prev_hash:32 | merkle_root:32 | time:u64 | bits:u32 | nonce:u64
    block  = header | n_tx:varint | tx*

``block hash = sha256d(header)``. The merkle root is Bitcoin's: hash txids
pairwise with sha256d, pairing an odd last element with itself, until one
is left. That pairing means a list ending ``[.., a, b, c]`` and one ending
``[.., a, b, c, c]`` share a root (CVE-2012-2459), so a block whose txid
list repeats is *mutated*: refused without blaming its hash.
"""

from dataclasses import dataclass

from .encoding import Reader, cached, sha256d, u32, u64, varint
from .errors import bad_encoding
from .gcpause import gc_paused
from .tx import MIN_TX_SIZE, Tx

HEADER_SIZE = 88
ZERO_HASH = bytes(32)


@dataclass(frozen=True, eq=False)
class Header:
    version: int
    prev_hash: bytes
    merkle_root: bytes
    time: int
    bits: int
    nonce: int

    @cached
    def raw(self) -> bytes:
        return (u32(self.version) + self.prev_hash + self.merkle_root
                + u64(self.time) + u32(self.bits) + u64(self.nonce))

    @cached
    def hash(self) -> bytes:
        return sha256d(self.raw)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Header) and self.raw == other.raw

    def __hash__(self) -> int:
        return hash(self.hash)

    @classmethod
    def read(cls, reader: Reader) -> "Header":
        start = reader.pos
        header = cls(reader.u32(), reader.read(32), reader.read(32),
                     reader.u64(), reader.u32(), reader.u64())
        header.__dict__["raw"] = reader.data[start:reader.pos]
        return header

    @classmethod
    def decode(cls, data: bytes) -> "Header":
        if len(data) != HEADER_SIZE:
            raise bad_encoding(f"a header is {HEADER_SIZE} bytes, got {len(data)}")
        return cls.read(Reader(data))


@dataclass(frozen=True, eq=False)
class Block:
    header: Header
    txs: tuple[Tx, ...]

    @property
    def hash(self) -> bytes:
        return self.header.hash

    @cached
    def raw(self) -> bytes:
        return b"".join([self.header.raw, varint(len(self.txs))] + [tx.raw for tx in self.txs])

    @property
    def size(self) -> int:
        return len(self.raw)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Block) and self.raw == other.raw

    def __hash__(self) -> int:
        return hash(self.hash)

    def __repr__(self) -> str:
        return f"Block({self.hash.hex()[:16]}..., {len(self.txs)} txs)"

    @classmethod
    def decode(cls, data: bytes) -> "Block":
        """Exactly one block from ``data``, or RuleError bad-encoding."""
        with gc_paused():
            return cls._decode(data)

    @classmethod
    def _decode(cls, data: bytes) -> "Block":
        reader = Reader(data)
        header = Header.read(reader)
        n_tx = reader.count(MIN_TX_SIZE, "transaction")
        txs = []
        for _ in range(n_tx):
            common = Tx.read_common(reader.data, reader.pos)
            if common is None:
                txs.append(Tx.read(reader))
            else:
                txs.append(common[0])
                reader.pos = common[1]
        reader.finish()
        block = cls(header, tuple(txs))
        block.__dict__["raw"] = reader.data
        return block


def merkle_root(txids: list[bytes]) -> bytes:
    """Bitcoin's merkle root; the root of no txids is 32 zero bytes."""
    if not txids:
        return ZERO_HASH
    level = list(txids)
    while len(level) > 1:
        if len(level) % 2:
            level.append(level[-1])
        level = [sha256d(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]
