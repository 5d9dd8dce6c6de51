"""The daemon's command line: ``toychain node`` (also ``python -m node``)
parses and checks its options, then runs one ``NodeServer`` until Ctrl-C,
SIGTERM or the ``stop`` RPC. The ``toychain`` command adds it to its group
(``toychain/cli.py``); devnets start their child nodes with ``python -m node``.

Bad input gets a one-line error and a non-zero exit, never a traceback.
"""

import asyncio
import logging
import sys
from pathlib import Path

import click

from chain.address import AddressError, decode_address
from chain.chainstate import WrongNetwork
from chain.params import NETWORKS


def _owner(address: str | None) -> bytes | None:
    if address is None:
        return None
    try:
        return decode_address(address)
    except AddressError as error:
        raise click.BadParameter(str(error), param_hint="--miner-address") from None


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--network", type=click.Choice(sorted(NETWORKS)), default="regtest", show_default=True)
@click.option("--datadir", type=click.Path(file_okay=False), required=True,
              help="Where the chain database and the RPC cookie live.")
@click.option("--port", type=click.IntRange(0, 65535), help="Default: the network's port (0 = any free).")
@click.option("--bind", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--peer", "peers", multiple=True, help="HOST:PORT to keep connected to (repeatable).")
@click.option("--mine", is_flag=True, help="Search proof of work continuously (devnet).")
@click.option("--automine", type=click.FloatRange(min=0.1), metavar="SECONDS",
              help="Regtest: mine a block every SECONDS when the mempool is not empty.")
@click.option("--miner-address", help="Address that block rewards go to (needed to mine).")
@click.option("--allow-origin", "origins", multiple=True, metavar="URL",
              help="A web page origin (http://HOST:PORT) that may call the public RPC and watch "
                   "/events, e.g. a dashboard on another port (repeatable). The node's own page "
                   "at / needs none.")
@click.option("--verbose", "-v", is_flag=True, help="Debug logging.")
def node(network, datadir, port, bind, peers, mine, automine, miner_address, origins, verbose):
    """Run a node until Ctrl-C (or SIGTERM, or the `stop` RPC)."""
    from .http_guard import normalize_origin
    from .messages import is_addr
    from .server import NodeServer
    for peer in peers:
        if not is_addr(peer):
            raise click.BadParameter(f"{peer!r} is not HOST:PORT", param_hint="--peer")
    for origin in origins:
        try:
            normalize_origin(origin)
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--allow-origin") from None
    owner = _owner(miner_address)
    if (mine or automine) and owner is None:
        raise click.UsageError("--mine and --automine need --miner-address")
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    server = NodeServer(NETWORKS[network], Path(datadir), bind, port, list(peers), mine,
                        automine, owner, allowed_origins=list(origins))
    try:
        asyncio.run(server.run_until_stopped())
    except OSError as error:
        raise click.ClickException(f"cannot start the node: {error}") from None
    except WrongNetwork as error:
        raise click.ClickException(
            f"cannot start the node: datadir {datadir} holds the chain of {error.stored}, not of "
            f"{error.wanted}; start it with its own --network, or use another --datadir") from None
