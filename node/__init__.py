"""The Toychain node: an asyncio shell (aiohttp) around the pure chain core.

    mempool   unconfirmed transactions: same rules as blocks, plus policy
    messages  the P2P message formats and their limits (no I/O)
    peers     one peer's handshake and what it is known to have (no I/O)
    node      the node: chain + mempool + peers, gossip and sync decisions
    miner     block templates, regtest generation, devnet proof-of-work process
    rpc       JSON-RPC 2.0 methods of PROTOCOL.md section 8
    server    the aiohttp app: /p2p, /rpc, /events, dialling and shutdown
    events    the /events bus
    cli       the ``toychain`` command
"""
