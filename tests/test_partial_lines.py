"""A line cut short by the deadline is shown at once, finished in the background, and joined.

Real engine, real model, the real `CompletionService`. The deadline is made to fall inside
the line deterministically: the service's model runner is wrapped so that, once a few words
have streamed, the stream stalls until the request's deadline has passed (as a slow machine
would), and the backend's own deadline check then cuts the line.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import pytest

from ghostfill.config import Config
from ghostfill.engine import CompletionEngine
from ghostfill.lsp.cache import SuggestionCache
from ghostfill.lsp.completions import CompletionService
from ghostfill.lsp.documents import OpenDocument
from ghostfill.lsp.stats import Stats

SOURCE = '''import argparse


def build_parser():
    """Command-line options of the report tool."""
    parser = argparse.ArgumentParser(description="Summarise a CSV file.")
    parser.add_argument("path", help="the CSV file to read")
    parser.add_argument("--delimiter", default=",", help="the field separator")
    parser.add_argument("--'''
WORD = re.compile(r"\w+")


@pytest.fixture(scope="module")
def engine(gemma_backend):
    return CompletionEngine(Config().updated({"completion": {"maxTokens": 48}}), gemma_backend)


def test_a_partial_line_is_joined_with_its_continuation(engine: CompletionEngine) -> None:
    # The reference is the uninterrupted answer from the state the service will find: the
    # prompt in the KV cache and its last token evaluated alone. (llama.cpp's logits depend on
    # the batch a token was evaluated in, so a cold run may pick another word at a close call.)
    for _ in range(2):
        full = engine.complete(SOURCE, len(SOURCE), language_id="python", path="/w/report.py",
                               deadline=time.monotonic() + 120)
    assert full.stop_reason != "deadline" and len(WORD.findall(full.text)) >= 4, full.text
    stall = {"armed": True, "words": 0}

    async def run_model(fn: Any, *args: Any, **kwargs: Any) -> Any:
        if stall["armed"]:
            stall["armed"] = False
            streamed: list[str] = []

            def on_text(piece: str) -> None:
                streamed.append(piece)
                words = len(WORD.findall("".join(streamed)))
                if words >= 3 and not stall["words"]:
                    stall["words"] = words
                    time.sleep(max(0.0, kwargs["deadline"] - time.monotonic()) + 0.01)

            kwargs["on_text"] = on_text
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def scenario() -> None:
        service = CompletionService(run_model, Stats(), SuggestionCache(64))
        doc = OpenDocument.open("file:///w/report.py", "python", 1, SOURCE)
        offset = len(SOURCE)
        answer = await service.suggest(engine, doc, offset, invoked=False,
                                       created=time.monotonic(), debounce_s=0, budget_s=5.0)
        assert stall["words"], "the stream never reached three words"
        assert answer.source == "model" and answer.partial
        assert answer.text and full.text.startswith(answer.text)
        assert len(answer.text) < len(full.text.split("\n")[0])
        # What the server does after showing it: finish the line in the background.
        await service.prefetch_after(engine, doc, offset, answer.text, 60.0, partial=True,
                                     multiline=answer.multiline)
        # The user types the first character of the suggestion: the whole line shows.
        doc.edit(offset, offset, answer.text[0])
        doc.version += 1
        typed = await service.suggest(engine, doc, offset + 1, invoked=False,
                                      created=time.monotonic(), debounce_s=0, budget_s=5.0)
        assert typed.source == "type_through" and not typed.partial
        assert answer.text[0] + typed.text == full.text.split("\n")[0]
        assert service.stats.snapshot()["suggestions"]["partial_joined"] == 1

    asyncio.run(scenario())
