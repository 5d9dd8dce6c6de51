"""``toychain devnet``: a local multi-node network in one command.

``up`` starts N child processes, ``python -m node --network devnet --mine``
(the ``toychain node`` command), on ports 8331, 8332, ... of 127.0.0.1, each
dialling every node started before it, each mining to one demo account
(node 1 to alice, node 2 to bob, ...). The devnet's easy proof of work and
the genesis coin of alice mean demo accounts have spendable coins within
seconds. The layout of the network is written to ``DIR/devnet.json``, so
running ``up`` again resumes the same chains, and ``status`` knows where to
look. Every demo account also gets a wallet file ``DIR/wallets/NAME.json``
(password ``demo``: these keys are public, never use them for anything real).

``up`` also serves the live dashboard (``dashboard_server.py``) on the
port of node 1 + 100 and prints its URL with the node table; it opens no
browser. The dashboard starts first, so that every node can be told its
origin (``--allow-origin``): a node runs RPC calls from no other web page.

Ctrl-C (or SIGTERM) stops every child with SIGTERM, which each node handles
as a clean shutdown; a child that does not stop in 15 s is killed.
"""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from chain.address import encode_address
from chain.amounts import format_toy
from chain.keys import DEMO_ACCOUNTS, demo_private_key, owner_of, public_key
from chain.params import DEVNET
from client.rpc import RpcClientError, rpc_call, rpc_pages
from display.output import console as make_console, json_option, table, wants_json
from wallet import keystore as ks

from .dashboard_server import DashboardServer

DEMO_PASSWORD = "demo"
FIRST_PORT = DEVNET.default_port
DASHBOARD_OFFSET = 100  # the dashboard's default port: node 1's port + 100
READY_SECONDS = 60


def demo_address(name: str) -> str:
    return encode_address(owner_of(public_key(demo_private_key(name))))


def _layout(directory: Path, count: int, first_port: int) -> list[dict]:
    config = directory / "devnet.json"
    if config.exists():
        nodes = json.loads(config.read_text())["nodes"]
        if len(nodes) != count:
            click.echo(f"{directory} holds a devnet of {len(nodes)} nodes; resuming it as it is", err=True)
        return nodes
    nodes = [{"name": f"node{i + 1}", "port": first_port + i,
              "datadir": str(directory / f"node{i + 1}"),
              "miner": DEMO_ACCOUNTS[i % (len(DEMO_ACCOUNTS) - 1)]}  # mallory never mines
             for i in range(count)]
    directory.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps({"network": "devnet", "nodes": nodes}, indent=2))
    return nodes


def _write_demo_wallets(directory: Path) -> None:
    wallets = directory / "wallets"
    for name in DEMO_ACCOUNTS:
        path = wallets / f"{name}.json"
        if not path.exists():
            store = ks.Keystore()
            store.import_demo(name)
            ks.save(store, path, DEMO_PASSWORD)


def _url(node: dict) -> str:
    return f"http://127.0.0.1:{node['port']}"


def _start(node: dict, others: list[dict], origins: list[str]) -> subprocess.Popen:
    Path(node["datadir"]).mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "node", "--network", "devnet",
               "--datadir", node["datadir"], "--port", str(node["port"]), "--mine",
               "--miner-address", demo_address(node["miner"])]
    for other in others:
        command += ["--peer", f"127.0.0.1:{other['port']}"]
    for origin in origins:  # the dashboard's page, on its own port, calls every node
        command += ["--allow-origin", origin]
    log = open(Path(node["datadir"]) / "node.log", "ab")
    return subprocess.Popen(command, stdout=log, stderr=log, stdin=subprocess.DEVNULL)


def _balances(url: str) -> dict[str, dict]:
    rows = rpc_pages(url, "listunspent", [[demo_address(n) for n in DEMO_ACCOUNTS], 0])
    totals = {n: {"spendable": 0, "immature": 0, "pending": 0} for n in DEMO_ACCOUNTS}
    by_address = {demo_address(n): n for n in DEMO_ACCOUNTS}
    for row in rows:
        name = by_address[row["address"]]
        kind = "pending" if row["confirmations"] == 0 else "spendable" if row["mature"] else "immature"
        totals[name][kind] += row["amount"]
    return totals


def _stop_all(children: list[subprocess.Popen]) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for child in children:
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _wait_ready(nodes: list[dict], children: list[subprocess.Popen]) -> None:
    """Until every RPC answers, every node is connected to all the others,
    and alice can spend (so a first send works and reaches every node)."""
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        for node, child in zip(nodes, children):
            if child.poll() is not None:
                raise click.ClickException(f"{node['name']} exited (code {child.returncode}); "
                                           f"see {node['datadir']}/node.log")
        try:
            infos = [rpc_call(_url(n), "getblockchaininfo", timeout=2) for n in nodes]
            peers = [len(rpc_call(_url(n), "getpeerinfo", timeout=2)) for n in nodes]
            if (min(peers) >= len(nodes) - 1 and min(i["height"] for i in infos) > 0
                    and _balances(_url(nodes[0]))["alice"]["spendable"] > 0):
                return
        except RpcClientError:
            pass
        time.sleep(0.2)
    raise click.ClickException(f"the devnet was not ready within {READY_SECONDS} s; see the node.log files")


def _watch(nodes: list[dict], children: list[subprocess.Popen], console: Console) -> None:
    """Keep running while any node is up, saying when one stops (a class can
    stop a node on purpose and watch the others carry on)."""
    reported: set[str] = set()
    while any(child.poll() is None for child in children):
        for node, child in zip(nodes, children):
            if child.poll() is not None and node["name"] not in reported:
                reported.add(node["name"])
                console.print(f"[yellow]{node['name']} stopped (exit code {child.returncode}); the "
                              f"others keep running. Log: {escape(node['datadir'])}/node.log[/yellow]",
                              soft_wrap=True)
        time.sleep(0.5)


def _tables(nodes: list[dict]) -> list[Table]:
    network = table("node", "RPC URL", "P2P address", "height", "mines to", "data directory",
                    title="Toychain devnet")
    for node in nodes:
        try:
            height = str(rpc_call(_url(node), "getblockchaininfo", timeout=2)["height"])
        except RpcClientError:
            height = "down"
        network.add_row(node["name"], _url(node), f"127.0.0.1:{node['port']}", height, node["miner"],
                        escape(node["datadir"]))
    wallets = table("account", "address", "spendable", "immature", "pending",
                    title="Demo accounts (TOY)")
    for name, totals in _balances(_url(nodes[0])).items():
        wallets.add_row(name, demo_address(name), *(format_toy(totals[k]).removesuffix(" TOY")
                                                    for k in ("spendable", "immature", "pending")))
    return [network, wallets]


def _interrupt(signum, frame):
    raise KeyboardInterrupt


@click.group()
@json_option
def devnet():
    """A local network of mining nodes with funded demo accounts."""


@devnet.command()
@click.option("--nodes", "count", type=click.IntRange(1, 25), default=3, show_default=True)
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              default=Path("devnet"), show_default=True)
@click.option("--port", "first_port", type=click.IntRange(1024, 65000), default=FIRST_PORT,
              show_default=True, help="Port of node 1; node N gets PORT + N - 1 (new devnets only).")
@click.option("--dashboard-port", type=click.IntRange(0, 65535), default=None,
              help=f"Port of the live dashboard page (default: node 1's port + {DASHBOARD_OFFSET}; "
                   "0 = any free).")
@click.option("--no-dashboard", is_flag=True, help="Do not serve the dashboard page.")
def up(count, directory, first_port, dashboard_port, no_dashboard):
    """Start (or resume) the devnet and run until Ctrl-C."""
    if wants_json():
        raise click.UsageError("`devnet up` prints no JSON: `toychain devnet status --json` does")
    console = make_console()
    nodes = _layout(directory, count, first_port)
    _write_demo_wallets(directory)
    children = []
    dashboard = None
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        if not no_dashboard:  # first: its port is the origin the nodes must allow
            port = nodes[0]["port"] + DASHBOARD_OFFSET if dashboard_port is None else dashboard_port
            watched = [{"name": n["name"], "url": _url(n), "miner": n["miner"]} for n in nodes]
            dashboard = DashboardServer(watched, port=port)
            try:
                dashboard.start()
            except OSError as error:
                console.print(f"[yellow]No dashboard: cannot listen on port {port} ({error.strerror}); "
                              f"choose another with --dashboard-port[/yellow]", soft_wrap=True)
                dashboard = None
        origins = dashboard.origins if dashboard is not None else []
        for i, node in enumerate(nodes):
            children.append(_start(node, nodes[:i], origins))
        _wait_ready(nodes, children)
        for grid in _tables(nodes):
            console.print(grid)
        console.print(f"Demo wallet files: {directory}/wallets/NAME.json, password {DEMO_PASSWORD!r}",
                      soft_wrap=True, markup=False)
        if dashboard is not None:
            console.print(f"Dashboard (open it in a browser): {dashboard.url}", soft_wrap=True)
        console.print(f"Try: toychain wallet --wallet {directory}/wallets/alice.json --node "
                      f"{_url(nodes[0])} balance   (password: {DEMO_PASSWORD})",
                      soft_wrap=True, markup=False)
        console.print("Ctrl-C stops every node (the chains are kept in the directory).")
        _watch(nodes, children, console)
        raise click.ClickException("every node has stopped (see the node.log files)")
    except KeyboardInterrupt:
        console.print("Stopping the devnet ...")
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the shutdown short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if dashboard is not None:
            dashboard.stop()
        _stop_all(children)
    console.print("Stopped. Run `toychain devnet up` again to resume.")


@devnet.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              default=Path("devnet"), show_default=True)
@json_option
def status(directory):
    """Heights, tips, peers and mempools of every devnet node."""
    config = directory / "devnet.json"
    if not config.exists():
        raise click.ClickException(f"no devnet in {directory}: start one with `toychain devnet up`")
    rows = []
    for node in json.loads(config.read_text())["nodes"]:
        row = {"node": node["name"], "url": _url(node), "up": False}
        try:
            info = rpc_call(_url(node), "getblockchaininfo", timeout=2)
            row.update(up=True, height=info["height"], tip=info["best_block_hash"],
                       peers=len(rpc_call(_url(node), "getpeerinfo", timeout=2)),
                       mempool=rpc_call(_url(node), "getmempoolinfo", timeout=2)["size"])
        except RpcClientError:
            pass
        rows.append(row)
    if wants_json():
        click.echo(json.dumps(rows, indent=2))
        return
    nodes = table("node", "RPC URL", "height", "tip", "peers", "mempool")
    for row in rows:
        if row["up"]:
            nodes.add_row(row["node"], row["url"], str(row["height"]), row["tip"][:16] + "...",
                          str(row["peers"]), str(row["mempool"]))
        else:
            nodes.add_row(row["node"], row["url"], "down", "", "", "")
    make_console().print(nodes)
