"""JSON on the wire (P2P frames, JSON-RPC, ``/events``): orjson, with the
standard library's verdict wherever orjson refuses.

orjson is 5 to 15 times faster than ``json`` for the small objects a node
sends and reads all day (an ``inv`` frame: 1 us instead of 15 us to encode,
2 us instead of 7 us to decode). Where it refuses what ``json`` takes
(``NaN``, lone surrogates, nesting deeper than 1,024, keys that are not
strings; when writing, integers of more than 64 bits, or a dataclass or
datetime that ``json`` would refuse in turn), the value goes to ``json``,
whose answer or error stands. One difference is not a refusal: orjson
*reads* an integer of more than 64 bits as a float. In a P2P frame no field
may be a float, so such an integer is a field of the wrong shape (as in
Core, whose nonces and heights are at most 64 bits; docs/protocol-notes.md);
JSON-RPC, where an ``id`` or a parameter may be any number, parses such a
body again with ``json`` (``jsonrpc.parse``). orjson writes UTF-8 instead
of ``\\u`` escapes; both are JSON, and the byte limits apply to what is
written.
"""

import json

import orjson

_OPTIONS = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME


def loads(text: str | bytes, parse_constant=None):
    """As ``json.loads(text, parse_constant=...)``; raises ValueError or RecursionError."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        pass
    if parse_constant is None:
        return json.loads(text)
    return json.loads(text, parse_constant=parse_constant)


def dumps(value) -> bytes:
    """Compact JSON as UTF-8 bytes; raises TypeError or ValueError for what ``json`` cannot hold."""
    try:
        return orjson.dumps(value, option=_OPTIONS)
    except orjson.JSONEncodeError:
        return json.dumps(value, separators=(",", ":")).encode()
