"""The ``toychain`` command and the devnet: the top layer, which may import
every package below it (``node``, ``wallet``, ``demos``, ``client``,
``chain``) and which none of them imports.

    cli               the ``toychain`` command: ``node``, ``rpc``, ``wallet``, ``demo``, ``devnet``
    devnet            ``toychain devnet``: a local network of mining nodes in one command
    dashboard_server  the devnet's dashboard on its own port, with the "try it" panel
                      (payments signed with demo keys, demos run on the devnet)
"""
