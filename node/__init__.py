"""The Toychain node: an asyncio shell (aiohttp) around the pure chain core.

    mempool   unconfirmed transactions: same rules as blocks, plus policy
    explain   explaintransaction: the mempool's check, run with a trace
    messages  the P2P message formats and their limits (no I/O)
    peers     one peer's handshake and what it is known to have (no I/O)
    node      the node: chain + mempool + peers, gossip and sync decisions
    miner     block templates, regtest generation, devnet proof-of-work process
    rpc       JSON-RPC 2.0 methods of PROTOCOL.md section 8
    jsonrpc   the JSON-RPC envelope: any body to an answer, batches one request at a time
    server    the aiohttp app: /p2p, /rpc, /events, /metrics, dialling and shutdown
    gate      blocks and big txs validated on one thread while the event loop stays free
    looplag   how late the event loop wakes up
    metrics   /metrics in Prometheus's text format
    http_guard   which requests a web page in the user's browser may make (Host, Origin, CORS)
    http_limits  how many HTTP connections, and how long an idle one stays open
    events    the /events bus
    page      the live dashboard page each node serves at ``/``
    cli       the ``toychain node`` command (also ``python -m node``)

It imports only ``chain`` (and third-party libraries). The wallet and the
demos sit above it and reach a node only over RPC (``client/``); the
``toychain`` command, on top, adds ``cli``'s command to its group.
"""
