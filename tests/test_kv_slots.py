"""One KV cache slot per document, and prompt chunks sized to the deadline (issue #17).

The backends here are the real embedded model with small slots (768 tokens) so each prompt
is read in a few batches. No assertion is about time: where a deadline is needed it is a
fraction of what this machine just took for the same work, whatever its speed.
"""

from __future__ import annotations

import json.decoder
import json.encoder
import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import llama_cpp
import pytest

from ghostfill.backends.base import GenerationRequest, PromptParts
from ghostfill.backends.llamacpp import (
    AUTO_KV_CAP,
    MAX_AUTO_SLOTS,
    PREFILL_MIN_CHUNK,
    PREFILL_SLICE_MS,
    PREFILL_SLICE_TOKENS,
    UNKNOWN_MEMORY,
    LlamaCppBackend,
    _SlotTable,
    choose_slots,
    prefill_chunk,
)

#: ~28,000 characters of real code to cut prompts from.
SOURCE = Path(json.decoder.__file__).read_text() + Path(json.encoder.__file__).read_text()
CONTEXT = 768


@pytest.fixture(scope="module")
def slotted(gemma_path: Path) -> Iterator[LlamaCppBackend]:
    backend = LlamaCppBackend(gemma_path, context_length=CONTEXT, slots=2)
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def single(gemma_path: Path) -> Iterator[LlamaCppBackend]:
    backend = LlamaCppBackend(gemma_path, context_length=CONTEXT, slots=1)
    yield backend
    backend.close()


def prompt(backend: LlamaCppBackend, start: int, length: int = 400) -> list[int]:
    """A prompt from a slice of real source code (~100 tokens for 400 characters)."""
    tok = backend.tokenizer
    assert start + length <= len(SOURCE)
    return [tok.bos_id, *tok.encode(SOURCE[start : start + length])]


def ask(backend: LlamaCppBackend, tokens: list[int], document: str | None,
        max_tokens: int = 3, deadline: float | None = None):
    return backend.generate(GenerationRequest(PromptParts(tokens, document=document),
                                              max_tokens=max_tokens, deadline=deadline))


def fresh(backend: LlamaCppBackend, tokens: list[int]) -> list[int]:
    """Greedy tokens for `tokens` read from an empty cache."""
    backend._use_slot(None)
    backend._truncate_cache(0)
    return ask(backend, tokens, None, max_tokens=10).tokens


def cache_is_consistent(backend: LlamaCppBackend) -> int:
    """What llama.cpp holds in the current slot's sequence is what the backend thinks it
    holds: positions 0..n-1, nothing after. Returns n."""
    n = len(backend._cached)
    seq = backend._slot.seq
    memory = backend._llm._ctx.memory
    assert llama_cpp.llama_memory_seq_pos_max(memory, seq) == n - 1
    assert llama_cpp.llama_memory_seq_pos_min(memory, seq) == (0 if n else -1)
    return n


# -- pure parts -------------------------------------------------------------------------
def test_without_a_deadline_prompts_are_read_in_full_batches():
    assert prefill_chunk(1000, 256, time_left_ms=None, ms_per_token=2.0) == 256
    assert prefill_chunk(1000, 256, time_left_ms=None, ms_per_token=None) == 256
    assert prefill_chunk(40, 256, time_left_ms=None, ms_per_token=2.0) == 40
    # An infinite deadline (`ghostfill complete`, doctor, the HumanEval harness without a
    # budget) is no deadline, measured speed or not.
    assert prefill_chunk(1000, 256, time_left_ms=math.inf, ms_per_token=2.0) == 256
    assert prefill_chunk(1000, 256, time_left_ms=math.inf, ms_per_token=None) == 256


def test_background_reads_go_in_slices_a_keystroke_can_wait_for():
    # A warm-up or a late answer: batches of about PREFILL_SLICE_MS at the measured speed.
    assert prefill_chunk(1000, 256, time_left_ms=None, ms_per_token=2.0,
                         slice_ms=100.0) == 50
    assert prefill_chunk(1000, 256, time_left_ms=None, ms_per_token=None,
                         slice_ms=100.0) == PREFILL_SLICE_TOKENS
    assert prefill_chunk(1000, 256, time_left_ms=None, ms_per_token=50.0,
                         slice_ms=100.0) == PREFILL_MIN_CHUNK
    assert prefill_chunk(1000, 256, time_left_ms=None, ms_per_token=0.1,
                         slice_ms=100.0) == 256
    assert prefill_chunk(10, 256, time_left_ms=None, ms_per_token=2.0, slice_ms=100.0) == 10
    # Under a deadline too (a late answer has one: the invoked budget).
    assert prefill_chunk(1000, 256, time_left_ms=2000.0, ms_per_token=2.0,
                         slice_ms=100.0) == 50
    assert prefill_chunk(1000, 256, time_left_ms=40.0, ms_per_token=2.0, slice_ms=100.0) == 20
    assert PREFILL_SLICE_MS <= 150.0  # never longer than the default latency budget


def test_under_a_deadline_a_chunk_fits_the_time_left():
    # 100 ms left at 2 ms a token: 50 tokens, not a whole 256-token batch.
    assert prefill_chunk(1000, 256, time_left_ms=100.0, ms_per_token=2.0) == 50
    # Plenty of time: still no batch beyond the batch size, nor beyond the prompt.
    assert prefill_chunk(1000, 256, time_left_ms=10_000.0, ms_per_token=2.0) == 256
    assert prefill_chunk(30, 256, time_left_ms=10_000.0, ms_per_token=2.0) == 30
    # Almost no time, or a speed not measured yet: the smallest chunk, never none.
    assert prefill_chunk(1000, 256, time_left_ms=1.0, ms_per_token=2.0) == PREFILL_MIN_CHUNK
    assert prefill_chunk(1000, 256, time_left_ms=-5.0, ms_per_token=2.0) == PREFILL_MIN_CHUNK
    assert prefill_chunk(1000, 256, time_left_ms=100.0, ms_per_token=None) == PREFILL_MIN_CHUNK
    assert prefill_chunk(3, 256, time_left_ms=1.0, ms_per_token=2.0) == 3
    assert prefill_chunk(1000, 8, time_left_ms=1.0, ms_per_token=2.0) == 8


def test_a_chunk_never_outlasts_the_time_left_by_more_than_the_smallest_chunk():
    for ms_per_token in (0.1, 0.7, 2.0, 13.0):
        previous = 0
        for time_left in range(0, 2000, 7):
            size = prefill_chunk(5000, 256, time_left_ms=float(time_left),
                                 ms_per_token=ms_per_token)
            assert size * ms_per_token <= max(time_left, PREFILL_MIN_CHUNK * ms_per_token)
            assert size >= previous  # more time never means a smaller chunk
            previous = size


def test_slot_count_follows_the_setting_the_budget_or_the_memory():
    slot = 36 << 20  # 2048 tokens of the embedded model
    assert choose_slots(slot, slots=3) == (3, "set")
    assert choose_slots(slot, slots=3, kv_cache_bytes=1)[0] == 3  # the count wins
    assert choose_slots(slot, kv_cache_bytes=100 << 20)[0] == 2  # whole slots only
    assert choose_slots(slot, kv_cache_bytes=1 << 20)[0] == 1  # never none
    assert choose_slots(slot, kv_cache_bytes=64 << 30)[0] == MAX_AUTO_SLOTS
    # Memory decides: an eighth of what is available, capped.
    assert choose_slots(slot, available=8 * 3 * slot)[0] == 3
    assert choose_slots(1 << 30, available=256 << 30)[0] == AUTO_KV_CAP >> 30
    assert choose_slots(slot, available=None)[0] == min(
        MAX_AUTO_SLOTS, UNKNOWN_MEMORY // 8 // slot)
    assert choose_slots(slot, available=0)[0] == 1
    with pytest.raises(ValueError):
        choose_slots(slot, slots=0)


def test_a_new_document_takes_a_free_slot_then_the_least_recently_used_one():
    table = _SlotTable(2)
    a, evicted = table.take("a.py")
    assert (a.seq, evicted) == (0, False)
    b, evicted = table.take("b.py")
    assert (b.seq, evicted) == (1, False)
    assert table.take("a.py") == (a, False)  # a is now the most recently used
    c, evicted = table.take("c.py")
    assert c is b and evicted
    assert table.documents() == ["a.py", "c.py"]
    anonymous, _ = table.take(None)  # no path: one shared slot, evicting like any other
    assert anonymous is a and table.take(None) == (a, False)


# -- the real model ---------------------------------------------------------------------
def test_each_slot_is_its_own_stream_of_a_whole_prompt(slotted: LlamaCppBackend):
    ctx = slotted._llm._ctx.ctx
    assert llama_cpp.llama_n_seq_max(ctx) == slotted.slots == 2
    assert llama_cpp.llama_n_ctx_seq(ctx) >= slotted.context_length == CONTEXT
    options = slotted.options()
    assert options["slots"] == 2 and options["n_ctx"] == CONTEXT
    assert options["kv_bytes_per_token"] == slotted.kv_bytes_per_token > 0


def test_kv_bytes_per_token_is_what_llama_cpp_stores(slotted: LlamaCppBackend):
    tokens = prompt(slotted, 0)
    slotted.warm(tokens, document="measure.py")
    stored = llama_cpp.llama_state_seq_get_size(slotted._llm._ctx.ctx, slotted._slot.seq)
    per_token = stored / len(slotted._cached)
    # The state adds a few bytes of bookkeeping per cell (position, sequences).
    assert slotted.kv_bytes_per_token <= per_token < 1.02 * slotted.kv_bytes_per_token


def test_returning_to_a_document_reuses_its_cache_after_another_ran(
        slotted: LlamaCppBackend, single: LlamaCppBackend):
    first, other = prompt(slotted, 0), prompt(slotted, 3000)
    keystroke = slotted.tokenizer.encode("\n# typed\n")
    for backend in (slotted, single):
        ask(backend, first, "first.py")
        ask(backend, other, "other.py")
    back = ask(slotted, first + keystroke, "first.py")
    assert back.timings.reused_tokens >= len(first)
    assert back.timings.evaluated_tokens == len(first) + len(keystroke) - back.timings.reused_tokens
    # One slot for all documents: the other file took it, the first is read again.
    again = ask(single, first + keystroke, "first.py")
    assert again.timings.reused_tokens < 5


def test_output_does_not_depend_on_the_slot_nor_on_what_ran_between(
        slotted: LlamaCppBackend, single: LlamaCppBackend):
    prompts = {name: prompt(slotted, start)
               for name, start in [("a.py", 6000), ("b.py", 9000), ("c.py", 12000)]}
    reference = {name: fresh(single, tokens) for name, tokens in prompts.items()}
    seqs: dict[str, set[int]] = {name: set() for name in prompts}
    # With two slots: c evicts a, a comes back in b's slot, b in c's.
    for name in ["a.py", "b.py", "c.py", "a.py", "b.py"]:
        out = ask(slotted, prompts[name], name, max_tokens=10)
        assert out.timings.reused_tokens == 0  # each read from an emptied slot
        assert out.tokens == reference[name], name
        seqs[name].add(slotted._slot.seq)
    assert seqs["a.py"] == {0, 1} and seqs["b.py"] == {0, 1}


def test_more_documents_than_slots_evicts_the_least_recently_used(slotted: LlamaCppBackend):
    a, b, c = prompt(slotted, 15000), prompt(slotted, 16000), prompt(slotted, 17000)
    ask(slotted, a, "lru-a.py")
    ask(slotted, b, "lru-b.py")
    assert ask(slotted, a, "lru-a.py").timings.reused_tokens == len(a) - 1
    ask(slotted, c, "lru-c.py")  # evicts b: a was used more recently
    assert slotted._table.documents() == ["lru-a.py", "lru-c.py"]
    assert ask(slotted, a, "lru-a.py").timings.reused_tokens == len(a) - 1
    assert ask(slotted, b, "lru-b.py").timings.reused_tokens == 0  # evicts c
    assert cache_is_consistent(slotted) >= len(b)
    assert ask(slotted, c, "lru-c.py").timings.reused_tokens == 0


def test_warm_fills_the_named_slot_and_leaves_the_others(slotted: LlamaCppBackend):
    kept, warmed = prompt(slotted, 18000), prompt(slotted, 19000)
    ask(slotted, kept, "kept.py")
    assert slotted.warm(warmed, document="warmed.py") == len(warmed)
    assert cache_is_consistent(slotted) == len(warmed)
    out = ask(slotted, warmed, "warmed.py")
    assert (out.timings.reused_tokens, out.timings.evaluated_tokens) == (len(warmed) - 1, 1)
    assert ask(slotted, kept, "kept.py").timings.reused_tokens == len(kept) - 1
    assert slotted.warm(warmed, document="warmed.py") == 1  # already there


def test_a_request_cut_by_its_deadline_leaves_a_cache_the_next_continues(
        slotted: LlamaCppBackend):
    tokens = prompt(slotted, 24000, 1800)
    assert 8 * PREFILL_MIN_CHUNK < len(tokens) < CONTEXT - 20
    # This machine's speed, just measured on another document (full batches).
    slotted.warm(prompt(slotted, 0), document="speed.py")
    ms_per_token = slotted.prefill_ms_per_token
    assert ms_per_token is not None and ms_per_token > 0
    # A quarter of the time the prompt needs: it cannot be read in full, whatever the speed.
    budget_s = 0.25 * len(tokens) * ms_per_token / 1000
    cut = ask(slotted, tokens, "deadline.py", deadline=time.monotonic() + budget_s)
    assert cut.stop_reason == "deadline" and cut.tokens == []
    assert 0 < cut.timings.evaluated_tokens < len(tokens)
    held = cache_is_consistent(slotted)
    assert held == cut.timings.evaluated_tokens
    assert slotted._cached == tokens[:held]
    # The next keystroke (other documents ran in between) goes on from there.
    ask(slotted, prompt(slotted, 1000), "between.py")
    assert slotted._table.documents()[-2:] == ["deadline.py", "between.py"]
    done = ask(slotted, tokens, "deadline.py")
    assert done.stop_reason != "deadline" and done.tokens
    assert done.timings.reused_tokens == held
    assert done.timings.evaluated_tokens == len(tokens) - held


@pytest.mark.parametrize("warmed_doc", ["warmed.py", None])
def test_a_keystroke_does_not_wait_for_a_warm_up_in_another_document(
        slotted: LlamaCppBackend, warmed_doc: str | None):
    """A warm-up (background) steps aside between its slices for a request that waits, and
    goes on afterwards in its own slot (the shared one of documents without a path too):
    the request is answered while the warm-up still runs, both end as they would alone."""
    long = prompt(slotted, 2000, 2400)  # ~600 tokens: many slices
    short = prompt(slotted, 6000)
    assert len(long) > 4 * PREFILL_SLICE_TOKENS
    alone = fresh(slotted, short)
    slotted._use_slot("typed.py")
    slotted._truncate_cache(0)
    slotted._use_slot(warmed_doc)
    slotted._truncate_cache(0)
    before = slotted.stepped_aside
    order: list[str] = []
    warmed: list[int] = []

    def warm() -> None:
        warmed.append(slotted.warm(long, document=warmed_doc))
        order.append("warm")

    thread = threading.Thread(target=warm)
    thread.start()
    # Ask once the warm-up holds the model and has read something (its first slice).
    while not (slotted._slot.seq == slotted._table._of.get(warmed_doc, slotted._slot).seq
               and len(slotted._cached) > 0):
        time.sleep(0.001)
    answer = ask(slotted, short, "typed.py", max_tokens=10)
    order.append("keystroke")
    thread.join()
    assert order == ["keystroke", "warm"]
    assert slotted.stepped_aside > before
    assert answer.tokens == alone
    assert warmed == [len(long)]  # nothing read twice: the slot kept what was read before
    slotted._use_slot(warmed_doc)
    assert slotted._cached == long
    cache_is_consistent(slotted)


def test_a_late_answer_steps_aside_between_tokens_and_is_unchanged(
        slotted: LlamaCppBackend):
    """A background generation (an answer finishing after its budget) gives the model to
    a waiting request between its tokens, and its answer is the one it gives alone."""
    mine, other = prompt(slotted, 9000), prompt(slotted, 11000)
    alone = fresh(slotted, mine)
    alone_other = fresh(slotted, other)
    before = slotted.stepped_aside
    results: dict[str, list[int]] = {}
    started = threading.Event()

    def late() -> None:
        def on_text(_: str) -> None:
            started.set()
            time.sleep(0.02)  # room for the other request to start waiting
        results["late"] = slotted.generate(GenerationRequest(
            PromptParts(mine, document="late.py"), max_tokens=10, background=True,
            on_text=on_text)).tokens

    thread = threading.Thread(target=late)
    thread.start()
    assert started.wait(60)
    results["keystroke"] = ask(slotted, other, "late.py", max_tokens=10).tokens
    thread.join()
    assert slotted.stepped_aside > before
    assert results == {"late": alone, "keystroke": alone_other}
