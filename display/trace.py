"""A transaction's trace, as ``explaintransaction`` returns it, for people.

``trace_table`` makes the table that ``toychain explain``, ``toychain
wallet send --explain`` and ``toychain demo --explain`` print: one row per
step, in the order the node ran them, with the rule in words, the function
that holds it, the values it compared and whether it passed; ``verdict``
is the line under it (allowed and the fee, or the reject code and the
node's sentence). ``trace_text`` renders both as plain text at a fixed
width (no colours), for notebooks and logs.

This package imports none of ours, so amounts come formatted by the
caller's ``money`` (units -> text, e.g. ``chain.amounts.format_toy``);
without one they stay integers of units, as in the JSON.
"""

import io

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .output import table

# The value names that hold amounts in units (PROTOCOL.md section 8: explaintransaction).
AMOUNTS = {"amount", "running_sum", "max_money", "total_in", "total_out", "fee", "min_fee"}
TEXT_WIDTH = 120
LONG = 24  # characters: a longer value goes on its own line under its name  # columns of trace_text: long hex folds onto a second line


def _value(name: str, value, money) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if name in AMOUNTS and money is not None and isinstance(value, int):
        return money(value)
    return str(value)


def _values(step: dict, money) -> str:
    values = step["values"]
    if set(values) == {"unlisted"}:
        return f"... and {values['unlisted']:,} more like the ones above, not listed"
    lines = []
    for name, value in values.items():
        text = _value(name, value, money)
        lines.append(f"{name}:\n{text}" if len(text) > LONG else f"{name}: {text}")
    return "\n".join(lines)


def trace_table(explained: dict, money=None, title: str | None = None) -> Table:
    """One row per step of ``explained`` (an ``explaintransaction`` result)."""
    grid = table("#", "rule, and the function that holds it", "compared", "result",
                 title=title or f"the node's check of tx {explained['txid']}", title_justify="left")
    for number, step in enumerate(explained["steps"], start=1):
        result = "[green]pass[/]" if step["ok"] else "[bold red]FAIL[/]"  # the code: in the verdict
        grid.add_row(str(number), f"{escape(step['rule'])}\n[dim]{escape(step['function'])}[/]",
                     escape(_values(step, money)), result)
    return grid


def verdict(explained: dict, money=None) -> str:
    """``allowed, fee ...`` or ``refused: CODE: sentence`` (rich markup)."""
    if explained["allowed"]:
        return f"[bold green]allowed[/], fee {escape(_value('fee', explained['fee'], money))}"
    return f"[bold red]refused:[/] {escape(explained['message'])}"


def print_trace(console: Console, explained: dict, money=None, title: str | None = None) -> None:
    console.print(trace_table(explained, money, title))
    console.print(verdict(explained, money), soft_wrap=True)


def trace_text(explained: dict, money=None, title: str | None = None, width: int = TEXT_WIDTH) -> str:
    """The table and the verdict as plain text, ``width`` columns wide."""
    out = io.StringIO()
    console = Console(file=out, width=width, color_system=None, highlight=False, emoji=False,
                      force_jupyter=False, force_terminal=False)
    print_trace(console, explained, money, title)
    return "\n".join(line.rstrip() for line in out.getvalue().rstrip().splitlines())
