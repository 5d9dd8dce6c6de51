#!/usr/bin/env python3
"""Run the lesson notebooks (docs/lessons/*.ipynb) and keep their outputs true.

The notebooks are committed *with* their outputs, so they read well on a
repository page; this script is how those outputs are made, and how the
tests make sure they never go stale:

    scripts/lessons            # execute every notebook, write its outputs into the file
    scripts/lessons --check    # execute every notebook, compare with the committed outputs

Each notebook runs top to bottom in a fresh kernel of this venv's Python
(nbclient, kernel "python3": jupyter_client starts it with the Python that
runs this script), from the repository root. A cell that raises fails the
run. The lab API the notebooks use (toychain/lab.py) is deterministic (fixed
clock, demo keys, RFC 6979 signatures), so every text output (what a cell
prints, its value, an error) is the same at every run; ``--check`` exits 1
and names the first cell whose text differs from the committed one.
Metadata that varies between machines (timings, the Python version) is not
written.
"""

import argparse
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
LESSONS = ROOT / "docs" / "lessons"
CELL_SECONDS = 120
METADATA = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"}}


def notebooks() -> list[Path]:
    return sorted(LESSONS.glob("*.ipynb"))


def execute(path: Path):
    """The notebook at ``path``, run top to bottom in a fresh kernel; raises
    nbclient's CellExecutionError at the first cell that fails."""
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=CELL_SECONDS, kernel_name="python3", record_timing=False,
                   resources={"metadata": {"path": str(ROOT)}}).execute()
    notebook.metadata = nbformat.from_dict(METADATA)
    return notebook


def text_outputs(notebook) -> list[list[str]]:
    """Per code cell, the text of each output: printed text, a value's
    text/plain, an error's name and message."""
    cells = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        texts = []
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                texts.append(output.text)
            elif output.output_type in ("execute_result", "display_data"):
                texts.append(output.get("data", {}).get("text/plain", ""))
            elif output.output_type == "error":
                texts.append(f"{output.ename}: {output.evalue}")
        cells.append(texts)
    return cells


def first_difference(committed, executed) -> str | None:
    """Where the executed notebook's text differs from the committed one, or None."""
    old, new = text_outputs(committed), text_outputs(executed)
    if len(old) != len(new):
        return f"{len(old)} code cells committed, {len(new)} executed"
    for number, (a, b) in enumerate(zip(old, new), start=1):
        # joined: the kernel may split one printed text into several stream outputs
        if "".join(a) != "".join(b):
            was, now = "".join(a).splitlines(), "".join(b).splitlines()
            line = next((i for i, (x, y) in enumerate(zip(was, now)) if x != y), min(len(was), len(now)))
            return (f"code cell {number}, line {line + 1}: committed "
                    f"{(was[line:line + 1] or ['(nothing)'])[0]!r}, now {(now[line:line + 1] or ['(nothing)'])[0]!r}")
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="compare with the committed outputs instead of writing them")
    args = parser.parse_args(argv)
    status = 0
    for path in notebooks():
        executed = execute(path)
        if args.check:
            difference = first_difference(nbformat.read(path, as_version=4), executed)
            if difference:
                print(f"{path.relative_to(ROOT)}: stale: {difference}", file=sys.stderr)
                status = 1
            else:
                print(f"{path.relative_to(ROOT)}: outputs as committed")
        else:
            nbformat.write(executed, path)
            print(f"{path.relative_to(ROOT)}: executed, outputs written")
    return status


if __name__ == "__main__":
    sys.exit(main())
