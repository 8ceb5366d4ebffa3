"""The local HTTP server of ``jaxcnn explore``: Werkzeug's threaded WSGI server, and its rules.

A local server is a security boundary, so every request passes these checks
before any work (docs/explore.md lists them with the holes they close):

* its ``Host`` header must name the bound address (``403`` otherwise: DNS
  rebinding);
* only the fixed routes exist; the page's assets are read from the installed
  package once, at start, into a table keyed by exact file name, so no URL
  path ever reaches the file system (``404``);
* a ``POST`` must say ``Content-Type: application/json`` (uploads
  ``application/octet-stream``), give its ``Content-Length`` and stay under
  :data:`JSON_LIMIT` / :data:`UPLOAD_LIMIT` (``415``, ``411``, ``413``, before
  the body is read), and come from the page's own origin when it names one;
* every field is validated (:mod:`._requests`); a bad one is a ``400`` whose
  message the page shows, and an unexpected error a ``500`` with a message (its
  traceback goes to stderr). No request stops the server.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import sys
import traceback
from collections.abc import Callable, Iterable, Mapping
from importlib import resources
from typing import Any

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from jaxcnn.errors import InputError, JaxcnnError
from jaxcnn.explore._app import Explorer, NoRunError
from jaxcnn.explore._requests import parse_json

JSON_LIMIT = 64 * 1024
"""Bytes of a JSON request body."""
UPLOAD_LIMIT = 8 * 2**20
"""Bytes of an uploaded image file."""
ASSETS = {
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
"""Every file ``/assets/<name>`` serves, and its type: nothing else is ever read."""
PAGE = "index.html"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
WILDCARDS = ("0.0.0.0", "::", "")
"""Bind addresses meaning every interface."""
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; "
        "base-uri 'none'; frame-ancestors 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
}
ROUTES = Map(
    [
        Rule("/", endpoint="page", methods=["GET"]),
        Rule("/assets/<name>", endpoint="asset", methods=["GET"]),
        Rule("/api/info", endpoint="info", methods=["GET"]),
        Rule("/api/run", endpoint="run", methods=["GET"]),
        Rule("/api/test-images", endpoint="test_images", methods=["GET"]),
        Rule("/api/upload", endpoint="upload", methods=["POST"]),
        Rule("/api/kernel", endpoint="kernel", methods=["POST"]),
        Rule("/api/match", endpoint="match", methods=["POST"]),
        Rule("/api/slide", endpoint="slide", methods=["POST"]),
        Rule("/api/forward", endpoint="forward", methods=["POST"]),
        Rule("/api/backward", endpoint="backward", methods=["POST"]),
    ],
    strict_slashes=False,
    merge_slashes=False,
)


def load_assets() -> dict[str, bytes]:
    """The page and its assets, read from the installed package (``jaxcnn/explore/assets``)."""
    folder = resources.files("jaxcnn.explore").joinpath("assets")
    return {name: folder.joinpath(name).read_bytes() for name in (PAGE, *ASSETS)}


class ExploreApp:
    """The WSGI application: checks, routes, and :class:`Explorer`'s answers as JSON.

    Args:
      explorer: the page's state and computations.
      allowed_hosts: the ``Host`` header values accepted (``name:port``, lower case).
    """

    def __init__(self, explorer: Explorer, allowed_hosts: Iterable[str]) -> None:
        self.explorer = explorer
        self.allowed_hosts = frozenset(host.lower() for host in allowed_hosts)
        self.assets = load_assets()
        self.posts: dict[str, Callable[[bytes], dict[str, Any]]] = {
            "upload": self.explorer.upload,
            "kernel": lambda raw: self.explorer.kernel(parse_json(raw)),
            "match": lambda raw: self.explorer.match(parse_json(raw)),
            "slide": lambda raw: self.explorer.slide(parse_json(raw)),
            "forward": lambda raw: self.explorer.forward(parse_json(raw)),
            "backward": lambda raw: self.explorer.backward(parse_json(raw)),
        }

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        response = self.respond(request)
        response.headers.update(SECURITY_HEADERS)
        return response(environ, start_response)

    def respond(self, request: Request) -> Response:
        """The response to one request; never raises."""
        host = request.headers.get("Host", "").lower()
        if host not in self.allowed_hosts:
            return _error(403, f"Host {host!r} is not this server's address")
        try:
            endpoint, arguments = ROUTES.bind_to_environ(request.environ).match()
        except NotFound:
            return _error(404, f"no such page: {request.path}")
        except MethodNotAllowed as err:
            return _error(405, f"{request.method} is not allowed here", err.get_headers())
        except HTTPException as err:  # e.g. a redirect the rules never ask for
            return _error(err.code or 400, err.description or "bad request")
        try:
            return self._endpoint(request, str(endpoint), arguments)
        except NoRunError as err:
            return _error(409, str(err))
        except (JaxcnnError, InputError) as err:
            return _error(400, str(err))
        except Exception as err:  # a bug: the page and the terminal say so, the server goes on
            traceback.print_exc(file=sys.stderr)
            return _error(500, f"internal error ({type(err).__name__}: {err})")

    def _endpoint(self, request: Request, endpoint: str, arguments: Mapping[str, Any]) -> Response:
        if endpoint == "page":
            return Response(self.assets[PAGE], content_type="text/html; charset=utf-8")
        if endpoint == "asset":
            name = arguments["name"]
            if name not in ASSETS:
                return _error(404, f"no such asset: {name!r}")
            return Response(self.assets[name], content_type=ASSETS[name])
        if endpoint == "info":
            return _json(self.explorer.info())
        if endpoint == "run":
            return _json(self.explorer.run_state(request.args.get("since")))
        if endpoint == "test_images":
            start, count = (_query_int(request, name) for name in ("start", "count"))
            return _json(self.explorer.test_images(start, count))
        refused = _refuse_body(request, endpoint)
        if refused is not None:
            return refused
        return _json(self.posts[endpoint](request.get_data(cache=False)))


def _refuse_body(request: Request, endpoint: str) -> Response | None:
    """The refusal of a POST by its headers (type, origin, length), before its body is read."""
    wanted, limit = (
        ("application/octet-stream", UPLOAD_LIMIT)
        if endpoint == "upload"
        else ("application/json", JSON_LIMIT)
    )
    if request.mimetype != wanted:
        return _error(415, f"Content-Type must be {wanted}, got {request.mimetype or 'none'!r}")
    origin = request.headers.get("Origin")
    if origin is not None and origin.lower() != f"http://{request.host.lower()}":
        return _error(403, f"Origin {origin!r} is not this page")
    length = request.content_length
    if length is None:
        return _error(411, "Content-Length is required")
    if length > limit:
        return _error(413, f"the body is {length} bytes; the limit here is {limit}")
    request.max_content_length = limit  # a body longer than it said stops at the limit
    return None


def _query_int(request: Request, name: str) -> int:
    value = request.args.get(name)
    if value is None or not value.isdigit() or len(value) > 9:
        raise InputError(f"{name}: must be a non-negative integer in the query, got {value!r}")
    return int(value)


def _json(answer: dict[str, Any], status: int = 200) -> Response:
    body = json.dumps(answer, allow_nan=False, separators=(",", ":"))
    response = Response(body, status=status, content_type="application/json")
    response.headers["Cache-Control"] = "no-store"
    return response


def _error(status: int, message: str, headers: Any = None) -> Response:
    response = _json({"error": message}, status)
    for key, value in headers or []:
        if key.lower() == "allow":
            response.headers[key] = value
    return response


class _QuietHandler(WSGIRequestHandler):
    """No line per request on the terminal; a stalled client is dropped after 30 s."""

    timeout = 30

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        del code, size


def allowed_hosts(host: str, port: int) -> set[str]:
    """The ``Host`` values (``name:port``) a server bound to ``host`` answers."""
    names = {host if ":" not in host else f"[{host}]"}
    if is_loopback(host) or host in WILDCARDS:
        names |= set(LOOPBACK_NAMES)
    if host in WILDCARDS:
        names |= {socket.gethostname(), socket.getfqdn()}
    return {f"{name}:{port}".lower() for name in names}


def is_loopback(host: str) -> bool:
    """Whether ``host`` is ``localhost`` or a loopback address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Server:
    """The page served on ``host:port`` (``port`` 0: a free one) until :meth:`shutdown`.

    Raises:
      InputError: the address cannot be bound (in use, or not this machine's).
    """

    def __init__(self, explorer: Explorer, host: str = "127.0.0.1", port: int = 0) -> None:
        app = ExploreApp(explorer, ())
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:  # bound here, so that a refusal is an error, not Werkzeug's sys.exit(1)
            listener = socket.create_server((host, port), family=family)
        except OSError as err:
            hint = "; pass --port 0 for a free one" if port else ""
            raise InputError(
                f"--host/--port: cannot listen on {host}:{port} ({err.strerror}){hint}"
            ) from None
        with listener:  # Werkzeug serves a duplicate of its descriptor
            self.http: BaseWSGIServer = make_server(
                host, port, app, threaded=True, request_handler=_QuietHandler, fd=listener.fileno()
            )
        self.host, self.port = host, int(self.http.socket.getsockname()[1])
        app.allowed_hosts = frozenset(allowed_hosts(host, self.port))

    @property
    def url(self) -> str:
        name = "127.0.0.1" if self.host in WILDCARDS else self.host
        name = f"[{name}]" if ":" in name else name
        return f"http://{name}:{self.port}/"

    def serve_forever(self) -> None:
        self.http.serve_forever()

    def shutdown(self) -> None:
        """Stop serving (from another thread) and close the socket."""
        self.http.shutdown()
        self.http.server_close()
