"""``POST /rpc`` byte by byte: what a client that writes its own HTTP gets
from aiohttp and ``NodeServer._rpc``: pipelined calls answered in order,
the cookie, a batch's reply sent in pieces, ids past 64 bits.

Real nodes on 127.0.0.1 (tests/nodes.py), spoken to over raw sockets so
that each test chooses every byte.
"""

import asyncio
import json

from node import server as node_server

from .nodes import address, run, start_node


def call(method: str, *params, request_id=1) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": list(params)}).encode()


def post(port: int, body: bytes, extra: bytes = b"") -> bytes:
    return (b"POST /rpc HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n" % port + extra
            + b"Content-Length: %d\r\n\r\n" % len(body) + body)


def with_node(tmp_path, check) -> None:
    """Run ``await check(server, reader, writer)`` against a fresh node, on one open connection."""
    async def scenario():
        server = await start_node(tmp_path / "n")
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            await check(server, reader, writer)
            writer.close()
        finally:
            await server.stop()
    run(scenario())


async def read_reply(reader: asyncio.StreamReader) -> tuple[int, dict, list[bytes]]:
    """(status, headers with lower-case names, the body's chunks) of one
    reply; a body sent with ``Content-Length`` is one chunk."""
    status = int((await reader.readline()).split()[1])
    headers = {}
    while (line := await reader.readline()) != b"\r\n":
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        chunks = []
        while size := int((await reader.readline()).strip(), 16):
            chunks.append(await reader.readexactly(size))
            await reader.readline()
        await reader.readline()
        return status, headers, chunks
    return status, headers, [await reader.readexactly(int(headers["content-length"]))]


def test_pipelined_calls_are_answered_one_after_the_other(tmp_path):
    async def check(server, reader, writer):
        port = server.port
        # Three requests in one write (pipelined): three replies, in order.
        writer.write(post(port, call("getbestblockhash", request_id="a"))
                     + post(port, call("getblockchaininfo", request_id="b")) + post(port, b"{nope"))
        replies = [await read_reply(reader) for _ in range(3)]
        assert [status for status, _, _ in replies] == [200, 200, 200]
        assert all(headers["content-type"] == "application/json" for _, headers, _ in replies), replies
        first, second, third = (json.loads(b"".join(chunks)) for _, _, chunks in replies)
        assert first == {"jsonrpc": "2.0", "id": "a", "result": server.node.chain.tip.hash.hex()}
        assert second["id"] == "b" and second["result"]["height"] == 0
        assert third["error"]["code"] == -32700 and third["id"] is None
    with_node(tmp_path, check)


def test_an_admin_call_needs_the_cookie(tmp_path):
    async def check(server, reader, writer):
        port = server.port
        generate = call("generatetoaddress", 1, address("alice"))
        writer.write(post(port, generate))
        status, _, chunks = await read_reply(reader)
        assert status == 401
        assert json.loads(b"".join(chunks))["error"]["message"] == (
            "admin method: Authorization: Bearer <cookie> required")
        assert server.node.chain.height == 0
        writer.write(post(port, generate, b"Authorization: Bearer %s\r\n" % server.token.encode()))
        status, _, chunks = await read_reply(reader)
        assert status == 200 and len(json.loads(b"".join(chunks))["result"]) == 1
        assert server.node.chain.height == 1
    with_node(tmp_path, check)


def test_a_batch_reply_is_written_in_pieces(tmp_path):
    """A batch's replies go out in chunks of about REPLY_CHUNK bytes, never
    one join of the whole."""
    async def check(server, reader, writer):
        port = server.port
        batch = [{"jsonrpc": "2.0", "id": i, "method": "getblockchaininfo"} for i in range(1000)]
        writer.write(post(port, json.dumps(batch).encode()))
        status, headers, chunks = await read_reply(reader)
        body = b"".join(chunks)
        assert status == 200 and headers["content-type"] == "application/json"
        assert len(body) > 2 * node_server.REPLY_CHUNK and len(chunks) > 2
        assert max(len(chunk) for chunk in chunks) < 2 * node_server.REPLY_CHUNK
        assert [reply["id"] for reply in json.loads(body)] == list(range(1000))
    with_node(tmp_path, check)


def test_ids_past_64_bits_come_back_exactly(tmp_path):
    """orjson reads an integer past 64 bits as a float; such a body is parsed
    by the standard library, so the id comes back as it was sent."""
    async def check(server, reader, writer):
        port = server.port
        for request_id in (-2 ** 63 - 1, 2 ** 64, 10 ** 30, 2 ** 63 - 1):
            writer.write(post(port, call("getbestblockhash", request_id=request_id)))
            _, _, chunks = await read_reply(reader)
            body = b"".join(chunks)
            assert json.loads(body)["id"] == request_id and str(request_id).encode() in body
    with_node(tmp_path, check)


def test_a_cookie_that_is_not_utf8_is_refused_not_a_crash(tmp_path):
    """An ``Authorization`` header of bytes that are not UTF-8 is a wrong
    cookie (401), never an HTTP 500."""
    async def check(server, reader, writer):
        writer.write(post(server.port, call("generatetoaddress", 1, address("alice")),
                          b"Authorization: Bearer \xff\xfe\r\n"))
        status, _, chunks = await read_reply(reader)
        assert status == 401, chunks
        assert json.loads(b"".join(chunks))["error"]["message"] == (
            "admin method: Authorization: Bearer <cookie> required")
        assert server.node.chain.height == 0
    with_node(tmp_path, check)
