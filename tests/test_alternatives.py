"""When the filters reject an answer, the engine asks the model for its next choice.

Real model, real HumanEval programs where the first answer is a line the filters drop (a block
header nothing below can fill): the next tries must start with another word, stay within the
number configured, and what is shown must have passed the filters.
"""

from __future__ import annotations

import gzip
import json
import time

import pytest

from ghostfill.completion.snapshot import CompletionInput
from ghostfill.config import Config
from ghostfill.engine import CompletionEngine
from tests.conftest import DATA_DIR

TASKS = ("SingleLineInfilling/HumanEval/6/L10", "SingleLineInfilling/HumanEval/8/L4",
         "SingleLineInfilling/HumanEval/1/L7")


@pytest.fixture(scope="module")
def programs() -> dict[str, tuple[str, int]]:
    path = DATA_DIR / "HumanEval-SingleLineInfilling.jsonl.gz"
    if not path.is_file():
        pytest.skip(f"{path} is not available")
    found = {}
    with gzip.open(path, "rt") as lines:
        for line in lines:
            task = json.loads(line)
            if task["task_id"] in TASKS:
                found[task["task_id"]] = (task["prompt"] + "\n" + task["suffix"],
                                          len(task["prompt"]))
    return found


def _first_word(raw: str) -> str:
    return raw.split()[0] if raw.split() else ""


def test_a_rejected_answer_is_followed_by_the_models_next_choice(gemma_backend, programs):
    one = CompletionEngine(Config().updated({"completion": {"alternatives": 0}}), gemma_backend)
    three = one.with_config(one.config.updated({"completion": {"alternatives": 2}}))
    rejected_then_found = 0
    for text, offset in programs.values():
        first = one.complete(CompletionInput.of_text(text, offset, language_id="python"),
                             multiline=False, deadline=time.monotonic() + 60)
        if first.text:
            continue  # kept at the first try (llama.cpp state can differ): nothing to retry
        assert first.raw.strip() and first.extra["attempts"] == 1
        again = three.complete(CompletionInput.of_text(text, offset, language_id="python"),
                               multiline=False, deadline=time.monotonic() + 60)
        assert 2 <= again.extra["attempts"] <= 3
        assert _first_word(again.raw) != _first_word(first.raw)
        if again.text:
            rejected_then_found += 1
            assert again.text.strip() == again.raw.strip()  # it passed the filters as is
        else:
            assert again.extra["attempts"] == 3
    assert rejected_then_found >= 1
