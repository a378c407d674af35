"""TCP serving: loopback only by default, and a token when asked for one."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.lsp.client import LanguageClient


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, timeout: float = 60) -> None:
    # Not by connecting: the server serves exactly one connection.
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if listening_addresses(port):
            return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on {port}")


def listening_addresses(port: int) -> set[str]:
    """Local addresses of listening TCP sockets on `port`, from /proc/net/tcp{,6}."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            local, state = row.split()[1], row.split()[3]
            address, hex_port = local.split(":")
            if int(hex_port, 16) == port and state == "0A":
                found.add(address)
    return found


@pytest.fixture
def tcp_server():
    port = free_port()
    env = {**os.environ, "GHOSTFILL_TEST_TOKEN": "s3cret"}
    proc = subprocess.Popen([sys.executable, "-m", "ghostfill", "serve", "--tcp", str(port),
                             "--token-env", "GHOSTFILL_TEST_TOKEN"], env=env,
                            stderr=subprocess.PIPE)
    wait_listening(port)
    yield port, proc
    proc.terminate()
    proc.wait(timeout=10)


def test_binds_loopback_only(tcp_server):
    port, _ = tcp_server
    addresses = listening_addresses(port)
    assert addresses == {"0100007F"}, addresses  # 127.0.0.1, nothing else


async def _initialize(port: int, token: str | None) -> tuple[LanguageClient, object]:
    client = LanguageClient("tcp-test", "1")
    await client.start_tcp("127.0.0.1", port)
    options = {"authToken": token} if token is not None else {}
    try:
        result = await asyncio.wait_for(client.initialize_async(types.InitializeParams(
            capabilities=types.ClientCapabilities(), initialization_options=options)), 30)
    except JsonRpcException as e:
        result = e
    return client, result


def test_a_wrong_token_is_refused(tcp_server):
    """pygls serves one TCP connection per process; a refused client ends it (the editor
    starts a new one), and never gets a capability."""
    port, _ = tcp_server

    async def scenario() -> None:
        client, result = await _initialize(port, "guess")
        assert isinstance(result, JsonRpcException) and "authToken" in str(result)
        await client.stop()

    asyncio.run(scenario())


def test_the_right_token_is_served(tcp_server):
    port, _ = tcp_server

    async def scenario() -> None:
        client, result = await _initialize(port, "s3cret")
        assert isinstance(result, types.InitializeResult)
        assert result.capabilities.inline_completion_provider is not None
        await client.shutdown_async(None)
        client.exit(None)
        await client.stop()

    asyncio.run(scenario())


def test_token_env_must_be_set():
    out = subprocess.run([sys.executable, "-m", "ghostfill", "serve", "--tcp", "0",
                          "--token-env", "GHOSTFILL_NOT_SET_ANYWHERE"],
                         capture_output=True, text=True, timeout=60,
                         env={k: v for k, v in os.environ.items()
                              if k != "GHOSTFILL_NOT_SET_ANYWHERE"})
    assert out.returncode != 0 and "GHOSTFILL_NOT_SET_ANYWHERE" in out.stderr
