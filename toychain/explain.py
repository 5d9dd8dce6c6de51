"""``toychain explain HEX|TXID``: every check a node runs on a transaction,
as a table (or ``--json``: the ``explaintransaction`` result as it came).

A TXID (64 hex digits: no transaction is 32 bytes long) is looked up with
``getrawtransaction``, in the node's mempool or chain, and the bytes found
are explained; the check then stops at "not already in the mempool" or "not
already confirmed", which is the truth about resending it. A transaction the
node refused recently is found in ``getrecentrejects``, whose entries carry
the refused bytes while the node still keeps them (``hex``: node/rejects.py
keeps the last megabyte); once they are gone the command says so, with the
node's reason, and asks for the hex (``toychain wallet send --explain`` shows
the trace of what it signs before sending it).

The exit status is 0 when the node explained the transaction, allowed or
not; 1 when it could not (node down, bad hex, unknown txid).
"""

import json
import os

import click

from chain.amounts import format_toy
from client.rpc import RpcClientError, rpc_call
from display.output import console, json_option, wants_json
from display.trace import print_trace

DEFAULT_NODE = "http://127.0.0.1:8331"
TXID_DIGITS = 64


def _hex_of(url: str, txid: str) -> str:
    """The bytes of ``txid`` from the node's mempool or chain, or its recent
    refusals; a clear error otherwise."""
    try:
        return rpc_call(url, "getrawtransaction", [txid])["hex"]
    except RpcClientError as error:
        if error.code != -5:
            raise
    refused = next((r for r in rpc_call(url, "getrecentrejects")
                    if r["kind"] == "tx" and r["id"] == txid.lower()), None)
    if refused is None:
        raise click.ClickException(f"no transaction {txid} in the node's mempool or chain, nor "
                                   f"among its recent refusals; give its hex instead")
    if "hex" in refused:
        return refused["hex"]
    raise click.ClickException(
        f"the node refused tx {txid} ({refused['reject_reason']}: {refused['message']}) and no "
        f"longer keeps its bytes (only the last refused ones): give the transaction's hex to see "
        f"every check (toychain wallet send --explain shows it before sending)")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("transaction", metavar="HEX|TXID")
@click.option("--node", "url", default=lambda: os.environ.get("TOYCHAIN_NODE", DEFAULT_NODE),
              show_default="$TOYCHAIN_NODE or " + DEFAULT_NODE, help="Node RPC URL.")
@json_option
def explain(transaction, url):
    """Show every check the node runs on a transaction, with the values it
    compared, in order, up to the first failure (explaintransaction)."""
    text = transaction.strip()
    try:
        raw = _hex_of(url, text) if len(text) == TXID_DIGITS else text
        explained = rpc_call(url, "explaintransaction", [raw])
    except RpcClientError as error:
        raise click.ClickException(str(error)) from None
    if wants_json():
        click.echo(json.dumps(explained, indent=2))
    else:
        print_trace(console(highlight=False), explained, format_toy)
