"""Keys and signatures: secp256k1 through libsecp256k1 (coincurve).

* A private key is 32 bytes ``k`` with ``1 <= k < n``.
* A public key is a 33-byte compressed point; the *owner* an output is
  locked to is ``SHA-256(pubkey)[:20]``.
* A signature is 64 bytes ``r || s`` over a 32-byte digest (the sighash,
  not hashed again), with ``1 <= r, s < n`` and **low S**: ``s <= (n-1)/2``.
  For every valid (r, s) the pair (r, n - s) also verifies; allowing both
  would let anyone change a txid without the key (malleability), so the
  high-S twin is invalid by consensus, not merely by policy.

Signing uses RFC 6979 deterministic nonces, and libsecp256k1 always returns
low S. Verification never raises: malformed input is simply ``False``. It
parses the 33-byte key and the 64-byte signature straight into
libsecp256k1's structs (``secp256k1_ec_pubkey_parse``,
``secp256k1_ecdsa_signature_parse_compact``, through coincurve's cffi
binding, as coincurve's own ``PublicKey`` does for the key) and verifies:
coincurve's ``PublicKey.verify`` takes only DER, and a compact -> DER ->
struct round trip gives the same struct (both parsers refuse r or s >= n;
the range and low-S checks here come first either way).
cffi releases the GIL during each libsecp256k1 call. Parsed keys are kept
in a bounded cache (``MAX_PARSED_KEYS``): a key spent from again skips the
parse, a tenth of a verify.
"""

import hashlib

import coincurve
from coincurve._libsecp256k1 import ffi, lib
from coincurve.context import GLOBAL_CONTEXT
from coincurve.ecdsa import der_to_cdata, serialize_compact

from .encoding import sha256

N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
HALF_N = (N - 1) // 2  # 0x7FFF...5D576E7357A4501DDFE92F46681B20A0
PUBKEY_SIZE = 33
SIGNATURE_SIZE = 64

_CTX = GLOBAL_CONTEXT.ctx
_SIGNATURE_STRUCT = "secp256k1_ecdsa_signature *"
_PUBKEY_STRUCT = "secp256k1_pubkey *"

DEMO_ACCOUNTS = ("alice", "bob", "carol", "dave", "erin", "mallory")
# Parsed public keys kept (about 250 bytes each): parsing one (a square root
# mod p) is 6 us, a tenth of a verify; keys that come back (an address spent
# from again) skip it. Past the bound the cache starts empty again.
MAX_PARSED_KEYS = 4096
_parsed_keys: dict[bytes, object] = {}


def is_valid_private_key(secret: bytes) -> bool:
    return len(secret) == 32 and 1 <= int.from_bytes(secret, "big") < N


def public_key(secret: bytes) -> bytes:
    """The 33-byte compressed public key of a private key."""
    return coincurve.PrivateKey(secret).public_key.format(compressed=True)


def owner_of(pubkey: bytes) -> bytes:
    """The 20-byte owner hash that outputs are locked to."""
    return sha256(pubkey)[:20]


def sign(secret: bytes, digest: bytes) -> bytes:
    """64-byte low-S RFC 6979 signature of a 32-byte digest."""
    der = coincurve.PrivateKey(secret).sign(digest, hasher=None)
    return serialize_compact(der_to_cdata(der))


def parse_pubkey(pubkey: bytes):
    """The parsed point (libsecp256k1's ``secp256k1_pubkey``) of a 33-byte
    compressed public key, or None if it is not one. Parse once, then
    ``verify_with`` as often as needed. Valid keys are remembered (up to
    ``MAX_PARSED_KEYS``); libsecp256k1 only reads a parsed key."""
    if len(pubkey) != PUBKEY_SIZE or pubkey[0] not in (2, 3):
        return None
    parsed = _parsed_keys.get(bytes(pubkey))
    if parsed is not None:
        return parsed
    parsed = ffi.new(_PUBKEY_STRUCT)
    if not lib.secp256k1_ec_pubkey_parse(_CTX, parsed, pubkey, PUBKEY_SIZE):
        return None
    if len(_parsed_keys) >= MAX_PARSED_KEYS:
        _parsed_keys.clear()
    _parsed_keys[bytes(pubkey)] = parsed
    return parsed


def signature_in_range(signature: bytes) -> bool:
    """64 bytes with 1 <= r < n and 1 <= s <= (n-1)/2 (low S)."""
    if len(signature) != SIGNATURE_SIZE:
        return False
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    return 1 <= r < N and 1 <= s <= HALF_N


def verify_with(key, signature: bytes, digest: bytes) -> bool:
    """Does ``signature`` (64-byte low-S r||s) sign ``digest`` for the parsed ``key``?"""
    if not signature_in_range(signature) or len(digest) != 32:
        return False
    parsed = ffi.new(_SIGNATURE_STRUCT)
    # It fails only for r or s >= n, which signature_in_range has refused.
    lib.secp256k1_ecdsa_signature_parse_compact(_CTX, parsed, signature)
    return lib.secp256k1_ecdsa_verify(_CTX, parsed, digest, key) == 1


def verify(pubkey: bytes, signature: bytes, digest: bytes) -> bool:
    """Does ``signature`` sign ``digest`` for the 33-byte compressed ``pubkey``?
    Never raises: malformed input of any kind is simply False."""
    key = parse_pubkey(pubkey)
    return key is not None and verify_with(key, signature, digest)


def demo_private_key(name: str) -> bytes:
    """The well-known key of a demo account: SHA-256("toychain demo account " + name).
    Everyone can compute these: never use them for anything real."""
    return hashlib.sha256(b"toychain demo account " + name.lower().encode("ascii")).digest()
