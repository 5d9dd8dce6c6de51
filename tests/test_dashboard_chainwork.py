"""The dashboard marks the best tip by chain work, as a node does, never by
height; a reorg is drawn from the node's own ``reorg`` event.

Two devnet node processes that do not know each other (no mining, no
peers), the devnet's dashboard server watching both, as ``toychain devnet
up`` starts them (the dashboard first, the nodes allowing its origin). The
chain is built here, deterministically (fixed times, so fixed nonces), and
fed over RPC ``submitblock``: 17 blocks both nodes share, then

* branch A, at node1: blocks 18 and 19 as fast as the first ones, so that
  devnet's retarget at height 20 (PROTOCOL.md section 6: every 20 blocks,
  clamped to 4x) makes blocks 20 and 21 four times harder: height 21;
* branch B, at node2: blocks 18 to 25 at a slow pace: the retarget cannot go
  easier than the limit, so all eight are easy: height 25, TALLER, and LESS
  work than A (8 easy blocks against 2 easy and 2 four times harder).

The page must draw A as the active chain and mark its tip best, B as a stale
branch. Then node2 is given A's blocks and reorganises: the page lists that
reorg as the node published it, the 8 blocks left and the 4 joined.
"""

import subprocess
import sys

import pytest
from playwright.sync_api import expect

from chain.params import DEVNET
from client.rpc import RpcClientError, rpc_call
from tests.helpers import Harness, wait_until
from tests.test_dashboard import SECONDS, browser, page  # noqa: F401  (fixtures)
from tests.test_devnet import free_base_port
from toychain.dashboard_server import DashboardServer

SHARED, FAST, SLOW = 17, 1, 60  # blocks on both branches; seconds between blocks of A and of B


def branches() -> tuple[list, list, list]:
    """(shared, A, B): blocks with valid proof of work; A has more work, B more height."""
    h = Harness(net=DEVNET)
    start = DEVNET.genesis.header.time

    def extend(parent, count, spacing):
        blocks = []
        for _ in range(count):
            block = h.block(parent=parent, time=parent.header.time + spacing)
            assert h.chain.process_block(block).status in ("connected", "side")
            parent = h.chain.index[block.hash]
            blocks.append(block)
        return blocks
    genesis = h.chain.index[DEVNET.genesis.hash]
    assert genesis.header.time == start
    shared = extend(genesis, SHARED, FAST)
    fork = h.chain.index[shared[-1].hash]
    a = extend(fork, 4, FAST)
    b = extend(fork, 8, SLOW)
    a_tip, b_tip = h.chain.index[a[-1].hash], h.chain.index[b[-1].hash]
    assert (a_tip.height, b_tip.height) == (21, 25)
    assert a[-1].header.bits != DEVNET.pow_limit_bits and b[-1].header.bits == DEVNET.pow_limit_bits
    assert a_tip.chainwork > b_tip.chainwork  # shorter, yet more work
    assert h.chain.tip is a_tip
    return shared, a, b


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory):
    """(dashboard URL, [node1 URL, node2 URL]): two devnet nodes, not connected, watched by one page."""
    tmp = tmp_path_factory.mktemp("chainwork")
    base = free_base_port(2)
    urls = [f"http://127.0.0.1:{base + i}" for i in range(2)]
    dashboard = DashboardServer([{"name": f"node{i + 1}", "url": url} for i, url in enumerate(urls)])
    dashboard.start()
    children = []
    try:
        for i, url in enumerate(urls):
            command = [sys.executable, "-m", "node", "--network", "devnet", "--datadir", str(tmp / f"node{i + 1}"),
                       "--port", str(base + i)]
            for origin in dashboard.origins:
                command += ["--allow-origin", origin]
            log = open(tmp / f"node{i + 1}.log", "wb")
            children.append(subprocess.Popen(command, stdout=log, stderr=log, stdin=subprocess.DEVNULL))
        for url in urls:
            wait_until(lambda: _answers(url), 30, f"the node at {url}")
        yield dashboard.url, urls
    finally:
        for child in children:
            child.terminate()
        for child in children:
            child.wait(20)
        dashboard.stop()


def _answers(url: str) -> bool:
    try:
        return rpc_call(url, "getblockchaininfo")["network"] == "devnet"
    except (RpcClientError, OSError):
        return False


def submit(url: str, blocks: list) -> None:
    for block in blocks:
        assert rpc_call(url, "submitblock", [block.raw.hex()]) is None


def test_the_best_tip_is_the_most_work_not_the_tallest_and_a_reorg_comes_from_the_node(two_nodes, page):
    dashboard, (node1, node2) = two_nodes
    shared, a, b = branches()
    submit(node1, shared + a)
    submit(node2, shared + b)
    info1, info2 = (rpc_call(url, "getblockchaininfo") for url in (node1, node2))
    assert (info1["height"], info2["height"]) == (21, 25)
    assert info1["chainwork"] > info2["chainwork"]  # 64 hex digits each: text order is number order

    page.goto(dashboard + "#all")
    expect(page.locator("#summary")).to_contain_text("2 of 2 nodes up", timeout=20 * SECONDS)
    tree = page.locator("#block-tree")
    a_tip = tree.locator(f'.block[data-hash="{a[-1].hash.hex()}"]')
    b_tip = tree.locator(f'.block[data-hash="{b[-1].hash.hex()}"]')
    expect(a_tip).to_have_class("block active", timeout=20 * SECONDS)
    expect(a_tip).to_have_attribute("data-best", "true")
    expect(a_tip.locator(".status")).to_have_text("best")
    expect(b_tip).to_have_class("block stale")
    expect(b_tip.locator(".status")).to_have_text("stale")
    expect(tree.locator(".block[data-best]")).to_have_count(1)
    for block in a:  # the whole heavier branch is the active chain; the taller one is stale
        expect(tree.locator(f'.block[data-hash="{block.hash.hex()}"]')).to_have_class("block active")
    for block in b:
        expect(tree.locator(f'.block[data-hash="{block.hash.hex()}"]')).to_have_class("block stale")
    expect(page.locator("#reorgs li")).to_have_count(0)

    # node2 learns branch A: one reorg, as the node published it
    submit(node2, a)
    assert rpc_call(node2, "getbestblockhash") == a[-1].hash.hex()
    reorg = page.locator('#reorgs li[data-node="node2"]')
    expect(reorg).to_have_count(1, timeout=20 * SECONDS)
    expect(reorg).to_have_attribute("data-fork", shared[-1].hash.hex())
    expect(reorg).to_contain_text("reorg at node2: left 8 blocks: #18 ")
    expect(reorg).to_contain_text(f"#25 {b[-1].hash.hex()[:10]}")
    expect(reorg).to_contain_text(f"joined the branch with more work, 4 blocks: #18 {a[0].hash.hex()[:10]}")
    expect(reorg).to_contain_text(f"#21 {a[-1].hash.hex()[:10]}")
    expect(tree.locator(f'.tip-tag[data-tip-of="node2"]')).to_have_count(1)
    expect(a_tip).to_have_attribute("data-best", "true")
    expect(b_tip).to_have_class("block stale")
