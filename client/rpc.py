"""A small synchronous JSON-RPC client (standard library only), used by the
``toychain rpc`` command, the wallet, the demos and the devnet.

One call is one HTTP ``POST URL/rpc`` with a JSON-RPC 2.0 request (and
``Authorization: Bearer <cookie>`` when a token is given, for admin
methods). Every failure becomes one ``RpcClientError`` whose message is a
sentence for the user: the node unreachable, an admin method without the
cookie (HTTP 401), a refusal with the node's reason (HTTP 403), a reply
that is not JSON, or the node's own RPC error, whose ``code`` and
``reject_reason`` are kept for callers that check them.

``rpc_pages`` fetches every item of ``listunspent`` or ``getaddresshistory``,
which a node answers at most ``PAGE`` items at a time: each page is asked
for after the last item of the one before, until a page comes back short.
"""

import json
import urllib.error
import urllib.request

PAGE = 1000  # items per page: the most a node answers in one call
ADDRESSES = 500  # addresses one listunspent call may name


class RpcClientError(Exception):
    """The call failed: node unreachable, unauthorized, or an RPC error.
    ``code`` and ``reject_reason`` are set for RPC errors."""

    def __init__(self, message: str, code: int | None = None, reject_reason: str | None = None):
        super().__init__(message)
        self.code = code
        self.reject_reason = reject_reason


def rpc_call(url: str, method: str, params: list | None = None, token: str | None = None,
             timeout: float = 30.0):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()
    request = urllib.request.Request(url.rstrip("/") + "/rpc", data=body,
                                     headers={"Content-Type": "application/json"})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            reply = json.loads(response.read())
    except urllib.error.HTTPError as error:
        if error.code == 401:
            raise RpcClientError(f"{method} is an admin method: pass --datadir so the cookie "
                                 f"can be read") from None
        reason = error.read(500).decode("utf-8", "replace").strip() if error.code == 403 else ""
        raise RpcClientError(f"node at {url} answered HTTP {error.code}" + (f": {reason}" if reason else "")) from None
    except (urllib.error.URLError, OSError) as error:
        raise RpcClientError(f"cannot reach a node at {url}: {getattr(error, 'reason', error)}") from None
    except ValueError:
        raise RpcClientError(f"node at {url} sent a reply that is not JSON") from None
    if reply.get("error"):
        error = reply["error"]
        raise RpcClientError(error.get("message", "unknown error"), error.get("code"),
                             (error.get("data") or {}).get("reject_reason"))
    return reply.get("result")


def rpc_pages(url: str, method: str, params: list, token: str | None = None, timeout: float = 30.0) -> list:
    """Every item of a paged method, ``params`` being its parameters before the options."""
    items, options = [], {"limit": PAGE}
    while True:
        page = rpc_call(url, method, [*params, options], token, timeout)
        items += page
        if len(page) < PAGE:
            return items
        options = {"limit": PAGE, "after": page[-1]}
