"""Background work never keeps a keystroke from the model (issue #17): answers finishing
after their budget in several documents hold the model's background threads, and a keystroke
elsewhere is still answered at once. Real server over stdio, scripted engine."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest_lsp
from pytest_lsp import LanguageClient

from tests.lsp_helpers import inline, open_doc
from tests.test_server_behaviour import SCRIPT, SCRIPTED, engine_log, start

SOURCE = "def mean(values):\n    "


@pytest_lsp.fixture(config=SCRIPTED)
async def client(lsp_client: LanguageClient):
    await start(lsp_client, {"server": {"debounceMs": 0, "warmOnOpen": False, "prefetch": False,
                                        "engine": "inprocess"},
                             "completion": {"latencyBudgetMs": 200,
                                            "invokedBudgetMs": 600_000}})
    yield
    await lsp_client.shutdown_session()


async def test_late_answers_in_many_documents_do_not_hold_a_keystroke(client: LanguageClient,
                                                                     tmp_path: Path):
    never = tmp_path / "never"
    SCRIPT.write_text(json.dumps({"answer": "return 0", "hold": str(never)}))
    uris = [f"file:///tmp/ghostfill-scripted/late{i}.py" for i in range(6)]
    for uri in uris:
        open_doc(client, uri, SOURCE)
    # Each keystroke's budget runs out before the first token: its answer goes on in the
    # background (a late answer, held here for good).
    for uri in uris:
        assert await inline(client, uri, 1, 4, invoked=False) == []
    for _ in range(3000):
        if sum(1 for e in engine_log() if "prompt_tail" in e) >= 2 * len(uris) - 2:
            break
        await asyncio.sleep(0.01)
    started = sum(1 for e in engine_log() if "prompt_tail" in e)
    assert started >= len(uris) + 4, started  # background threads all busy, held
    # The model answers again; a keystroke in another file is served now.
    SCRIPT.write_text(json.dumps({"answer": "return 0"}))
    other = "file:///tmp/ghostfill-scripted/typed.py"
    open_doc(client, other, SOURCE)
    items = await asyncio.wait_for(inline(client, other, 1, 4, invoked=False), 20)
    assert [i.insert_text for i in items] == ["return 0"]
