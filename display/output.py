"""Output for people and for programs.

For people, rich fits everything to a width: the terminal's, or 80 columns
(or ``$COLUMNS``) when the output goes to a pipe or a file. To fit, it ends
a cell too wide for its column with "…" and wraps long lines, which turns a
URL, an address or a txid in a log into a stub and a command to copy into
two lines. So the commands print through these helpers instead:

* ``console()`` writes to a terminal at the terminal's width, and anywhere
  else (a pipe, a log file, a captured test) with no width limit worth the
  name (``UNLIMITED`` columns, ``$COLUMNS`` ignored): every table as wide as
  its content, every line whole.
* ``table()`` makes a table whose cells fold onto a next line when a
  terminal is too narrow, never end in "…": the whole value is always there;
  and a table is at least as wide as its title, which would wrap otherwise.
* Lines that someone will copy (a command, a URL) are printed with
  ``soft_wrap=True``: the terminal wraps them for the eye, and a copy is one
  line.

For programs, ``json_option`` is the ``--json`` flag. Put on a command
group and on its subcommands, it works in either place
(``toychain wallet --json addresses`` and ``toychain wallet addresses
--json``): the flag is remembered in the click context's ``meta``, which a
group shares with its subcommands, and ``wants_json()`` reads it.
"""

import click
from rich.console import Console
from rich.table import Column, Table
from rich.text import Text

UNLIMITED = 10_000  # columns: wider than any line or table the commands print
_JSON = "display.json"


def console(**options) -> Console:
    """A rich console on stdout (or ``file=``), unlimited in width unless it
    writes to a terminal."""
    out = Console(**options)
    if not out.is_terminal:
        out.width = UNLIMITED
    return out


def table(*headers: str, title: str | None = None, **options) -> Table:
    """A rich table (``options`` as for ``rich.table.Table``) whose cells
    fold instead of being cut when the terminal is too narrow, and at least
    as wide as its title, so that the title is not wrapped either."""
    width = Text.from_markup(title).cell_len if title else None
    return Table(*(Column(header, overflow="fold") for header in headers), title=title,
                 min_width=width, **options)


def _remember_json(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        ctx.meta[_JSON] = True


def json_option(function):
    """The ``--json`` flag, for a group and each of its subcommands alike."""
    return click.option("--json", is_flag=True, expose_value=False, callback=_remember_json,
                        help="Machine-readable output (JSON).")(function)


def wants_json() -> bool:
    """Whether ``--json`` was given to this command or to its group."""
    return click.get_current_context().meta.get(_JSON, False)
