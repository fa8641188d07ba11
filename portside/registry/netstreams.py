"""httpcore's network streams on plain asyncio, instead of its anyio ones.

Measured on a watch round (one HEAD per tag on loopback), httpcore's anyio streams cost
about a quarter of the client's CPU per request: every read and write opens an anyio
cancel scope, and the pool asks every idle connection on every request whether its
socket is readable, which anyio answers by building a dict of socket attributes each
time. Here a read or write is ``asyncio.timeout`` around a stream call, and "readable
while idle" (the server closed the connection) is the stream's own end-of-file flag.

Python 3.11+ only (``asyncio.timeout``, ``StreamWriter.start_tls``); on 3.10 the
transport keeps httpcore's default backend. Errors are httpcore's (``ConnectError``,
``ReadTimeout``...), raised from the original exception, so httpx maps them as it maps
its own and a certificate failure stays findable on the ``__cause__`` chain.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import sys
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

# How long a connection attempt waits before racing the next address (RFC 8305), as
# anyio's connect_tcp does.
_HAPPY_EYEBALLS_DELAY = 0.25

SocketOption = tuple[Any, ...]  # (level, option, value) as httpcore passes it


if sys.version_info >= (3, 11):  # asyncio.timeout, StreamWriter.start_tls

    class AsyncioStream(httpcore.AsyncNetworkStream):
        def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self._reader = reader
            self._writer = writer

        async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
            try:
                async with asyncio.timeout(timeout):
                    return await self._reader.read(max_bytes)
            except TimeoutError as exc:
                raise httpcore.ReadTimeout(str(exc)) from exc
            except OSError as exc:
                raise httpcore.ReadError(str(exc)) from exc

        async def write(self, buffer: bytes, timeout: float | None = None) -> None:
            if not buffer:
                return
            try:
                async with asyncio.timeout(timeout):
                    if self._writer.transport.is_closing():
                        raise ConnectionResetError("the connection is closed")
                    self._writer.write(buffer)
                    await self._writer.drain()
            except TimeoutError as exc:
                raise httpcore.WriteTimeout(str(exc)) from exc
            except OSError as exc:
                raise httpcore.WriteError(str(exc)) from exc

        async def aclose(self) -> None:
            # Not waiting for the peer: a pooled connection is closed because it is done
            # with (expired, idle, broken); a TLS close_notify exchange would only delay.
            self._writer.transport.abort()

        async def start_tls(
            self,
            ssl_context: ssl.SSLContext,
            server_hostname: str | None = None,
            timeout: float | None = None,
        ) -> httpcore.AsyncNetworkStream:
            try:
                async with asyncio.timeout(timeout):
                    await self._writer.start_tls(ssl_context, server_hostname=server_hostname)
            except TimeoutError as exc:
                self._writer.transport.abort()
                raise httpcore.ConnectTimeout(str(exc)) from exc
            except (OSError, ssl.SSLError) as exc:  # SSLError is an OSError; named for clarity
                self._writer.transport.abort()
                raise httpcore.ConnectError(str(exc)) from exc
            return self

        def get_extra_info(self, info: str) -> Any:
            if info == "is_readable":
                # Asked of idle connections only: data or end-of-file means the server
                # closed it (or broke the protocol); either way it is not reused.
                return self._reader.at_eof() or self._writer.transport.is_closing()
            if info == "ssl_object":
                return self._writer.get_extra_info("ssl_object")
            if info == "client_addr":
                return self._writer.get_extra_info("sockname")
            if info == "server_addr":
                return self._writer.get_extra_info("peername")
            if info == "socket":
                return self._writer.get_extra_info("socket")
            return None

    class AsyncioBackend(httpcore.AsyncNetworkBackend):
        async def connect_tcp(
            self,
            host: str,
            port: int,
            timeout: float | None = None,
            local_address: str | None = None,
            socket_options: Iterable[SocketOption] | None = None,
        ) -> httpcore.AsyncNetworkStream:
            try:
                async with asyncio.timeout(timeout):
                    reader, writer = await asyncio.open_connection(
                        host,
                        port,
                        local_addr=(local_address, 0) if local_address else None,
                        happy_eyeballs_delay=_HAPPY_EYEBALLS_DELAY,
                    )
            except TimeoutError as exc:
                raise httpcore.ConnectTimeout(str(exc)) from exc
            except OSError as exc:
                raise httpcore.ConnectError(str(exc)) from exc
            sock: socket.socket | None = writer.get_extra_info("socket")
            if sock is not None:
                for option in socket_options or ():
                    sock.setsockopt(*option)
            return AsyncioStream(reader, writer)

        async def connect_unix_socket(
            self,
            path: str,
            timeout: float | None = None,
            socket_options: Iterable[SocketOption] | None = None,
        ) -> httpcore.AsyncNetworkStream:
            try:
                async with asyncio.timeout(timeout):
                    reader, writer = await asyncio.open_unix_connection(path)
            except TimeoutError as exc:
                raise httpcore.ConnectTimeout(str(exc)) from exc
            except OSError as exc:
                raise httpcore.ConnectError(str(exc)) from exc
            return AsyncioStream(reader, writer)

        async def sleep(self, seconds: float) -> None:
            await asyncio.sleep(seconds)

    class AsyncioHTTPTransport(httpx.AsyncHTTPTransport):
        """httpx's transport (its exception mapping, its response streams) over a
        connection pool whose streams are :class:`AsyncioStream`."""

        def __init__(self, *, verify: ssl.SSLContext | bool, limits: httpx.Limits) -> None:
            context = httpx.create_ssl_context(verify=verify, trust_env=False)
            super().__init__(verify=context, limits=limits, trust_env=False)
            self._pool = httpcore.AsyncConnectionPool(
                ssl_context=context,
                max_connections=limits.max_connections,
                max_keepalive_connections=limits.max_keepalive_connections,
                keepalive_expiry=limits.keepalive_expiry,
                network_backend=AsyncioBackend(),
            )
