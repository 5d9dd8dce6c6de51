"""Toychain's teaching demos: the attacks that once broke real chains, replayed
against a running network, narrated step by step.

    toychain demo overspend          # starts its own 3-node devnet, runs, stops it
    toychain demo all --slow         # every demo, with pauses for a live audience
    toychain demo steal --json       # the steps as JSON lines (see narrator.py)
    toychain demo steal --devnet ./devnet    # against `toychain devnet up`

Each demo is one module (``overspend.py``, ``double_spend.py``, ``steal.py``,
``tamper.py``, ``overflow.py``, ``duplicate_input.py``, ``greedy_miner.py``,
``reorg.py``, ``leverage.py``) with a docstring that tells its story and a
``run(world, say)`` that acts it out. They share:

* ``world.py``: the nodes, reached only through their public JSON-RPC, the
  bank that funds the actors, balances, the money supply, waiting with
  deadlines, mining;
* ``actors.py``: fresh keys for alice, bob, carol, mallory (per demo, per run);
* ``txs.py`` and ``blocks.py``: payments and blocks built by hand, honest or not;
* ``narrator.py``: the output, for people (rich) or programs (JSON lines);
* ``localnet.py``: the private devnet a demo starts when no ``--node`` is given;
* ``catalog.py`` and ``cli.py``: the list of demos and the ``toychain demo`` command.

Every demo verifies what it claims on the network (who refused what, the
balances before and after, the money supply) and returns that as its
*outcome*; ``outcome["ok"]`` is true when every claim held. ``docs/teaching.md``
is the lesson plan for each demo.
"""
