"""The ``toychain`` command: one group over every layer. ``toychain node``
runs a node (``node/cli.py``), ``toychain rpc`` calls any RPC method and
prints the JSON result (``--json``, a habit from the other commands, is
accepted and changes nothing), and ``wallet``, ``demo`` and ``devnet`` come
from their packages.

Bad input gets a one-line error and a non-zero exit, never a traceback.
"""

import json
from pathlib import Path

import click

from chain.params import NETWORKS
from client.rpc import RpcClientError, rpc_call
from demos.cli import demo
from node.cli import node
from wallet.cli import wallet

from .devnet import devnet


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """Toychain: a teaching blockchain node."""


def _parse_arg(text: str):
    """JSON if it parses (numbers, true, lists), else the plain string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


@main.command(context_settings={"ignore_unknown_options": True})
@click.option("--node", "url", default=None, help="Node URL (default http://127.0.0.1:<regtest port>).")
@click.option("--datadir", type=click.Path(file_okay=False), help="Read the admin cookie from here.")
@click.option("--json", is_flag=True, expose_value=False,
              help="Accepted anywhere, never sent to the node as a parameter: the result is JSON anyway.")
@click.argument("method")
@click.argument("args", nargs=-1)
def rpc(url, datadir, method, args):
    """Call METHOD with ARGS (each parsed as JSON if it can be) and print the result."""
    url = url or f"http://127.0.0.1:{NETWORKS['regtest'].default_port}"
    token = None
    if datadir:
        try:
            token = (Path(datadir) / ".cookie").read_text().strip()
        except OSError as error:
            raise click.ClickException(f"cannot read the cookie in {datadir}: {error}") from None
    try:
        result = rpc_call(url, method, [_parse_arg(a) for a in args], token)
    except RpcClientError as error:
        raise click.ClickException(str(error)) from None
    click.echo(json.dumps(result, indent=2))


main.add_command(node)
main.add_command(wallet)
main.add_command(devnet)
main.add_command(demo)
