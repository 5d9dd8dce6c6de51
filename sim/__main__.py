"""``python -m sim`` (``scripts/simulate``): run the simulator from the command line.

    scripts/simulate --seeds 1000 --nodes 20          many seeds; prints the seed of each failure
    scripts/simulate --seed 42                        replay one seed, and say what happened
    scripts/simulate --watch partition                watch a partition heal, second by second
"""

import argparse
import logging
import os
import sys
import time

from .runner import run_one, run_seeds
from .watch import WATCHES


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/simulate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=100, help="how many seeds (default 100)")
    parser.add_argument("--first", type=int, default=0, help="the first seed (default 0)")
    parser.add_argument("--nodes", type=int, default=20, help="nodes per run, adversaries included")
    parser.add_argument("--adversaries", type=float, default=0.2,
                        help="share of the nodes that are adversaries (default 0.2)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="worker processes (default: one per CPU)")
    parser.add_argument("--seed", type=int, help="run this one seed and describe it")
    parser.add_argument("--watch", choices=sorted(WATCHES), help="a narrated run for a class")
    args = parser.parse_args(argv)
    if args.watch:
        logging.disable(logging.CRITICAL)
        WATCHES[args.watch](args.seed if args.seed is not None else 1)
        return 0
    if args.seed is not None:
        outcome = run_one((args.seed, args.nodes, args.adversaries))
        print(outcome.report.line() if outcome.ok else outcome.error)
        if outcome.ok:
            print(f"trace digest {outcome.report.digest}")
        return 0 if outcome.ok else 1
    started = time.monotonic()
    seeds = range(args.first, args.first + args.seeds)
    done = []

    def progress(outcome) -> None:
        done.append(outcome)
        if not outcome.ok:
            print(f"FAILED seed {outcome.seed}: {outcome.error.strip().splitlines()[-1]}", flush=True)
        if len(done) % 100 == 0:
            print(f"  {len(done)} of {len(seeds)} seeds, {time.monotonic() - started:.0f} s", flush=True)
    outcomes = run_seeds(seeds, args.nodes, args.adversaries, args.jobs, progress)
    failed = [o.seed for o in outcomes if not o.ok]
    elapsed = time.monotonic() - started
    print(f"{len(outcomes) - len(failed)} of {len(outcomes)} seeds passed "
          f"({args.nodes} nodes, {args.adversaries:.0%} adversaries) in {elapsed:.1f} s "
          f"with {args.jobs} jobs")
    if failed:
        print("failed seeds: " + " ".join(map(str, failed)))
        print(f"replay one with: scripts/simulate --seed {failed[0]} --nodes {args.nodes} "
              f"--adversaries {args.adversaries}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
