"""Run many seeds of the standard scenario, in parallel, and report failures.

``run_seeds`` hands seeds to ``jobs`` worker processes (each builds the
funded chain once) and returns one ``Outcome`` per seed, in seed order: the
scenario's ``Report``, or the error that broke an invariant, with its seed,
so that ``python -m sim --seed SEED`` replays it exactly.
"""

import logging
import multiprocessing
import traceback
from dataclasses import dataclass

from .scenarios import Report, standard


@dataclass
class Outcome:
    seed: int
    report: Report | None = None
    error: str | None = None  # the failure, with its traceback

    @property
    def ok(self) -> bool:
        return self.error is None


def run_one(args: tuple[int, int, float]) -> Outcome:
    seed, nodes, share = args
    logging.disable(logging.CRITICAL)  # thousands of nodes' logs would drown the failures
    try:
        return Outcome(seed, standard(seed, nodes, share))
    except Exception:  # any failure of any seed is reported with that seed
        return Outcome(seed, error=traceback.format_exc())


def run_seeds(seeds, nodes: int = 20, share: float = 0.2, jobs: int = 1, progress=None) -> list[Outcome]:
    """Run ``standard(seed, nodes, share)`` for each seed; ``progress(outcome)``
    is called as each finishes."""
    work = [(seed, nodes, share) for seed in seeds]
    outcomes = []
    if jobs <= 1:
        results = map(run_one, work)
        for outcome in results:
            outcomes.append(outcome)
            if progress:
                progress(outcome)
    else:
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            for outcome in pool.imap_unordered(run_one, work, chunksize=4):
                outcomes.append(outcome)
                if progress:
                    progress(outcome)
    return sorted(outcomes, key=lambda o: o.seed)
