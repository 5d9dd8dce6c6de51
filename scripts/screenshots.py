#!/usr/bin/env python3
"""Screenshots of the live dashboard for the README, from a real devnet.

    .venv/bin/python scripts/screenshots.py [--out docs/images]

Starts ``toychain devnet up`` (3 nodes, a temporary directory, free ports),
opens its dashboard in headless Chromium (1600 x 900, a projector's 16:9) and
drives it as a teacher would: payments and an overspend from the "try it"
panel, two demos, a refusal opened to its trace, and a fork. For the fork,
node 3 is cut from the others (``disconnectnode``, with the cookies), node 1
and node 3 each mine a block on their own side (``generatetoaddress``), and
node 3 joins again (``addnode``): the network holds two branches until the
next block at the latest, and one side reorganises: the block tree draws
the stale branch and the reorg. Then it saves:

* ``dashboard-network-blocks.png``  the network and the block tree
* ``dashboard-transactions.png``    transactions travelling, pending and confirmed
* ``dashboard-refusals.png``        the refusal feed
* ``dashboard-trace.png``           a refusal clicked: the node's whole check of that tx
* ``dashboard-try-it.png``          the try-it panel after an overspend and a demo
"""

import argparse
import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from client.rpc import RpcClientError, rpc_call  # noqa: E402
from tests.test_dashboard import CHROMIUM, CHROMIUM_ARGS, DASHBOARD  # noqa: E402
from tests.test_dashboard import send_from_panel as send  # noqa: E402
from tests.test_devnet import free_base_port, wait_until  # noqa: E402
from toychain.devnet import demo_address  # noqa: E402

TOYCHAIN = str(Path(sys.executable).parent / "toychain")
MS = 1000


def height(url: str) -> int:
    return rpc_call(url, "getblockchaininfo")["height"]


def run_demo(page, name: str) -> None:
    page.click(f'#demo-buttons button[data-demo="{name}"]')
    expect(page.locator("#demo-log li").last).to_have_text(re.compile("Demo finished|stopped"),
                                                           timeout=180 * MS)


def stable_box(page, selector: str) -> dict:
    """The element's box once a re-render no longer moves it."""
    boxes = [None]

    def settled():
        boxes.append(page.locator(selector).bounding_box())
        time.sleep(0.5)
        return boxes[-1] == boxes[-2]
    wait_until(settled, 30, f"{selector} to settle")
    return boxes[-1]


def fork(directory: Path, urls: list[str]) -> None:
    """Split node 3 from the others, have node 1 and node 3 each mine a block
    on its own side, then join them again: two branches from one tip, and
    (at the latest with the next block) a reorg on one side."""
    tokens = [(directory / f"node{i}" / ".cookie").read_text().strip() for i in (1, 2, 3)]
    listen = [rpc_call(url, "getnetworkinfo")["listen"] for url in urls]
    for peer in rpc_call(urls[2], "getpeerinfo"):
        with contextlib.suppress(RpcClientError):  # gone meanwhile
            rpc_call(urls[2], "disconnectnode", [peer["addr"]], tokens[2])
    for url, token in zip(urls[:2], tokens[:2]):
        with contextlib.suppress(RpcClientError):  # the link was already cut from the other end
            rpc_call(url, "disconnectnode", [listen[2]], token)
    wait_until(lambda: not rpc_call(urls[2], "getpeerinfo"), 30, "node 3 alone")
    for url, token, account in ((urls[0], tokens[0], "dave"), (urls[2], tokens[2], "erin")):
        rpc_call(url, "generatetoaddress", [1, demo_address(account)], token, timeout=120)
    for addr in listen[:2]:
        rpc_call(urls[2], "addnode", [addr, "onetry"], tokens[2])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="toychain-screenshots-"))
    base = free_base_port()
    urls = [f"http://127.0.0.1:{base + i}" for i in range(3)]
    log = open(tmp / "devnet.log", "w")
    devnet = subprocess.Popen(
        [TOYCHAIN, "devnet", "up", "--nodes", "3", "--dir", str(tmp / "devnet"), "--port", str(base),
         "--dashboard-port", "0"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        env={**os.environ, "COLUMNS": "200"})
    try:
        wait_until(lambda: "Ctrl-C stops" in (tmp / "devnet.log").read_text(), 90, "the devnet")
        output = (tmp / "devnet.log").read_text()
        url = DASHBOARD.search(output).group(1)
        print(f"devnet up, dashboard at {url}")
        # let the early burst of easy blocks settle into the devnet's pace
        wait_until(lambda: height(urls[0]) >= 50, 120, "height 50")

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1600, "height": 900})
            page.goto(url + "#try")
            expect(page.locator("#summary")).to_contain_text("3 of 3 nodes up", timeout=30 * MS)

            first = send(page, "alice", "bob", "1.5")
            row = page.locator(f'#tx-table tr[data-txid="{first["txid"]}"]')
            expect(row).to_have_attribute("data-status", "confirmed", timeout=60 * MS)
            for args_ in (("alice", "erin", "3"), ("bob", "carol", "20")):
                send(page, *args_)
            erin = page.locator('#balance-table tr[data-account="erin"] .total')
            expect(erin).to_have_text("3.00000000", timeout=30 * MS)
            last = send(page, "carol", "dave", "2.25")
            page.goto(url + "#txs")
            row = page.locator(f'#tx-table tr[data-txid="{last["txid"]}"]')
            expect(row.locator('td[data-state="pool"]')).to_have_count(3, timeout=30 * MS)
            expect(row).to_contain_text("carol → dave: 2.25000000 TOY")
            page.screenshot(path=args.out / "dashboard-transactions.png")
            print("dashboard-transactions.png")

            page.goto(url + "#try")
            run_demo(page, "steal")
            run_demo(page, "overflow")
            refused = send(page, "erin", "dave", "1000")
            assert refused["reject_reason"] == "bad-txns-in-belowout", refused
            page.goto(url + "#refusals")
            expect(page.locator("#refusal-feed li").first).to_have_attribute("data-id", refused["txid"])
            page.screenshot(path=args.out / "dashboard-refusals.png")
            print("dashboard-refusals.png")
            page.locator(f'#refusal-feed li[data-id="{refused["txid"]}"]').click()
            expect(page.locator("#trace-dialog")).to_have_attribute("data-node", re.compile("node"), timeout=30 * MS)
            stable_box(page, "#trace-dialog")
            page.screenshot(path=args.out / "dashboard-trace.png")
            print("dashboard-trace.png")
            page.keyboard.press("Escape")

            page.goto(url + "#all")
            for attempt in range(5):  # on a loaded machine the page may miss a short-lived branch
                fork(tmp / "devnet", urls)
                try:
                    expect(page.locator("#block-tree .block.stale")).not_to_have_count(0, timeout=30 * MS)
                    break
                except AssertionError:
                    print(f"fork {attempt + 1}: no stale branch drawn; again")
            expect(page.locator("#reorgs li")).not_to_have_count(0, timeout=60 * MS)
            # a node busy mining in generatetoaddress answers nothing for a while: wait until all answer
            expect(page.locator("#summary")).to_contain_text("3 of 3 nodes up", timeout=30 * MS)
            bottom = stable_box(page, "#blocks")
            clip = {"x": 0, "y": 0, "width": 1600, "height": bottom["y"] + bottom["height"] + 16}
            page.screenshot(path=args.out / "dashboard-network-blocks.png", full_page=True, clip=clip)
            print("dashboard-network-blocks.png")

            page.goto(url + "#try")
            send(page, "erin", "dave", "1000")
            run_demo(page, "overspend")
            page.screenshot(path=args.out / "dashboard-try-it.png", full_page=True)
            print("dashboard-try-it.png")
            browser.close()
    finally:
        devnet.send_signal(signal.SIGINT)
        try:
            devnet.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(devnet.pid, signal.SIGKILL)
        log.close()
    print(f"saved in {args.out}")


if __name__ == "__main__":
    main()
