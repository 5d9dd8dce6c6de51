"""Which HTTP requests a node runs: defences against the web pages open in
the user's own browser.

A browser lets any web page send requests to any address, 127.0.0.1
included, and it attaches no password the page could not also send. What it
does guarantee is a few headers the page cannot forge, and this module
checks them on every route (``/``, ``/rpc``, ``/events``, ``/p2p``):

* ``Host`` must be a name this node answers to (``BrowserPolicy.host_refusal``),
  with its port: the bind address; for a loopback bind also ``localhost``,
  ``127.0.0.1`` and ``[::1]``; for a wildcard bind (``0.0.0.0``, ``::``) any
  IP address or ``localhost``. DNS rebinding points a name the attacker
  owns (``evil.example``) at 127.0.0.1 after the page loaded, so the page's
  own origin reaches the node; its requests still say ``Host: evil.example``.
  An IP address can never be rebound, which is why peers that dial
  ``/p2p`` by address always pass.
* ``Origin``, which browsers add to every cross-site request, every POST
  and every WebSocket upgrade, must be absent (a program, not a page), the
  node's own page (exactly ``http://`` + the request's Host: the page the
  node serves at ``/``), or an origin the operator allowed with
  ``--allow-origin`` (the devnet's dashboard). Anything else is a foreign
  page: 403, before any handler runs, so such a page cannot call
  ``sendrawtransaction``, watch ``/events`` or speak P2P.
* ``POST /rpc`` needs ``Content-Type: application/json``. A page may send a
  "simple" request (``text/plain``, form encodings) to any address without
  asking first; ``application/json`` makes the browser ask first (a CORS
  preflight, ``OPTIONS``), which only allowed origins pass.

CORS headers (``add_cors``) go only to allowed origins, and never on a
request that carries ``Authorization``: the preflight never allows that
header, so no page can reach an admin method even with the cookie.

Every refusal is HTTP 403 with one sentence saying why.
"""

import ipaddress
from urllib.parse import urlsplit

from aiohttp import web

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARDS = ("", "0.0.0.0", "::")
JSON_TYPE = "application/json"
CORS_MAX_AGE = 600  # seconds a browser may cache a preflight answer
# Host headers found to name the node, remembered so the next request with one
# skips parsing it (a tenth of the HTTP layer's own work per request). Only
# accepted ones are kept, and at most this many: the spellings of a node's names.
MAX_GOOD_HOSTS = 16


def split_host(text: str) -> tuple[str, int | None]:
    """``"[::1]:8331"`` -> ``("::1", 8331)``; ``"Localhost"`` -> ``("localhost", None)``.
    Raises ValueError for anything that is not host[:port]."""
    parts = urlsplit(f"//{text}")
    if not parts.hostname or parts.path or parts.query or parts.fragment or parts.username is not None:
        raise ValueError(f"{text!r} is not host[:port]")
    return parts.hostname.lower(), parts.port  # .port raises ValueError when out of range


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _is_loopback(name: str) -> bool:
    return name == "localhost" or (_is_ip(name) and ipaddress.ip_address(name).is_loopback)


def normalize_origin(url: str) -> str:
    """``http(s)://host[:port]`` in lower case, as browsers send it in
    ``Origin``; raises ValueError for anything else (a path, a user, ...)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an origin like http://127.0.0.1:8431")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username is not None:
        raise ValueError(f"{url!r} is not an origin: no path, query or user")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    port = parts.port
    default = 80 if parts.scheme == "http" else 443
    return f"{parts.scheme}://{host}" + ("" if port in (None, default) else f":{port}")


class BrowserPolicy:
    """The names a node answers to and the origins it trusts (no I/O)."""

    def __init__(self, bind: str, port: int, allowed_origins=()):
        self.bind = bind.strip("[]").lower()
        self.port = port
        self.allowed_origins = frozenset(normalize_origin(o) for o in allowed_origins)
        if self.bind in WILDCARDS:
            self.names = None  # any IP address, or localhost
        elif _is_loopback(self.bind):
            self.names = frozenset((self.bind, *LOOPBACK_NAMES))
        else:
            self.names = frozenset((self.bind,))
        self._good_hosts: set[str] = set()  # Host values accepted (the port is fixed before serving)

    def _answers_to(self, name: str) -> bool:
        if self.names is None:
            return name == "localhost" or _is_ip(name)
        return name in self.names

    def host_refusal(self, host: str | None) -> str | None:
        """None when ``Host`` names this node; else the sentence to refuse with."""
        if host in self._good_hosts:
            return None
        if not host:
            return "a request needs a Host header naming this node."
        try:
            name, port = split_host(host)
        except ValueError:
            return f"Host {host!r} is not host:port."
        if not self._answers_to(name) or (80 if port is None else port) != self.port:
            return (f"Host {host!r} is not a name this node answers to (it listens on "
                    f"{self.bind or '*'}:{self.port}); a page using another name could be a DNS "
                    f"rebinding attack.")
        if len(self._good_hosts) < MAX_GOOD_HOSTS:
            self._good_hosts.add(host)
        return None

    def is_allowed(self, origin: str) -> bool:
        """An origin the operator allowed (``--allow-origin``): it gets CORS."""
        try:
            return normalize_origin(origin) in self.allowed_origins
        except ValueError:
            return False

    def origin_refusal(self, origin: str | None, host: str) -> str | None:
        """None for no Origin, the node's own page or an allowed origin."""
        if origin is None or self.is_allowed(origin) or self._is_own(origin, host):
            return None
        return (f"Origin {origin!r} is a web page this node does not trust; allow it with "
                f"--allow-origin if it is yours.")

    @staticmethod
    def _is_own(origin: str, host: str) -> bool:
        """Same origin: the page this node served at ``/`` under the name in Host."""
        try:
            return normalize_origin(origin) == normalize_origin(f"http://{host}")
        except ValueError:
            return False


def content_type_refusal(value: str | None) -> str | None:
    """None for ``application/json`` (parameters such as charset allowed)."""
    if (value or "").split(";", 1)[0].strip().lower() == JSON_TYPE:
        return None
    return (f"/rpc runs only JSON requests: Content-Type must be {JSON_TYPE}, "
            f"not {value or 'missing'}.")


def refuse(sentence: str) -> web.Response:
    return web.Response(status=403, text=sentence + "\n")


def guard(policy: BrowserPolicy):
    """The middleware: Host, Origin, and the JSON content type of ``POST /rpc``."""
    @web.middleware
    async def middleware(request: web.Request, handler):
        host = request.headers.get("Host")
        refusal = (policy.host_refusal(host)
                   or policy.origin_refusal(request.headers.get("Origin"), host))
        if refusal is None and request.method == "POST" and request.path == "/rpc":
            refusal = content_type_refusal(request.headers.get("Content-Type"))
        if refusal is not None:
            return refuse(refusal)
        return await handler(request)
    return middleware


def add_cors(app: web.Application, policy: BrowserPolicy, path: str = "/rpc") -> None:
    """Answer CORS for ``path`` to allowed origins only, never for a request
    with a token: a preflight allows ``Content-Type`` and nothing else."""
    async def preflight(request: web.Request) -> web.Response:
        origin = request.headers.get("Origin", "")
        if not policy.is_allowed(origin):
            return refuse(f"Origin {origin!r} may not call {path} from a web page.")
        wanted = request.headers.get("Access-Control-Request-Headers", "")
        extra = {h.strip().lower() for h in wanted.split(",") if h.strip()} - {"content-type"}
        if extra:
            return refuse(f"a web page may send only Content-Type to {path}, not {', '.join(sorted(extra))}.")
        return web.Response(status=204, headers={
            "Access-Control-Allow-Origin": origin, "Access-Control-Allow-Methods": "POST",
            "Access-Control-Allow-Headers": "Content-Type",
            "Access-Control-Max-Age": str(CORS_MAX_AGE), "Vary": "Origin"})

    async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
        origin = request.headers.get("Origin", "")
        if (request.path == path and request.method == "POST" and policy.is_allowed(origin)
                and "Authorization" not in request.headers and response.status != 401):
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"

    app.router.add_route("OPTIONS", path, preflight)
    app.on_response_prepare.append(on_prepare)
