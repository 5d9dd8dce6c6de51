"""P2P messages (PROTOCOL.md section 7): parse and check one JSON frame, no I/O.

``parse(text)`` turns a text frame into a ``dict`` whose fields are already
decoded and bounded (hashes as bytes, headers as ``Header``, a tx as ``Tx``,
a block as ``Block``) or raises ``Misbehaviour``: the peer broke the
protocol and is to be disconnected and banned. An unknown ``type`` returns
``None`` (forward compatibility: ignored, not punished).

A decodable but *invalid* tx or block is not misbehaviour here: whether to
punish for it is decided later from the rule that refused it.
"""

import re

from chain.block import HEADER_SIZE, Block, Header
from chain.encoding import from_hex
from chain.errors import RuleError
from chain.tx import Tx

from . import wirejson

MAX_FRAME_BYTES = 4 * 1024 * 1024
MAX_INV = 50_000
MAX_LOCATOR = 101
MAX_HEADERS = 2000
MAX_ADDRS = 1000
PROTOCOL_VERSION = 1
ADDR_RE = re.compile(r"^[A-Za-z0-9.\-\[\]:]{1,255}:\d{1,5}$")


class Misbehaviour(Exception):
    """The peer sent something no honest implementation sends."""


def _field(msg: dict, name: str, kind):
    if name not in msg or not isinstance(msg[name], kind) or isinstance(msg[name], bool):
        raise Misbehaviour(f"{msg['type']}: field {name!r} missing or not {getattr(kind, '__name__', kind)}")
    return msg[name]


def _hash(value, what: str) -> bytes:
    if not isinstance(value, str) or len(value) != 64:
        raise Misbehaviour(f"{what} is not a 64-digit hex hash")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise Misbehaviour(f"{what} is not hex") from None


def _list(msg: dict, name: str, limit: int) -> list:
    items = _field(msg, name, list)
    if len(items) > limit:
        raise Misbehaviour(f"{msg['type']}: {len(items)} {name} > limit {limit}")
    return items


def is_addr(value) -> bool:
    if not isinstance(value, str) or not ADDR_RE.match(value):
        return False
    return 0 < int(value.rsplit(":", 1)[1]) < 65536


def _version(msg):
    nonce = _field(msg, "nonce", int)
    if not 0 <= nonce < 2 ** 63:
        raise Misbehaviour("version: nonce out of range")
    listen = msg.get("listen")
    if listen is not None and not is_addr(listen):
        raise Misbehaviour("version: listen is not host:port")
    height = _field(msg, "height", int)
    if height < 0:
        raise Misbehaviour("version: negative height")
    return {"type": "version", "network": _field(msg, "network", str)[:64],
            "genesis": _hash(msg.get("genesis"), "version.genesis"),
            "protocol": _field(msg, "protocol", int), "nonce": nonce, "height": height,
            "best": _hash(msg.get("best"), "version.best"),
            "user_agent": _field(msg, "user_agent", str)[:256], "listen": listen}


def _items(msg):
    items = []
    for item in _list(msg, "items", MAX_INV):
        if (not isinstance(item, list) or len(item) != 2 or item[0] not in ("tx", "block")):
            raise Misbehaviour(f"{msg['type']}: an item is not [\"tx\"|\"block\", hash]")
        items.append((item[0], _hash(item[1], f"{msg['type']} item")))
    return {"type": msg["type"], "items": items}


def _decode(decoder, value, what):
    try:
        return decoder(from_hex(value, what))
    except RuleError as error:
        raise Misbehaviour(f"{what}: {error.message}") from None


def _tx(msg):
    return {"type": "tx", "tx": _decode(Tx.decode, _field(msg, "tx", str), "tx")}


def _block(msg):
    return {"type": "block", "block": _decode(Block.decode, _field(msg, "block", str), "block")}


def _getheaders(msg):
    locator = [_hash(h, "locator hash") for h in _list(msg, "locator", MAX_LOCATOR)]
    stop = msg.get("stop")
    return {"type": "getheaders", "locator": locator,
            "stop": None if stop is None else _hash(stop, "getheaders.stop")}


def _headers(msg):
    headers = []
    for value in _list(msg, "headers", MAX_HEADERS):
        if not isinstance(value, str) or len(value) != 2 * HEADER_SIZE:
            raise Misbehaviour("headers: an entry is not 88 bytes of hex")
        headers.append(_decode(Header.decode, value, "header"))
    for n, (previous, header) in enumerate(zip(headers, headers[1:]), start=1):
        if header.prev_hash != previous.hash:
            raise Misbehaviour(f"headers do not link: header {n} does not follow header {n - 1}")
    return {"type": "headers", "headers": headers}


def _addr(msg):
    addrs = _list(msg, "addrs", MAX_ADDRS)
    if not all(is_addr(a) for a in addrs):
        raise Misbehaviour("addr: an entry is not host:port")
    return {"type": "addr", "addrs": addrs}


def _nonce(msg):
    nonce = _field(msg, "nonce", int)
    return {"type": msg["type"], "nonce": nonce}


PARSERS = {
    "version": _version, "verack": lambda m: {"type": "verack"},
    "ping": _nonce, "pong": _nonce,
    "inv": _items, "getdata": _items, "notfound": _items,
    "tx": _tx, "block": _block, "getheaders": _getheaders, "headers": _headers,
    "getaddr": lambda m: {"type": "getaddr"}, "addr": _addr,
}


def parse(text: str) -> dict | None:
    """One decoded, bounded message; None for an unknown type; else Misbehaviour."""
    if len(text) > MAX_FRAME_BYTES or len(text.encode("utf-8")) > MAX_FRAME_BYTES:
        raise Misbehaviour(f"frame over {MAX_FRAME_BYTES} bytes")
    try:
        msg = wirejson.loads(text)
    except (ValueError, RecursionError):
        raise Misbehaviour("frame is not valid JSON") from None
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise Misbehaviour("frame is not a JSON object with a string 'type'")
    parser = PARSERS.get(msg["type"])
    return None if parser is None else parser(msg)


# -- building outgoing messages -------------------------------------------------------------

def inv(kind_hashes: list[tuple[str, bytes]], type_: str = "inv") -> dict:
    return {"type": type_, "items": [[kind, h.hex()] for kind, h in kind_hashes]}


def tx_msg(tx: Tx) -> dict:
    return {"type": "tx", "tx": tx.raw.hex()}


def block_msg(block: Block) -> dict:
    return {"type": "block", "block": block.raw.hex()}


def headers_msg(headers: list[Header]) -> dict:
    return {"type": "headers", "headers": [h.raw.hex() for h in headers]}


def getheaders_msg(locator: list[bytes], stop: bytes | None = None) -> dict:
    return {"type": "getheaders", "locator": [h.hex() for h in locator],
            "stop": None if stop is None else stop.hex()}
