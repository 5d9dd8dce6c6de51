"""The live dashboard in a real browser: Playwright drives Debian's Chromium
(headless) against a live ``toychain devnet up`` of three mining nodes.

The page shows every node; a payment sent from its "try it" panel shows up
at every node, then confirmed; an overspend sent from the panel is refused by
the node (``bad-txns-in-belowout``, with its numbers), appears in the refusal
feed, and changes no balance; the panel shows the node's trace of what it
sent, and a refusal clicked in the feed opens the refusing node's trace; a demo button streams that demo's narration;
a node that stops is shown as down (last: it stops the devnet). A node's own
``/`` shows that node; nodes answer CORS only to the dashboard's origin (which
``devnet up`` gives them with ``--allow-origin``), refuse every other page, and
never answer CORS for admin methods. Every wait is on a condition with a deadline.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from chain.keys import DEMO_ACCOUNTS
from client.rpc import RpcClientError, rpc_call
from tests.helpers import wait_until
from tests.test_devnet import READY, TOYCHAIN, Devnet, env, free_base_port
from toychain.dashboard_server import demo_catalog
from toychain.devnet import demo_address

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
DASHBOARD = re.compile(r"Dashboard \(open it in a browser\): (http://\S+)")
SECONDS = 1000  # Playwright timeouts are in milliseconds


class DashboardDevnet(Devnet):
    """``toychain devnet up`` with its dashboard on a free port."""

    def __init__(self, directory: Path, base_port: int, log: Path):
        self.log_path = log
        self.log = open(log, "wb")
        self.process = subprocess.Popen(
            [TOYCHAIN, "devnet", "up", "--nodes", "3", "--dir", str(directory), "--port", str(base_port),
             "--dashboard-port", "0"],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env(),
            start_new_session=True)


@pytest.fixture(scope="module")
def devnet(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dashboard")
    base = free_base_port()
    net = DashboardDevnet(tmp / "devnet", base, tmp / "up.log")
    try:
        output = net.wait_ready()
        assert READY in output
        match = DASHBOARD.search(output)
        assert match, output
        net.url = match.group(1)
        net.directory = tmp / "devnet"
        net.node_urls = [f"http://127.0.0.1:{base + i}" for i in range(3)]
        yield net
    finally:
        net.clean_up()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A fresh tab; an uncaught error in the page's script fails the test."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    tab = context.new_page()
    errors = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    yield tab
    # a route handler still answering a request of this test must not fail the next one's set-up
    tab.unroute_all(behavior="ignoreErrors")
    context.close()
    assert errors == []


def coins_total(url: str, name: str) -> int:
    return sum(c["amount"] for c in rpc_call(url, "listunspent", [[demo_address(name)], 0]))


def node_card(page, name: str):
    return page.locator(f'#node-cards [data-node="{name}"]')


def send_from_panel(page, sender: str, to: str, amount: str) -> dict:
    page.select_option("#send-form [name=from]", sender)
    page.fill("#send-form [name=to]", to)
    page.fill("#send-form [name=amount]", amount)
    with page.expect_response("**/api/send") as answer:
        page.click("#send-form button[type=submit]")
    return answer.value.json()


def test_page_shows_every_node(devnet, page):
    page.goto(devnet.url)
    expect(page.locator("#summary")).to_contain_text("3 of 3 nodes up", timeout=20 * SECONDS)
    for i, name in enumerate(("node1", "node2", "node3")):
        card = node_card(page, name)
        expect(card).to_have_attribute("data-status", "up")
        expect(card).to_contain_text(f"127.0.0.1:{int(devnet.node_urls[i].rsplit(':', 1)[1])}")
        expect(card.locator(".height")).to_have_text(re.compile(r"^\d+$"))
        expect(page.locator(f'#net-graph .graph-node.up[data-node="{name}"]')).to_have_count(1)
        # each node's tip is marked in the block tree
        expect(page.locator(f'#block-tree .tip-tag[data-tip-of="{name}"]')).to_have_count(1)
    # node2 dialled node1, node3 dialled both: three connections
    expect(page.locator("#net-graph .graph-edge")).to_have_count(3, timeout=20 * SECONDS)
    expect(page.locator("#block-tree .block.active")).to_have_count(9, timeout=20 * SECONDS)
    block = page.locator("#block-tree .block.active").last
    assert re.fullmatch(r"[0-9a-f]{64}", block.get_attribute("data-hash"))
    assert re.search(r"#\d+.*(alice|bob|carol).*\d+ txs?", block.text_content())
    rows = page.locator("#balance-table tr.account")
    expect(rows).to_have_count(len(DEMO_ACCOUNTS))
    for name in DEMO_ACCOUNTS:
        expect(page.locator(f'#balance-table tr[data-account="{name}"] .total')).to_have_text(
            re.compile(r"^\d+\.\d{8}$"))  # a sum of coins: never negative
    expect(page.locator('#balance-table tr[data-account="alice"]')).to_contain_text("spendable")
    # clicking a balance shows its coins
    page.click('#balance-table tr[data-account="alice"]')
    expect(page.locator("#balance-table tr.coins")).to_contain_text("block reward")
    expect(page.locator("#try")).to_be_visible()


def test_a_node_serves_its_own_view(devnet, page):
    url = devnet.node_urls[1]
    page.goto(url + "/")
    expect(page.locator("#title")).to_have_text(f"Toychain node 127.0.0.1:{url.rsplit(':', 1)[1]}")
    expect(page.locator("#summary")).to_contain_text("1 of 1 node up", timeout=20 * SECONDS)
    card = node_card(page, "this node")
    expect(card).to_have_attribute("data-status", "up")
    height = rpc_call(url, "getblockchaininfo")["height"]
    wait_until(lambda: int(card.locator(".height").text_content()) >= height, 20, "the node's height")
    # its two peers, which this page does not watch, are drawn as plain addresses
    expect(page.locator("#net-graph .graph-node.external")).to_have_count(2, timeout=20 * SECONDS)
    expect(page.locator("#try")).to_be_hidden()
    assert page.request.post(url + "/api/send", data="{}").status == 404  # a node signs nothing


def test_a_send_from_the_panel_reaches_every_node_then_confirms(devnet, page):
    page.goto(devnet.url + "#try")
    expect(page.locator("#summary")).to_contain_text("3 of 3 nodes up", timeout=20 * SECONDS)
    answer = send_from_panel(page, "alice", "bob", "1.5")
    assert answer["ok"] is True, answer
    assert answer["amount"] == 150_000_000 and answer["to"] == demo_address("bob")
    txid = answer["txid"]
    result = page.locator("#send-result")
    expect(result).to_have_attribute("data-ok", "true")
    expect(result).to_have_attribute("data-txid", txid)
    expect(result).to_contain_text("node1 accepted alice → bob 1.50000000 TOY")
    # the trace of what it sent: the node's whole check, run just before sending
    assert answer["explain"]["txid"] == txid and answer["explain"]["allowed"] is True
    trace = page.locator("#send-trace .trace")
    expect(trace).to_have_attribute("data-txid", txid)
    expect(trace.locator("tbody tr")).to_have_count(len(answer["explain"]["steps"]))
    expect(trace.locator('tbody tr[data-ok="false"]')).to_have_count(0)
    expect(trace.locator(".verdict")).to_have_attribute("data-allowed", "true")
    expect(trace.locator(".verdict")).to_have_text(f"allowed, fee 0.{answer['explain']['fee']:08d} TOY")

    page.goto(devnet.url + "#txs")  # the same page, another view: the row is built from the nodes
    row = page.locator(f'#tx-table tr[data-txid="{txid}"]')
    expect(row).to_contain_text("alice → bob: 1.50000000 TOY", timeout=20 * SECONDS)
    for name in ("node1", "node2", "node3"):  # in its mempool, or already in a block of its chain
        expect(row.locator(f'td[data-node="{name}"]')).to_have_attribute(
            "data-state", re.compile("^(pool|conf)$"), timeout=30 * SECONDS)
    expect(row).to_have_attribute("data-status", "confirmed", timeout=60 * SECONDS)
    for name in ("node1", "node2", "node3"):
        expect(row.locator(f'td[data-node="{name}"]')).to_have_attribute("data-state", "conf",
                                                                         timeout=30 * SECONDS)
        expect(row.locator(f'td[data-node="{name}"]')).to_contain_text(re.compile(r"\d+ conf"))
    for url in devnet.node_urls:
        wait_until(lambda: rpc_call(url, "getrawtransaction", [txid])["confirmations"] >= 1, 30,
                   "the payment confirmed at every node")


def test_an_overspend_from_the_panel_is_refused_and_changes_no_balance(devnet, page):
    page.goto(devnet.url + "#all")
    expect(page.locator("#summary")).to_contain_text("3 of 3 nodes up", timeout=20 * SECONDS)
    # erin and dave do not mine: their balances move only with payments
    funded = send_from_panel(page, "alice", "erin", "3")
    assert funded["ok"] is True, funded
    erin = page.locator('#balance-table tr[data-account="erin"] .total')
    dave = page.locator('#balance-table tr[data-account="dave"] .total')
    expect(erin).to_have_text("3.00000000", timeout=20 * SECONDS)
    expect(dave).to_have_text("0.00000000")
    node1 = devnet.node_urls[0]
    assert (coins_total(node1, "erin"), coins_total(node1, "dave")) == (300_000_000, 0)

    answer = send_from_panel(page, "erin", "dave", "1000")
    assert answer["ok"] is False and answer["overspend"] is True, answer
    assert answer["reject_reason"] == "bad-txns-in-belowout"
    sentence = "inputs 3.00000000 TOY < outputs 1000.00000000 TOY"
    assert sentence in answer["message"]
    result = page.locator("#send-result")
    expect(result).to_have_attribute("data-ok", "false")
    expect(result).to_contain_text(
        f"node1 refused erin → dave 1000.00000000 TOY: bad-txns-in-belowout: {sentence}")

    # the refusal feed, newest first: the code, the sentence with its numbers, where it came from
    newest = page.locator("#refusal-feed li").first
    expect(newest).to_have_attribute("data-id", answer["txid"], timeout=20 * SECONDS)
    expect(newest).to_have_attribute("data-reason", "bad-txns-in-belowout")
    expect(newest.locator(".refusal-code")).to_have_text("bad-txns-in-belowout")
    expect(newest.locator(".refusal-message")).to_have_text(sentence)
    expect(newest.locator(".refusal-where")).to_contain_text("refused by node1, from an RPC client")

    # no node has the tx; after the next block the balances are what they were
    for url in devnet.node_urls:
        with pytest.raises(RpcClientError):
            rpc_call(url, "getrawtransaction", [answer["txid"]])
    height = rpc_call(devnet.node_urls[0], "getblockchaininfo")["height"]
    wait_until(lambda: rpc_call(devnet.node_urls[0], "getblockchaininfo")["height"] > height, 60,
               "another block")
    for url in devnet.node_urls:
        wait_until(lambda: (coins_total(url, "erin"), coins_total(url, "dave")) == (300_000_000, 0), 30,
                   "the same balances at every node")
    expect(erin).to_have_text("3.00000000")
    expect(dave).to_have_text("0.00000000")


def http(method: str, url: str, origin: str | None, body: dict | None = None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json", **({"Origin": origin} if origin else {})}
    request = urllib.request.Request(url, method=method, headers=headers,
                                     data=json.dumps(body).encode() if body else None)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers)


def test_nodes_let_only_the_dashboard_page_call_public_rpc(devnet):
    url = devnet.node_urls[0] + "/rpc"
    page_origin = devnet.url.rstrip("/")
    call = {"jsonrpc": "2.0", "id": 1, "method": "getbestblockhash"}
    for origin in (page_origin, page_origin.replace("127.0.0.1", "localhost")):  # devnet up allowed both
        status, headers = http("OPTIONS", url, origin)
        assert status == 204 and headers["Access-Control-Allow-Origin"] == origin
        assert headers["Access-Control-Allow-Headers"] == "Content-Type"  # never Authorization
        status, headers = http("POST", url, origin, call)
        assert status == 200 and headers["Access-Control-Allow-Origin"] == origin
    # Any other page, even one on another local port, is refused before anything runs.
    for origin in ("http://example.com", "http://127.0.0.1:1"):
        assert http("OPTIONS", url, origin)[0] == 403
        status, headers = http("POST", url, origin, call)
        assert status == 403 and "Access-Control-Allow-Origin" not in headers
        assert http("GET", devnet.node_urls[0] + "/events", origin)[0] == 403
    status, headers = http("POST", url, page_origin, {**call, "method": "stop"})  # admin: no cookie, no CORS
    assert status == 401 and "Access-Control-Allow-Origin" not in headers
    # the dashboard signs and runs demos only for its own page
    send = {"from": "alice", "to": "bob", "amount": "1"}
    assert http("POST", devnet.url + "api/send", "http://example.com", send)[0] == 403
    assert http("POST", devnet.url + "api/demo/overspend", "http://example.com")[0] == 403
    assert rpc_call(devnet.node_urls[0], "getblockchaininfo")["height"] > 0  # still up


def test_a_demo_button_streams_its_narration(devnet, page):
    page.goto(devnet.url + "#try")
    expect(page.locator("#summary")).to_contain_text("3 of 3 nodes up", timeout=20 * SECONDS)
    for demo in demo_catalog(3):  # one button per scenario; those that need their own devnet are off
        button = page.locator(f'#demo-buttons button[data-demo="{demo["name"]}"]')
        if demo["unavailable"] is None:
            expect(button).to_be_enabled()
        else:
            expect(button).to_be_disabled()
    page.click('#demo-buttons button[data-demo="overspend"]')
    log = page.locator("#demo-log")
    expect(log.locator('li[data-type="start"]')).to_contain_text("Overspend", timeout=20 * SECONDS)
    refused = log.locator('li[data-type="step"] .answer.refused')
    expect(refused).to_have_count(3, timeout=120 * SECONDS)  # node1, node2 and node3
    for i in range(3):
        expect(refused.nth(i)).to_contain_text(
            re.compile(r"refused bad-txns-in-belowout: inputs .* < outputs "))
    expect(log.locator('li[data-type="lesson"]')).to_have_class("lesson", timeout=60 * SECONDS)  # verified
    expect(log.locator("li").last).to_have_text("Demo finished.", timeout=20 * SECONDS)
    # the same refusal, in the feed: one row, refused by every node
    newest = page.locator("#refusal-feed li").first
    expect(newest).to_have_attribute("data-reason", "bad-txns-in-belowout")
    expect(newest.locator(".refusal-where")).to_contain_text(
        "refused by node1, node2, node3, from an RPC client")


HOSTILE = "<img src=x onerror=\"document.body.dataset.pwned=1\">"


def test_a_refusal_opens_the_nodes_whole_check(devnet, page):
    """The try-it panel shows the trace of the overspend it sent; clicking its
    refusal in the feed opens the refusing node's trace of the bytes it kept:
    every step, the failing one with its code and values, the verdict, and
    that it was run again against the node's current coins. Whatever the
    values (a hostile peer chooses the tx), they are shown as text."""
    page.goto(devnet.url + "#try")
    expect(page.locator("#summary")).to_contain_text("3 of 3 nodes up", timeout=20 * SECONDS)
    answer = send_from_panel(page, "alice", "carol", "1000000")
    assert answer["ok"] is False and answer["reject_reason"] == "bad-txns-in-belowout", answer
    explained = answer["explain"]
    assert explained["txid"] == answer["txid"] and explained["reject_reason"] == "bad-txns-in-belowout"
    sent = page.locator("#send-trace .trace")
    expect(sent).to_have_attribute("data-txid", answer["txid"])
    expect(sent.locator("tbody tr")).to_have_count(len(explained["steps"]))
    failing = sent.locator('tbody tr[data-ok="false"]')
    expect(failing).to_have_count(1)
    expect(failing).to_have_attribute("data-reason", "bad-txns-in-belowout")
    expect(failing).to_contain_text("inputs >= outputs: the overspend rule")
    expect(failing).to_contain_text("chain.tx_rules.check_tx_inputs")
    expect(failing).to_contain_text("total_out: 1000000.00000000 TOY")
    expect(sent.locator(".verdict")).to_have_attribute("data-allowed", "false")
    expect(sent.locator(".verdict code")).to_have_text("bad-txns-in-belowout")

    # The feed: the refusal opens the node's trace. Its explaintransaction answer
    # is given a hostile value on the way, which must stay text.
    def hostile(route):
        if route.request.method != "POST":
            route.continue_()
            return
        response = route.fetch()
        replies = response.json()
        calls = json.loads(route.request.post_data)
        for call, reply in zip(calls, replies):
            if call["method"] == "explaintransaction" and "result" in reply:
                reply["result"]["steps"][0]["values"]["note"] = HOSTILE
        route.fulfill(response=response, json=replies)
    page.route(f"{devnet.node_urls[0]}/rpc", hostile)
    page.goto(devnet.url + "#refusals")
    refusal = page.locator(f'#refusal-feed li[data-id="{answer["txid"]}"]')
    expect(refusal).to_have_attribute("data-kind", "tx", timeout=20 * SECONDS)
    refusal.click()
    dialog = page.locator("#trace-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_have_attribute("data-node", "node1", timeout=20 * SECONDS)
    expect(dialog).to_have_attribute("data-txid", answer["txid"])
    rows = dialog.locator("tbody tr")
    now = rpc_call(devnet.node_urls[0], "explaintransaction",
                   [next(r["hex"] for r in rpc_call(devnet.node_urls[0], "getrecentrejects")
                         if r["id"] == answer["txid"])])
    expect(rows).to_have_count(len(now["steps"]))
    for i, step in enumerate(now["steps"]):
        expect(rows.nth(i).locator(".rule")).to_have_text(step["rule"])
        expect(rows.nth(i).locator(".function")).to_have_text(step["function"])
        expect(rows.nth(i)).to_have_attribute("data-ok", "true" if step["ok"] else "false")
    last = rows.last
    expect(last).to_have_attribute("data-reason", "bad-txns-in-belowout")
    expect(last.locator(".step-code")).to_have_text("bad-txns-in-belowout")
    expect(last).to_contain_text("total_out: 1000000.00000000 TOY")
    expect(dialog.locator(".verdict code")).to_have_text("bad-txns-in-belowout")
    expect(dialog.locator(".trace-note")).to_contain_text("against its current coins")
    expect(rows.first).to_contain_text(HOSTILE)  # shown as text, never markup
    expect(dialog.locator("img")).to_have_count(0)
    assert page.evaluate("document.body.dataset.pwned") is None
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()


def test_a_stopped_node_is_shown_down(devnet, page):
    page.goto(devnet.url + "#network")
    expect(page.locator("#summary")).to_contain_text("3 of 3 nodes up", timeout=20 * SECONDS)
    expect(node_card(page, "node3")).to_have_attribute("data-status", "up")
    datadir = str(devnet.directory / "node3")
    pid = wait_until(lambda: node_pid(datadir), 10, "node3's process")
    os.kill(pid, signal.SIGTERM)
    expect(node_card(page, "node3")).to_have_attribute("data-status", "down", timeout=15 * SECONDS)
    expect(node_card(page, "node3").locator(".pill")).to_have_text("DOWN")
    expect(page.locator('#net-graph .graph-node.down[data-node="node3"]')).to_have_count(1)
    expect(page.locator("#summary")).not_to_contain_text("3 of 3 nodes up")


def node_pid(datadir: str) -> int | None:
    """The pid of the node process whose --datadir is ``datadir``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--datadir" in args and args[args.index(b"--datadir") + 1].decode() == datadir:
            return int(entry.name)
    return None
