"""Addresses: Bech32 (BIP-173) of a 20-byte owner, human-readable part ``toy``.

The data part is the 20 bytes regrouped into 5-bit symbols, with no version
byte. Bech32's checksum catches any typo of up to four characters, so a
mistyped address is refused instead of sending coins to nobody.
"""

import bech32

HRP = "toy"
OWNER_SIZE = 20


class AddressError(ValueError):
    """The text is not a valid Toychain address (the message says why)."""


def encode_address(owner: bytes) -> str:
    if len(owner) != OWNER_SIZE:
        raise ValueError(f"an owner is {OWNER_SIZE} bytes, got {len(owner)}")
    return bech32.bech32_encode(HRP, bech32.convertbits(owner, 8, 5, True))


def decode_address(text: str) -> bytes:
    """The owner bytes of an address, or AddressError with a clear reason."""
    if not isinstance(text, str) or not text:
        raise AddressError("an address must be a non-empty string")
    if text.lower() != text and text.upper() != text:
        raise AddressError(f"address {text!r} mixes upper and lower case")
    hrp, data = bech32.bech32_decode(text)
    if hrp is None:
        raise AddressError(f"address {text!r} has a bad checksum or characters (a typo?)")
    if hrp != HRP:
        raise AddressError(f"address {text!r} is for {hrp!r}, not {HRP!r}")
    owner = bech32.convertbits(data, 5, 8, False)
    if owner is None or len(owner) != OWNER_SIZE:
        raise AddressError(f"address {text!r} does not hold a {OWNER_SIZE}-byte owner")
    return bytes(owner)
