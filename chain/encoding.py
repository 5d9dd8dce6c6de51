"""Strict byte encoding: little-endian integers, minimal varints, raw hashes.

``Reader`` walks a byte string and raises ``bad-encoding`` for anything
that is not exactly the format of PROTOCOL.md section 1: truncation,
non-minimal varints, counts over 1,000,000 or larger than the bytes left
could hold, and (via ``Reader.finish``) trailing bytes. Decoders built on
it therefore either return a value or raise ``RuleError("bad-encoding")``,
never anything else, whatever bytes they are fed.
"""

import hashlib
import struct

from .errors import bad_encoding

MAX_COUNT = 1_000_000

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_I64 = struct.Struct("<q")


class cached:
    """``functools.cached_property`` without its lock: Python 3.11 takes an
    RLock at every first access, a third of the cost of a small tx's txid.
    Computed on first access and kept in the instance's ``__dict__``, where
    every later access finds it without calling this."""

    def __init__(self, compute):
        self.compute = compute
        self.name = compute.__name__
        self.__doc__ = compute.__doc__

    def __get__(self, instance, owner=None):
        if instance is None:
            return self
        value = instance.__dict__[self.name] = self.compute(instance)
        return value


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def sha256d(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def u32(n: int) -> bytes:
    return _U32.pack(n)


def u64(n: int) -> bytes:
    return _U64.pack(n)


def i64(n: int) -> bytes:
    """Amounts are signed on the wire, so a negative one can be *written*
    (and refused by a rule); values beyond 64 bits cannot."""
    return _I64.pack(n)


def varint(n: int) -> bytes:
    """Bitcoin's CompactSize, always in its shortest form."""
    if n < 0xFD:
        return bytes((n,))
    if n <= 0xFFFF:
        return b"\xfd" + n.to_bytes(2, "little")
    if n <= 0xFFFF_FFFF:
        return b"\xfe" + n.to_bytes(4, "little")
    return b"\xff" + n.to_bytes(8, "little")


def from_hex(text: object, what: str = "data") -> bytes:
    """Hex (either case) to bytes; anything else is ``bad-encoding``."""
    if not isinstance(text, str):
        raise bad_encoding(f"{what} must be a hex string")
    try:
        data = bytes.fromhex(text)
    except ValueError:
        data = None
    if data is None or 2 * len(data) != len(text):  # fromhex skips whitespace: none may be there
        raise bad_encoding(f"{what} is not valid hex (an even number of 0-9a-f digits, nothing else)")
    return data


class Reader:
    """A cursor over bytes that only ever reads exactly what is there."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes):
        self.data = bytes(data)
        self.pos = 0

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def read(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise bad_encoding(f"truncated: wanted {n} bytes at offset {self.pos}, "
                               f"{self.remaining()} left")
        chunk = self.data[self.pos:end]
        self.pos = end
        return chunk

    def u32(self) -> int:
        return _U32.unpack(self.read(4))[0]

    def u64(self) -> int:
        return _U64.unpack(self.read(8))[0]

    def i64(self) -> int:
        return _I64.unpack(self.read(8))[0]

    def varint(self) -> int:
        first = self.read(1)[0]
        if first < 0xFD:
            return first
        size, floor = {0xFD: (2, 0xFD), 0xFE: (4, 0x1_0000), 0xFF: (8, 0x1_0000_0000)}[first]
        n = int.from_bytes(self.read(size), "little")
        if n < floor:
            raise bad_encoding(f"non-minimal varint {n} at offset {self.pos - size - 1}")
        return n

    def count(self, element_size: int, what: str) -> int:
        """A varint count of elements that each take at least ``element_size``
        bytes: refused if over MAX_COUNT or if they cannot fit in what is left."""
        n = self.varint()
        if n > MAX_COUNT:
            raise bad_encoding(f"{what} count {n} is over {MAX_COUNT}")
        if n * element_size > self.remaining():
            raise bad_encoding(f"{what} count {n} needs at least {n * element_size} bytes, "
                               f"only {self.remaining()} left")
        return n

    def finish(self) -> None:
        if self.pos != len(self.data):
            raise bad_encoding(f"{self.remaining()} trailing bytes after offset {self.pos}")
