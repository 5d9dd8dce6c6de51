"""Any body at all to ``POST /rpc`` gets a JSON-RPC answer (node/jsonrpc.py),
never an HTTP 500 or a traceback: hypothesis sends a real node (on its own
loop in a thread, tests/nodes.py) arbitrary bytes, arbitrary JSON values,
requests whose id, method or params have the wrong types, batches of junk,
deep nesting and non-UTF-8, and checks each answer's shape and code against
what JSON-RPC 2.0 says it must be.
"""

import http.client
import json
import math

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from node import jsonrpc, rpc

from .nodes import NodeThread

PUBLIC = sorted(set(rpc.METHODS) - rpc.ADMIN)
# What a well-formed call of a real method may answer with junk params: bad parameter,
# bad address, bad encoding, rejected, already in chain, unknown (-5).
METHOD_ERRORS = {-8, -5, -22, -25, -26, -27}
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    with NodeThread(tmp_path_factory.mktemp("envelope") / "n") as node:
        node.rpc_connection = http.client.HTTPConnection("127.0.0.1", node.port, timeout=30)
        yield node


def post(node, body: bytes) -> tuple[int, object]:
    """(HTTP status, the decoded reply); the reply must be JSON."""
    connection = node.rpc_connection
    try:
        connection.request("POST", "/rpc", body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
    except (http.client.HTTPException, ConnectionError):
        connection.close()  # the node closed an idle keep-alive connection: open another
        connection.request("POST", "/rpc", body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
    raw = response.read()
    assert response.status != 500, raw
    return response.status, json.loads(raw)


def expected(request) -> set[int] | None:
    """The error codes JSON-RPC allows for one request (None: a result is fine too)."""
    if not isinstance(request, dict):
        return {jsonrpc.INVALID_REQUEST}
    request_id = request.get("id")
    if request_id is not None and not isinstance(request_id, (str, int, float)) or isinstance(request_id, bool) \
            or isinstance(request_id, float) and not math.isfinite(request_id):
        return {jsonrpc.INVALID_REQUEST}
    method = request.get("method")
    if not isinstance(method, str):
        return {jsonrpc.INVALID_REQUEST}
    if method not in rpc.METHODS:
        return {-32601}
    return None


def check_reply(reply, request) -> None:
    assert isinstance(reply, dict) and reply["jsonrpc"] == "2.0", reply
    assert ("result" in reply) != ("error" in reply), reply
    codes = expected(request)
    if codes is None:
        if "error" in reply:
            assert reply["error"]["code"] in METHOD_ERRORS, (request, reply)
        assert reply["id"] == request.get("id")
        return
    assert "error" in reply and reply["error"]["code"] in codes, (request, reply)
    assert isinstance(reply["error"]["message"], str) and reply["error"]["message"]


def check(node, body) -> None:
    """Send ``body`` (a JSON value, encoded as it is) and check the answer."""
    status, reply = post(node, json.dumps(body).encode())
    requests = body if isinstance(body, list) else [body]
    if any(isinstance(r, dict) and isinstance(r.get("method"), str) and r["method"] in rpc.ADMIN
           for r in requests):
        assert status == 401 and reply["error"]["code"] == jsonrpc.INVALID_REQUEST
        return
    assert status == 200
    if isinstance(body, list):
        if not 1 <= len(body) <= jsonrpc.MAX_BATCH:
            assert reply["error"]["code"] == jsonrpc.INVALID_REQUEST
            return
        assert isinstance(reply, list) and len(reply) == len(body)
        for one, request in zip(reply, body):
            check_reply(one, request)
    else:
        check_reply(reply, body)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=30)
ids = json_values
params = st.lists(json_values, max_size=5) | json_values
requests = st.fixed_dictionaries(
    {"method": st.sampled_from(PUBLIC) | json_values},
    optional={"jsonrpc": st.just("2.0") | json_values, "id": ids, "params": params})


@FUZZ
@given(st.binary(max_size=300))
def test_arbitrary_bytes(node, body):
    status, reply = post(node, body)
    assert status == 200
    try:
        value = json.loads(body.decode("utf-8"), parse_constant=lambda c: 1 / 0)
    except (ValueError, ZeroDivisionError, RecursionError):
        assert reply["error"]["code"] == jsonrpc.PARSE_ERROR and reply["id"] is None
        return
    check(node, value)


@FUZZ
@given(json_values)
def test_arbitrary_json_values(node, value):
    check(node, value)


@FUZZ
@given(requests)
def test_requests_with_wrong_types(node, request):
    check(node, request)


@settings(FUZZ, max_examples=150)  # each example is a whole batch: generating it is the slow part
@given(st.lists(requests | json_values, max_size=30))
def test_batches_of_junk(node, batch):
    check(node, batch)


@pytest.mark.parametrize("depth", [10, 500, 999, 1000, 5000, 200_000])
def test_deep_nesting(node, depth):
    for body in ("[" * depth + "]" * depth,
                 '{"a":' * depth + "1" + "}" * depth,
                 '{"jsonrpc":"2.0","id":1,"method":"getblockhash","params":' + "[" * depth + "]" * depth + "}",
                 '{"jsonrpc":"2.0","id":' + "[" * depth + "]" * depth + ',"method":"getbestblockhash"}'):
        status, reply = post(node, body.encode())
        assert status == 200
        replies = reply if isinstance(reply, list) else [reply]
        codes = {r["error"]["code"] for r in replies}
        assert codes <= {jsonrpc.PARSE_ERROR, jsonrpc.INVALID_REQUEST, -8}, (depth, body[:60], reply)


def test_the_bodies_that_gave_http_500(node):
    """A method that is a list, deep nesting, NaN, a huge integer, a lone surrogate,
    a UTF-8 BOM, invalid UTF-8, a charset the server does not know."""
    cases = {
        b'{"jsonrpc":"2.0","id":1,"method":["getbestblockhash"]}': jsonrpc.INVALID_REQUEST,
        b"[" * 100_000 + b"]" * 100_000: jsonrpc.PARSE_ERROR,
        b'{"jsonrpc":"2.0","id":NaN,"method":"getbestblockhash"}': jsonrpc.PARSE_ERROR,
        b'{"jsonrpc":"2.0","id":1,"method":"getblockhash","params":[1e999]}': -8,
        b'{"jsonrpc":"2.0","id":1,"method":"getblockhash","params":[' + b"9" * 5000 + b"]}": jsonrpc.PARSE_ERROR,
        b'{"jsonrpc":"2.0","id":"\\ud800","method":"nope\\udfff"}': -32601,
        b'\xef\xbb\xbf{"jsonrpc":"2.0","id":1,"method":"getbestblockhash"}': jsonrpc.PARSE_ERROR,
        b'{"jsonrpc":"2.0","id":1,"method":"\xff\xfe"}': jsonrpc.PARSE_ERROR,
        b'{"jsonrpc":"2.0","id":true,"method":"getbestblockhash"}': jsonrpc.INVALID_REQUEST,
        b'{"jsonrpc":"2.0","id":{"a":1},"method":"getbestblockhash"}': jsonrpc.INVALID_REQUEST,
        b"": jsonrpc.PARSE_ERROR,
        b"[]": jsonrpc.INVALID_REQUEST,
    }
    for body, code in cases.items():
        status, reply = post(node, body)
        assert status == 200 and reply["error"]["code"] == code, (body[:80], reply)
    connection = node.rpc_connection
    connection.request("POST", "/rpc", body=b'{"jsonrpc":"2.0","id":1,"method":"getbestblockhash"}',
                       headers={"Content-Type": "application/json; charset=x-no-such-charset"})
    response = connection.getresponse()
    assert response.status == 200 and "result" in json.loads(response.read())


def test_batches_hold_1_to_1000_requests(node):
    call = {"jsonrpc": "2.0", "method": "getbestblockhash"}
    status, replies = post(node, json.dumps([{**call, "id": i} for i in range(1000)]).encode())
    assert status == 200 and [r["id"] for r in replies] == list(range(1000))
    assert all("result" in r for r in replies)
    for size in (0, 1001, 5000):
        status, reply = post(node, json.dumps([call] * size).encode())
        assert status == 200 and reply == {"jsonrpc": "2.0", "id": None, "error": {
            "code": -32600, "message": f"invalid request: a batch holds 1 to 1000 requests, this one {size}"}}


def test_a_body_with_too_many_values_is_refused_before_parsing(node):
    body = ("[" + ",".join(["0"] * 200_000) + "]").encode()
    status, reply = post(node, body)
    assert status == 200 and reply["error"]["code"] == jsonrpc.PARSE_ERROR
    assert reply["error"]["message"] == ("parse error: the body holds about 200,001 JSON values, "
                                         "more than the 100,000 a request may have")
    status, reply = post(node, b"x" * (8 * 1024 * 1024 + 1))
    assert status == 200 and reply["error"] == {
        "code": -32600, "message": "invalid request: the body is over 8,388,608 bytes"}
