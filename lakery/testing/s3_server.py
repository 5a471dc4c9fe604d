"""A local S3 API server (moto in server mode) for tests and benchmarks.

Real HTTP on 127.0.0.1, so aiobotocore is exercised end to end; needs ``moto[server]``.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time

__all__ = ["free_port", "start_moto_server", "stop_process"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_moto_server(*, timeout: float = 30) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``python -m moto.server`` on a free 127.0.0.1 port; return it and its URL."""
    for _ in range(5):  # another process may take the port between the probe and the bind
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and process.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return process, f"http://127.0.0.1:{port}"
            except OSError:
                time.sleep(0.05)
        stop_process(process)
    raise RuntimeError("could not start the moto S3 server")


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Terminate a server process, killing it if it does not stop within 10 s."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
