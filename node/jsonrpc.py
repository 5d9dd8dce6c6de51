"""The JSON-RPC 2.0 envelope of ``POST /rpc``: from the body's bytes to the
reply's text, for any body at all.

The body is untrusted, so each step has a bound and a clear error, and none
can crash the server (HTTP 200 with an error object, never a 500):

* it must be UTF-8 (-32700) holding at most ``MAX_JSON_VALUES`` JSON values,
  counted with ``bytes.count`` before parsing: the parser is C code that
  cannot yield, and 8 MiB of ``[[],[],...]`` takes it 1.8 s (``parse``);
* strict JSON only: ``NaN``/``Infinity`` and nesting deeper than 1,024
  levels are parse errors (-32700); orjson parses, the standard library
  judges what it refuses (``wirejson``), and parses again a body in which
  orjson found a float (``_holds_float``): orjson turns an integer past 64
  bits into a float without a word, and an ``id`` must come back as it was
  sent;
* each request must be an object with a string ``method``, a ``params``
  list if any, and an ``id`` that is a string, a number or null (-32600); a
  bad one in a batch gets its own error, the others still run;
* a batch holds 1 to ``MAX_BATCH`` requests (-32600).

``answer`` runs the requests one by one and yields to the event loop
between two of them once ``YIELD_SECONDS`` have passed since it last did
or last got the loop back from waiting for its turn (``RESUMED``), so a
batch of 1,000 holds the loop no longer than that plus its slowest
request at a time (a yield per request cost a turn of the loop for each).
Each reply is encoded to bytes as soon as it is made and
the shell sends the pieces in chunks of about 64 kB (one socket write each):
one ``json.dumps`` of the whole batch, or even one ``join`` of 16 MiB, holds
the loop for 100 ms or more. Once a
batch's replies pass ``MAX_BATCH_REPLY_BYTES``, its remaining requests are
not run and get error -32000 instead (send them again in another batch).
"""

import asyncio
import contextvars
import json
import math
import time

from . import wirejson

MAX_BATCH = 1000
MAX_JSON_VALUES = 100_000
MAX_BATCH_REPLY_BYTES = 16 * 1024 * 1024
YIELD_SECONDS = 0.005  # a batch lets the loop in at least this often (between requests; rpc.py)
# When the task running a batch last got the loop back from a wait that a callee made it do
# (rpc.Turns: its turn), so that it counts only the time it held the loop since: counting the
# wait, it would yield, and so end its turn, right after the turn began.
RESUMED = contextvars.ContextVar("resumed", default=0.0)
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
OVER_BUDGET = -32000


class EnvelopeError(Exception):
    """The body as a whole cannot be run: one error object answers it."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.reply = error_reply(None, code, message)


def error_reply(request_id, code: int, message: str) -> dict:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def parse(body: bytes):
    """The decoded body: a request (dict or anything else) or a non-empty
    batch list; raises EnvelopeError."""
    values = sum(body.count(c) for c in (b",", b":", b"[", b"{")) + 1
    if values > MAX_JSON_VALUES:
        raise EnvelopeError(PARSE_ERROR, f"parse error: the body holds about {values:,} JSON values, "
                                         f"more than the {MAX_JSON_VALUES:,} a request may have")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise EnvelopeError(PARSE_ERROR, f"parse error: the body is not UTF-8 (byte {error.start})") from None
    try:
        value = wirejson.loads(text, parse_constant=_no_constant)
        if _holds_float(value):  # maybe an integer past 64 bits, which orjson reads as a float
            value = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise EnvelopeError(PARSE_ERROR, "parse error: JSON nested too deeply") from None
    except ValueError as error:  # JSONDecodeError, NaN, an integer of more than 4,300 digits
        raise EnvelopeError(PARSE_ERROR, f"parse error: invalid JSON ({error})") from None
    if isinstance(value, list) and not 1 <= len(value) <= MAX_BATCH:
        raise EnvelopeError(INVALID_REQUEST, f"invalid request: a batch holds 1 to {MAX_BATCH} requests, "
                                             f"this one {len(value)}")
    return value


def _holds_float(value) -> bool:
    """Is there a float anywhere in this decoded JSON value? (A look at each
    value: about 0.13 ms for a 40 kB batch of 100 txs, where a regular
    expression over its text looking for long integers took ten times that.)"""
    todo = [value]
    while todo:
        value = todo.pop()
        if isinstance(value, float):
            return True
        if isinstance(value, list):
            todo += value
        elif isinstance(value, dict):
            todo += value.values()
    return False


def _valid_id(value) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def invalid(request) -> dict | None:
    """The error reply for a request that is not a valid call, else None."""
    if not isinstance(request, dict):
        return error_reply(None, INVALID_REQUEST, "invalid request: need an object with a method")
    if not _valid_id(request.get("id")):
        return error_reply(None, INVALID_REQUEST, "invalid request: id must be a string, a number or null")
    if not isinstance(request.get("method"), str):
        return error_reply(request.get("id"), INVALID_REQUEST,
                           "invalid request: method must be a string")
    return None


def methods(body) -> list[str]:
    """The method names a body asks for (to check the cookie before running any)."""
    requests = body if isinstance(body, list) else [body]
    return [r["method"] for r in requests if isinstance(r, dict) and isinstance(r.get("method"), str)]


def encode(reply: dict) -> bytes:
    try:
        return wirejson.dumps(reply)
    except (TypeError, ValueError) as error:  # a method returned something JSON cannot hold: a bug
        return encode(error_reply(reply.get("id"), -32603, f"internal error: {error}"))


async def answer(body, run) -> list[bytes]:
    """The reply for a parsed body, in pieces to send one after the other;
    ``run(method, params)`` is awaited for each valid request and returns
    its reply's ``result`` or ``error`` part (a dict with one of those keys)."""
    async def one(request) -> dict:
        bad = invalid(request)
        if bad is not None:
            return bad
        return {"jsonrpc": "2.0", "id": request.get("id"),
                **await run(request["method"], request.get("params"))}

    if not isinstance(body, list):
        return [encode(await one(body))]
    parts, size = [], 2
    yielded = time.perf_counter()
    for index, request in enumerate(body):
        if size > MAX_BATCH_REPLY_BYTES:
            request_id = request.get("id") if isinstance(request, dict) and _valid_id(request.get("id")) else None
            reply = error_reply(request_id, OVER_BUDGET,
                                f"not run: this batch's replies passed {MAX_BATCH_REPLY_BYTES:,} bytes "
                                f"after {index} of {len(body)} requests; send the rest in another batch")
        else:
            reply = await one(request)
        parts += [b"," if parts else b"[", encode(reply)]
        size += len(parts[-1]) + 1
        if time.perf_counter() - max(yielded, RESUMED.get()) >= YIELD_SECONDS:
            await asyncio.sleep(0)  # let peers, pings and other clients in between requests
            yielded = time.perf_counter()
    return parts + [b"]"]
