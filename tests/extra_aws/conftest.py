"""S3 fixtures: a real moto S3 server on 127.0.0.1, a fault-injecting HTTP proxy, buckets.

The moto server runs as a separate process (``python -m moto.server``) for the whole
session; aiobotocore reaches it over HTTP with dummy credentials set in the environment.
The AWS configuration is isolated from the machine's (no config files, no instance
metadata, no proxies), so no request leaves 127.0.0.1.
"""

from __future__ import annotations

import http.client
import os
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from typing import Any

import pytest

from lakery.extra.aws import S3Storage
from lakery.testing.s3_server import start_moto_server
from lakery.testing.s3_server import stop_process

ACCESS_KEY_ID = "lakerytestkeyid4821"
SECRET_ACCESS_KEY = "lakery-test-secret-7f3a9c0d2e"
REGION = "us-east-1"
MiB = 1 << 20


# -- environment and servers ------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def aws_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Dummy credentials in the environment; nothing read from ~/.aws or the network."""
    home = tmp_path_factory.mktemp("aws")
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("AWS_"):
                patch.delenv(name)
        patch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
        patch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
        patch.setenv("AWS_DEFAULT_REGION", REGION)
        patch.setenv("AWS_CONFIG_FILE", str(home / "config"))
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "credentials"))
        patch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
            patch.delenv(name, raising=False)
        patch.setenv("NO_PROXY", "127.0.0.1,localhost")
        patch.setenv("no_proxy", "127.0.0.1,localhost")
        yield


@pytest.fixture(scope="session")
def moto_endpoint(aws_environment: None) -> Iterator[str]:
    """The URL of a moto S3 server running for the whole test session."""
    process, url = start_moto_server(timeout=20)
    yield url
    stop_process(process)


# -- a proxy that injects faults --------------------------------------------------------


@dataclass
class Fault:
    """Answer `times` matching requests with an error (or cut their response body)."""

    times: int
    status: int = 503
    code: str = "SlowDown"
    message: str = "Please reduce your request rate."
    method: str | None = None
    query: str | None = None
    header: str | None = None
    cut_body: bool = False
    corrupt_body: bool = False
    stall_body: float = 0.0
    """Seconds to wait after sending the first half of the body (then send the rest)."""

    def matches(self, request: Request) -> bool:
        if self.times <= 0 or (self.method and request.method != self.method):
            return False
        if self.header is not None and self.header.lower() not in request.headers:
            return False
        return self.query is None or self.query in request.path


@dataclass
class Request:
    """A request the proxy received (header names in lower case)."""

    method: str
    path: str
    headers: dict[str, str]

    @property
    def operation(self) -> str:
        """The S3 operation, as far as the tests need to tell them apart."""
        query = self.path.partition("?")[2]
        copy = "x-amz-copy-source" in self.headers
        if self.method == "PUT" and "partNumber=" in query:
            return "UploadPartCopy" if copy else "UploadPart"
        if self.method == "PUT":
            return "CopyObject" if copy else "PutObject"
        if self.method == "POST":
            return "CreateMultipartUpload" if "uploads" in query.split("&") else "Complete"
        if self.method == "DELETE":
            return "AbortMultipartUpload" if "uploadId=" in query else "DeleteObject"
        return {"GET": "GetObject", "HEAD": "HeadObject"}.get(self.method, self.method)


class FaultProxy:
    """A real HTTP proxy in front of moto that can fail requests on purpose.

    Attributes:
        url: the proxy's endpoint URL.
        requests: every request received, in order.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.faults: list[Fault] = []
        self.requests: list[Request] = []
        self.injected = 0
        self.latency = 0.0
        """Seconds added to every request."""
        self.in_flight = 0
        self.max_in_flight = 0
        self.before_forward: Callable[[Request], None] | None = None
        """Called (in the proxy's thread) with each request before it goes to moto."""
        self._release = threading.Event()  # ends the pauses of stalled responses
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _ProxyHandler)
        self._server.daemon_threads = True
        self._server.proxy = self  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def fail(self, times: int, **options: Any) -> Fault:
        fault = Fault(times, **options)
        with self._lock:
            self.faults.append(fault)
        return fault

    def reset(self) -> None:
        self._release.set()  # stalled responses of an earlier test end now
        deadline = time.monotonic() + 10
        while self.in_flight and time.monotonic() < deadline:
            time.sleep(0.01)
        self._release.clear()
        with self._lock:
            self.faults.clear()
            self.requests.clear()
            self.injected = 0
            self.latency = 0.0
            self.max_in_flight = 0
            self.before_forward = None

    def operations(self) -> list[str]:
        """The S3 operations received so far, in order."""
        with self._lock:
            return [r.operation for r in self.requests]

    def take(self, request: Request) -> Fault | None:
        with self._lock:
            self.requests.append(request)
            for fault in self.faults:
                if fault.matches(request):
                    fault.times -= 1
                    self.injected += 1
                    return fault
        return None

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "expect", "content-length"}


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _handle(self) -> None:
        proxy: FaultProxy = self.server.proxy  # type: ignore[attr-defined]
        with proxy._lock:
            proxy.in_flight += 1
            proxy.max_in_flight = max(proxy.max_in_flight, proxy.in_flight)
        try:
            time.sleep(proxy.latency)
            self._forward(proxy)
        finally:
            with proxy._lock:
                proxy.in_flight -= 1

    def _forward(self, proxy: FaultProxy) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k.lower(): v for k, v in self.headers.items()}
        request = Request(self.command, self.path, headers)
        fault = proxy.take(request)
        if fault is not None and not (fault.cut_body or fault.corrupt_body or fault.stall_body):
            self._send_error(fault)
            return
        if proxy.before_forward is not None:
            proxy.before_forward(request)
        upstream = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=60)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            upstream.request(self.command, self.path, body=body or None, headers=headers)
            response = upstream.getresponse()
            payload = response.read()
            self.send_response_only(response.status, response.reason)
            for name, value in response.getheaders():
                if name.lower() not in _HOP_BY_HOP:
                    self.send_header(name, value)
            if self.command == "HEAD":
                self.send_header("Content-Length", response.getheader("Content-Length") or "0")
            else:
                self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if fault is not None and fault.corrupt_body and payload:
                payload = bytes([payload[0] ^ 0xFF]) + payload[1:]
            if self.command != "HEAD":
                if fault is not None and fault.cut_body:  # send half the body, then hang up
                    self.wfile.write(payload[: len(payload) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if fault is not None and fault.stall_body:  # half, a pause, the rest
                    try:
                        self.wfile.write(payload[: len(payload) // 2])
                        self.wfile.flush()
                        proxy._release.wait(fault.stall_body)
                        self.wfile.write(payload[len(payload) // 2 :])
                    except OSError:  # the client hung up meanwhile
                        self.close_connection = True
                    return
                self.wfile.write(payload)
        finally:
            upstream.close()

    def _send_error(self, fault: Fault) -> None:
        xml = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<Error>'
            f"<Code>{fault.code}</Code><Message>{fault.message}</Message>"
            f"<RequestId>{uuid.uuid4().hex}</RequestId></Error>"
        ).encode()
        self.send_response_only(fault.status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", "0" if self.command == "HEAD" else str(len(xml)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(xml)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = _handle


@pytest.fixture(scope="session")
def _fault_proxy(moto_endpoint: str) -> Iterator[FaultProxy]:
    proxy = FaultProxy(int(moto_endpoint.rsplit(":", 1)[1]))
    yield proxy
    proxy.close()


@pytest.fixture
def fault_proxy(_fault_proxy: FaultProxy) -> Iterator[FaultProxy]:
    """The fault-injecting proxy, with no faults armed and an empty request log."""
    _fault_proxy.reset()
    yield _fault_proxy
    _fault_proxy.reset()


# -- clients, buckets, storages -----------------------------------------------------------


_raw_session: Any = None


@pytest.fixture
async def raw_s3(moto_endpoint: str) -> AsyncIterator[Any]:
    """A plain aiobotocore S3 client talking to moto, to inspect what lakery wrote."""
    from aiobotocore.config import AioConfig
    from aiobotocore.session import AioSession

    global _raw_session
    _raw_session = _raw_session or AioSession()
    config = AioConfig(s3={"addressing_style": "path"})
    async with _raw_session.create_client(
        "s3", region_name=REGION, endpoint_url=moto_endpoint, config=config
    ) as client:
        yield client


@pytest.fixture
async def bucket(raw_s3: Any) -> str:
    """A new, empty bucket."""
    name = f"lakery-test-{uuid.uuid4().hex[:12]}"
    await raw_s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
async def make_storage(moto_endpoint: str, bucket: str) -> AsyncIterator[Callable[..., S3Storage]]:
    """Build S3Storages on the test bucket (small parts, fast retries); closed afterwards."""
    made: list[S3Storage] = []

    def make(**options: Any) -> S3Storage:
        settings: dict[str, Any] = {
            "endpoint_url": moto_endpoint,
            "region": REGION,
            "addressing_style": "path",
            "part_size": 5 * MiB,
            "read_chunk_size": 1 * MiB,
            "retry_base_delay": 0.01,
            "retry_max_delay": 0.05,
        }
        settings.update(options)
        storage = S3Storage(settings.pop("bucket", bucket), **settings)
        made.append(storage)
        return storage

    yield make
    for storage in made:
        await storage.close()


async def wait_for(predicate: Callable[[], bool]) -> None:
    """Poll `predicate` (state of another thread, such as the proxy's log) until it holds."""
    import anyio

    with anyio.fail_after(10):
        while not predicate():  # noqa: ASYNC110 - the state lives in another thread
            await anyio.sleep(0.01)


async def leftovers(client: Any, bucket: str, prefix: str = "") -> list[str]:
    """Pending multipart uploads and temporary objects in `bucket` under `prefix`."""
    uploads = await client.list_multipart_uploads(Bucket=bucket)
    pending = [f"upload:{u['Key']}" for u in uploads.get("Uploads", [])]
    temp = f"{prefix}/tmp/" if prefix else "tmp/"
    listing = await client.list_objects_v2(Bucket=bucket, Prefix=temp)
    return pending + [f"object:{o['Key']}" for o in listing.get("Contents", [])]


async def keys(client: Any, bucket: str) -> list[str]:
    """Every key in `bucket`."""
    listing = await client.list_objects_v2(Bucket=bucket)
    return sorted(o["Key"] for o in listing.get("Contents", []))
