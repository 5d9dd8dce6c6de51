"""What any program that talks to a Toychain node may import: the wallet, the
demos, the ``toychain`` command, scripts. Standard library only, so a client
never pulls in the daemon or the consensus core.

    rpc   a synchronous JSON-RPC client (``rpc_call``, ``RpcClientError``)
"""
