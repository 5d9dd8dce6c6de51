"""How the ``toychain`` commands show their results, shared by the wallet,
the demos and the ``toychain`` command (rich and click; none of our other
packages).

    output   tables and lines that never cut a value, and ``--json`` before
             or after a subcommand
"""
