"""The narrator: tells each step of a demo to people (rich text), or to
programs (one JSON object per line), and pauses between steps with ``--slow``.

The JSON lines are a stable interface (the dashboard streams them into a web
page). Every line is one object with ``"demo"`` and ``"type"``:

``start``  {"demo", "type": "start", "title", "summary", "nodes": [{"name", "url"}]}

``step``   {"demo", "type": "step", "step": 1.., "actor", "action", "hope",
            "answers": [{"node", "accepted", "reject_reason", "message"}],
            "balances": {NAME: {"confirmed": units, "pending": units}} or null,
            "seen_at": node name the balances were read from, or null,
            "note": a sentence or null,
            "table": {"title", "columns": [...], "rows": [[...]]} or null}

``lesson`` {"demo", "type": "lesson", "lesson": one sentence, "outcome": {...}}
           (always the last line of a demo; ``outcome["ok"]`` says whether
           every claim the demo makes was verified on the network).

``skipped`` {"demo", "type": "skipped", "reason"}: ``demo all`` on a network
           where that demo cannot run (e.g. reorg needs its own devnet).

``error``  {"demo", "type": "error", "message"}: the demo could not finish
           (a timeout, a node down); it replaces the lesson. ``"demo"`` may
           be "setup" or the name given on the command line.

``actor`` is who acts ("alice", "mallory", "the network", ...); ``action``
says what they do in plain words; ``hope`` what they hope to gain (null when
nobody is cheating). ``answers`` are what the nodes said, one per node asked:
``reject_reason`` is the code of PROTOCOL.md section 5 and ``message`` its
sentence. Amounts are integers of base units (1 TOY = 100,000,000), as in the
node's RPC. Lines with ``"demo": "setup"`` describe the network being
prepared before the demos start (no lesson).
"""

import json
import sys
import time

from rich.markup import escape
from rich.panel import Panel

from chain.amounts import COIN
from display.output import console, table as make_table

SLOW_SECONDS = 3.0


def toy(units: int) -> str:
    """``1_000_000_000`` -> ``"10 TOY"``, ``-46_744_073_709_551_616`` ->
    ``"-467,440,737.09551616 TOY"``: exact integers, trailing zeros dropped."""
    sign, units = ("-" if units < 0 else ""), abs(units)
    whole, frac = divmod(units, COIN)
    text = f"{sign}{whole:,}"
    if frac:
        text += "." + f"{frac:08d}".rstrip("0")
    return f"{text} TOY"


class Narrator:
    def __init__(self, as_json: bool = False, slow: bool = False, out=None,
                 pause: float = SLOW_SECONDS):
        self.as_json = as_json
        self.slow = slow
        self.pause = pause
        self.out = out or sys.stdout
        self.console = console(file=self.out, highlight=False)  # unlimited width off a terminal
        self.demo: str | None = None
        self.count = 0
        self.lines: list[dict] = []  # everything said, as data (the tests read it)

    # -- output ----------------------------------------------------------------------------
    def _emit(self, record: dict) -> None:
        self.lines.append(record)
        if self.as_json:
            self.out.write(json.dumps(record) + "\n")
            self.out.flush()

    def _wait(self) -> None:
        if self.slow:
            time.sleep(self.pause)

    # -- what demos call ---------------------------------------------------------------------
    def start(self, demo: str, title: str, summary: str, nodes: list[dict]) -> None:
        self.demo, self.count = demo, 0
        self._emit({"demo": demo, "type": "start", "title": title, "summary": summary,
                    "nodes": nodes})
        if not self.as_json:
            self.console.print()
            self.console.print(Panel(f"[bold]{escape(title)}[/]\n{escape(summary)}",
                                     title=f"toychain demo {demo}", expand=False))
        self._wait()

    def step(self, actor: str, action: str, hope: str | None = None, answers=(),
             balances: dict | None = None, seen_at: str | None = None, note: str | None = None,
             table: dict | None = None) -> None:
        self.count += 1
        answers = [a if isinstance(a, dict) else a.to_json() for a in answers]
        self._emit({"demo": self.demo, "type": "step", "step": self.count, "actor": actor,
                    "action": action, "hope": hope, "answers": answers, "balances": balances,
                    "seen_at": seen_at, "note": note, "table": table})
        if not self.as_json:
            self._print_step(actor, action, hope, answers, balances, seen_at, note, table)
        self._wait()

    def lesson(self, text: str, outcome: dict) -> None:
        self._emit({"demo": self.demo, "type": "lesson", "lesson": text, "outcome": outcome})
        if not self.as_json:
            failed = [c["claim"] for c in outcome.get("checks", []) if not c["holds"]]
            for claim in failed:
                self.console.print(f"   [bold red]NOT VERIFIED:[/] {escape(claim)}")
            verified = len(outcome.get("checks", [])) - len(failed)
            self.console.print(f"   [dim]{verified} claims verified on the network[/]")
            self.console.print(Panel(f"[bold]{escape(text)}[/]", title="lesson", expand=False,
                                     border_style="green" if not failed else "red"))

    def skipped(self, demo: str, reason: str) -> None:
        self._emit({"demo": demo, "type": "skipped", "reason": reason})
        if not self.as_json:
            self.console.print(f"\n[yellow]skipping {escape(demo)}:[/] {escape(reason)}")

    def error(self, demo: str, message: str) -> None:
        self._emit({"demo": demo, "type": "error", "message": message})
        if not self.as_json:
            self.console.print(f"\n[bold red]{escape(demo)} could not finish:[/] {escape(message)}")

    # -- people's view --------------------------------------------------------------------------
    def _print_step(self, actor, action, hope, answers, balances, seen_at, note, table) -> None:
        print_ = self.console.print
        print_(f"[bold cyan]{self.count:>2}[/] [bold]{escape(actor)}[/] {escape(action)}")
        if hope:
            print_(f"   [italic]hopes: {escape(hope)}[/]")
        for answer in answers:
            if answer["accepted"]:
                print_(f"   {escape(answer['node'])}: [green]accepted[/]"
                       + (f" {escape(answer['message'])}" if answer.get("message") else ""))
            else:
                print_(f"   {escape(answer['node'])}: [bold red]refused[/] "
                       f"[red]{escape(answer['reject_reason'] or '')}[/]: "
                       f"{escape(answer.get('message') or '')}")
        if note:
            print_(f"   {escape(note)}")
        if table:
            grid = make_table(*table["columns"], title=table.get("title"), title_justify="left")
            for row in table["rows"]:
                grid.add_row(*(escape(str(cell)) for cell in row))
            print_(grid)
        if balances is not None:
            parts = []
            for name, amounts in balances.items():
                text = f"{escape(name)} [bold]{toy(amounts['confirmed'])}[/]"
                if amounts["pending"]:
                    sign = "+" if amounts["pending"] > 0 else "-"
                    text += f" ({sign}{toy(abs(amounts['pending']))} pending)"
                parts.append(text)
            where = f" at {escape(seen_at)}" if seen_at else ""
            print_(f"   [dim]balances{where}:[/] " + " | ".join(parts))
