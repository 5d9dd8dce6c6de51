"""``toychain demo NAME``: run one demo (or ``all``) and narrate it.

Without ``--node`` or ``--devnet`` the demo starts its own 3-node devnet in
a temporary directory and stops it at the end (Ctrl-C included). With
``--node URL`` (repeatable) it uses those nodes instead; ``--datadir DIR``
gives the cookie of the ``--node`` at the same position, so the demo can
mine a block there when the network's own miners are slow to (or at once,
with ``--generate``); without cookies it waits for the network's miners.
``--devnet DIR`` takes the nodes, cookies and bank of a devnet started by
``toychain devnet up --dir DIR``.

The exit status is 0 when every claim of every demo run was verified on the
network, 1 otherwise (a refusal that did not happen, a timeout, a node down).
"""

import signal
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from chain.keys import DEMO_ACCOUNTS
from client.rpc import RpcClientError
from display.output import console, table

from .catalog import DEMOS, ORDER, unavailable
from .narrator import Narrator
from .world import DemoError, World, read_cookie, read_devnet


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def run_demos(world: World, modules, say: Narrator, single: bool) -> dict[str, dict]:
    """Run each demo; {name: outcome}. A demo that cannot run here is skipped
    (or, asked for alone, is an error); a demo that fails says why and the
    others still run."""
    results = {}
    for module in modules:
        reason = unavailable(module, len(world.nodes), world.own)
        if reason is not None:
            if single:
                raise click.UsageError(reason)
            say.skipped(module.NAME, reason)
            results[module.NAME] = {"skipped": reason, "ok": True}
            continue
        try:
            results[module.NAME] = module.run(world, say)
        except (DemoError, RpcClientError) as error:
            say.error(module.NAME, str(error))
            results[module.NAME] = {"error": str(error), "ok": False}
    return results


def _running_world(urls, datadirs, devnet_dir, bank, generate) -> World:
    if devnet_dir is not None:
        urls, tokens, names, miner = read_devnet(devnet_dir)
        return World.running(urls, tokens, names, bank or miner, generate)
    tokens = []
    for datadir in datadirs:
        token = read_cookie(datadir)
        if token is None:
            raise click.BadParameter(f"no cookie in {datadir} (is the node running there?)",
                                     param_hint="--datadir")
        tokens.append(token)
    tokens += [None] * (len(urls) - len(tokens))
    return World.running(list(urls), tokens, None, bank or "alice", generate)


def _summary(results: dict[str, dict]) -> Table:
    summary = table("demo", "result", title="toychain demo all")
    for name, outcome in results.items():
        if "skipped" in outcome:
            summary.add_row(name, f"skipped: {escape(outcome['skipped'])}")
        elif "error" in outcome:
            summary.add_row(name, f"[red]failed: {escape(outcome['error'])}[/]")
        else:
            summary.add_row(name, "[green]every claim verified[/]" if outcome["ok"]
                            else "[red]some claims did not hold[/]")
    return summary


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("name", metavar="NAME", type=click.Choice([*DEMOS, "all"]))
@click.option("--node", "urls", multiple=True, metavar="URL",
              help="Use this running node (repeatable; double-spend needs 2+). "
                   "Default: start a private 3-node devnet.")
@click.option("--datadir", "datadirs", multiple=True, metavar="DIR",
              type=click.Path(file_okay=False, path_type=Path),
              help="Data directory of the --node at the same position: its cookie lets the "
                   "demo mine blocks there (repeatable).")
@click.option("--devnet", "devnet_dir", metavar="DIR", type=click.Path(file_okay=False, path_type=Path),
              help="Use the devnet of `toychain devnet up --dir DIR`: its nodes, cookies and bank.")
@click.option("--bank", type=click.Choice(DEMO_ACCOUNTS),
              help="On a running network, the demo account that funds the actors "
                   "(default: the one node 1 mines to, else alice).")
@click.option("--generate", is_flag=True,
              help="On a running network, mine each block the demo needs at once (needs every "
                   "node's cookie) instead of waiting for the network's miners first.")
@click.option("--slow", is_flag=True, help="Pause between steps, for a live audience.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the steps as JSON lines (format: demos/narrator.py).")
def demo(name, urls, datadirs, devnet_dir, bank, generate, slow, as_json):
    """Run the demo NAME (or all of them) and narrate every step.

    \b
    overspend        alice has 10 TOY and tries to pay bob 15
    double-spend     the same coin to bob at node 1 and to carol at node 3
    steal            mallory signs for alice's coin
    tamper           a relay changes the amount of a signed payment
    overflow         CVE-2010-5139: two outputs of 92 billion TOY
    duplicate-input  CVE-2018-17144: one coin listed twice, in the mempool and in a block
    greedy-miner     a coinbase claiming more than subsidy + fees
    reorg            why merchants wait for confirmations
    leverage         a negative net worth, never a negative balance
    """
    if devnet_dir is not None and urls:
        raise click.UsageError("give --node URLs or --devnet DIR, not both")
    if len(datadirs) > len(urls):
        raise click.UsageError("each --datadir pairs with the --node at the same position: "
                               "more --datadir than --node given")
    single = name != "all"
    modules = ORDER if not single else (DEMOS[name],)
    if single and urls:
        reason = unavailable(modules[0], len(urls), own=False)
        if reason is not None:
            raise click.UsageError(reason)
    say = Narrator(as_json=as_json, slow=slow)
    previous = signal.signal(signal.SIGTERM, _interrupt)  # a clean stop of our nodes
    try:
        if urls or devnet_dir is not None:
            world = _running_world(urls, datadirs, devnet_dir, bank, generate)
            results = run_demos(world, modules, say, single)
        else:
            with World.local(say) as world:
                results = run_demos(world, modules, say, single)
    except (DemoError, RpcClientError, RuntimeError) as error:
        if as_json:
            say.error(say.demo or name, str(error))
        raise click.ClickException(str(error)) from None
    except KeyboardInterrupt:
        raise click.ClickException("interrupted") from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    if not single and not as_json:
        console().print(_summary(results))
    failed = [n for n, outcome in results.items() if not outcome["ok"]]
    if failed:
        raise click.ClickException(f"not verified: {', '.join(failed)}")
