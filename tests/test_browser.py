"""What a web page in the user's browser can make a node do (node/http_guard.py),
against real nodes on 127.0.0.1 (tests/nodes.py) talked to over HTTP with
the headers a browser would send, forged ones included.

A page may POST ``text/plain`` to any address without asking the browser
first, so ``/rpc`` runs only ``application/json``; a foreign ``Origin`` is
refused on every route and WebSocket; a ``Host`` that is not the node's own
name (DNS rebinding) is refused everywhere; CORS is answered only to origins
the operator allowed, and never for a request with a token. Each refused
request is checked to have done nothing.
"""

import asyncio
import json

import aiohttp
import pytest

from node import rpc
from node.http_guard import MAX_GOOD_HOSTS, BrowserPolicy, normalize_origin

from .helpers import make_tx, owner
from .nodes import address, run, start_node, wait_for
from .test_cli import toychain

DASHBOARD = "http://127.0.0.1:8431"  # an origin the operator allowed, as the devnet does


def call_body(method: str, *params) -> str:
    return json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})


async def post(session, server, body: str, headers: dict) -> tuple[int, dict, str]:
    async with session.post(f"http://127.0.0.1:{server.port}/rpc", data=body.encode(),
                            headers=headers) as response:
        return response.status, dict(response.headers), await response.text()


async def funded_node(tmp_path, **kwargs):
    """A regtest node with a spendable coin: returns (server, a signed tx spending it)."""
    server = await start_node(tmp_path / "n", allowed_origins=[DASHBOARD], **kwargs)
    rpc.call(server.node, "generatetoaddress", [101, address("alice")])
    [coin] = [(op, c) for op, c in server.node.chain.store.coins_of(owner("alice")) if c.height == 1]
    tx = make_tx([coin], "alice", [("bob", coin[1].amount - 1000)])
    return server, tx


def test_rpc_runs_only_json_requests(tmp_path):
    async def scenario():
        server, tx = await funded_node(tmp_path)
        body = call_body("sendrawtransaction", tx.raw.hex())
        try:
            async with aiohttp.ClientSession() as session:
                # A "simple" request: what any page can send without a preflight.
                for content_type in ("text/plain", "text/plain;charset=UTF-8",
                                     "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                                     "application/jsonp", ""):
                    status, _, text = await post(session, server, body, {"Content-Type": content_type})
                    assert status == 403, content_type
                    assert text.startswith("/rpc runs only JSON requests: Content-Type must be "
                                           "application/json, not "), text
                assert tx.txid not in server.node.mempool   # none of them ran
                status, _, text = await post(session, server, body,
                                             {"Content-Type": "Application/JSON; charset=utf-8"})
                assert status == 200 and json.loads(text)["result"] == tx.txid.hex()
                assert tx.txid in server.node.mempool
        finally:
            await server.stop()
    run(scenario())


def test_a_foreign_origin_is_refused_before_anything_runs(tmp_path):
    async def scenario():
        server, tx = await funded_node(tmp_path)
        port = server.port
        body = call_body("sendrawtransaction", tx.raw.hex())
        json_type = {"Content-Type": "application/json"}
        try:
            async with aiohttp.ClientSession() as session:
                for origin in ("http://evil.example", "null", "http://127.0.0.1:1",  # another local page
                               f"https://127.0.0.1:{port}", f"http://127.0.0.1:{port}.evil.example",
                               "http://127.0.0.1:8432"):
                    status, headers, text = await post(session, server, body, {**json_type, "Origin": origin})
                    assert status == 403, origin
                    assert text.startswith(f"Origin {origin!r} is a web page this node does not trust"), text
                    assert "Access-Control-Allow-Origin" not in headers
                assert tx.txid not in server.node.mempool
                # The node's own page (same origin), under each name it answers to.
                for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
                    status, _, text = await post(session, server, call_body("getbestblockhash"),
                                                 {**json_type, "Origin": f"http://{host}", "Host": host})
                    assert status == 200 and "result" in json.loads(text), host
                # The allowed origin, given with --allow-origin.
                status, headers, text = await post(session, server, body, {**json_type, "Origin": DASHBOARD})
                assert status == 200 and json.loads(text)["result"] == tx.txid.hex()
                assert headers["Access-Control-Allow-Origin"] == DASHBOARD
                # A program sends no Origin at all: it passes.
                status, headers, _ = await post(session, server, call_body("getbestblockhash"), json_type)
                assert status == 200 and "Access-Control-Allow-Origin" not in headers
                # Every route refuses a foreign Origin, not only /rpc.
                async with session.get(f"http://127.0.0.1:{port}/dashboard/config",
                                       headers={"Origin": "http://evil.example"}) as response:
                    assert response.status == 403
        finally:
            await server.stop()
    run(scenario())


def test_cors_only_for_allowed_origins_and_never_with_a_token(tmp_path):
    async def scenario():
        server = await start_node(tmp_path / "n", allowed_origins=[DASHBOARD + "/"])
        url = f"http://127.0.0.1:{server.port}/rpc"
        preflight = {"Origin": DASHBOARD, "Access-Control-Request-Method": "POST"}
        try:
            async with aiohttp.ClientSession() as session:
                async with session.options(url, headers={
                        **preflight, "Access-Control-Request-Headers": "content-type"}) as response:
                    assert response.status == 204
                    assert response.headers["Access-Control-Allow-Origin"] == DASHBOARD
                    assert response.headers["Access-Control-Allow-Headers"] == "Content-Type"
                    assert response.headers["Access-Control-Allow-Methods"] == "POST"
                # A page asking to send the cookie is refused: admin methods stay out of reach.
                async with session.options(url, headers={
                        **preflight, "Access-Control-Request-Headers": "content-type,authorization"}) as response:
                    assert response.status == 403
                    assert "Access-Control-Allow-Origin" not in response.headers
                for origin in ("http://evil.example", f"http://127.0.0.1:{server.port}"):
                    async with session.options(url, headers={**preflight, "Origin": origin}) as response:
                        assert response.status == 403, origin
                # With a token (a program): the call runs, but no CORS header.
                headers = {"Content-Type": "application/json", "Origin": DASHBOARD,
                           "Authorization": f"Bearer {server.token}"}
                status, answer_headers, text = await post(session, server, call_body("listbanned"), headers)
                assert status == 200 and json.loads(text)["result"] == []
                assert "Access-Control-Allow-Origin" not in answer_headers
                # An admin method without the token: 401, no CORS either.
                del headers["Authorization"]
                status, answer_headers, _ = await post(session, server, call_body("stop"), headers)
                assert status == 401 and "Access-Control-Allow-Origin" not in answer_headers
                assert not server.stopped.is_set()
        finally:
            await server.stop()
    run(scenario())


def test_a_host_that_is_not_the_node_is_refused_on_every_route(tmp_path):
    async def scenario():
        server = await start_node(tmp_path / "n")
        port = server.port
        base = f"http://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession() as session:
                for host in ("evil.example", f"evil.example:{port}", f"127.0.0.1:{port + 1}",
                             f"127.0.0.1.evil.example:{port}", f"user@127.0.0.1:{port}", "", "127.0.0.1:x"):
                    headers = {"Host": host}
                    for method, path, data in (("GET", "/", None), ("GET", "/dashboard/config", None),
                                               ("GET", "/dashboard/app.js", None), ("GET", "/events", None),
                                               ("GET", "/p2p", None),
                                               ("POST", "/rpc", call_body("getblockchaininfo"))):
                        async with session.request(method, base + path, data=data, headers={
                                **headers, "Content-Type": "application/json"}) as response:
                            assert response.status == 403, (host, path)
                            text = await response.text()
                            assert "Host" in text and "getblockchaininfo" not in text, text
                for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}", f"[::1]:{port}"):
                    async with session.get(base + "/", headers={"Host": host}) as response:
                        assert response.status == 200, host
                    async with session.get(base + "/dashboard/config", headers={"Host": host}) as response:
                        assert (await response.json())["nodes"][0]["url"] == f"http://{host}"
                # HTTP/1.0 without any Host header.
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"GET / HTTP/1.0\r\n\r\n")
                assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"HTTP/1.0 403")
                writer.close()
        finally:
            await server.stop()
    run(scenario())


def test_peers_dialling_by_address_or_localhost_pass_the_host_check(tmp_path):
    async def scenario():
        a = await start_node(tmp_path / "a")
        b = await start_node(tmp_path / "b", peers=[f"127.0.0.1:{a.port}"])
        c = await start_node(tmp_path / "c", peers=[f"localhost:{a.port}"])
        def linked(server, addr: str) -> bool:
            return any(p["addr"] == addr and not p["inbound"] for p in rpc.call(server.node, "getpeerinfo", []))
        try:
            await wait_for(lambda: linked(b, f"127.0.0.1:{a.port}") and linked(c, f"localhost:{a.port}"),
                           10, "b and c connected to a")
        finally:
            for server in (c, b, a):
                await server.stop()
    run(scenario())


def test_websocket_upgrades_with_a_foreign_origin_are_refused(tmp_path):
    async def scenario():
        server = await start_node(tmp_path / "n", allowed_origins=[DASHBOARD])
        base = f"http://127.0.0.1:{server.port}"
        try:
            async with aiohttp.ClientSession() as session:
                for path in ("/events", "/p2p"):
                    for origin in ("http://evil.example", "null", "http://localhost:1"):
                        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                            await session.ws_connect(base + path, headers={"Origin": origin})
                        assert refused.value.status == 403, (path, origin)
                assert server.events.subscribers == 0 and not server.node.peers
                # No Origin (a program, another node), the node's own page, the allowed origin: pass.
                for origin in (None, base, DASHBOARD):
                    ws = await session.ws_connect(base + "/events", headers={"Origin": origin} if origin else {})
                    await wait_for(lambda: server.events.subscribers == 1, 5, "the subscription")
                    await ws.close()
                    await wait_for(lambda: server.events.subscribers == 0, 5, "the unsubscription")
                ws = await session.ws_connect(base + "/p2p")
                await wait_for(lambda: len(server.node.peers) == 1, 5, "the inbound peer")
                await ws.close()
        finally:
            await server.stop()
    run(scenario())


def test_policy_names_for_wildcard_and_specific_binds():
    wildcard = BrowserPolicy("0.0.0.0", 8331)
    for host in ("192.168.1.5:8331", "127.0.0.1:8331", "[2001:db8::1]:8331", "localhost:8331"):
        assert wildcard.host_refusal(host) is None, host
    for host in ("evil.example:8331", "192.168.1.5:8332", "192.168.1.5", "node.lan:8331"):
        assert wildcard.host_refusal(host), host
    public = BrowserPolicy("192.168.1.5", 80)
    assert public.host_refusal("192.168.1.5") is None and public.host_refusal("192.168.1.5:80") is None
    for host in ("localhost:80", "127.0.0.1:80", "10.0.0.1:80"):
        assert public.host_refusal(host), host
    loopback = BrowserPolicy("::1", 8331)
    assert loopback.host_refusal("[::1]:8331") is None and loopback.host_refusal("localhost:8331") is None
    # Same origin means the very Host of the request, not any name of the node.
    assert loopback.origin_refusal("http://localhost:8331", "localhost:8331") is None
    assert loopback.origin_refusal("http://localhost:8331", "[::1]:8331")
    assert normalize_origin("HTTP://LocalHost:80/") == "http://localhost"
    assert normalize_origin("https://[::1]:8443") == "https://[::1]:8443"
    for bad in ("127.0.0.1:8431", "http://127.0.0.1:8431/path", "ftp://x", "http://u@x", "http://x:99999"):
        with pytest.raises(ValueError):
            normalize_origin(bad)


def test_allow_origin_must_be_an_origin(tmp_path):
    result = toychain("node", "--datadir", tmp_path / "d", "--allow-origin", "http://127.0.0.1:8431/dashboard")
    assert result.returncode == 2
    assert "Invalid value for --allow-origin: 'http://127.0.0.1:8431/dashboard' is not an origin" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "d").exists()


def test_accepted_hosts_are_remembered_at_most_max_good_hosts_and_refused_ones_never():
    policy = BrowserPolicy("127.0.0.1", 8331)
    spellings = ["".join(c.upper() if (n >> i) & 1 else c for i, c in enumerate("localhost")) + ":8331"
                 for n in range(MAX_GOOD_HOSTS + 5)]
    assert all(policy.host_refusal(host) is None for host in spellings)
    assert policy._good_hosts == set(spellings[:MAX_GOOD_HOSTS])
    assert all(policy.host_refusal(host) is None for host in spellings)  # the rest are parsed each time
    for host in ("evil.example:8331", "127.0.0.1:8332", "127.0.0.1:8331/x"):
        assert policy.host_refusal(host) and policy.host_refusal(host), host
    assert len(policy._good_hosts) == MAX_GOOD_HOSTS and "evil.example:8331" not in policy._good_hosts
