"""Nothing slow runs on the server's event loop: while one request waits for a slow read of
imported definitions, edits are applied and other requests are answered.

Real server over stdio, real default model; the read of the workspace's imported module is
held until the test releases it (tests/slow_reads_server.py), as on a slow network disk.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from tests.lsp_helpers import change, inline, open_doc, server_text

ROOT = Path(__file__).resolve().parent
SERVE_SLOW = [sys.executable, str(ROOT / "slow_reads_server.py")]
MAIN = "from slowmod import shipping_cost\n\n\ndef checkout(order):\n    total = shipping_cost("
OTHER = "def greet(name):\n    return name\n"


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVE_SLOW))
async def client(lsp_client: LanguageClient, tmp_path_factory):
    workspace = tmp_path_factory.mktemp("slow-disk")
    (workspace / "slowmod.py").write_text(
        "def shipping_cost(order, *, express=False):\n    return 5 if express else 2\n")
    lsp_client.workspace_dir = workspace  # type: ignore[attr-defined]
    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=types.ClientCapabilities(),
        workspace_folders=[types.WorkspaceFolder(uri=workspace.as_uri(), name="w")],
        initialization_options={"server": {"debounceMs": 0, "warmOnOpen": False}}))
    yield
    await lsp_client.shutdown_session()


async def test_edits_and_requests_are_served_while_a_request_reads_definitions(
        client: LanguageClient):
    workspace: Path = client.workspace_dir  # type: ignore[attr-defined]
    main_uri = (workspace / "main.py").as_uri()
    other_uri = (workspace / "other.py").as_uri()
    open_doc(client, other_uri, OTHER)
    # The model is loaded before the slow request starts (its load is not what is tested).
    await inline(client, other_uri, 1, 15)
    open_doc(client, main_uri, MAIN)
    lines = MAIN.split("\n")
    slow = asyncio.ensure_future(inline(client, main_uri, len(lines) - 1, len(lines[-1])))
    reading = workspace / "slowmod.py.reading"
    for _ in range(1200):  # the request has reached the read (not a matter of speed)
        if reading.exists() or slow.done():
            break
        await asyncio.sleep(0.05)
    assert reading.exists(), "the request never read the imported module"
    change(client, other_uri, 2, (1, 15), (1, 15), ".title()")
    # Answered while the read is held: a server that prepared requests on its event loop
    # would answer only after the release below, and this wait would time out.
    text = await asyncio.wait_for(server_text(client, other_uri), timeout=30)
    assert text == OTHER.replace("return name", "return name.title()")
    assert not slow.done()
    (workspace / "slowmod.py.release").touch()
    await asyncio.wait_for(slow, timeout=120)  # and the held request completes normally
