"""PROTOCOL.md section 2: keys, owners, addresses and signatures.

The ``ecdsa`` package (pure Python, independent of libsecp256k1) is the
oracle for signing and verification.
"""

import hashlib
import random

import bech32
import ecdsa
import ecdsa.util
import pytest

from chain import keys
from chain.address import AddressError, decode_address, encode_address
from chain.keys import (DEMO_ACCOUNTS, HALF_N, N, demo_private_key, is_valid_private_key,
                        owner_of, parse_pubkey, public_key, sign, signature_in_range, verify)

P = 2**256 - 2**32 - 977  # secp256k1 field prime
CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
ALICE_ADDRESS = "toy1rqssmmpfh936zecsn2hj9ys9efr52fueemg7dm"
RNG_SEED = 0x70C1


def rng():
    return random.Random(RNG_SEED)


def random_secret(r):
    return r.randrange(1, N).to_bytes(32, "big")


# -- addresses ---------------------------------------------------------------------------

def test_alice_address():
    alice = owner_of(public_key(demo_private_key("alice")))
    assert encode_address(alice) == ALICE_ADDRESS
    assert decode_address(ALICE_ADDRESS) == alice


def test_address_round_trip():
    r = rng()
    owners = [bytes(20), b"\xff" * 20] + [r.randbytes(20) for _ in range(50)]
    owners += [owner_of(public_key(demo_private_key(n))) for n in DEMO_ACCOUNTS]
    for owner in owners:
        address = encode_address(owner)
        assert address.startswith("toy1") and address == address.lower()
        assert len(address) == 3 + 1 + 32 + 6  # hrp, separator, 160 bits / 5, checksum
        assert decode_address(address) == owner


def test_address_is_bech32_of_owner_without_version_byte():
    owner = bytes(range(20))
    hrp, data = bech32.bech32_decode(encode_address(owner))
    assert hrp == "toy"
    assert data == bech32.convertbits(owner, 8, 5, True)
    assert len(data) == 32


def test_encode_address_refuses_wrong_owner_size():
    for size in (0, 19, 21, 32):
        with pytest.raises(ValueError):
            encode_address(bytes(size))


def refused(text):
    with pytest.raises(AddressError) as info:
        decode_address(text)
    assert str(info.value)  # a clear message, not an empty one


@pytest.mark.parametrize("position", [0, 1, 2, 4, 5, 12, 20, 35, 36, 38, 41])
def test_every_single_character_substitution_refused(position):
    """Bech32 detects any single substitution: every one must be refused."""
    text = ALICE_ADDRESS
    alphabet = CHARSET if position > 3 else "abcdefghijklmnopqrstuvwxyz"
    tried = 0
    for ch in alphabet:
        if ch == text[position]:
            continue
        refused(text[:position] + ch + text[position + 1:])
        tried += 1
    assert tried == len(alphabet) - 1


def test_swapped_characters_refused():
    text = ALICE_ADDRESS
    for i in range(4, len(text) - 1):
        if text[i] != text[i + 1]:
            refused(text[:i] + text[i + 1] + text[i] + text[i + 2:])


@pytest.mark.parametrize("hrp", ["bc", "tb", "toyd", "to", "toyx"])
def test_wrong_hrp_refused(hrp):
    data = bech32.convertbits(decode_address(ALICE_ADDRESS), 8, 5, True)
    other = bech32.bech32_encode(hrp, data)
    assert bech32.bech32_decode(other) == (hrp, data)  # a perfectly valid bech32 string
    refused(other)


@pytest.mark.parametrize("size", [0, 1, 16, 19, 21, 32])
def test_wrong_length_refused(size):
    other = bech32.bech32_encode("toy", bech32.convertbits(bytes(range(size)), 8, 5, True))
    assert bech32.bech32_decode(other)[0] == "toy"
    refused(other)


def test_segwit_style_version_byte_refused():
    # 20 bytes with a leading version symbol: 33 symbols, not a 20-byte owner
    data = [0] + bech32.convertbits(bytes(range(20)), 8, 5, True)
    refused(bech32.bech32_encode("toy", data))


def bech32m_encode(hrp, data):
    """BIP-350 Bech32m, written out here: only Bech32 (BIP-173) is a Toychain address."""
    def polymod(values):
        gen = [0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3]
        chk = 1
        for v in values:
            b = chk >> 25
            chk = (chk & 0x1FFFFFF) << 5 ^ v
            for i in range(5):
                chk ^= gen[i] if ((b >> i) & 1) else 0
        return chk
    expanded = [ord(x) >> 5 for x in hrp] + [0] + [ord(x) & 31 for x in hrp]
    mod = polymod(expanded + data + [0] * 6) ^ 0x2BC830A3
    checksum = [(mod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(CHARSET[d] for d in data + checksum)


def test_bech32m_checksum_refused():
    data = bech32.convertbits(decode_address(ALICE_ADDRESS), 8, 5, True)
    assert bech32m_encode("toy", data)[:-6] == ALICE_ADDRESS[:-6]
    refused(bech32m_encode("toy", data))


@pytest.mark.parametrize("text", [
    "toy1RQSSmmpfh936zecsn2hj9ys9efr52fueemg7dm",
    "TOY1rqssmmpfh936zecsn2hj9ys9efr52fueemg7dm",
    "toy1rqssmmpfh936zecsn2hj9ys9efr52fueemg7dM",
    "Toy1rqssmmpfh936zecsn2hj9ys9efr52fueemg7dm",
])
def test_mixed_case_refused(text):
    assert text.lower() == ALICE_ADDRESS
    refused(text)


def test_upper_case_address_accepted():
    assert decode_address(ALICE_ADDRESS.upper()) == decode_address(ALICE_ADDRESS)


@pytest.mark.parametrize("text", ["", "toy1", "toy", "1", ALICE_ADDRESS[:-1], ALICE_ADDRESS + "q",
                                  " " + ALICE_ADDRESS, ALICE_ADDRESS + " ", "toy1" + "b" * 38,
                                  ALICE_ADDRESS.replace("1", "")])
def test_garbage_refused(text):
    refused(text)


@pytest.mark.parametrize("value", [None, 5, b"toy1rqssmmpfh936zecsn2hj9ys9efr52fueemg7dm"])
def test_non_string_refused(value):
    with pytest.raises(AddressError):
        decode_address(value)


def test_address_error_is_a_value_error():
    assert issubclass(AddressError, ValueError)


# -- keys ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["alice", "bob", "carol", "dave", "erin", "mallory"])
def test_demo_account_keys(name):
    assert name in DEMO_ACCOUNTS
    expected = hashlib.sha256(b"toychain demo account " + name.encode("ascii")).digest()
    assert demo_private_key(name) == expected
    assert is_valid_private_key(expected)
    pubkey = public_key(expected)
    assert len(pubkey) == 33 and pubkey[0] in (2, 3) and parse_pubkey(pubkey) is not None
    # independent derivation with the ecdsa package
    vk = ecdsa.SigningKey.from_string(expected, curve=ecdsa.SECP256k1).get_verifying_key()
    assert vk.to_string("compressed") == pubkey
    assert owner_of(pubkey) == hashlib.sha256(pubkey).digest()[:20]


def test_demo_accounts_are_distinct():
    keys = {demo_private_key(n) for n in DEMO_ACCOUNTS}
    assert len(keys) == len(DEMO_ACCOUNTS) == 6


@pytest.mark.parametrize("secret, valid", [
    (bytes(32), False),
    ((1).to_bytes(32, "big"), True),
    ((N - 1).to_bytes(32, "big"), True),
    (N.to_bytes(32, "big"), False),
    (b"\xff" * 32, False),
    (b"\x01" * 31, False),
    (b"\x01" * 33, False),
])
def test_is_valid_private_key(secret, valid):
    assert is_valid_private_key(secret) is valid


def test_public_key_matches_ecdsa_for_random_keys():
    r = rng()
    for _ in range(20):
        secret = random_secret(r)
        vk = ecdsa.SigningKey.from_string(secret, curve=ecdsa.SECP256k1).get_verifying_key()
        assert public_key(secret) == vk.to_string("compressed")


# -- signatures -------------------------------------------------------------------------------

def split(sig):
    return int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")


def test_half_n_constant():
    assert HALF_N == (N - 1) // 2 == 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0
    assert N == ecdsa.SECP256k1.order


def test_sign_is_64_bytes_low_s_and_deterministic():
    r = rng()
    for i in range(30):
        secret = demo_private_key(DEMO_ACCOUNTS[i % 6]) if i < 6 else random_secret(r)
        digest = r.randbytes(32)
        sig = sign(secret, digest)
        assert isinstance(sig, bytes) and len(sig) == 64
        rr, ss = split(sig)
        assert 1 <= rr < N and 1 <= ss <= HALF_N
        assert signature_in_range(sig)
        assert sign(secret, digest) == sig  # RFC 6979: no randomness
        assert verify(public_key(secret), sig, digest)


def test_sign_differs_by_key_and_digest():
    a, b = demo_private_key("alice"), demo_private_key("bob")
    d1, d2 = hashlib.sha256(b"1").digest(), hashlib.sha256(b"2").digest()
    assert len({sign(a, d1), sign(a, d2), sign(b, d1), sign(b, d2)}) == 4


def ecdsa_keys(secret):
    sk = ecdsa.SigningKey.from_string(secret, curve=ecdsa.SECP256k1)
    return sk, sk.get_verifying_key()


def low_s(sig):
    rr, ss = split(sig)
    if ss > HALF_N:
        ss = N - ss
    return rr.to_bytes(32, "big") + ss.to_bytes(32, "big")


def test_signatures_cross_checked_with_ecdsa():
    r = rng()
    cases = [(random_secret(r), r.randbytes(32)) for _ in range(25)]
    cases += [(demo_private_key("alice"), bytes(32)), (demo_private_key("bob"), b"\xff" * 32),
              ((1).to_bytes(32, "big"), hashlib.sha256(b"one").digest()),
              ((N - 1).to_bytes(32, "big"), hashlib.sha256(b"n-1").digest())]
    high_s_seen = 0
    for secret, digest in cases:
        sk, vk = ecdsa_keys(secret)
        pubkey = public_key(secret)
        assert vk.to_string("compressed") == pubkey

        ours = sign(secret, digest)
        # 1. our signature verifies under the independent implementation
        assert vk.verify_digest(ours, digest, sigdecode=ecdsa.util.sigdecode_string)
        assert ecdsa.VerifyingKey.from_string(pubkey, curve=ecdsa.SECP256k1).verify_digest(
            ours, digest, sigdecode=ecdsa.util.sigdecode_string)

        # 2. it is exactly RFC 6979's signature, after low-S normalisation
        theirs = sk.sign_digest_deterministic(digest, hashfunc=hashlib.sha256,
                                              sigencode=ecdsa.util.sigencode_string)
        assert low_s(theirs) == ours

        # 3. the ecdsa package's low-S signature verifies under chain.keys.verify
        assert verify(pubkey, low_s(theirs), digest)
        random_sig = low_s(sk.sign_digest(digest, sigencode=ecdsa.util.sigencode_string,
                                          entropy=None))
        assert verify(pubkey, random_sig, digest)

        # 4. the high-S twin is valid ECDSA but refused by consensus
        rr, ss = split(ours)
        twin = rr.to_bytes(32, "big") + (N - ss).to_bytes(32, "big")
        assert vk.verify_digest(twin, digest, sigdecode=ecdsa.util.sigdecode_string)
        assert not verify(pubkey, twin, digest)
        high_s_seen += split(theirs)[1] > HALF_N
    # the normalisation path was actually exercised
    assert high_s_seen > 0


def test_verify_refuses_wrong_key_wrong_digest_tampered_sig():
    secret = demo_private_key("alice")
    digest = hashlib.sha256(b"pay bob").digest()
    sig = sign(secret, digest)
    assert verify(public_key(secret), sig, digest)
    assert not verify(public_key(demo_private_key("bob")), sig, digest)
    assert not verify(public_key(secret), sig, hashlib.sha256(b"pay mallory").digest())
    for i in range(64):
        tampered = bytearray(sig)
        tampered[i] ^= 0x01
        assert not verify(public_key(secret), bytes(tampered), digest), i


def test_verify_digest_is_not_hashed_again():
    secret = demo_private_key("carol")
    digest = hashlib.sha256(b"message").digest()
    sig = sign(secret, digest)
    sk, vk = ecdsa_keys(secret)
    # ecdsa's verify() hashes the message: our digest is the message hash itself
    assert vk.verify(sig, b"message", hashfunc=hashlib.sha256, sigdecode=ecdsa.util.sigdecode_string)
    assert not verify(public_key(secret), sig, hashlib.sha256(digest).digest())


@pytest.mark.parametrize("rr, ss", [
    (0, 1), (1, 0), (0, 0), (N, 1), (1, N), (N + 1, 1), (2**256 - 1, 1), (1, HALF_N + 1),
    (1, N - 1), (1, 2**256 - 1),
])
def test_signature_out_of_range(rr, ss):
    sig = rr.to_bytes(32, "big") + ss.to_bytes(32, "big")
    assert not signature_in_range(sig)
    assert not verify(public_key(demo_private_key("alice")), sig, bytes(32))


def test_signature_in_range_edges():
    assert signature_in_range((1).to_bytes(32, "big") + (1).to_bytes(32, "big"))
    assert signature_in_range((N - 1).to_bytes(32, "big") + HALF_N.to_bytes(32, "big"))
    assert not signature_in_range((N - 1).to_bytes(32, "big") + (HALF_N + 1).to_bytes(32, "big"))


# -- public keys ----------------------------------------------------------------------------

def x_not_on_curve():
    """The smallest x >= 1 for which x^3 + 7 is not a square mod p (no point has it)."""
    x = 1
    while pow((x**3 + 7) % P, (P - 1) // 2, P) == 1:
        x += 1
    return x


def test_parse_pubkey_accepts_compressed_points():
    r = rng()
    for _ in range(10):
        pubkey = public_key(random_secret(r))
        assert parse_pubkey(pubkey) is not None


def test_parsed_keys_are_remembered_up_to_the_bound(monkeypatch):
    """A valid key parsed once is not parsed again (the same struct comes
    back, and it still verifies); invalid ones are never kept; past
    ``MAX_PARSED_KEYS`` the cache starts empty again."""
    monkeypatch.setattr(keys, "MAX_PARSED_KEYS", 5)
    monkeypatch.setattr(keys, "_parsed_keys", {})
    r = rng()
    secrets = [random_secret(r) for _ in range(12)]
    pubkeys = [public_key(secret) for secret in secrets]
    first = parse_pubkey(pubkeys[0])
    assert parse_pubkey(pubkeys[0]) is first and len(keys._parsed_keys) == 1
    digest = hashlib.sha256(b"remembered").digest()
    assert verify(pubkeys[0], sign(secrets[0], digest), digest)
    assert parse_pubkey(b"\x02" + bytes(32)) is None and len(keys._parsed_keys) == 1
    sizes = []
    for pubkey in pubkeys[1:]:
        assert parse_pubkey(pubkey) is not None
        sizes.append(len(keys._parsed_keys))
    assert max(sizes) == 5 and sizes == [2, 3, 4, 5, 1, 2, 3, 4, 5, 1, 2]
    for secret, pubkey in zip(secrets, pubkeys):  # cached or not, each verifies its own only
        assert verify(pubkey, sign(secret, digest), digest)
        assert not verify(pubkey, sign(secrets[0] if secret != secrets[0] else secrets[1], digest),
                          digest)


def test_parse_pubkey_wrong_length():
    pubkey = public_key(demo_private_key("alice"))
    for bad in (b"", pubkey[:32], pubkey + b"\x00", pubkey[:1], bytes(65)):
        assert parse_pubkey(bad) is None
    sk, vk = ecdsa_keys(demo_private_key("alice"))
    uncompressed = vk.to_string("uncompressed")
    assert len(uncompressed) == 65 and uncompressed[0] == 4
    assert parse_pubkey(uncompressed) is None  # a valid point, but not the 33-byte form


@pytest.mark.parametrize("prefix", [0x00, 0x01, 0x04, 0x05, 0x06, 0x07, 0xFF])
def test_parse_pubkey_wrong_prefix(prefix):
    pubkey = public_key(demo_private_key("alice"))
    assert parse_pubkey(bytes([prefix]) + pubkey[1:]) is None


def test_parse_pubkey_x_not_on_curve():
    x = x_not_on_curve()
    for prefix in (2, 3):
        assert parse_pubkey(bytes([prefix]) + x.to_bytes(32, "big")) is None


def test_parse_pubkey_x_out_of_field():
    for x in (P, P + 1, 2**256 - 1):
        for prefix in (2, 3):
            assert parse_pubkey(bytes([prefix]) + x.to_bytes(32, "big")) is None
    assert parse_pubkey(b"\x02" + bytes(32)) is None  # x = 0: 7 is not a square mod p


# -- verify never raises -----------------------------------------------------------------------

def test_verify_garbage_sizes_never_raise():
    secret = demo_private_key("alice")
    pubkey = public_key(secret)
    digest = hashlib.sha256(b"d").digest()
    sig = sign(secret, digest)
    assert verify(pubkey, sig, digest)
    r = rng()
    for n in (0, 1, 31, 32, 34, 64, 65, 66, 100):
        assert verify(r.randbytes(n), sig, digest) is False
    for n in (0, 1, 32, 63, 65, 70, 71, 72, 128):
        assert verify(pubkey, r.randbytes(n), digest) is False
    assert verify(pubkey, sig[:63], digest) is False
    assert verify(pubkey, sig + b"\x00", digest) is False
    assert verify(bytearray(pubkey), sig, digest) is True  # any bytes-like key, cached or not
    assert verify(bytearray(33), sig, digest) is False
    for n in (0, 1, 31, 33, 64):
        assert verify(pubkey, sig, r.randbytes(n)) is False
    assert verify(pubkey, sig, digest[:31]) is False
    assert verify(pubkey, sig, digest + b"\x00") is False
    assert verify(b"", b"", b"") is False


def test_verify_random_33_byte_keys_never_raise():
    r = rng()
    digest = bytes(32)
    sig = sign(demo_private_key("alice"), digest)
    results = [verify(bytes([r.choice((2, 3, 4, 0))]) + r.randbytes(32), sig, digest)
               for _ in range(200)]
    assert results == [False] * 200


def test_verify_refuses_non_compressed_encodings_of_the_right_key():
    """The public key is the 33-byte compressed point (PROTOCOL.md 2): the
    65-byte uncompressed or hybrid encodings of the very same key are other
    sizes and must not verify."""
    secret = demo_private_key("alice")
    digest = hashlib.sha256(b"d").digest()
    sig = sign(secret, digest)
    sk, vk = ecdsa_keys(secret)
    uncompressed = vk.to_string("uncompressed")
    hybrid = vk.to_string("hybrid")
    assert verify(public_key(secret), sig, digest)
    assert verify(uncompressed, sig, digest) is False
    assert verify(hybrid, sig, digest) is False
