"""What the explore server refuses, and that no request stops it (docs/explore.md).

Each refusal the issue lists has a test here: a foreign ``Host`` (DNS
rebinding), bodies over the bound, paths that would reach the file system
(the escapes Gradio, TensorBoard and Starlette had), the wrong content type,
a foreign ``Origin``, bad images and kernels (a message, not a crash), and an
internal error. Requests are sent raw with ``http.client``, so that no
client library normalises the path or the headers first.
"""

from __future__ import annotations

import http.client
import io
import json
import urllib.parse
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from PIL import Image

from jaxcnn.explore import Explorer, decode
from jaxcnn.explore._server import JSON_LIMIT, UPLOAD_LIMIT, allowed_hosts
from tests.data.images import png_bomb
from tests.explore.serving import serving

SQUARE_KERNEL = {
    "image": {"builtin": "square"},
    "kernel": [[0, 0, 0], [0, 1, 0], [0, 0, 0]],
    "stride": 1,
    "padding": 1,
}


class Client:
    """Raw HTTP requests to one server."""

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self.host, self.port = parts.hostname or "", parts.port or 80
        self.netloc = parts.netloc

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        host: str | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            connection.putheader("Host", self.netloc if host is None else host)
            for key, value in (headers or {}).items():
                connection.putheader(key, value)
            if body is not None and "Content-Length" not in (headers or {}):
                connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body)
            response = connection.getresponse()
            return (
                response.status,
                {k.lower(): v for k, v in response.getheaders()},
                response.read(),
            )
        finally:
            connection.close()

    def post(self, path: str, payload: Any, **headers: str) -> tuple[int, Any]:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        status, _, raw = self.request(
            "POST", path, body, {"Content-Type": "application/json", **headers}
        )
        return status, json.loads(raw)

    def get(self, path: str) -> tuple[int, Any]:
        status, _, raw = self.request("GET", path)
        return status, json.loads(raw) if raw.startswith(b"{") else raw


@pytest.fixture(scope="module")
def client(shapes_url: str) -> Iterator[Client]:
    client = Client(shapes_url)
    yield client
    assert client.get("/api/info")[0] == 200  # whatever the tests sent, the server still answers


def png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


# ---- the Host header -----------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    ["evil.example:80", "evil.example", "127.0.0.1", "127.0.0.1:1", "localhost.evil.example", ""],
)
def test_a_foreign_host_header_is_refused(client: Client, host: str) -> None:
    port_host = host.replace(":1", f":{client.port + 1}") if host == "127.0.0.1:1" else host
    status, _, body = client.request("GET", "/api/info", host=port_host)
    assert status == 403, body
    assert b"not this server's address" in body


@pytest.mark.parametrize("name", ["localhost", "127.0.0.1", "LOCALHOST"])
def test_the_loopback_names_with_the_port_are_served(client: Client, name: str) -> None:
    status, _, body = client.request("GET", "/api/info", host=f"{name}:{client.port}")
    assert status == 200, body


def test_a_wildcard_bind_answers_loopback_and_this_machines_names() -> None:
    hosts = allowed_hosts("0.0.0.0", 9000)
    assert {"127.0.0.1:9000", "localhost:9000", "[::1]:9000"} <= hosts
    assert all(host.endswith(":9000") for host in hosts)
    assert allowed_hosts("192.168.7.7", 9000) == {"192.168.7.7:9000"}


# ---- paths ---------------------------------------------------------------------------

ESCAPES = [
    "/assets/../_server.py",
    "/assets/%2e%2e/_server.py",
    "/assets/%2E%2E%2F_server.py",
    "/assets/..%2f..%2fpyproject.toml",
    "/assets/..%5c_server.py",
    "/assets/%2e%2e%5c%2e%2e%5cpyproject.toml",
    "/assets//etc/passwd",
    "/assets/%2fetc%2fpasswd",
    "/assets/app.js%00.py",
    "/assets/app.js/../../_app.py",
    "/assets/index.html",  # a real file of the folder, but not an asset
    "/assets/__init__.py",
    "/assets/",
    "/assets/.",
    "/file=/etc/passwd",  # Gradio's /file= route
    "/../../etc/passwd",
    "/%2e%2e/%2e%2e/etc/passwd",
    "/static/app.js",
    "//etc/passwd",
    "/api/info/../../../etc/passwd",
]


@pytest.mark.parametrize("path", ESCAPES)
def test_no_url_reaches_the_file_system(client: Client, path: str) -> None:
    status, _, body = client.request("GET", path)
    assert status == 404, (path, status, body[:200])
    assert b"root:" not in body
    assert b"import" not in body


def test_the_page_and_its_assets_are_served_with_the_security_headers(client: Client) -> None:
    for path, kind in [
        ("/", "text/html"),
        ("/assets/app.js", "text/javascript"),
        ("/assets/style.css", "text/css"),
    ]:
        status, headers, body = client.request("GET", path)
        assert status == 200
        assert body
        assert headers["content-type"].startswith(kind)
        assert headers["x-content-type-options"] == "nosniff"
        assert "default-src 'self'" in headers["content-security-policy"]
        assert headers["x-frame-options"] == "DENY"
    _, headers, _ = client.request("GET", "/api/info")
    assert headers["cache-control"] == "no-store"


def test_the_page_loads_nothing_from_another_origin(client: Client) -> None:
    _, _, page = client.request("GET", "/")
    for asset in (
        page,
        client.request("GET", "/assets/app.js")[2],
        client.request("GET", "/assets/style.css")[2],
    ):
        text = asset.decode()
        assert "http://" not in text.replace("http://www.w3.org", "")
        assert "https://" not in text
        assert "//cdn" not in text
        assert "@import" not in text


def test_a_wrong_method_is_refused(client: Client) -> None:
    assert (
        client.request("POST", "/api/info", b"{}", {"Content-Type": "application/json"})[0] == 405
    )
    assert client.request("GET", "/api/kernel")[0] == 405
    assert client.request("DELETE", "/")[0] == 405


# ---- bodies --------------------------------------------------------------------------


def test_a_json_body_over_the_bound_is_refused_before_it_is_read(client: Client) -> None:
    big = b'{"pad": "' + b"x" * JSON_LIMIT + b'"}'
    status, _, body = client.request(
        "POST", "/api/kernel", big, {"Content-Type": "application/json"}
    )
    assert status == 413, body


def test_an_upload_over_the_bound_is_refused(client: Client) -> None:
    big = b"\x89PNG" + b"\0" * UPLOAD_LIMIT
    status, _, body = client.request(
        "POST", "/api/upload", big, {"Content-Type": "application/octet-stream"}
    )
    assert status == 413, body


def test_a_body_that_lies_about_its_length_is_cut_at_the_bound(client: Client) -> None:
    """A Content-Length under the bound, then more bytes: only the declared bytes are read."""
    body = json.dumps(SQUARE_KERNEL).encode()
    status, _, answer = client.request(
        "POST",
        "/api/kernel",
        body + b" " * 100,
        {"Content-Type": "application/json", "Content-Length": str(len(body))},
    )
    assert status == 200, answer


def test_a_post_without_a_length_is_refused(client: Client) -> None:
    connection = http.client.HTTPConnection(client.host, client.port, timeout=60)
    connection.putrequest("POST", "/api/kernel", skip_host=True)
    connection.putheader("Host", client.netloc)
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Transfer-Encoding", "chunked")
    connection.endheaders()
    connection.send(b"2\r\n{}\r\n0\r\n\r\n")
    response = connection.getresponse()
    assert response.status == 411
    connection.close()


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/api/kernel", "text/plain"),
        ("/api/kernel", "application/x-www-form-urlencoded"),
        ("/api/upload", "image/png"),
        ("/api/upload", "multipart/form-data"),
    ],
)
def test_a_body_of_another_type_is_refused(client: Client, path: str, kind: str) -> None:
    """Types a page on another site could send without a CORS preflight are refused."""
    status, _, body = client.request(
        "POST", path, json.dumps(SQUARE_KERNEL).encode(), {"Content-Type": kind}
    )
    assert status == 415, body


def test_a_foreign_origin_is_refused_and_the_pages_own_served(client: Client) -> None:
    assert client.post("/api/kernel", SQUARE_KERNEL, Origin="http://evil.example")[0] == 403
    assert client.post("/api/kernel", SQUARE_KERNEL, Origin="null")[0] == 403
    assert client.post("/api/kernel", SQUARE_KERNEL, Origin=f"http://{client.netloc}")[0] == 200


# ---- inputs: a clear message, never a crash ------------------------------------------

BAD_INPUTS = [
    (b"{not json", "not valid JSON"),
    (b'{"kernel": NaN}', "NaN is not a number JSON allows"),
    (b"[1, 2]", "must be a JSON object"),
    (b"[" * 5000 + b"]" * 5000, "nested too deeply"),
    (b"\xff\xfe", "UTF-8"),
    ({**SQUARE_KERNEL, "kernel": [[1, 2, 3], [4, 5, 6]]}, "kernel: must be 3 rows of 3 numbers"),
    (
        {**SQUARE_KERNEL, "kernel": [[1, 2, 3], [4, 5, 6], [7, 8]]},
        r"kernel[2]: must be a row of 3 numbers",
    ),
    (
        {**SQUARE_KERNEL, "kernel": [[1, 2, 3], [4, "abc", 6], [7, 8, 9]]},
        "kernel[1][1]: must be a number",
    ),
    (
        {**SQUARE_KERNEL, "kernel": [[1, 2, 3], [4, True, 6], [7, 8, 9]]},
        "kernel[1][1]: must be a number",
    ),
    (
        {**SQUARE_KERNEL, "kernel": [[1, 2, 3], [4, 1e300, 6], [7, 8, 9]]},
        "kernel[1][1]: must be finite and at most",
    ),
    (
        {**SQUARE_KERNEL, "kernel": [[1, 2, 3], [4, 5, 6], [7, 8, 1e999]]},
        "Infinity is not a number",
    ),
    ({**SQUARE_KERNEL, "stride": 0}, "stride: must be one of [1, 2, 3]"),
    ({**SQUARE_KERNEL, "stride": "2"}, "stride: must be one of"),
    ({**SQUARE_KERNEL, "padding": "same"}, "padding: must be one of [0, 1, 2]"),
    (
        {**SQUARE_KERNEL, "image": {"builtin": "triangle"}},
        "image.builtin: must be one of ['square', 'circle']",
    ),
    ({**SQUARE_KERNEL, "image": {"test": -1}}, "image.test: must be in 0.."),
    (
        {**SQUARE_KERNEL, "image": {"test": 10**9}},
        "image: test image must be in 0..799, got 1000000000",
    ),
    ({**SQUARE_KERNEL, "image": {"upload": "u0000000000000000"}}, "no upload with id"),
    ({**SQUARE_KERNEL, "image": {"file": "/etc/passwd"}}, "image: the key must be one of"),
    ({**SQUARE_KERNEL, "image": "square"}, "image: must be an object"),
    ({k: v for k, v in SQUARE_KERNEL.items() if k != "kernel"}, "kernel: missing"),
]


@pytest.mark.parametrize(("payload", "message"), BAD_INPUTS)
def test_bad_kernel_requests_get_a_message_naming_the_field(
    client: Client, payload: Any, message: str
) -> None:
    status, answer = client.post("/api/kernel", payload)
    assert status == 400, answer
    assert message in answer["error"], answer


@pytest.mark.parametrize(
    ("path", "payload", "message"),
    [
        (
            "/api/match",
            {"image": {"builtin": "circle"}, "row": 28, "col": 0},
            "row: must be in 0..27",
        ),
        (
            "/api/match",
            {"image": {"builtin": "circle"}, "row": 1.5, "col": 0},
            "row: must be an integer",
        ),
        ("/api/slide", {**SQUARE_KERNEL, "padding": 3}, "padding: must be one of"),
        (
            "/api/forward",
            {"input": {"builtin": "square"}},
            "input: the key must be one of ['test', 'upload']",
        ),
        ("/api/forward", {"input": {"test": 0}, "target": 2}, "target: must be in 0..1"),
        ("/api/backward", {"input": {"test": 0}, "label": -1}, "label: must be in 0..1"),
    ],
)
def test_bad_view_requests_get_a_message_naming_the_field(
    client: Client, path: str, payload: Any, message: str
) -> None:
    status, answer = client.post(path, payload)
    assert status == 400, answer
    assert message in answer["error"], answer


def upload(client: Client, raw: bytes) -> tuple[int, Any]:
    status, _, body = client.request(
        "POST", "/api/upload", raw, {"Content-Type": "application/octet-stream"}
    )
    return status, json.loads(body)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "the uploaded image"),
        (b"GIF89a" + b"\0" * 10, "the uploaded image"),
        (b"not an image at all", "the uploaded image"),
        (png(np.full((40, 40), 200, np.uint8))[:60], "the uploaded image"),
        (png_bomb(20000, 20000), "refused before decoding"),
    ],
    ids=["empty", "broken gif", "text", "truncated png", "decompression bomb"],
)
def test_bad_uploads_get_a_message(client: Client, raw: bytes, message: str) -> None:
    status, answer = upload(client, raw)
    assert status == 400, answer
    assert message in answer["error"], answer


def test_an_upload_is_decoded_for_both_kinds_of_view(client: Client) -> None:
    rgb = np.zeros((50, 70, 3), np.uint8)
    rgb[10:40, 20:50] = (255, 0, 0)
    status, answer = upload(client, png(rgb))
    assert status == 200, answer
    assert decode(answer["gray"]).shape == (28, 28)
    assert decode(answer["model"]).shape == (28, 28, 1)
    status, result = client.post(
        "/api/kernel", {**SQUARE_KERNEL, "image": {"upload": answer["id"]}}
    )
    assert status == 200, result
    np.testing.assert_array_equal(decode(result["image"]), decode(answer["gray"]))
    status, result = client.post("/api/forward", {"input": {"upload": answer["id"]}})
    assert status == 200
    assert len(result["probabilities"]) == 2


def test_a_bug_is_a_500_with_a_message_and_the_server_goes_on(
    shapes_explorer: Explorer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with serving(shapes_explorer) as url:
        client = Client(url)

        def broken(body: Any) -> Any:
            raise ZeroDivisionError("a bug")

        monkeypatch.setattr(shapes_explorer, "kernel", broken)
        status, answer = client.post("/api/kernel", SQUARE_KERNEL)
        assert status == 500
        assert answer["error"] == "internal error (ZeroDivisionError: a bug)"
        monkeypatch.undo()
        assert client.post("/api/kernel", SQUARE_KERNEL)[0] == 200


def test_without_a_run_the_model_views_say_how_to_get_one(bare_url: str) -> None:
    client = Client(bare_url)
    status, info = client.get("/api/info")
    assert status == 200
    assert info["run"] is None
    assert "jaxcnn train shapes" in info["no_run_hint"]
    for path, payload in [
        ("/api/forward", {"input": {"test": 0}}),
        ("/api/backward", {"input": {"test": 0}, "label": 0}),
    ]:
        status, answer = client.post(path, payload)
        assert status == 409, answer
        assert "jaxcnn train shapes" in answer["error"], answer
    assert client.get("/api/run")[0] == 409
    assert client.post("/api/kernel", SQUARE_KERNEL)[0] == 200  # views 1 and 2 work


def test_an_uploads_backward_defaults_to_the_predicted_class(client: Client) -> None:
    ring = np.zeros((28, 28), np.uint8)
    ring[6:22, 6:22] = 255
    ring[8:20, 8:20] = 0  # a square outline
    status, answer = upload(client, png(ring))
    assert status == 200, answer
    _, forward = client.post("/api/forward", {"input": {"upload": answer["id"]}})
    _, backward = client.post("/api/backward", {"input": {"upload": answer["id"]}})
    assert backward["label"] == forward["predicted"]
    _, other = client.post(
        "/api/backward", {"input": {"upload": answer["id"]}, "label": 1 - forward["predicted"]}
    )
    assert other["loss"] > backward["loss"]  # the wrong label costs more
    assert [step["grad_shape"] for step in backward["steps"]][:2] == [[1], [392]]
