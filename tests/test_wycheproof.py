"""Project Wycheproof's ECDSA secp256k1/SHA-256 vectors against chain.keys.verify.

Vectors: tests/vectors/ (C2SP/wycheproof @ dac1dd4, testvectors_v1/, Apache-2.0).
Each ``msg`` is hashed once with SHA-256 to get the digest; the public key
(``wx``, ``wy``) is compressed to the project's 33 bytes.

* p1363 file (64-byte r||s, the project's own format): expected = the file's
  result, except that a vector marked valid whose s > (n-1)/2 must fail
  (low-S is consensus, PROTOCOL.md 2), and any signature that is not exactly
  64 bytes must fail.
* bitcoin file (DER, Bitcoin's rules: high-S already invalid): each DER
  signature is decoded here with BIP-66's strict rules; one that does not
  decode must be one the file calls invalid; one that does is turned into
  r||s and must verify exactly when the file says valid.
"""

import hashlib
import json
from pathlib import Path

import ecdsa
import ecdsa.util
import pytest

from chain.keys import HALF_N, N, verify

VECTORS = Path(__file__).parent / "vectors"
P = 2**256 - 2**32 - 977


def compress(wx: str, wy: str) -> bytes | None:
    """33-byte compressed key of (wx, wy), or None if it is not a curve point."""
    x, y = int(wx, 16), int(wy, 16)
    if not (0 <= x < P and 0 <= y < P) or (y * y - x**3 - 7) % P != 0:
        return None
    return bytes([2 + (y & 1)]) + x.to_bytes(32, "big")


def load(name: str):
    data = json.loads((VECTORS / name).read_text())
    cases, bad_keys, seen = [], 0, 0
    for group in data["testGroups"]:
        assert group["publicKey"]["curve"] == "secp256k1"
        assert group["sha"] == "SHA-256"
        pubkey = compress(group["publicKey"]["wx"], group["publicKey"]["wy"])
        for test in group["tests"]:
            seen += 1
            if pubkey is None:
                bad_keys += 1  # not a point: not a Toychain key, so not a test of verify
                continue
            cases.append((test["tcId"], pubkey, bytes.fromhex(test["msg"]),
                          bytes.fromhex(test["sig"]), test["result"], tuple(test["flags"])))
    return data, cases, bad_keys, seen


P1363, P1363_CASES, P1363_BAD_KEYS, P1363_SEEN = load("ecdsa_secp256k1_sha256_p1363_test.json")
DER, DER_CASES, DER_BAD_KEYS, DER_SEEN = load("ecdsa_secp256k1_sha256_bitcoin_test.json")


def split(sig: bytes) -> tuple[int, int]:
    return int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")


def oracle(pubkey: bytes, sig: bytes, digest: bytes) -> bool:
    """The ecdsa package's plain ECDSA verification (accepts high S)."""
    vk = ecdsa.VerifyingKey.from_string(pubkey, curve=ecdsa.SECP256k1)
    try:
        return vk.verify_digest(sig, digest, sigdecode=ecdsa.util.sigdecode_string)
    except ecdsa.BadSignatureError:
        return False
    except TypeError:
        # ecdsa 0.19 crashes (x() of the point at infinity) instead of refusing
        # the Wycheproof vectors where u1*G + u2*Q is infinity: that is a refusal.
        return False


def consensus_rules(pubkey: bytes, sig: bytes, digest: bytes) -> bool:
    """libsecp256k1's rules as the protocol states them: 64 bytes, 1 <= r < n,
    1 <= s <= (n-1)/2, and the ECDSA equation holds."""
    if len(sig) != 64:
        return False
    r, s = split(sig)
    return 1 <= r < N and 1 <= s <= HALF_N and oracle(pubkey, sig, digest)


def p1363_expected(pubkey, msg, sig, result) -> bool:
    if len(sig) != 64:
        return False
    if result == "valid":
        return split(sig)[1] <= HALF_N
    if result == "invalid":
        return False
    assert result == "acceptable", result
    return consensus_rules(pubkey, sig, hashlib.sha256(msg).digest())


# -- bookkeeping: nothing is dropped ----------------------------------------------------

def test_p1363_every_vector_accounted_for():
    assert P1363["numberOfTests"] == 252
    assert P1363_SEEN == P1363["numberOfTests"]
    assert len(P1363_CASES) + P1363_BAD_KEYS == P1363["numberOfTests"]
    assert P1363_BAD_KEYS == 0  # every key in this file is a curve point
    ids = [c[0] for c in P1363_CASES]
    assert len(set(ids)) == len(ids)


def test_der_every_vector_accounted_for():
    assert DER["numberOfTests"] == 463
    assert DER_SEEN == DER["numberOfTests"]
    assert len(DER_CASES) + DER_BAD_KEYS == DER["numberOfTests"]
    assert DER_BAD_KEYS == 0
    ids = [c[0] for c in DER_CASES]
    assert len(set(ids)) == len(ids)


def test_p1363_low_s_exception_is_exercised():
    """Some vectors Wycheproof calls valid are high-S: we expect them to fail."""
    high = [c for c in P1363_CASES if c[4] == "valid" and len(c[3]) == 64
            and split(c[3])[1] > HALF_N]
    low = [c for c in P1363_CASES if c[4] == "valid" and split(c[3])[1] <= HALF_N]
    assert high and low


# -- the vectors ------------------------------------------------------------------------------

@pytest.mark.parametrize("tc_id, pubkey, msg, sig, result, flags", P1363_CASES,
                         ids=[f"tcId-{c[0]}" for c in P1363_CASES])
def test_p1363_vector(tc_id, pubkey, msg, sig, result, flags):
    digest = hashlib.sha256(msg).digest()
    expected = p1363_expected(pubkey, msg, sig, result)
    got = verify(pubkey, sig, digest)
    assert got is expected, (tc_id, result, flags)
    # the independent oracle agrees with what the protocol's rules say
    assert consensus_rules(pubkey, sig, digest) is expected


def strict_der(sig: bytes) -> tuple[int, int] | None:
    """(r, s) of a strictly DER-encoded signature (BIP-66 rules), else None."""
    if len(sig) < 8 or len(sig) > 72 or sig[0] != 0x30 or sig[1] != len(sig) - 2:
        return None
    if sig[2] != 0x02:
        return None
    len_r = sig[3]
    if len_r == 0 or 5 + len_r >= len(sig):
        return None
    if sig[4 + len_r] != 0x02:
        return None
    len_s = sig[5 + len_r]
    if len_s == 0 or 6 + len_r + len_s != len(sig):
        return None
    ints = []
    for start, length in ((4, len_r), (6 + len_r, len_s)):
        body = sig[start:start + length]
        if body[0] & 0x80:
            return None  # negative
        if length > 1 and body[0] == 0 and not body[1] & 0x80:
            return None  # needless leading zero
        ints.append(int.from_bytes(body, "big"))
    return ints[0], ints[1]


def test_strict_der_decoder_sanity():
    assert strict_der(bytes.fromhex("3006020101020102")) == (1, 2)
    assert strict_der(bytes.fromhex("300702020080020102")) == (0x80, 2)
    assert strict_der(bytes.fromhex("30070202000102 0102".replace(" ", ""))) is None
    assert strict_der(bytes.fromhex("3006020181020102")) is None
    assert strict_der(bytes.fromhex("3007020101020102")) is None
    assert strict_der(bytes.fromhex("300602010102010200")) is None


@pytest.mark.parametrize("tc_id, pubkey, msg, sig, result, flags", DER_CASES,
                         ids=[f"tcId-{c[0]}" for c in DER_CASES])
def test_bitcoin_der_vector(tc_id, pubkey, msg, sig, result, flags):
    assert result in ("valid", "invalid"), result
    decoded = strict_der(sig)
    if decoded is None:
        assert result == "invalid", (tc_id, flags)  # our decoder is not stricter than Bitcoin
        return
    r, s = decoded
    if r >= 2**256 or s >= 2**256:
        assert result == "invalid", (tc_id, flags)
        return
    compact = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    digest = hashlib.sha256(msg).digest()
    assert verify(pubkey, compact, digest) is (result == "valid"), (tc_id, flags)
    assert consensus_rules(pubkey, compact, digest) is (result == "valid")


def test_der_vectors_reach_verify():
    """The DER file is a test of verify, not only of the decoder above: every
    valid vector and a good share of the invalid ones decode and go to verify."""
    decoded = [(c[4], strict_der(c[3]) is not None) for c in DER_CASES]
    assert decoded.count(("valid", True)) == 162
    assert decoded.count(("valid", False)) == 0
    assert decoded.count(("invalid", True)) >= 50
