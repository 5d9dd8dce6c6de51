"""The devnet's dashboard server: the live dashboard for the whole network,
on its own port, with the "try it" panel a node never serves.

``toychain devnet up`` runs a ``DashboardServer``. It serves the same page
as every node (``node/page.py``), configured to watch every devnet node,
and adds two things a node never does:

* ``POST /api/send {from, to, amount[, node]}`` signs a payment with a
  *demo* account's well-known key (server side, never in the browser) and
  submits it with ``sendrawtransaction``, with the node's trace of it
  (``explaintransaction``, run just before sending, as ``toychain wallet
  send --explain`` does) in the answer. An amount above the balance is
  sent anyway (``wallet.builder.build_overspend``): the tx spends the
  sender's coins (its 1,000 largest at most) and pays the whole amount, so
  the class sees a node refuse it with ``bad-txns-in-belowout`` and its
  numbers;
* ``POST /api/demo/NAME`` runs ``toychain demo NAME --json --node URL ...``
  (every devnet node, no cookie: the demo waits for the network's own
  miners) and streams its narration (JSON lines, ``demos/narrator.py``).

Both answer only requests from the page's own origin on a loopback host,
so no other web page open in the browser can send or run anything. The
page on this port calls the nodes on theirs, which allow its origin because
``devnet up`` starts them with ``--allow-origin`` (``node/http_guard.py``).
"""

import asyncio
import contextlib
import json
import sys
import threading
from urllib.parse import urlsplit

from aiohttp import web

from chain.address import AddressError, decode_address, encode_address
from chain.amounts import format_toy, parse_toy
from chain.keys import DEMO_ACCOUNTS, demo_private_key, owner_of, public_key
from chain.params import NETWORKS
from chain.tx import Tx
from client.rpc import RpcClientError, rpc_call, rpc_pages
from demos.catalog import ORDER, unavailable
from node.http_guard import LOOPBACK_NAMES
from node.page import add_page_routes, demo_accounts
from wallet.builder import InsufficientFunds, build_overspend, build_payment
from wallet.client import spendable
from wallet.keystore import Keystore

FEE_RATE = 1  # units per byte: the nodes' minimum relay fee rate
MAX_DEMO_LINE = 64 * 1024


# -- the devnet's try-it panel: sending with demo keys ---------------------------------------------

class SendError(ValueError):
    """The request itself is wrong (unknown account, bad address or amount)."""


def _recipient(text: str) -> bytes:
    text = text.strip()
    if text.lower() in DEMO_ACCOUNTS:
        return owner_of(public_key(demo_private_key(text.lower())))
    try:
        return decode_address(text)
    except AddressError as error:
        raise SendError(f"recipient {text!r} is neither a demo account nor an address: {error}") from None


def build_send(url: str, sender: str, to_owner: bytes, amount: int) -> tuple[Tx, bool]:
    """A signed tx from demo account ``sender``, built from the coins that the
    node at ``url`` lists: a normal payment with change when the coins cover
    amount + fee, else (``overspend`` True) a tx that spends the sender's coins
    and pays the whole amount anyway, which every node must refuse."""
    magic = NETWORKS[rpc_call(url, "getblockchaininfo")["network"]].magic
    store = Keystore()
    key = store.import_demo(sender)
    usable, immature = spendable(rpc_pages(url, "listunspent", [[key.address], 0]))
    try:
        payment = build_payment(store, usable, to_owner, amount, FEE_RATE, key.owner, magic, immature)
        return payment.tx, False
    except InsufficientFunds:
        pass  # a wallet stops here; the page sends it anyway, so the class sees a node refuse it
    return build_overspend(store, usable, to_owner, amount, magic)[0], True


def send(nodes: list[dict], request: dict) -> dict:
    """Handle ``/api/send``: build, sign, explain and submit; return the node's answer."""
    if not isinstance(request, dict):
        raise SendError("send a JSON object {from, to, amount}")
    sender = str(request.get("from", "")).strip().lower()
    if sender not in DEMO_ACCOUNTS:
        raise SendError(f"sender {sender!r} is not one of the demo accounts {', '.join(DEMO_ACCOUNTS)}")
    to_owner = _recipient(str(request.get("to", "")))
    try:
        amount = parse_toy(str(request.get("amount", "")))
    except ValueError as error:
        raise SendError(str(error)) from None
    if amount <= 0:
        raise SendError("the amount must be more than 0")
    by_name = {node["name"]: node for node in nodes}
    name = str(request.get("node") or next((n["name"] for n in nodes if n.get("miner") == sender),
                                           nodes[0]["name"]))
    if name not in by_name:
        raise SendError(f"no node named {name!r}")
    url = by_name[name]["url"]
    answer = {"node": name, "from": sender, "to": encode_address(to_owner), "amount": amount,
              "amount_toy": format_toy(amount)}
    try:  # the node unreachable, or its refusal: either way the page shows its sentence
        tx, overspend = build_send(url, sender, to_owner, amount)
        answer.update(txid=tx.txid.hex(), overspend=overspend, inputs=len(tx.inputs))
        answer["explain"] = rpc_call(url, "explaintransaction", [tx.raw.hex()])  # before: after, it is known
        rpc_call(url, "sendrawtransaction", [tx.raw.hex()])
    except RpcClientError as error:
        return {**answer, "ok": False, "message": str(error), "reject_reason": error.reject_reason}
    return {**answer, "ok": True}


def demo_catalog(node_count: int) -> list[dict]:
    """The scenarios of ``toychain demo``, each with why it cannot run on a
    running network of ``node_count`` nodes (null when it can)."""
    return [{"name": m.NAME, "title": m.TITLE, "summary": m.SUMMARY,
             "unavailable": unavailable(m, node_count, own=False)} for m in ORDER]


def _same_origin(request: web.Request) -> bool:
    """A request from this page itself: a loopback Host (no DNS rebinding) and
    no Origin, or this very origin (no other site's page)."""
    host = urlsplit(f"http://{request.host}").hostname
    origin = request.headers.get("Origin")
    return host in LOOPBACK_NAMES and origin in (None, f"http://{request.host}")


# -- the devnet's dashboard server -------------------------------------------------------------------

class DashboardServer:
    """The devnet's page and API on its own port, run by an asyncio loop in a
    background thread so that ``devnet up`` keeps its simple main loop."""

    def __init__(self, nodes: list[dict], host: str = "127.0.0.1", port: int = 0):
        self.nodes = nodes  # [{name, url, miner}]
        self.host = host
        self.port = port
        self.demos = demo_catalog(len(nodes))
        self._demo_lock: asyncio.Lock | None = None
        self._children: set[asyncio.subprocess.Process] = set()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="dashboard", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    @property
    def origins(self) -> list[str]:
        """The page's origins as a browser sends them, for the nodes' ``--allow-origin``."""
        return [f"http://{host}:{self.port}" for host in (self.host, "localhost")]

    def start(self) -> str:
        """Start serving; raises OSError when the port is taken."""
        self.thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)
        except BaseException:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            self.loop.close()
            raise
        return self.url

    def stop(self) -> None:
        if not self.thread.is_alive():
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(20)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()

    async def _start(self) -> None:
        self._demo_lock = asyncio.Lock()
        app = web.Application(client_max_size=64 * 1024)
        add_page_routes(app, self._config)
        app.router.add_post("/api/send", self._send)
        app.router.add_post("/api/demo/{name}", self._demo)
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.host, self.port)
        try:
            await site.start()
        except OSError:
            await self.runner.cleanup()
            raise
        self.port = site._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        for child in list(self._children):
            with contextlib.suppress(ProcessLookupError):
                child.terminate()
        await self.runner.cleanup()

    def _config(self, request: web.Request) -> dict:
        return {"title": "Toychain devnet",
                "nodes": [{"name": n["name"], "url": n["url"], "miner": n.get("miner")} for n in self.nodes],
                "accounts": list(demo_accounts()), "try_it": True, "demos": self.demos}

    async def _send(self, request: web.Request) -> web.Response:
        if not _same_origin(request):
            return web.json_response({"ok": False, "message": "only the dashboard page may send"}, status=403)
        try:
            body = json.loads(await request.text())
            answer = await asyncio.to_thread(send, self.nodes, body)
        except ValueError as error:  # SendError, or a body that is not JSON
            return web.json_response({"ok": False, "message": str(error)}, status=400)
        return web.json_response(answer)

    async def _demo(self, request: web.Request) -> web.StreamResponse:
        if not _same_origin(request):
            return web.json_response({"message": "only the dashboard page may run demos"}, status=403)
        name = request.match_info["name"]
        runnable = [d["name"] for d in self.demos if d["unavailable"] is None]
        if name not in runnable:
            return web.json_response({"message": f"no demo {name!r} to run here; there are: "
                                                 f"{', '.join(runnable)}"}, status=404)
        if self._demo_lock.locked():
            return web.json_response({"message": "a demo is already running"}, status=409)
        async with self._demo_lock:
            response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson",
                                                   "Cache-Control": "no-store"})
            await response.prepare(request)
            command = [sys.executable, "-m", "toychain", "demo", name, "--json"]
            for node in self.nodes:
                command += ["--node", node["url"]]
            child = await asyncio.create_subprocess_exec(
                *command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT, limit=MAX_DEMO_LINE)
            self._children.add(child)
            try:
                while line := await child.stdout.readline():
                    await response.write(_demo_line(line) + b"\n")
                code = await child.wait()
                await response.write(json.dumps({"exit": code}).encode() + b"\n")
            except (ConnectionError, ValueError):  # the page went away, or a line too long
                with contextlib.suppress(ProcessLookupError):
                    child.terminate()
                await child.wait()
            finally:
                self._children.discard(child)
            with contextlib.suppress(ConnectionError):
                await response.write_eof()
            return response


def _demo_line(raw: bytes) -> bytes:
    """One line of a demo's output as one JSON object (plain text is wrapped)."""
    text = raw.decode("utf-8", "replace").rstrip("\r\n")
    with contextlib.suppress(ValueError):
        if isinstance(json.loads(text), dict):
            return text.encode()
    return json.dumps({"text": text}).encode()
