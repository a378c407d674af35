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


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1", "example.invalid"])
def test_no_listener_off_loopback_without_a_token(host):
    """The server answers ghostfill/document (open buffers) and reads workspace files: off
    loopback it needs a token, or it does not start at all."""
    port = free_port()
    out = subprocess.run([sys.executable, "-m", "ghostfill", "serve", "--tcp", str(port),
                          "--host", host], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert f"--host {host}: refusing to listen off loopback without a token" in out.stderr
    assert "--token-env" in out.stderr and "Traceback" not in out.stderr
    assert not listening_addresses(port)


def test_off_loopback_with_a_token_is_served_and_checks_it():
    port = free_port()
    env = {**os.environ, "GHOSTFILL_TEST_TOKEN": "s3cret"}
    proc = subprocess.Popen([sys.executable, "-m", "ghostfill", "serve", "--tcp", str(port),
                             "--host", "0.0.0.0", "--token-env", "GHOSTFILL_TEST_TOKEN"],
                            env=env, stderr=subprocess.PIPE)
    try:
        wait_listening(port)
        assert listening_addresses(port) == {"00000000"}  # every interface, as asked

        async def scenario() -> None:
            client, result = await _initialize(port, None)
            assert isinstance(result, JsonRpcException) and "authToken" in str(result)
            await client.stop()

        asyncio.run(scenario())
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("[::1]", True),
    ("localhost", True), ("0.0.0.0", False), ("::", False), ("10.0.0.1", False),
    ("my-laptop", False),
])
def test_is_loopback(host, loopback):
    from ghostfill.cli import is_loopback

    assert is_loopback(host) is loopback
