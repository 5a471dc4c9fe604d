"""A TCP proxy in front of PostgreSQL that cuts the connection at the client's COMMIT.

It reads the client's side of the wire protocol message by message (connect with
``ssl=False`` so that it is readable), and when a simple query ``COMMIT`` arrives it either
drops it and closes ("before": nothing is committed) or forwards it, lets the server
commit, and closes before the client sees the answer ("after": committed, but the client
cannot know).
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator

SSL_REQUEST = 80877103


class CommitCutter:
    def __init__(self, upstream_port: int, *, when: str) -> None:
        assert when in {"before", "after"}
        self.upstream_port = upstream_port
        self.when = when
        self.cuts = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter):
        server_in, server_out = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        answers = asyncio.create_task(_pipe(server_in, client_out))
        try:
            await self._client_to_server(client_in, server_out, answers)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            answers.cancel()
            for writer in (server_out, client_out):
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()

    async def _client_to_server(
        self,
        client_in: asyncio.StreamReader,
        server_out: asyncio.StreamWriter,
        answers: asyncio.Task[None],
    ) -> None:
        while True:  # startup: an int32 length, then the body (SSLRequest comes first)
            head = await client_in.readexactly(8)
            length, code = struct.unpack("!ii", head)
            server_out.write(head + await client_in.readexactly(length - 8))
            await server_out.drain()
            if code != SSL_REQUEST:
                break
        while True:
            kind = await client_in.readexactly(1)
            size = await client_in.readexactly(4)
            body = await client_in.readexactly(struct.unpack("!i", size)[0] - 4)
            if kind == b"Q" and body.strip(b"\x00; ").upper() == b"COMMIT":
                self.cuts += 1
                answers.cancel()  # the client hears nothing more
                if self.when == "after":
                    server_out.write(kind + size + body)
                    await server_out.drain()
                    await asyncio.sleep(0.5)  # the server commits; its answer is not passed on
                return
            server_out.write(kind + size + body)
            await server_out.drain()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, asyncio.CancelledError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()


@contextlib.asynccontextmanager
async def commit_cutter(upstream_port: int, *, when: str) -> AsyncIterator[CommitCutter]:
    cutter = CommitCutter(upstream_port, when=when)
    await cutter.start()
    try:
        yield cutter
    finally:
        await cutter.close()
