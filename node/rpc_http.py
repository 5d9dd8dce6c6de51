"""``POST /rpc`` answered without aiohttp: the plain request is read and
answered here, anything else is handed to aiohttp with every byte received.

aiohttp spends about 90 us of CPU on each request by itself (a request
object, a task, the router, the middlewares, a response object, signals;
measured against this module on this machine), half of what the node takes
to check a small transaction, paid again for every ``sendrawtransaction`` a
program sends one by one. So every connection
starts here (``RpcConnection`` is the listening socket's protocol,
``http_limits.Listener``): while it sends plain JSON-RPC calls, each one is
parsed, run and answered here. The first time it sends anything else, the
connection goes to aiohttp for good (``Listener.hand_over``: aiohttp's
protocol takes the socket and is fed the bytes not answered yet), and
aiohttp serves it with its routes, middlewares and limits as if it had had
it from the start. A request is answered here only when all of this holds;
otherwise it is handed over before anything is run:

* the request line is exactly ``POST /rpc HTTP/1.1`` and the head ends
  within ``HEAD_BYTES``;
* every header line is ``name: value`` with a token for a name, no control
  characters, no name twice, and none of ``Origin`` (a web page: its Origin
  and CORS rules stay ``http_guard``'s), ``Transfer-Encoding``, ``Expect``,
  ``Upgrade`` or ``Connection``;
* ``Host`` passes ``BrowserPolicy.host_refusal`` and ``Content-Type``
  passes ``content_type_refusal`` (a refusal is aiohttp's 403, one sentence);
* ``Content-Length`` is at most 9 decimal digits and the limit of ``max_body``
  bytes, and the whole body is already here (a body still on its way gets
  aiohttp's body timeout and its 408).

So a request answered here gets what aiohttp would have sent: the same
envelope and methods (``answer``, ``NodeServer.answer_rpc``), 200 or 401,
``Content-Type: application/json``, ``Content-Length`` and ``Date``, a
reply of many pieces in writes of about ``REPLY_CHUNK`` bytes that wait
while the socket's buffer is full; refusals, errors and everything unusual
still come from aiohttp, whose parser sees every byte not answered here.

One request at a time per connection, in order: bytes that arrive
meanwhile wait (reading pauses beyond ``PIPELINE_BYTES``). The listener's
table counts these connections as it counts aiohttp's (``http_limits``):
inside a request while one is answered, idle otherwise, closed when idle too
long or when room is needed.
"""

import asyncio
import logging
import re
import time
from email.utils import formatdate
from http import HTTPStatus

from . import jsonrpc
from .http_guard import BrowserPolicy, content_type_refusal

log = logging.getLogger("toychain")

HEAD_BYTES = 8192          # a request head longer than this goes to aiohttp (its limit is about 8 kB a line)
PIPELINE_BYTES = 64 * 1024  # bytes buffered behind the request being answered before reading pauses
REPLY_CHUNK = 64 * 1024     # bytes of a batch's replies joined into one write
REQUEST_LINE = b"POST /rpc HTTP/1.1\r\n"
HANDED_OVER = frozenset((b"origin", b"transfer-encoding", b"expect", b"upgrade", b"connection"))
# The request line and header lines (token ":" value without control characters but tab), all at once.
_HEAD = re.compile(rb"POST /rpc HTTP/1\.1(?:\r\n[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t\x20-\x7e\x80-\xff]*)*")
_STARTS = {status: b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: "
           % (status, HTTPStatus(status).phrase.encode()) for status in (200, 401)}


class _Date:
    """The ``Date`` header's value, formatted once a second."""
    second, text = -1, b""

    @classmethod
    def now(cls) -> bytes:
        second = int(time.time())
        if second != cls.second:
            cls.second, cls.text = second, formatdate(second, usegmt=True).encode()
        return cls.text


def head_of(status: int, length: int) -> bytes:
    """The reply's status line and headers (200 or 401)."""
    return b"%s%d\r\nDate: %s\r\n\r\n" % (_STARTS[status], length, _Date.now())


class RpcConnection(asyncio.Protocol):
    """One HTTP connection, until it sends something other than a plain RPC call.

    ``listener`` keeps the books (``opened``, ``closed``, ``request_started``,
    ``request_finished``) and takes the connection over (``hand_over``);
    ``answer(body, authorization)`` returns (HTTP status, a reply dict or the
    reply's pieces), as ``NodeServer.answer_rpc`` does."""

    def __init__(self, listener, policy: BrowserPolicy, answer, max_body: int):
        self.listener = listener
        self.policy = policy
        self.answer = answer
        self.max_body = max_body
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.busy = False          # a request is being answered
        self.task: asyncio.Task | None = None
        self.closing = False       # close once the request in progress is answered
        self.lost = False          # closed: nothing more is written
        self._writable: asyncio.Future | None = None  # while the socket's buffer is full
        self._reading = True

    # -- asyncio's protocol callbacks ----------------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport
        self.listener.opened(self)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.busy:
            self._next()
        elif len(self.buffer) > PIPELINE_BYTES and self._reading:
            self._reading = False
            self.transport.pause_reading()

    def connection_lost(self, exc) -> None:
        self.lost = True
        self.listener.closed(self)
        self._wake_writer()

    def pause_writing(self) -> None:
        if self._writable is None:
            self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        self._wake_writer()

    def _wake_writer(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None

    # -- for the listener -----------------------------------------------------------------------
    def force_close(self) -> None:
        """Close now (idle too long, or room is needed); a request being
        answered is answered to nobody."""
        self.lost = True
        if self.transport is not None:
            self.transport.close()

    def close_when_idle(self) -> None:
        """The server stops: close now if idle, else once the reply is written."""
        self.closing = True
        if not self.busy:
            self.force_close()

    # -- requests --------------------------------------------------------------------------------
    def _next(self) -> None:
        """Answer the request at the head of the buffer, wait for the rest of
        its head, or hand the connection over."""
        buffer = self.buffer
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            seen = min(len(buffer), len(REQUEST_LINE))
            if buffer[:seen] != REQUEST_LINE[:seen] or len(buffer) > HEAD_BYTES:
                self._hand_over()
            return
        call = self._parse(bytes(buffer[:end]), end + 4) if end <= HEAD_BYTES else None
        if call is None:
            self._hand_over()
            return
        body, authorization = call
        self.busy = True
        self.listener.request_started(self)
        self.task = asyncio.get_running_loop().create_task(self._respond(body, authorization))

    def _parse(self, head: bytes, body_start: int) -> tuple[bytes, str] | None:
        """(body, Authorization) of a plain RPC call whose body is all here,
        taken off the buffer; None for anything aiohttp should see."""
        if not _HEAD.fullmatch(head):
            return None
        headers = {}
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.lower()
            if name in headers or name in HANDED_OVER:
                return None
            headers[name] = value.strip(b" \t").decode("latin-1")
        length = headers.get(b"content-length", "")
        if not (length.isascii() and length.isdigit() and len(length) <= 9) or int(length) > self.max_body:
            return None
        if self.policy.host_refusal(headers.get(b"host")) is not None \
                or content_type_refusal(headers.get(b"content-type")) is not None:
            return None
        end = body_start + int(length)
        if len(self.buffer) < end:
            return None
        body = bytes(self.buffer[body_start:end])
        del self.buffer[:end]
        return body, headers.get(b"authorization", "")

    async def _respond(self, body: bytes, authorization: str) -> None:
        try:
            status, reply = await self.answer(body, authorization)
            await self._write(status, [jsonrpc.encode(reply)] if isinstance(reply, dict) else reply)
        except Exception:  # a bug must not leave the client waiting: it sees the connection close
            log.exception("RPC request failed")
            self.force_close()
        finally:
            self.busy = False
            self.listener.request_finished(self)
        if self.closing or self.lost:
            self.force_close()
            return
        if self.buffer:
            self._next()
        if not self._reading and len(self.buffer) <= PIPELINE_BYTES:
            self._resume_reading()

    async def _write(self, status: int, pieces: list[bytes]) -> None:
        """The reply: head and pieces, about REPLY_CHUNK bytes a write, each
        write waiting while the socket's buffer is full."""
        chunk = [head_of(status, sum(map(len, pieces)))]
        size = 0
        for piece in pieces:
            chunk.append(piece)
            size += len(piece)
            if size >= REPLY_CHUNK:
                await self._send(b"".join(chunk))
                chunk, size = [], 0
        if chunk:
            await self._send(b"".join(chunk))

    async def _send(self, data: bytes) -> None:
        while self._writable is not None and not self.lost:
            await self._writable
        if not self.lost:
            self.transport.write(data)

    def _resume_reading(self) -> None:
        self._reading = True
        self.transport.resume_reading()

    def _hand_over(self) -> None:
        if not self._reading:
            self._resume_reading()
        self.listener.hand_over(self, self.transport, bytes(self.buffer))
        self.buffer.clear()
