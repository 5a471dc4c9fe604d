"""Running the viewer: bind the port (with a clear error when it cannot), then uvicorn."""

from __future__ import annotations

import errno
import socket
import sys

from starlette.applications import Starlette

from lakery.common.exceptions import ConfigurationError

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "bind", "serve"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8321


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on `host`:`port`; a `ConfigurationError` that says what to do
    when the port is taken, not allowed, or the host is not this machine's."""
    if not 0 <= port <= 65535:
        raise ConfigurationError(f"--port must be from 0 to 65535, got {port}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigurationError(f"--host {host!r} is not a known address: {exc}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            msg = f"port {port} on {host} is already in use: pick another with --port"
        elif exc.errno == errno.EACCES:
            msg = f"not allowed to listen on port {port} of {host}: use a port above 1023"
        elif exc.errno == errno.EADDRNOTAVAIL:
            msg = f"--host {host!r} is not an address of this machine"
        else:
            msg = f"cannot listen on {host}:{port}: {exc.strerror or exc}"
        raise ConfigurationError(msg) from None
    return sock


async def serve(app: Starlette, sock: socket.socket, *, quiet: bool = False) -> None:
    """Serve `app` on the bound socket until interrupted (Ctrl-C, SIGTERM)."""
    import uvicorn

    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="off", server_header=False
    )
    server = uvicorn.Server(config)
    sys.stderr.write(f"lakery serve: http://{shown}:{port}/ (read-only; Ctrl-C to stop)\n")
    sys.stderr.flush()
    if host not in {"127.0.0.1", "::1", "localhost"} and not quiet:
        sys.stderr.write(
            "lakery serve: note: the viewer has no login; anyone who can reach this "
            "address can read the store\n"
        )
    await server.serve(sockets=[sock])
