from __future__ import annotations

import pytest

from ghostfill.config import Config
from ghostfill.errors import ConfigError


def test_camel_and_snake_case_keys_apply():
    c = Config().updated({"model": {"name": "smollm2-135m"},
                          "completion": {"maxTokens": 32, "latency_budget_ms": 500}})
    assert c.model.name == "smollm2-135m"
    assert c.completion.max_tokens == 32
    assert c.completion.latency_budget_ms == 500
    assert Config().completion.max_tokens != 32  # the original is untouched


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"model": {"nmae": "x"}}, "unknown key 'model.nmae'"),
        ({"completion": {"maxTokens": "many"}}, "completion.max_tokens must be an integer"),
        ({"completion": {"maxTokens": True}}, "must be an integer"),
        ({"completion": {"multiline": "sometimes"}}, "completion.multiline must be one of"),
        ({"completion": {"maxTokens": 0}}, "max_tokens must be 1..4096"),
        ({"context": {"prefixShare": 1.5}}, "prefix_share"),
        ({"completion": {"choices": 0}}, "completion.choices must be 1..8"),
        ({"completion": {"choices": 9}}, "completion.choices must be 1..8"),
        ({"completion": {"blockCandidates": 0}}, "completion.block_candidates must be 1..8"),
        ({"completion": {"blockCandidates": 9}}, "completion.block_candidates must be 1..8"),
        ({"model": "gemma"}, "model must be an object"),
        ([1, 2], "options must be an object"),
    ],
)
def test_invalid_values_name_the_key(values, fragment):
    with pytest.raises(ConfigError) as info:
        Config().updated(values)
    assert fragment in str(info.value)


def test_lists_and_headers_coerce():
    c = Config().updated({"completion": {"disabledLanguages": ["markdown"]},
                          "remote": {"headers": {"X-Team": "a"}}})
    assert c.completion.disabled_languages == ("markdown",)
    assert c.remote.headers == (("X-Team", "a"),)


def test_optional_values_accept_null():
    c = Config().updated({"model": {"contextLength": 1024}}).updated(
        {"model": {"contextLength": None}})
    assert c.model.context_length is None
