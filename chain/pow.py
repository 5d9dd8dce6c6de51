"""Proof of work: compact targets (nBits), block work, median time past, retargeting.

``bits`` packs a 256-bit target as Bitcoin's "compact" float: one exponent
byte (size in bytes) and a 23-bit mantissa with a sign bit. A block's hash,
read as a big-endian number, must not exceed its target. Each block adds
``2**256 // (target + 1)`` work (the expected number of hashes to find it);
the best chain is the one with the most total work, not the most blocks.

Difficulty follows Bitcoin Core exactly: every ``retarget_interval`` blocks
the target is scaled by how long the last interval actually took, clamped
to [1/4, 4] of the intended time, capped at the network's ``pow_limit``.
"""

from .errors import RuleError

MTP_SPAN = 11


def compact_to_target(bits: int) -> tuple[int, bool, bool]:
    """(target, negative, overflow) as Core's ``arith_uint256::SetCompact``."""
    size = bits >> 24
    word = bits & 0x007FFFFF
    if size <= 3:
        word >>= 8 * (3 - size)
        target = word
    else:
        target = word << (8 * (size - 3))
    negative = word != 0 and bits & 0x00800000 != 0
    overflow = word != 0 and (size > 34 or (word > 0xFF and size > 33)
                              or (word > 0xFFFF and size > 32))
    return target, negative, overflow


def target_to_compact(target: int) -> int:
    """Core's ``arith_uint256::GetCompact`` (rounds the target down)."""
    size = (target.bit_length() + 7) // 8
    if size <= 3:
        compact = target << (8 * (3 - size))
    else:
        compact = target >> (8 * (size - 3))
    if compact & 0x00800000:
        compact >>= 8
        size += 1
    return compact | (size << 24)


def target_from_bits(bits: int, pow_limit: int) -> int:
    """The target of ``bits``, or ``bad-diffbits`` if it is negative, zero,
    overflowing, or easier than the network allows."""
    target, negative, overflow = compact_to_target(bits)
    if negative or overflow or target == 0:
        raise RuleError("bad-diffbits", f"bits {bits:08x} is not a valid target encoding")
    if target > pow_limit:
        raise RuleError("bad-diffbits", f"bits {bits:08x} is easier than the network's "
                                        f"limit {target_to_compact(pow_limit):08x}")
    return target


def hash_meets_target(block_hash: bytes, target: int) -> bool:
    return int.from_bytes(block_hash, "big") <= target


def block_work(bits: int) -> int:
    """Expected hashes to find a block at ``bits``: ``2**256 // (target + 1)``."""
    target, negative, overflow = compact_to_target(bits)
    if negative or overflow or target == 0:
        return 0
    return (1 << 256) // (target + 1)


def median_time_past(times: list[int]) -> int:
    """Median of a block's time and up to 10 before it: ``sorted(times)[len // 2]``."""
    ordered = sorted(times[-MTP_SPAN:])
    return ordered[len(ordered) // 2]


def retarget(old_bits: int, actual_timespan: int, target_timespan: int, pow_limit: int) -> int:
    """Core's ``CalculateNextWorkRequired``: scale the target by how long the
    last interval took, clamped to [T/4, 4T], capped at ``pow_limit``."""
    actual = min(max(actual_timespan, target_timespan // 4), target_timespan * 4)
    target = compact_to_target(old_bits)[0] * actual // target_timespan
    return target_to_compact(min(target, pow_limit))
