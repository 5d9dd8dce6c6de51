"""Proof of work (PROTOCOL.md section 4): compact targets, work, median time
past and retargeting, against Bitcoin Core's behaviour.

The SetCompact / GetCompact cases are those of Bitcoin Core's
src/test/arith_uint256_tests.cpp (test case ``bignum_SetCompact``).
"""

import pytest

from chain.errors import RuleError
from chain.params import DEVNET, REGTEST
from chain.pow import (block_work, compact_to_target, hash_meets_target, median_time_past,
                       retarget, target_from_bits, target_to_compact)

# (nCompact, target, fNegative, fOverflow, GetCompact(fNegative)) from Core's bignum_SetCompact.
# For the negative cases Core checks GetCompact(true): the sign bit 0x00800000 is set
# on the result; target_to_compact has no sign argument (targets are never negative
# in the protocol), so the test ORs the sign bit in itself.
CORE_SET_COMPACT = [
    (0x00000000, 0, False, False, 0),
    (0x00123456, 0, False, False, 0),
    (0x01003456, 0, False, False, 0),
    (0x02000056, 0, False, False, 0),
    (0x03000000, 0, False, False, 0),
    (0x04000000, 0, False, False, 0),
    (0x00923456, 0, False, False, 0),
    (0x01803456, 0, False, False, 0),
    (0x02800056, 0, False, False, 0),
    (0x03800000, 0, False, False, 0),
    (0x04800000, 0, False, False, 0),
    (0x01123456, 0x12, False, False, 0x01120000),
    (0x01FEDCBA, 0x7E, True, False, 0x01FE0000),
    (0x02123456, 0x1234, False, False, 0x02123400),
    (0x03123456, 0x123456, False, False, 0x03123456),
    (0x04123456, 0x12345600, False, False, 0x04123456),
    (0x04923456, 0x12345600, True, False, 0x04923456),
    (0x05009234, 0x92340000, False, False, 0x05009234),
    (0x20123456, 0x123456 << (8 * 29), False, False, 0x20123456),
]


@pytest.mark.parametrize("bits, target, negative, overflow, compact", CORE_SET_COMPACT,
                         ids=[f"{c[0]:08x}" for c in CORE_SET_COMPACT])
def test_set_compact_matches_core(bits, target, negative, overflow, compact):
    assert compact_to_target(bits) == (target, negative, overflow)


@pytest.mark.parametrize("bits, target, negative, overflow, compact", CORE_SET_COMPACT,
                         ids=[f"{c[0]:08x}" for c in CORE_SET_COMPACT])
def test_get_compact_matches_core(bits, target, negative, overflow, compact):
    got = target_to_compact(target)
    if negative and got & 0x007FFFFF:
        got |= 0x00800000
    assert got == compact


def test_set_compact_0x20123456_hex():
    target = compact_to_target(0x20123456)[0]
    assert f"{target:064x}" == "1234560000000000000000000000000000000000000000000000000000000000"


def test_set_compact_overflow():
    # Core: SetCompact(0xff123456) -> fNegative false, fOverflow true
    _, negative, overflow = compact_to_target(0xFF123456)
    assert (negative, overflow) == (False, True)


@pytest.mark.parametrize("bits, overflow", [
    (0x22000001, False),  # size 34, 1-byte word: fits
    (0x23000001, True),   # size 35
    (0x21000100, False),  # size 33, 2-byte word: 0x100 << 240 fits
    (0x22000100, True),   # size 34, word > 0xff
    (0x20010000, False),  # size 32, word > 0xffff fits
    (0x21010000, True),   # size 33, word > 0xffff
    (0x23000000, False),  # zero word never overflows
])
def test_overflow_boundaries(bits, overflow):
    target, negative, got = compact_to_target(bits)
    assert got == overflow
    assert not negative
    if not overflow:
        assert target < 2**256


def test_get_compact_never_sets_sign_bit():
    # Core: num = 0x80; GetCompact() == 0x02008000
    assert target_to_compact(0x80) == 0x02008000
    for target in (0x80, 0x8000, 0x800000, 0xFF << 200, (1 << 255), 2**256 - 1):
        assert target_to_compact(target) & 0x00800000 == 0


@pytest.mark.parametrize("bits", [0x207FFFFF, 0x1F00FFFF, 0x1D00FFFF, 0x1B0404CB, 0x03123456,
                                  0x04123456, 0x05009234, 0x02008000, 0x1C3FFFC0])
def test_normalized_bits_round_trip(bits):
    target, negative, overflow = compact_to_target(bits)
    assert not negative and not overflow
    assert target_to_compact(target) == bits


def test_get_compact_rounds_down():
    target = 0x123456789ABCDEF0
    bits = target_to_compact(target)
    assert bits == 0x08123456
    assert compact_to_target(bits)[0] == 0x1234560000000000
    assert compact_to_target(bits)[0] <= target


# -- target_from_bits -------------------------------------------------------------

@pytest.mark.parametrize("bits", [
    0x04923456, 0x1D80FFFF, 0x01FEDCBA, 0x2080FFFF,      # negative
    0x00000000, 0x03000000, 0x01003456, 0x1D000000,      # zero
    0xFF123456, 0x23000001, 0x22000100, 0x21010000,      # overflow
])
@pytest.mark.parametrize("net", [REGTEST, DEVNET], ids=lambda n: n.name)
def test_target_from_bits_invalid_encodings(net, bits):
    with pytest.raises(RuleError) as info:
        target_from_bits(bits, net.pow_limit)
    assert info.value.code == "bad-diffbits"


@pytest.mark.parametrize("net, bits", [
    (REGTEST, 0x2100FFFF),
    (REGTEST, 0x21008000),
    (DEVNET, 0x1F010000),
    (DEVNET, 0x207FFFFF),
    (DEVNET, 0x2000FFFF),
])
def test_target_from_bits_above_limit(net, bits):
    target, negative, overflow = compact_to_target(bits)
    assert not negative and not overflow and target > net.pow_limit
    with pytest.raises(RuleError) as info:
        target_from_bits(bits, net.pow_limit)
    assert info.value.code == "bad-diffbits"


@pytest.mark.parametrize("net, bits", [
    (REGTEST, 0x207FFFFF), (REGTEST, 0x1F00FFFF), (REGTEST, 0x03000001),
    (DEVNET, 0x1F00FFFF), (DEVNET, 0x1E7FFFFF), (DEVNET, 0x1D00FFFF), (DEVNET, 0x1F00FFFE),
])
def test_target_from_bits_valid(net, bits):
    assert target_from_bits(bits, net.pow_limit) == compact_to_target(bits)[0]


def test_pow_limits():
    assert REGTEST.pow_limit == 0x7FFFFF << (8 * 29)
    assert DEVNET.pow_limit == 0xFFFF << (8 * 28)
    assert target_from_bits(REGTEST.pow_limit_bits, REGTEST.pow_limit) == REGTEST.pow_limit
    assert target_from_bits(DEVNET.pow_limit_bits, DEVNET.pow_limit) == DEVNET.pow_limit


def test_hash_meets_target_boundary():
    target = DEVNET.pow_limit
    assert hash_meets_target(target.to_bytes(32, "big"), target)          # equal: holds
    assert not hash_meets_target((target + 1).to_bytes(32, "big"), target)
    assert hash_meets_target(bytes(32), target)
    # big-endian reading: a hash with a high first byte fails, with the same low bytes it passes
    assert not hash_meets_target(b"\x01" + bytes(31), DEVNET.pow_limit)
    assert hash_meets_target(bytes(31) + b"\xff", DEVNET.pow_limit)


# -- work -----------------------------------------------------------------------------

def core_block_proof(bits):
    """Core's GetBlockProof: (~target / (target + 1)) + 1 in 256-bit arithmetic."""
    target = compact_to_target(bits)[0]
    return ((2**256 - 1 - target) // (target + 1)) + 1


def test_block_work_regtest():
    assert block_work(REGTEST.pow_limit_bits) == 2
    assert block_work(REGTEST.pow_limit_bits) == 2**256 // (REGTEST.pow_limit + 1)
    assert block_work(REGTEST.pow_limit_bits) == core_block_proof(REGTEST.pow_limit_bits)


def test_block_work_devnet():
    assert block_work(DEVNET.pow_limit_bits) == 65537
    assert block_work(DEVNET.pow_limit_bits) == 2**256 // (DEVNET.pow_limit + 1)
    assert block_work(DEVNET.pow_limit_bits) == core_block_proof(DEVNET.pow_limit_bits)


def test_block_work_bitcoin_genesis():
    # Bitcoin's genesis (bits 0x1d00ffff) has chainwork 0x100010001
    assert block_work(0x1D00FFFF) == 0x100010001


@pytest.mark.parametrize("bits", [0, 0x04923456, 0xFF123456, 0x03000000])
def test_block_work_of_invalid_bits_is_zero(bits):
    assert block_work(bits) == 0


def test_harder_target_more_work():
    assert block_work(0x1E00FFFF) > block_work(0x1F00FFFF) > block_work(0x207FFFFF)


# -- median time past ---------------------------------------------------------------------

@pytest.mark.parametrize("times, mtp", [
    ([100], 100),
    ([1, 2], 2),              # sorted[len // 2] = sorted[1]
    ([3, 1, 2], 2),
    ([10, 40, 20, 30], 30),   # sorted [10,20,30,40][2]
    ([5, 5, 5, 1, 9], 5),
    (list(range(10, 0, -1)), 6),  # 10 values: sorted[5] = 6
])
def test_median_time_past_fewer_than_11(times, mtp):
    assert median_time_past(times) == mtp


def test_median_time_past_eleven():
    times = [50, 10, 110, 30, 90, 70, 20, 100, 60, 40, 80]
    assert median_time_past(times) == 60
    assert median_time_past(sorted(times)) == 60


def test_median_time_past_uses_only_last_11():
    last11 = [50, 10, 110, 30, 90, 70, 20, 100, 60, 40, 80]
    assert median_time_past([10**9] * 5 + last11) == 60
    assert median_time_past([0] * 5 + last11) == 60


def test_median_time_past_does_not_reorder_caller_list():
    times = [3, 1, 2]
    median_time_past(times)
    assert times == [3, 1, 2]


# -- retarget --------------------------------------------------------------------------------

T = DEVNET.retarget_interval * DEVNET.target_spacing  # 100 seconds
LIMIT = DEVNET.pow_limit
OLD = 0x1D00FFFF
OLD_TARGET = 0xFFFF << (8 * 26)


def test_retarget_timespan_constant():
    assert T == 100


def test_retarget_on_schedule_keeps_bits():
    assert retarget(OLD, T, T, LIMIT) == OLD


def test_retarget_scales_linearly():
    # twice as slow: target doubles; 0xffff << 208 * 2 = 0x1fffe << 208 -> bits 0x1d01fffe
    assert retarget(OLD, 2 * T, T, LIMIT) == 0x1D01FFFE
    # twice as fast: 0xffff << 208 // 2 = 0x7fff80 << 200 -> bits 0x1c7fff80
    assert retarget(OLD, T // 2, T, LIMIT) == 0x1C7FFF80


def test_retarget_clamps_at_quarter():
    quarter = 0x1C3FFFC0  # OLD_TARGET // 4 = 0x3fffc0 << 200
    assert compact_to_target(quarter)[0] == OLD_TARGET // 4
    assert retarget(OLD, T // 4, T, LIMIT) == quarter
    for actual in (T // 4 - 1, 10, 1, 0, -1000):
        assert retarget(OLD, actual, T, LIMIT) == quarter, actual
    assert retarget(OLD, T // 4 + 1, T, LIMIT) != quarter


def test_retarget_clamps_at_four_times():
    four = 0x1D03FFFC  # OLD_TARGET * 4 = 0x3fffc << 208
    assert compact_to_target(four)[0] == OLD_TARGET * 4
    assert retarget(OLD, 4 * T, T, LIMIT) == four
    for actual in (4 * T + 1, 1000, 10**9):
        assert retarget(OLD, actual, T, LIMIT) == four, actual
    assert retarget(OLD, 4 * T - 1, T, LIMIT) != four


def test_retarget_capped_at_pow_limit():
    assert retarget(DEVNET.pow_limit_bits, 4 * T, T, LIMIT) == DEVNET.pow_limit_bits
    assert retarget(DEVNET.pow_limit_bits, T + 1, T, LIMIT) == DEVNET.pow_limit_bits
    # half the limit, four times slower: 2x the limit, capped
    assert retarget(0x1E7FFF80, 4 * T, T, LIMIT) == DEVNET.pow_limit_bits
    # from the limit, faster blocks still make it harder
    assert retarget(DEVNET.pow_limit_bits, T // 2, T, LIMIT) == target_to_compact(LIMIT // 2)


def test_retarget_rounds_down_through_compact():
    actual = 33
    exact = OLD_TARGET * actual // T
    bits = retarget(OLD, actual, T, LIMIT)
    got = compact_to_target(bits)[0]
    shift = 8 * ((exact.bit_length() + 7) // 8 - 3)
    assert got == (exact >> shift) << shift  # top 3 bytes kept, the rest truncated
    assert got <= exact
