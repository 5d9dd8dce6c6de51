"""The page every node serves at ``/``: the live dashboard, for this node's
own view.

The page itself (``node/dashboard/``: plain HTML, CSS and JavaScript, no
build step, nothing fetched from the internet) learns from
``GET /dashboard/config`` which nodes to watch, then talks to each node
directly from the browser: JSON-RPC over ``POST /rpc`` and the ``/events``
WebSocket, the same API as any other client. So the same page can be served
by:

* every node, at ``/`` (``add_page_routes`` with ``single_node_config``):
  just this node, and no "try it" panel, because a node holds no keys and
  runs no demos;
* ``toychain devnet up``, on its own port, for the whole network, with the
  panel that sends payments and runs demos (``toychain/dashboard_server.py``).

The devnet's page calls the nodes on other ports, so each devnet node is
started with ``--allow-origin`` naming the page's origin, and answers CORS
for ``/rpc`` to that origin only (``http_guard.py``); never for a request
that carries a token: admin methods stay out of reach of any page.
"""

from functools import cache
from pathlib import Path

from aiohttp import web

from chain.address import encode_address
from chain.keys import DEMO_ACCOUNTS, demo_private_key, owner_of, public_key

PAGE_DIR = Path(__file__).parent / "dashboard"
ASSETS = {"app.js": "text/javascript", "style.css": "text/css"}
# The page runs only its own script and style; it may call nodes on any port.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self' http: ws:; frame-ancestors 'none'")


@cache
def demo_accounts() -> tuple[dict, ...]:
    """The demo accounts' names and addresses (public: the page shows their balances)."""
    return tuple({"name": name, "address": encode_address(owner_of(public_key(demo_private_key(name))))}
                 for name in DEMO_ACCOUNTS)


# -- the page --------------------------------------------------------------------------------------

def add_page_routes(app: web.Application, config) -> None:
    """``/`` (the page), ``/dashboard/config`` (``config(request)``) and the assets."""
    async def page(request: web.Request) -> web.Response:
        return _file("index.html", "text/html")

    async def asset(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in ASSETS:
            raise web.HTTPNotFound()
        return _file(name, ASSETS[name])

    async def config_json(request: web.Request) -> web.Response:
        return web.json_response(config(request), headers={"Cache-Control": "no-store"})

    app.router.add_get("/", page)
    app.router.add_get("/dashboard/config", config_json)
    app.router.add_get("/dashboard/{name}", asset)


def _file(name: str, content_type: str) -> web.Response:
    return web.Response(body=(PAGE_DIR / name).read_bytes(), content_type=content_type, charset="utf-8",
                        headers={"Cache-Control": "no-cache", "Content-Security-Policy": CSP,
                                 "X-Content-Type-Options": "nosniff"})


def single_node_config(listen: str, request: web.Request) -> dict:
    """A node's own view: just itself, no sending, no demos."""
    return {"title": f"Toychain node {listen}", "accounts": list(demo_accounts()), "try_it": False,
            "demos": [], "nodes": [{"name": "this node", "url": f"http://{request.host}"}]}
