"""Several suggestions (issue #19): an invoked request gets up to `completion.choices` distinct
items, the greedy one first, the rest the model's next choices of first word; automatic requests
stay one item. The cache and type-through keep the list, so asking again or typing into it does
not run the model again.

Server tests: the real server over stdio with the scripted engine (tests/scripted_server.py,
whose "alternatives" are what it generates once the first words before are banned). Engine
test: the real default model.
"""

from __future__ import annotations

import json
import time

import pytest_lsp
from lsprotocol import types
from pytest_lsp import LanguageClient

from ghostfill.completion.postprocess import postprocess
from ghostfill.completion.snapshot import CompletionInput
from ghostfill.config import Config
from ghostfill.engine import CompletionEngine
from tests.lsp_helpers import change, inline, open_doc
from tests.test_server_behaviour import (
    OPTIONS,
    SCRIPT,
    SCRIPTED,
    URI,
    model_requests,
    start,
)

SOURCE = "def mean(values):\n    "
GREEDY = "return sum(values) / len(values)"
#: What the scripted model says with the first words before banned: "return 0" starts like
#: the greedy answer (banned with it), "raise" and "total" are the next choices.
ALTERNATIVES = ["return 0", "raise ValueError(values)", "total = sum(values)", "pass"]


def script_choices() -> None:
    SCRIPT.write_text(json.dumps({"answer": GREEDY, "alternatives": ALTERNATIVES}))


@pytest_lsp.fixture(config=SCRIPTED)
async def client(lsp_client: LanguageClient):
    await start(lsp_client, {**OPTIONS, "completion": {**OPTIONS["completion"], "choices": 3}})
    yield
    await lsp_client.shutdown_session()


def texts(items: list[types.InlineCompletionItem]) -> list[str]:
    return [i.insert_text if isinstance(i.insert_text, str) else i.insert_text.value
            for i in items]


async def test_invoked_gets_several_distinct_items_greedy_first(client: LanguageClient):
    script_choices()
    open_doc(client, URI, SOURCE)
    items = await inline(client, URI, 1, 4, invoked=True)
    assert texts(items) == [GREEDY, "raise ValueError(values)", "total = sum(values)"]
    for item in items:  # each is a whole item: its own range and accept command
        assert item.range is not None and item.range.start == types.Position(line=1,
                                                                              character=4)
        assert item.command is not None and item.command.command == "ghostfill.accepted"
    # Asked again at the same place: the list comes from the cache.
    asked = model_requests()
    again = await inline(client, URI, 1, 4, invoked=True)
    assert texts(again) == texts(items)
    assert model_requests() == asked


async def test_automatic_stays_one_item_and_an_invoke_after_it_looks_further(
        client: LanguageClient):
    script_choices()
    open_doc(client, URI, SOURCE)
    items = await inline(client, URI, 1, 4, invoked=False)
    assert texts(items) == [GREEDY]
    assert model_requests() == 1  # one generation: no alternatives for a keystroke
    # The cached entry was searched for one suggestion: an invoke runs the model for more.
    items = await inline(client, URI, 1, 4, invoked=True)
    assert texts(items) == [GREEDY, "raise ValueError(values)", "total = sum(values)"]
    assert model_requests() > 1
    # And the automatic request at that place now gets the first of them, from the cache.
    asked = model_requests()
    assert texts(await inline(client, URI, 1, 4, invoked=False)) == [GREEDY]
    assert model_requests() == asked


async def test_typing_into_the_list_keeps_the_items_it_matches(client: LanguageClient):
    script_choices()
    open_doc(client, URI, SOURCE)
    await inline(client, URI, 1, 4, invoked=True)
    asked = model_requests()
    change(client, URI, 2, (1, 4), (1, 4), "r")  # both "return …" and "raise …" go on
    assert texts(await inline(client, URI, 1, 5, invoked=True)) == [
        GREEDY[1:], "aise ValueError(values)"]
    assert texts(await inline(client, URI, 1, 5, invoked=False)) == [GREEDY[1:]]
    change(client, URI, 3, (1, 5), (1, 5), "a")  # the user is typing the second one
    assert texts(await inline(client, URI, 1, 6, invoked=False)) == ["ise ValueError(values)"]
    assert model_requests() == asked  # all of it without the engine


async def test_one_choice_configured_gives_one_item(client: LanguageClient):
    script_choices()
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(
        settings={"completion": {"choices": 1}}))
    open_doc(client, URI, SOURCE)
    assert texts(await inline(client, URI, 1, 4, invoked=True)) == [GREEDY]


# -- the real model ---------------------------------------------------------------------------

#: Places where the small default model's first answer passes the filters and its next
#: choices differ (a call's arguments, a constructor's next line, a function's end).
PROGRAMS = [
    "def greet(name):\n    print(",
    "class Point:\n    def __init__(self, x, y):\n        self.x = x\n        ",
    "def mean(values):\n    total = sum(values)\n    ",
]


def test_the_default_model_gives_several_distinct_suggestions_that_pass_the_filters(
        gemma_backend):
    # Short answers and a generous deadline: this machine may be shared and slow; the
    # subject is which answers come, not how fast.
    config = Config().updated({"completion": {"choices": 3, "maxTokens": 24}})
    engine = CompletionEngine(config, gemma_backend)
    several = 0
    for text in PROGRAMS:
        prepared = engine.prepare(CompletionInput.of_text(text, len(text),
                                                          language_id="python"))
        results = engine.run_choices(prepared, 3, deadline=time.monotonic() + 300)
        answers = [r.text for r in results]
        assert 1 <= len(answers) <= 3
        if not answers[0]:
            continue  # the filters dropped every first answer here: nothing to cycle
        assert len(set(answers)) == len(answers), answers
        # Greedy first: what a single-answer request shows.
        assert answers[0] == engine.run(prepared, deadline=time.monotonic() + 300).text
        for r in results:
            assert r.text.strip() and r.stop_reason != "deadline", r
            # Past the filters: run again, they keep it whole.
            assert postprocess(r.text, prepared.filters) == r.text, r
        several += len(answers) >= 2
    assert several >= 2
