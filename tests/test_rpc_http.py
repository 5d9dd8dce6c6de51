"""``POST /rpc`` without aiohttp (node/rpc_http.py): plain calls are answered
on the fast path, anything else is handed to aiohttp with the bytes already
received and answered exactly as before.

Real nodes on 127.0.0.1 (tests/nodes.py), spoken to over raw sockets so
that each test chooses every byte. Which path answered shows in the reply:
aiohttp adds a ``Server`` header, the fast path does not.
"""

import asyncio
import json

from node import rpc_http

from .nodes import address, run, start_node, wait_for


def call(method: str, *params, request_id=1) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": list(params)}).encode()


def post(port: int, body: bytes, extra: bytes = b"", line: bytes = b"POST /rpc HTTP/1.1") -> bytes:
    return (line + b"\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n" % port + extra
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


async def read_reply(reader: asyncio.StreamReader) -> tuple[int, dict, bytes]:
    """(status, headers with lower-case names, body) of one reply."""
    while (status := int((await reader.readline()).split()[1])) < 200:  # 100 Continue
        while await reader.readline() != b"\r\n":
            pass
    headers = {}
    while (line := await reader.readline()) != b"\r\n":
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = b""
        while size := int((await reader.readline()).strip(), 16):
            body += await reader.readexactly(size)
            await reader.readline()
        await reader.readline()
        return status, headers, body
    return status, headers, await reader.readexactly(int(headers["content-length"]))


def test_plain_calls_are_answered_here_one_after_the_other(tmp_path):
    async def check(server, reader, writer):
        port = server.port
        # Three requests in one write (pipelined): three replies, in order.
        writer.write(post(port, call("getbestblockhash", request_id="a"))
                     + post(port, call("getblockchaininfo", request_id="b")) + post(port, b"{nope"))
        replies = [await read_reply(reader) for _ in range(3)]
        assert [status for status, _, _ in replies] == [200, 200, 200]
        assert all("server" not in headers and headers["content-type"] == "application/json"
                   and "date" in headers for _, headers, _ in replies), replies
        first, second, third = (json.loads(body) for _, _, body in replies)
        assert first == {"jsonrpc": "2.0", "id": "a", "result": server.node.chain.tip.hash.hex()}
        assert second["id"] == "b" and second["result"]["height"] == 0
        assert third["error"]["code"] == -32700 and third["id"] is None
        assert len(server.listener.own) == 1  # still on the fast path
    with_node(tmp_path, check)


def test_the_cookie_is_checked_on_the_fast_path(tmp_path):
    async def check(server, reader, writer):
        port = server.port
        generate = call("generatetoaddress", 1, address("alice"))
        writer.write(post(port, generate))
        status, headers, body = await read_reply(reader)
        assert status == 401 and "server" not in headers
        assert json.loads(body)["error"]["message"] == "admin method: Authorization: Bearer <cookie> required"
        assert server.node.chain.height == 0
        writer.write(post(port, generate, b"Authorization: Bearer %s\r\n" % server.token.encode()))
        status, headers, body = await read_reply(reader)
        assert status == 200 and "server" not in headers and len(json.loads(body)["result"]) == 1
        assert server.node.chain.height == 1
    with_node(tmp_path, check)


def test_anything_else_is_handed_to_aiohttp_and_answered_as_before(tmp_path):
    """Each request that is not a plain call goes to aiohttp with every byte
    received, on a connection that may already have had fast answers."""
    async def check(server, reader, writer):
        port = server.port
        tip = server.node.chain.tip.hash.hex()
        body = call("getbestblockhash")
        chunked = (b"POST /rpc HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (port, len(body), body))
        cases = [  # (request, status aiohttp answers with, whether it ran the call)
            (post(port, body, line=b"GET /rpc HTTP/1.1"), 405, False),
            (post(port, body, line=b"POST /rpc?x=1 HTTP/1.1"), 200, True),
            (post(port, body, b"Connection: keep-alive\r\n"), 200, True),
            (post(port, body, b"Expect: 100-continue\r\n"), 200, True),
            (post(port, body, b"Origin: http://127.0.0.1:%d\r\n" % port), 200, True),  # the node's own page
            (post(port, body, b"Origin: http://evil.example\r\n"), 403, False),
            (post(port, body, b"Content-Length: 5\r\n"), 400, False),             # two lengths
            (post(port, body, b"X-Folded: a\r\n b\r\n"), 400, False),             # obsolete line folding
            (post(port, body).replace(b"127.0.0.1:%d" % port, b"evil.example"), 403, False),  # DNS rebinding
            (post(port, body).replace(b"application/json", b"text/plain"), 403, False),
            (chunked, 200, True),
        ]
        for request, expected, ran in cases:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(post(port, body))  # first a plain call, answered here
            status, headers, _ = await read_reply(reader)
            assert status == 200 and "server" not in headers
            writer.write(request)
            status, headers, reply = await read_reply(reader)
            assert status == expected and "server" in headers, (request, status, reply)
            assert (status == 200 and json.loads(reply)["result"] == tip) == ran, (request, reply)
            writer.close()
        # A body still on its way when the head is complete: aiohttp waits for it.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        request = post(port, body)
        writer.write(request[:-5])
        await asyncio.sleep(0.2)
        writer.write(request[-5:])
        status, headers, reply = await read_reply(reader)
        assert status == 200 and "server" in headers and json.loads(reply)["result"] == tip
        # And a page on a connection that had fast answers.
        writer.write(post(port, body))
        writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % port)
        status, headers, _ = await read_reply(reader)
        assert status == 200 and "server" in headers
        status, headers, _ = await read_reply(reader)
        assert status == 200 and headers["content-type"].startswith("text/html")
    with_node(tmp_path, check)


def test_a_batch_reply_is_written_in_pieces_with_its_length(tmp_path):
    async def check(server, reader, writer):
        port = server.port
        batch = [{"jsonrpc": "2.0", "id": i, "method": "getblockchaininfo"} for i in range(1000)]
        writer.write(post(port, json.dumps(batch).encode()))
        status, headers, body = await read_reply(reader)
        assert len(body) > 2 * rpc_http.REPLY_CHUNK  # several writes
        assert status == 200 and "server" not in headers and int(headers["content-length"]) == len(body)
        assert [reply["id"] for reply in json.loads(body)] == list(range(1000))
    with_node(tmp_path, check)


def test_a_client_that_sends_without_reading_is_read_no_further(tmp_path):
    """Requests pipelined by a client that reads no reply: the node stops
    writing when the socket is full, then stops reading beyond
    PIPELINE_BYTES; once the client reads, every request is answered."""
    async def check(server, reader, writer):
        port = server.port
        request = post(port, json.dumps([{"jsonrpc": "2.0", "id": i, "method": "getblockchaininfo"}
                                         for i in range(50)]).encode())
        count = 4 * 1024 * 1024 // len(request)
        writer.write(request * count)
        [conn] = server.listener.own
        await wait_for(lambda: not conn.transport.is_reading(), 30, "the node to stop reading")
        assert len(conn.buffer) <= rpc_http.PIPELINE_BYTES + 256 * 1024  # at most one more read
        for _ in range(count):
            status, _, body = await read_reply(reader)
            assert status == 200 and len(json.loads(body)) == 50
        assert conn.transport.is_reading() and not conn.buffer
    with_node(tmp_path, check)


def test_ids_past_64_bits_come_back_exactly(tmp_path):
    """orjson reads an integer past 64 bits as a float; such a body is parsed
    by the standard library, so the id comes back as it was sent."""
    async def check(server, reader, writer):
        port = server.port
        for request_id in (-2 ** 63 - 1, 2 ** 64, 10 ** 30, 2 ** 63 - 1):
            writer.write(post(port, call("getbestblockhash", request_id=request_id)))
            _, _, body = await read_reply(reader)
            assert json.loads(body)["id"] == request_id and str(request_id).encode() in body
    with_node(tmp_path, check)
