"""What people read is never cut (display/output.py), seen through the
demos' narrator: off a terminal (a pipe, a log) with a narrow ``COLUMNS``
every line and table is printed whole, however long; on a terminal too
narrow for a table, its cells fold onto the next line and never end in "…".
The commands themselves are checked the same way, with their output
captured and ``COLUMNS=40``, in test_devnet.py and test_wallet.py.
"""

import io

from rich.text import Text

from chain.address import encode_address
from demos.narrator import Narrator

from .helpers import owner

TXID = "ab" * 32
ALICE = encode_address(owner("alice"))
REFUSAL = {"node": "node1", "accepted": False, "reject_reason": "bad-txns-in-belowout",
           "message": "inputs 10.00000000 TOY < outputs 15.00000000 TOY"}
TITLE = "what the payment spends and what it pays (a narrow table, a long title)"
NOTE = "Every node checks every spend against the coins that exist, so the payment goes nowhere."


class Terminal(io.StringIO):
    """What rich takes for a terminal."""

    def isatty(self) -> bool:
        return True


def narrate(out) -> str:
    say = Narrator(out=out)
    say.start("overspend", "Overspend", "alice tries to pay 15 TOY with 10", [])
    say.step("alice", f"signs tx {TXID} paying bob 15 TOY", answers=[REFUSAL], note=NOTE,
             table={"title": "the coins", "columns": ["txid", "owner"], "rows": [[TXID, ALICE]]})
    say.step("the network", "adds it up", table={"title": TITLE, "columns": ["", "TOY"],
                                                  "rows": [["inputs", "10"], ["outputs", "15"]]})
    return Text.from_ansi(out.getvalue()).plain


def test_off_a_terminal_every_line_and_table_is_whole(monkeypatch):
    monkeypatch.setenv("COLUMNS", "30")
    lines = narrate(io.StringIO()).splitlines()
    assert f" 1 alice signs tx {TXID} paying bob 15 TOY" in lines
    assert "   node1: refused bad-txns-in-belowout: inputs 10.00000000 TOY < outputs 15.00000000 TOY" \
        in lines
    assert f"   {NOTE}" in lines
    assert any(TXID in line and ALICE in line for line in lines)
    assert TITLE in lines


def test_on_a_narrow_terminal_table_cells_fold_and_are_never_cut(monkeypatch):
    monkeypatch.setenv("COLUMNS", "30")
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    text = narrate(Terminal())
    assert "…" not in text
    grid = text.split("the coins", 1)[1].split("adds it up", 1)[0]  # the first table
    rows = [line.split("│") for line in grid.splitlines() if line.startswith("│")]
    assert rows and all(len(line) <= 30 for line in text.splitlines() if "│" in line)
    assert "".join(row[1].strip() for row in rows) == TXID  # folded, whole
    assert "".join(row[2].strip() for row in rows) == ALICE
