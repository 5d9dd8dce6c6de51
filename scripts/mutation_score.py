"""The mutation score of the last ``mutmut run`` (see scripts/mutation).

Reads every mutant's status from ``mutmut results --all true`` and the
mutants documented as equivalent (no input can tell them apart from the
original) from the table in docs/testing.md, then prints per file and in all:
all, killed, survived, equivalent and the score, killed / (all - equivalent).
A timeout counts as killed (the mutant made a test hang, so it was noticed);
a mutant no selected test reaches counts as survived. The survivors not
explained as equivalent are listed by name (``mutmut show NAME`` prints the
diff). Exits 1 if the score is below GOAL or the list of equivalents is stale
(a listed mutant no longer exists, or a test now kills it).
"""

import re
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import date
from pathlib import Path

GOAL = 90.0
DOCS = Path("docs/testing.md")
KILLED = {"killed", "timeout", "caught by type check"}


def statuses() -> dict[str, str]:
    out = subprocess.run([str(Path(sys.executable).parent / "mutmut"), "results", "--all", "true"],
                         capture_output=True, text=True, check=True).stdout
    found = dict(re.findall(r"^\s*(\S+__mutmut_\d+): (.+?)\s*$", out, re.M))
    if not found:
        sys.exit("scripts/mutation_score.py: no mutants found: run scripts/mutation first")
    return found


def equivalents() -> set[str]:
    """Mutant names in backticks on the rows of docs/testing.md's table of equivalents."""
    return set(re.findall(r"^\|\s*`(chain\.\S+?__mutmut_\d+)`", DOCS.read_text(), re.M))


def module_of(name: str) -> str:
    return name.split(".x", 1)[0]


def main() -> int:
    status = statuses()
    equivalent = equivalents()
    counts: dict[str, Counter] = defaultdict(Counter)
    survivors = []
    for name, state in sorted(status.items()):
        row = counts[module_of(name)]
        row["all"] += 1
        if state in KILLED:
            row["killed"] += 1
        elif name in equivalent:
            row["equivalent"] += 1
        else:
            row["survived"] += 1
            survivors.append(f"{name}: {state}")
    stale = sorted(n for n in equivalent if n not in status or status[n] in KILLED)
    total = sum(counts.values(), Counter())
    print(f"{'file':<20} {'all':>5} {'killed':>7} {'survived':>9} {'equivalent':>11} {'score':>7}")
    for module, row in sorted(counts.items()) + [("all", total)]:
        score = 100 * row["killed"] / (row["all"] - row["equivalent"])
        print(f"{module:<20} {row['all']:>5} {row['killed']:>7} {row['survived']:>9} "
              f"{row['equivalent']:>11} {score:>6.1f}%")
    score = 100 * total["killed"] / (total["all"] - total["equivalent"])
    if survivors:
        print("\nsurvivors not explained in docs/testing.md (mutmut show NAME):")
        print("\n".join("  " + line for line in survivors))
    if stale:
        print("\nlisted as equivalent in docs/testing.md but killed or gone (update the list):")
        print("\n".join("  " + name for name in stale))
    print(f"\nmutation score: {score:.1f} % ({date.today()}, scripts/mutation)")
    return 0 if score >= GOAL and not stale else 1


if __name__ == "__main__":
    sys.exit(main())
