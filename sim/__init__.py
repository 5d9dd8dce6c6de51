"""A deterministic network simulator for Toychain nodes (docs/simulator.md).

Many real nodes (``node.Node`` with its chain state and mempool) in one
process, over in-memory links with latency, resets and partitions, on a
fake clock, with every random choice drawn from one seeded generator: the
same seed replays the same run exactly. Hostile peers (``adversaries.py``)
and invariants checked after every event (``invariants.py``) make it a test
bench; ``python -m sim`` (``scripts/simulate``) runs many seeds.

    network.py      the clock, the event queue, links and partitions
    funding.py      the funded regtest chain every node starts from
    honest.py       an honest node: the real Node, played by the simulator's shell
    adversaries.py  hostile peers
    invariants.py   what must hold on every run
    scenarios.py    the standard run and the building blocks of others
"""
