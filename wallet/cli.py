"""``toychain wallet``: create keys, see balances, send coins.

Every command takes ``--json`` for scripts, before or after its name, and
prints tables for people that never cut an address or a txid
(``display/output.py``). Every failure (wrong password, mistyped address,
bad amount, insufficient funds, node down, node refusal) prints one clear
sentence and exits non-zero, with the keystore unchanged. ``send
--explain`` shows the node's whole check of the signed transaction
(``explaintransaction``, as a table from ``display/trace.py``) before asking
to send it.
"""

import json
import os
from pathlib import Path

import click

from chain.address import AddressError, decode_address, encode_address
from chain.amounts import format_toy, parse_toy
from chain.keys import DEMO_ACCOUNTS
from client.rpc import RpcClientError
from display.output import console, json_option, table, wants_json
from display.trace import print_trace

from . import keystore as ks
from .builder import InsufficientFunds, build_overspend, build_payment
from .client import NodeClient, spendable

DEFAULT_WALLET = Path.home() / ".toychain" / "wallet.json"
DEFAULT_NODE = "http://127.0.0.1:8331"
MAX_FEE_RATE = 1_000_000


class Context:
    def __init__(self, wallet: Path, node: str):
        self.path = wallet
        self.node = NodeClient(node)
        self.console = console()

    @property
    def as_json(self) -> bool:
        return wants_json()

    def password(self, confirm: bool = False) -> str:
        env = os.environ.get("TOYCHAIN_WALLET_PASSWORD")
        if env is not None:
            return env
        return click.prompt("Wallet password", hide_input=True, confirmation_prompt=confirm)

    def open(self) -> tuple[ks.Keystore, str]:
        password = self.password()
        return ks.load(self.path, password), password

    def say(self, text: str) -> None:
        """A sentence for people, printed whole (it holds addresses and txids)."""
        self.console.print(text, soft_wrap=True, markup=False, highlight=False)

    def explained(self, tx, explain: bool) -> dict | None:
        """With ``explain``: the node's whole check of ``tx``, printed as a table
        for people (with ``--json`` it goes into the command's JSON instead)."""
        if not explain:
            return None
        trace = self.node.explain(tx)
        if not self.as_json:
            print_trace(self.console, trace, format_toy, "what the node will check, step by step")
        return trace

    def sent(self, tx, trace: dict | None) -> str:
        """Send ``tx``; with ``--json`` and a trace, a refusal still prints the
        trace (``{"explain": ...}``) before the error."""
        try:
            return self.node.send(tx)
        except RpcClientError:
            if trace is not None and self.as_json:
                click.echo(json.dumps({"explain": trace}, indent=2))
            raise

    def emit(self, data, text) -> None:
        """``data`` as JSON with ``--json``, else ``text`` (a sentence or a table)."""
        if self.as_json:
            click.echo(json.dumps(data, indent=2))
        elif isinstance(text, str):
            self.say(text)
        else:
            self.console.print(text)


def fail_cleanly(function):
    """Turn every expected failure into one sentence and exit status 1."""
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except (ks.KeystoreError, InsufficientFunds, AddressError) as error:
            raise click.ClickException(str(error)) from None
        except RpcClientError as error:
            if error.reject_reason:
                raise click.ClickException(f"the node refused the transaction: {error}") from None
            raise click.ClickException(str(error)) from None
    wrapper.__name__ = function.__name__
    wrapper.__doc__ = function.__doc__
    return wrapper


def _override(attribute: str, convert):
    """A subcommand's ``--wallet`` or ``--node``: replaces what the group set."""
    def callback(ctx: click.Context, param: click.Parameter, value) -> None:
        if value is not None:
            setattr(ctx.find_object(Context), attribute, convert(value))
    return callback


def subcommand_options(function):
    """``--json``, ``--wallet`` and ``--node`` after the subcommand too
    (``toychain wallet balance --node URL --json``), as before it."""
    function = click.option("--node", default=None, expose_value=False, callback=_override("node", NodeClient),
                            help="Node RPC URL (also accepted before the subcommand).")(function)
    function = click.option("--wallet", type=click.Path(dir_okay=False, path_type=Path), default=None,
                            expose_value=False, callback=_override("path", Path),
                            help="Keystore file (also accepted before the subcommand).")(function)
    return json_option(function)


@click.group()
@click.option("--wallet", type=click.Path(dir_okay=False, path_type=Path),
              default=lambda: os.environ.get("TOYCHAIN_WALLET", str(DEFAULT_WALLET)),
              show_default="~/.toychain/wallet.json or $TOYCHAIN_WALLET", help="Keystore file.")
@click.option("--node", default=lambda: os.environ.get("TOYCHAIN_NODE", DEFAULT_NODE),
              show_default="$TOYCHAIN_NODE or " + DEFAULT_NODE, help="Node RPC URL.")
@json_option
@click.pass_context
def wallet(ctx, wallet, node):
    """Keys, balances and payments. The node never sees a private key."""
    ctx.obj = Context(Path(wallet), node)


@wallet.command()
@subcommand_options
@click.pass_obj
@fail_cleanly
def create(obj: Context):
    """Create an encrypted wallet with one new address."""
    if obj.path.exists():
        raise click.ClickException(f"{obj.path} already exists; refusing to overwrite it")
    store = ks.Keystore()
    key = store.new_key("address 1")
    ks.save(store, obj.path, obj.password(confirm=True))
    obj.emit({"wallet": str(obj.path), "address": key.address},
             f"Created {obj.path} (mode 0600). Your first address: {key.address}")


@wallet.command("import-demo")
@click.argument("name", type=click.Choice(DEMO_ACCOUNTS))
@subcommand_options
@click.pass_obj
@fail_cleanly
def import_demo(obj: Context, name):
    """Add a well-known demo account's key (for teaching only: everyone has
    it), creating the wallet if the file does not exist yet."""
    created = not obj.path.exists()
    if created:
        store, password = ks.Keystore(), obj.password(confirm=True)
    else:
        store, password = obj.open()
    key = store.import_demo(name)
    ks.save(store, obj.path, password)
    news = f"Created {obj.path} (mode 0600). " if created else ""
    obj.emit({"name": name, "address": key.address, "created": created},
             f"{news}Imported demo account {name}: {key.address}")


@wallet.command("new-address")
@click.option("--label", default="", help="A note for yourself.")
@subcommand_options
@click.pass_obj
@fail_cleanly
def new_address(obj: Context, label):
    """Make a fresh receiving address."""
    store, password = obj.open()
    key = store.new_key(label)
    ks.save(store, obj.path, password)
    obj.emit({"address": key.address, "label": key.label}, key.address)


@wallet.command()
@subcommand_options
@click.pass_obj
@fail_cleanly
def addresses(obj: Context):
    """List the wallet's addresses."""
    store, _ = obj.open()
    rows = [{"address": k.address, "label": k.label} for k in store.keys]
    grid = table("address", "label")
    for row in rows:
        grid.add_row(row["address"], row["label"])
    obj.emit(rows, grid)


def _balances(obj: Context, store: ks.Keystore) -> dict:
    coins = obj.node.coins([k.address for k in store.keys])
    confirmed = sum(c["amount"] for c in coins if c["confirmations"] > 0 and c["mature"])
    unconfirmed = sum(c["amount"] for c in coins if c["confirmations"] == 0)
    immature = sum(c["amount"] for c in coins if not c["mature"])
    return {"confirmed": confirmed, "unconfirmed": unconfirmed, "immature": immature,
            "total": confirmed + unconfirmed + immature}


@wallet.command()
@subcommand_options
@click.pass_obj
@fail_cleanly
def balance(obj: Context):
    """Confirmed, unconfirmed and immature balance: sums of coins, never negative."""
    store, _ = obj.open()
    totals = _balances(obj, store)
    grid = table("", "TOY", title="Balance (the sum of the coins you can unlock)")
    for name in ("confirmed", "unconfirmed", "immature", "total"):
        grid.add_row(name, format_toy(totals[name]).removesuffix(" TOY"))
    obj.emit(totals, grid)


def _amount(text: str) -> int:
    try:
        units = parse_toy(text)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="AMOUNT") from None
    if units <= 0:
        raise click.BadParameter(f"amount {text!r} must be more than zero", param_hint="AMOUNT")
    return units


@wallet.command(context_settings={"ignore_unknown_options": True})  # so "-1" is an AMOUNT
@click.argument("address")
@click.argument("amount")
@click.option("--fee-rate", type=click.IntRange(1, MAX_FEE_RATE), default=1, show_default=True,
              metavar="UNITS_PER_BYTE", help="Fee in base units per byte.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--explain", is_flag=True,
              help="Before asking to send, show every check the node will run on the signed "
                   "transaction and the values it compares (explaintransaction); with --json "
                   "the trace is in the output's \"explain\".")
@click.option("--overspend-anyway", is_flag=True,
              help="When your coins do not cover AMOUNT + fee, sign and send the payment anyway "
                   "(it spends your coins, the 1,000 largest at most, and pays all of AMOUNT), so "
                   "that the node judges it: watch it refuse (bad-txns-in-belowout). Without this "
                   "flag the wallet refuses before signing.")
@subcommand_options
@click.pass_obj
@fail_cleanly
def send(obj: Context, address, amount, fee_rate, yes, explain, overspend_anyway):
    """Pay AMOUNT TOY (for example 1.5) to ADDRESS."""
    to_owner = decode_address(address)
    units = _amount(amount)
    store, password = obj.open()
    net = obj.node.network()
    usable, immature = spendable(obj.node.coins([k.address for k in store.keys]))
    change_key = store.new_key("change")
    try:
        payment = build_payment(store, usable, to_owner, units, fee_rate, change_key.owner,
                                net.magic, immature)
    except InsufficientFunds as shortfall:
        if not overspend_anyway:
            raise
        _overspend(obj, store, usable, to_owner, units, net.magic, f"{shortfall}", yes, explain)
        return
    summary = (f"Pay {format_toy(payment.amount)} to {address}, fee {format_toy(payment.fee)}, "
               f"change {format_toy(payment.change)}")
    trace = obj.explained(payment.tx, explain)
    if not yes and not obj.as_json:
        click.confirm(summary + ". Send?", abort=True)
    original = obj.path.read_bytes()
    if payment.change:
        ks.save(store, obj.path, password)  # keep the change key before any coin goes to it
    try:
        txid = obj.sent(payment.tx, trace)
    except RpcClientError:
        ks.restore(obj.path, original)  # refused: leave the wallet exactly as it was
        raise
    result = {"txid": txid, "amount": payment.amount, "fee": payment.fee, "change": payment.change,
              "to": address}
    obj.emit(result if trace is None else {**result, "explain": trace}, f"{summary}.\nSent: txid {txid}")


def _overspend(obj: Context, store: ks.Keystore, usable, to_owner: bytes, units: int, magic: bytes,
               shortfall: str, yes: bool, explain: bool) -> None:
    """``send --overspend-anyway`` past the wallet's own refusal: sign a tx
    that pays all of ``units`` from the coins there are, and let the node
    judge it (its refusal is the error this command ends with; with
    ``explain``, its whole check is shown first)."""
    tx, coins = build_overspend(store, usable, to_owner, units, magic)
    have = sum(item.coin.amount for item in coins)
    address = encode_address(to_owner)
    summary = (f"The wallet alone would stop here: {shortfall}.\nSigning it anyway "
               f"(--overspend-anyway): {len(coins)} coins worth {format_toy(have)} pay "
               f"{format_toy(units)} to {address}, with no change; the node decides")
    if not obj.as_json and (yes or explain):
        obj.say(summary + ".")
    trace = obj.explained(tx, explain)
    if not obj.as_json and not yes:
        click.confirm("Send?" if explain else summary + ". Send?", abort=True)
    txid = obj.sent(tx, trace)  # the wallet file is untouched: no change key for an overspend
    result = {"txid": txid, "amount": units, "fee": have - units, "change": 0, "to": address}
    obj.emit(result if trace is None else {**result, "explain": trace},
             f"The node accepted it: txid {txid}")


@wallet.command()
@subcommand_options
@click.pass_obj
@fail_cleanly
def history(obj: Context):
    """Every transaction touching the wallet, oldest first, pending last."""
    store, _ = obj.open()
    rows = obj.node.history([k.address for k in store.keys])
    grid = table("txid", "height", "change")
    for row in rows:
        grid.add_row(row["txid"], "pending" if row["height"] is None else str(row["height"]),
                     format_toy(row["delta"]))
    obj.emit(rows, grid)


@wallet.command()
@subcommand_options
@click.pass_obj
@fail_cleanly
def utxos(obj: Context):
    """The coins the wallet holds (what a balance is made of)."""
    store, _ = obj.open()
    rows = obj.node.coins([k.address for k in store.keys])
    grid = table("txid:index", "amount", "address", "confirmations", "mature")
    for row in rows:
        grid.add_row(f"{row['txid']}:{row['index']}", format_toy(row["amount"]),
                     row["address"], str(row["confirmations"]), "yes" if row["mature"] else "no")
    obj.emit(rows, grid)
