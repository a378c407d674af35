"""Prompt windows: budgets by the real tokenizer, line-boundary cuts, stable anchors."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ghostfill.completion.context import WindowAnchor, build_window, make_budget

CODE_CHARS = st.sampled_from([*"abcdefxyz_ ()[]{}:=+-*/.,'\"#\n\n\n\t", "é", "😀", "字"])
DOCS = st.text(CODE_CHARS, max_size=1200)


def budget_for(prefix_tokens: int, suffix_tokens: int):
    return make_budget(prefix_tokens + suffix_tokens + 64 + 8, 64, 8, prefix_share=0.75,
                       max_suffix_tokens=suffix_tokens, suffix_used=suffix_tokens > 0)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=DOCS, where=st.floats(0, 1), prefix_tokens=st.integers(0, 300),
       suffix_tokens=st.integers(0, 120))
def test_window_fits_the_budget_and_cuts_on_lines(starcoder_tokenizer, doc, where, prefix_tokens,
                                                   suffix_tokens):
    tok = starcoder_tokenizer
    offset = int(len(doc) * where)
    budget = budget_for(prefix_tokens, suffix_tokens)
    w = build_window(doc, offset, tok, budget)
    # Exact counts with the real tokenizer.
    assert w.prefix_ids == tok.encode(w.prefix)
    assert w.suffix_ids == tok.encode(w.suffix)
    assert len(w.prefix_ids) <= budget.prefix_limit
    assert len(w.prefix_ids) + len(w.suffix_ids) <= budget.prefix_limit + budget.suffix_limit
    # The local prefix is a suffix of the true prefix; the local suffix a prefix of the suffix.
    assert doc[:offset].endswith(w.prefix) and w.prefix == doc[w.prefix_start:offset]
    assert doc[offset:].startswith(w.suffix) and w.suffix == doc[offset:w.suffix_end]
    # Cuts fall on line boundaries (or at the cursor when not even its line fits).
    assert w.prefix_start in (0, offset) or doc[w.prefix_start - 1] == "\n"
    assert w.suffix_end in (len(doc), offset) or doc[w.suffix_end - 1] == "\n"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=DOCS, where=st.floats(0, 1), prefix_tokens=st.integers(20, 300))
def test_anchored_window_has_the_same_guarantees(starcoder_tokenizer, doc, where, prefix_tokens):
    tok = starcoder_tokenizer
    offset = int(len(doc) * where)
    budget = budget_for(prefix_tokens, 0)
    anchor = WindowAnchor()
    for cut in (max(0, offset - 5), offset):
        w = build_window(doc[:cut] + doc[offset:], cut, tok, budget, anchor=anchor)
        assert len(w.prefix_ids) <= budget.prefix_limit
        assert tok.decode_bytes(w.prefix_ids).decode("utf-8", "replace") == w.prefix or \
            "\ufffd" in tok.decode_bytes(w.prefix_ids).decode("utf-8", "replace")


def test_typing_does_not_move_the_window_start(starcoder_tokenizer):
    tok = starcoder_tokenizer
    body = "".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(300))
    typed = "def g(values):\n    total = 0\n    for v in values:\n        total += v\n"
    budget = budget_for(1000, 0)
    anchor = WindowAnchor()
    starts = []
    for n in range(0, len(typed) + 1):
        text = body + typed[:n]
        w = build_window(text, len(text), tok, budget, anchor=anchor)
        assert len(w.prefix_ids) <= budget.prefix_limit
        starts.append(w.prefix_start)
    moves = sum(1 for a, b in pairwise(starts) if a != b)
    # At most one move while typing four lines: the slack absorbs the rest.
    assert moves <= 1, moves
    assert starts[0] > 0


def test_syntax_boundaries_are_preferred(starcoder_tokenizer):
    tok = starcoder_tokenizer
    lines = [f"x{i} = {i}" for i in range(400)]
    text = "\n".join(lines) + "\n"
    allowed = list(range(0, 400, 10))
    w = build_window(text, len(text), tok, budget_for(300, 0), boundaries=allowed)
    start_line = text[: w.prefix_start].count("\n")
    assert start_line % 10 == 0
    assert len(w.prefix_ids) <= 300


def test_unused_suffix_budget_flows_to_the_prefix(starcoder_tokenizer):
    tok = starcoder_tokenizer
    text = "a = 1\n" * 2000
    offset = len(text) - 6  # cursor on the last line: almost no suffix
    budget = budget_for(100, 100)
    w = build_window(text, offset, tok, budget)
    assert len(w.suffix_ids) <= 10
    assert len(w.prefix_ids) <= budget.prefix_limit


def test_a_trailing_blank_line_is_tokenized_whole(starcoder_tokenizer):
    tok = starcoder_tokenizer
    text = 'def f():\n    """Doc."""\n\n'
    budget = budget_for(200, 0)
    w = build_window(text, len(text), tok, budget, anchor=WindowAnchor())
    assert w.prefix_ids == tok.encode(text)
