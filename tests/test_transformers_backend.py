"""The transformers backend on the CPU, with tiny random models built offline.

All models share the real StarCoder tokenizer (from the vocabulary GGUF), so vocabularies,
FIM ids and decoding are real. The target is a DeciCoder-style Llama (config.json without
model_type), the draft a GPTBigCode (MQA) model rigged to agree with it often: see
`ghostfill.bench.speculative.build_random_pair` for how. Exactness is checked against a
reference greedy loop that recomputes the whole sequence every step (no cache at all).
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("gguf")

from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from ghostfill.backends.base import (  # noqa: E402
    CancelToken,
    Generation,
    GenerationRequest,
    PromptParts,
)
from ghostfill.backends.hf_loading import (  # noqa: E402
    expand_kv_heads,
    load_model,
    read_state_dict,
    uniform_kv_heads,
)
from ghostfill.backends.sequences import common_prefix, prompt_lookup  # noqa: E402
from ghostfill.backends.speculative import (  # noqa: E402
    DraftLength,
    KVModel,
    ModelDraft,
    verify,
)
from ghostfill.backends.transformers_backend import (  # noqa: E402
    KV_CACHE_MAX_CONTEXTS,
    TransformersBackend,
    default_kv_cache_bytes,
    kv_bytes_per_token,
)
from ghostfill.bench.speculative import build_random_pair  # noqa: E402
from ghostfill.errors import ModelLoadError, ModelNotAvailable  # noqa: E402
from tests.conftest import vocab  # noqa: E402

VOCAB = 49152
SETTINGS = settings(max_examples=12, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@dataclass
class Env:
    tokenizer: Any
    target_dir: Path
    draft_dir: Path
    target: Any  # the target model, loaded on its own for reference computations
    draft: Any


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    from transformers import AutoTokenizer

    # Tiny models gain nothing from a second thread, and on a busy machine OpenMP threads
    # that wait for each other make every step many times slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    path = vocab("starcoder")
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    target_dir, draft_dir = build_random_pair(tmp_path_factory.mktemp("pair"), tokenizer)
    target = load_model(target_dir, device="cpu").model
    draft = load_model(draft_dir, device="cpu").model
    yield Env(tokenizer, target_dir, draft_dir, target, draft)
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def backend(env: Env):
    b = TransformersBackend(env.target_dir, draft=env.draft_dir, device="cpu", model_name="tiny")
    yield b
    b.close()


@pytest.fixture(scope="module")
def lookup_backend(env: Env):
    b = TransformersBackend(env.target_dir, device="cpu", speculative="prompt-lookup")
    yield b
    b.close()


def reference_greedy(model: Any, prompt: list[int], n: int) -> list[int]:
    """Greedy decoding the slow, obviously right way: the whole sequence every step."""
    ids = list(prompt)
    with torch.inference_mode():
        for _ in range(n):
            logits = model(input_ids=torch.tensor([ids]), logits_to_keep=1).logits[0, -1]
            ids.append(int(logits.argmax()))
    return ids[len(prompt):]


def fresh_logits(model: Any, ids: list[int]) -> Any:
    with torch.inference_mode():
        return model(input_ids=torch.tensor([ids]), logits_to_keep=1).logits[0, -1].float()


def random_prompt(rng: random.Random, lo: int = 4, hi: int = 48) -> list[int]:
    return [rng.randrange(100, VOCAB) for _ in range(rng.randrange(lo, hi))]


def generate(backend: TransformersBackend, tokens: list[int], max_tokens: int = 24,
             document: str | None = None, **kw: Any) -> Generation:
    return backend.generate(GenerationRequest(PromptParts(tokens, document=document),
                                              max_tokens=max_tokens, **kw))


# -- exactness --------------------------------------------------------------------------
def test_draft_model_output_equals_plain_greedy(env: Env, backend: TransformersBackend) -> None:
    rng = random.Random(1)
    drafted = accepted = 0
    try:
        for i in range(6):
            backend.fix_draft_length([1, 3, 6][i % 3])
            prompt = random_prompt(rng)
            gen = generate(backend, prompt)
            assert gen.tokens == reference_greedy(env.target, prompt, 24), f"prompt {i}"
            assert gen.stop_reason == "max_tokens"
            drafted += gen.timings.drafted_tokens
            accepted += gen.timings.accepted_tokens
    finally:
        backend.fix_draft_length(None)
    # Both paths ran: drafts were accepted and drafts were rejected.
    assert 0 < accepted < drafted


def test_prompt_lookup_output_equals_plain_greedy(env: Env,
                                                  lookup_backend: TransformersBackend) -> None:
    rng = random.Random(2)
    drafted = accepted = 0
    for _ in range(6):
        # The context already holds what the model tends to write next (like code that
        # repeats), so lookup finds drafts; the last tokens of `base` recur at the end.
        base = random_prompt(rng, 6, 30)
        prompt = [*base, *reference_greedy(env.target, base, 12), *base[-3:]]
        gen = generate(lookup_backend, prompt)
        assert gen.tokens == reference_greedy(env.target, prompt, 24)
        drafted += gen.timings.drafted_tokens
        accepted += gen.timings.accepted_tokens
    assert 0 < accepted < drafted


def test_adaptive_draft_length_keeps_output_exact(env: Env, backend: TransformersBackend) -> None:
    rng = random.Random(3)
    for _ in range(2):
        prompt = random_prompt(rng)
        assert generate(backend, prompt, 32).tokens == reference_greedy(env.target, prompt, 32)


def test_plain_and_sampled_requests_draft_nothing(env: Env, backend: TransformersBackend) -> None:
    prompt = random_prompt(random.Random(4))
    plain = generate(backend, prompt, speculative=False)
    assert plain.tokens == reference_greedy(env.target, prompt, 24)
    assert plain.timings.drafted_tokens == 0
    sampled = generate(backend, prompt, temperature=0.8)
    assert len(sampled.tokens) == 24 and sampled.timings.drafted_tokens == 0


# -- caches ---------------------------------------------------------------------------
@SETTINGS
@given(
    prompt=st.lists(st.integers(100, VOCAB - 1), min_size=2, max_size=40),
    n_match=st.integers(0, 4),
    wrong=st.integers(100, VOCAB - 1),
    extra=st.lists(st.integers(100, VOCAB - 1), max_size=3),
)
def test_rejected_draft_leaves_exact_cache(env: Env, prompt: list[int], n_match: int,
                                           wrong: int, extra: list[int]) -> None:
    ref = reference_greedy(env.target, prompt, n_match + 2)
    assume(wrong != ref[n_match + 1])
    kv = KVModel(env.target, max_positions=1024)
    kv.sync(prompt)
    # Drafts agree with the target for n_match tokens, then go wrong.
    drafts = [*ref[1 : 1 + n_match], wrong, *extra]
    accepted, logits = verify(kv, ref[0], drafts)
    kept = [*prompt, *ref[: 1 + n_match]]
    assert accepted == n_match
    assert kv.tokens == kept
    assert kv.cache.get_seq_length() == len(kept)
    assert torch.allclose(logits, fresh_logits(env.target, kept), atol=1e-4)
    # Continuing from the cropped cache is the same as a fresh forward pass.
    after = kv.extend([ref[n_match + 1]])[-1]
    assert torch.allclose(after, fresh_logits(env.target, [*kept, ref[n_match + 1]]), atol=1e-4)


@SETTINGS
@given(
    seq=st.lists(st.integers(100, VOCAB - 1), min_size=4, max_size=30),
    cut=st.integers(1, 29),
    other=st.lists(st.integers(100, VOCAB - 1), min_size=1, max_size=5),
)
def test_draft_cache_follows_the_longest_common_prefix(env: Env, seq: list[int], cut: int,
                                                       other: list[int]) -> None:
    draft = ModelDraft(KVModel(env.draft, max_positions=1024), vocab_limit=VOCAB)
    first = draft.propose(seq, 4, None, None)
    assert len(first) == 4
    assert draft.kv.cache.get_seq_length() == len(draft.kv.tokens) == len(seq) + 3
    # A new sequence that leaves the old one after `cut` tokens (a rejected draft, an edit).
    seq2 = [*seq[: min(cut, len(seq))], *other]
    second = draft.propose(seq2, 3, None, None)
    assert draft.kv.tokens[: len(seq2)] == seq2
    assert draft.kv.cache.get_seq_length() == len(draft.kv.tokens)
    assert second[0] == int(fresh_logits(env.draft, seq2).argmax())
    assert second == reference_greedy(env.draft, seq2, 3)


def test_kv_cache_is_reused_between_requests(env: Env, backend: TransformersBackend) -> None:
    prompt = random_prompt(random.Random(5), 30, 40)
    first = generate(backend, prompt, 16)
    # The next keystroke: the user typed the first 8 suggested tokens, then something else.
    follow = [*prompt, *first.tokens[:8], 4242]
    second = generate(backend, follow, 16)
    assert second.timings.reused_tokens >= len(prompt) + 7
    assert second.timings.evaluated_tokens <= 2
    assert second.tokens == reference_greedy(env.target, follow, 16)
    # Warming an extension of the prompt evaluates only the new tokens.
    assert backend.warm([*follow, 7, 8, 9]) <= 4


# -- a cache per document ----------------------------------------------------------------
def test_returning_to_a_document_reuses_its_cache(env: Env, backend: TransformersBackend) -> None:
    rng = random.Random(20)
    a, b = random_prompt(rng, 30, 40), random_prompt(rng, 30, 40)
    first = generate(backend, a, 16, document="a.py")
    other = generate(backend, b, 16, document="b.py")
    assert other.timings.reused_tokens == 0  # b.py did not start from a.py's cache
    # Back in a.py: the user typed 8 suggested tokens, then something else.
    follow = [*a, *first.tokens[:8], 4242]
    again = generate(backend, follow, 16, document="a.py")
    assert again.timings.reused_tokens >= len(a) + 7
    assert again.timings.evaluated_tokens <= 2
    assert again.tokens == reference_greedy(env.target, follow, 16)
    # b.py's caches (the target's and the draft's) are still its own.
    b_target = backend.slot_tokens("b.py")
    b_draft = backend.slot_tokens("b.py", draft=True)
    assert b_target is not None and b_target[: len(b)] == b
    assert b_draft is not None and b_draft[: len(b)] == b
    options = backend.options()
    assert isinstance(options["kv_cache_slots"], int) and options["kv_cache_slots"] >= 2


def test_outputs_are_exact_whichever_slot_and_whatever_ran_between(
    env: Env, backend: TransformersBackend
) -> None:
    """Documents edited in turn (continued, or edited mid-prompt), drafts on: every answer is
    a fresh backend's and the plain greedy one, and each document resumes from its own cache."""
    rng = random.Random(21)
    fresh = TransformersBackend(env.target_dir, draft=env.draft_dir, device="cpu")
    names: list[str | None] = ["a.py", "b.py", None]
    docs = {d: random_prompt(rng, 20, 30) for d in names}
    seen: dict[str | None, list[int]] = {}
    order = [*names, *(rng.choice(names) for _ in range(6))]
    backend.fix_draft_length(4)
    try:
        for step, doc in enumerate(order):
            text = docs[doc]
            if doc in seen and rng.random() < 0.5:  # an edit inside the document
                cut = rng.randrange(len(text) // 2, len(text))
                text = [*text[:cut], *random_prompt(rng, 1, 4)]
            gen = generate(backend, text, 12, document=doc)
            fresh.reset_cache()
            assert gen.tokens == generate(fresh, text, 12).tokens, f"step {step}"
            assert gen.tokens == reference_greedy(env.target, text, 12), f"step {step}"
            if doc in seen:  # its own cache, whatever documents ran in between
                shared = min(common_prefix(seen[doc], text), len(text) - 1)
                assert gen.timings.reused_tokens >= shared, f"step {step}"
            seen[doc] = text
            docs[doc] = [*text, *gen.tokens[:4], rng.randrange(100, VOCAB)]
    finally:
        backend.fix_draft_length(None)
        fresh.close()


def test_least_recently_used_document_is_evicted_at_the_byte_bound(env: Env) -> None:
    per_token = kv_bytes_per_token(env.target.config, torch.float32)
    bound = 100 * per_token  # two documents of 40-token prompts and 8-token answers
    b = TransformersBackend(env.target_dir, device="cpu", speculative="off",
                            kv_cache_bytes=bound)
    try:
        assert b.options()["kv_bytes_per_token"] == per_token
        assert b.options()["kv_cache_bytes"] == bound
        rng = random.Random(22)
        prompts = {d: random_prompt(rng, 40, 41) for d in ("a.py", "b.py", "c.py")}
        for doc in ("a.py", "b.py", "a.py"):  # a.py is used again: b.py is now the oldest
            generate(b, prompts[doc], 8, document=doc)
        assert b.options()["kv_cache_slots"] == 2
        c = generate(b, prompts["c.py"], 8, document="c.py")
        assert c.tokens == reference_greedy(env.target, prompts["c.py"], 8)
        assert b.slot_tokens("b.py") is None
        assert b.slot_tokens("a.py") is not None and b.slot_tokens("c.py") is not None
        used = b.options()["kv_cache_used_bytes"]
        assert isinstance(used, int) and 0 < used <= bound
        assert used == per_token * sum(len(b.slot_tokens(d) or []) for d in ("a.py", "c.py"))
        # b.py starts over, and its output is still exact.
        again = generate(b, prompts["b.py"], 8, document="b.py")
        assert again.timings.reused_tokens == 0
        assert again.tokens == reference_greedy(env.target, prompts["b.py"], 8)
        assert b.slot_tokens("a.py") is None and b.options()["kv_cache_slots"] == 2
    finally:
        b.close()


def test_warm_fills_the_named_slot(env: Env, backend: TransformersBackend) -> None:
    rng = random.Random(23)
    tokens, other = random_prompt(rng, 20, 30), random_prompt(rng, 20, 30)
    anonymous = backend.slot_tokens(None)
    assert backend.warm(tokens, document="w.py") == len(tokens)
    assert backend.slot_tokens("w.py") == tokens
    assert backend.slot_tokens("w.py", draft=True) == tokens  # the draft model's cache too
    assert backend.slot_tokens(None) == anonymous
    generate(backend, other, 8, document="x.py")
    follow = [*tokens, 4242]
    gen = generate(backend, follow, 8, document="w.py")
    assert gen.timings.reused_tokens == len(tokens) and gen.timings.evaluated_tokens == 1
    assert gen.tokens == reference_greedy(env.target, follow, 8)


def test_kv_bytes_per_token_is_what_the_caches_hold(env: Env) -> None:
    """The rule the byte bound counts with matches the tensors DynamicCache keeps, for the
    Llama target (grouped KV heads) and the GPTBigCode draft (one multi-query KV head)."""
    prompt = random_prompt(random.Random(24), 20, 30)
    for model in (env.target, env.draft):
        kv = KVModel(model, max_positions=1024)
        kv.sync(prompt)
        held = sum(layer.keys.nbytes + layer.values.nbytes for layer in kv.cache.layers)
        assert held == len(prompt) * kv_bytes_per_token(model.config, torch.float32)
    assert kv_bytes_per_token(env.target.config, torch.float16) * 2 == \
        kv_bytes_per_token(env.target.config, torch.float32)


def test_default_bound_is_a_share_of_free_memory_within_one_to_many_contexts(
    lookup_backend: TransformersBackend,
) -> None:
    one = 1000 * 100  # bytes per token x context length
    assert default_kv_cache_bytes(1000, 100, 4_000_000) == 1_000_000  # a quarter of it
    assert default_kv_cache_bytes(1000, 100, 10**12) == KV_CACHE_MAX_CONTEXTS * one
    assert default_kv_cache_bytes(1000, 100, 1000) == one  # the active document must fit
    assert default_kv_cache_bytes(1000, 100, None) == 4 * one
    options = lookup_backend.options()
    per_token, bound = options["kv_bytes_per_token"], options["kv_cache_bytes"]
    assert isinstance(per_token, int) and isinstance(bound, int)
    per_context = per_token * lookup_backend.context_length
    assert per_context <= bound <= KV_CACHE_MAX_CONTEXTS * per_context


# -- per-token control ------------------------------------------------------------------
class CancelAtCheck:
    """A stop rule that cancels the request at its n-th check; the backend checks per token."""

    def __init__(self, cancel: CancelToken, n: int) -> None:
        self.cancel, self.n, self.calls = cancel, n, 0

    def check(self, text: str) -> int | None:
        self.calls += 1
        if self.calls == self.n:
            self.cancel.cancel()
        return None

    def cut_at_deadline(self, text: str) -> str:
        return text


class SleepPastDeadlineAtCheck:
    """A stop rule that stalls past the deadline at its n-th check."""

    def __init__(self, deadline: float, n: int) -> None:
        self.deadline, self.n, self.calls, self.cut = deadline, n, 0, False

    def check(self, text: str) -> int | None:
        self.calls += 1
        if self.calls == self.n:
            time.sleep(max(0.0, self.deadline - time.monotonic()) + 0.005)
        return None

    def cut_at_deadline(self, text: str) -> str:
        self.cut = True
        return ""


def test_cancel_stops_within_one_token_even_inside_an_accepted_draft(
    env: Env, backend: TransformersBackend
) -> None:
    prompt = random_prompt(random.Random(6), 20, 30)
    ref = reference_greedy(env.target, prompt, 24)
    verified_beyond = 0
    backend.fix_draft_length(6)
    try:
        for n in range(1, 13):
            cancel = CancelToken()
            gen = generate(backend, prompt, stopper=CancelAtCheck(cancel, n), cancel=cancel)
            assert gen.stop_reason == "cancelled"
            assert gen.tokens == ref[:n]
            # The target had already verified tokens past the cancel point in this round.
            verified_beyond += len(backend.cached_tokens) > len(prompt) + n
    finally:
        backend.fix_draft_length(None)
    assert verified_beyond > 0


def test_deadline_stops_within_one_token(env: Env, backend: TransformersBackend) -> None:
    prompt = random_prompt(random.Random(7), 20, 30)
    ref = reference_greedy(env.target, prompt, 24)
    backend.fix_draft_length(6)
    try:
        for n in (1, 4, 9):
            deadline = time.monotonic() + 1.0
            stopper = SleepPastDeadlineAtCheck(deadline, n)
            gen = generate(backend, prompt, stopper=stopper, deadline=deadline)
            assert gen.stop_reason == "deadline"
            assert gen.tokens == ref[:n]
            assert stopper.cut and gen.text == ""  # the stop rule decides what to show
    finally:
        backend.fix_draft_length(None)


def test_nothing_runs_after_cancel_or_past_deadline(backend: TransformersBackend) -> None:
    prompt = random_prompt(random.Random(8))
    cancel = CancelToken()
    cancel.cancel()
    assert generate(backend, prompt, cancel=cancel).stop_reason == "cancelled"
    late = generate(backend, [*prompt, 1234], deadline=time.monotonic() - 1)
    assert late.stop_reason == "deadline" and late.tokens == []
    assert backend.warm([*prompt, 99, 98], cancel) == 0


def test_stop_id_inside_an_accepted_draft_stops_there(env: Env,
                                                      backend: TransformersBackend) -> None:
    prompt = random_prompt(random.Random(9), 20, 30)
    ref = reference_greedy(env.target, prompt, 24)
    j = next(i for i in range(5, 24) if ref[i] not in ref[:i])
    backend.fix_draft_length(6)
    try:
        gen = generate(backend, prompt, stop_ids=frozenset({ref[j]}))
    finally:
        backend.fix_draft_length(None)
    assert gen.stop_reason == "stop_token"
    assert gen.tokens == ref[:j]


def test_streamed_text_is_the_decoded_answer(env: Env, backend: TransformersBackend) -> None:
    pieces: list[str] = []
    prompt = env.tokenizer.encode("def add(a, b):\n    return", add_special_tokens=False)
    gen = generate(backend, prompt, on_text=pieces.append)
    # Only a trailing partial UTF-8 character (flushed at the end) is not streamed.
    assert gen.text.startswith("".join(pieces))
    assert gen.text == env.tokenizer.decode(gen.tokens, clean_up_tokenization_spaces=False)
    assert gen.timings.first_token_ms > 0 and gen.timings.generated_tokens == 24


def test_context_limit(env: Env) -> None:
    b = TransformersBackend(env.target_dir, device="cpu", context_length=64)
    try:
        assert b.context_length == 64
        gen = generate(b, random_prompt(random.Random(10), 58, 59), 24)
        assert gen.stop_reason == "context_full" and len(gen.tokens) == 64 - 58
    finally:
        b.close()


# -- draft pairing ----------------------------------------------------------------------
def test_draft_with_another_vocabulary_is_refused(env: Env, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    other = tmp_path / "draft"
    shutil.copytree(env.draft_dir, other)
    tokenizer = AutoTokenizer.from_pretrained(str(env.draft_dir))
    tokenizer.add_tokens(["<extra_token>"])
    tokenizer.save_pretrained(other)
    with pytest.raises(ModelLoadError, match="vocabularies differ"):
        TransformersBackend(env.target_dir, draft=other, device="cpu")


def test_draft_with_moved_fim_token_is_refused(env: Env, tmp_path: Path) -> None:
    other = tmp_path / "draft"
    shutil.copytree(env.draft_dir, other)
    data = json.loads((other / "tokenizer.json").read_text())
    vocab_map = data["model"]["vocab"]
    # Swap the ids of <fim_prefix> and <fim_middle> (same set of tokens, different ids).
    vocab_map["<fim_prefix>"], vocab_map["<fim_middle>"] = (
        vocab_map["<fim_middle>"], vocab_map["<fim_prefix>"]
    )
    for added in data["added_tokens"]:
        if added["content"] in ("<fim_prefix>", "<fim_middle>"):
            added["id"] = vocab_map[added["content"]]
    (other / "tokenizer.json").write_text(json.dumps(data))
    with pytest.raises(ModelLoadError, match="cannot speculate"):
        TransformersBackend(env.target_dir, draft=other, device="cpu")


def test_missing_draft_falls_back_to_prompt_lookup_only_in_auto(env: Env, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-draft"
    b = TransformersBackend(env.target_dir, draft=missing, device="cpu")
    try:
        assert "does not exist" in b.draft_problem
        source, _ = b.draft_source(GenerationRequest(PromptParts([1]), max_tokens=1))
        assert source is not None and source.name == "prompt-lookup"
    finally:
        b.close()
    with pytest.raises(ModelNotAvailable):
        TransformersBackend(env.target_dir, draft=missing, device="cpu", speculative="draft")


# -- loading ----------------------------------------------------------------------------
def test_decicoder_config_without_model_type_loads_as_llama(env: Env) -> None:
    from transformers import LlamaForCausalLM

    raw = json.loads((env.target_dir / "config.json").read_text())
    assert "model_type" not in raw and raw["architectures"] == ["DeciCoderForCausalLM"]
    loaded = load_model(env.target_dir, device="cpu")
    assert loaded.loader == "deci-llama"
    assert isinstance(loaded.model, LlamaForCausalLM)
    assert loaded.model.config.num_key_value_heads == raw["num_key_value_heads"]
    assert loaded.dtype == torch.float32
    saved = read_state_dict(env.target_dir)
    state = loaded.model.state_dict()
    assert set(saved) == set(state)  # no missing and no unexpected weights
    assert all(torch.equal(saved[k], state[k]) for k in saved)


def _rewrite_weights(model_dir: Path, change: Any) -> None:
    from safetensors.torch import save_file

    path = model_dir / "model.safetensors"
    state = read_state_dict(model_dir)
    change(state)
    save_file({k: v.contiguous() for k, v in state.items()}, str(path), metadata={"format": "pt"})


def test_partial_checkpoint_is_refused(env: Env, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(env.target_dir, broken)
    _rewrite_weights(broken, lambda s: s.pop("model.layers.1.mlp.up_proj.weight"))
    with pytest.raises(ModelLoadError, match=r"1 missing \(model\.layers\.1\.mlp\.up_proj"):
        load_model(broken, device="cpu")
    extra = tmp_path / "extra"
    shutil.copytree(env.target_dir, extra)
    _rewrite_weights(extra, lambda s: s.update({"model.layers.9.adapter.weight": torch.zeros(2)}))
    with pytest.raises(ModelLoadError, match="unexpected"):
        load_model(extra, device="cpu")


def test_original_santacoder_config_is_refused(env: Env, tmp_path: Path) -> None:
    env.tokenizer.save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({
        "architectures": ["GPT2LMHeadCustomModel"],
        "attention_head_type": "multiquery",
        "auto_map": {"AutoConfig": "configuration_gpt2_mq.GPT2CustomConfig",
                     "AutoModelForCausalLM": "modeling_gpt2_mq.GPT2LMHeadCustomModel"},
        "model_type": "gpt2", "n_embd": 64, "n_head": 4, "n_layer": 2, "n_positions": 256,
        "vocab_size": 49280,
    }))
    with pytest.raises(ModelLoadError, match="bigcode/gpt_bigcode-santacoder"):
        load_model(tmp_path, device="cpu")
    with pytest.raises(ModelLoadError, match="bigcode/gpt_bigcode-santacoder"):
        TransformersBackend(tmp_path, device="cpu", trust_remote_code=True)


def _write_llama_gguf(model: Any, path: Path) -> None:
    """Write `model` the way llama.cpp's converter does (Q/K rows permuted for its RoPE),
    with the StarCoder tokenizer copied from the vocabulary GGUF."""
    from gguf import GGUFReader, GGUFValueType, GGUFWriter

    c = model.config
    writer = GGUFWriter(str(path), "llama")
    writer.add_context_length(c.max_position_embeddings)
    writer.add_embedding_length(c.hidden_size)
    writer.add_block_count(c.num_hidden_layers)
    writer.add_feed_forward_length(c.intermediate_size)
    writer.add_head_count(c.num_attention_heads)
    writer.add_head_count_kv(c.num_key_value_heads)
    writer.add_rope_dimension_count(c.hidden_size // c.num_attention_heads)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(c.rms_norm_eps)
    writer.add_file_type(0)
    for key, f in GGUFReader(str(vocab("starcoder"))).fields.items():
        if key.startswith("tokenizer."):
            sub = f.types[1] if f.types[0] == GGUFValueType.ARRAY else None
            writer.add_key_value(key, f.contents(), f.types[0], sub_type=sub)

    def permute(w: Any, heads: int) -> Any:
        return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2) \
            .reshape(w.shape)

    names = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
             "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
             "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
             "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}
    for key, tensor in model.state_dict().items():
        w = tensor.detach().float().numpy()
        if key == "model.embed_tokens.weight":
            name = "token_embd.weight"
        elif key == "model.norm.weight":
            name = "output_norm.weight"
        elif key == "lm_head.weight":
            name = "output.weight"
        else:
            _, _, layer, rest = key.split(".", 3)
            module = rest.rsplit(".", 1)[0]
            name = f"blk.{layer}.{names[module]}.weight"
            if module == "self_attn.q_proj":
                w = permute(w, c.num_attention_heads)
            elif module == "self_attn.k_proj":
                w = permute(w, c.num_key_value_heads)
        writer.add_tensor(name, w)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_llama_gguf_loads_through_transformers(env: Env, tmp_path: Path) -> None:
    path = tmp_path / "tiny-llama-f32.gguf"
    _write_llama_gguf(env.target, path)
    loaded = load_model(path, device="cpu")
    assert loaded.loader == "gguf" and len(loaded.tokenizer) == VOCAB
    assert loaded.tokenizer.convert_tokens_to_ids("<fim_prefix>") == 1
    ids = random_prompt(random.Random(11), 20, 21)
    assert torch.allclose(fresh_logits(loaded.model, ids), fresh_logits(env.target, ids),
                          atol=1e-4)


def test_vocabulary_only_gguf_is_refused() -> None:
    with pytest.raises(ModelLoadError, match="only a vocabulary"):
        load_model(vocab("starcoder"), device="cpu")


def test_unknown_config_needs_remote_code_opt_in(env: Env, tmp_path: Path) -> None:
    env.tokenizer.save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({
        "architectures": ["MysteryForCausalLM"],
        "auto_map": {"AutoModelForCausalLM": "modeling_mystery.MysteryForCausalLM"},
        "hidden_size": 64,
    }))
    with pytest.raises(ModelLoadError, match="trust_remote_code"):
        load_model(tmp_path, device="cpu")


# -- variable GQA (DeciLM-6B / DeciCoder-6B) ---------------------------------------------
VGQA = {"vocab_size": 512, "hidden_size": 96, "intermediate_size": 160, "num_hidden_layers": 3,
        "num_attention_heads": 12, "num_key_value_heads_per_layer": [2, 3, 1],
        "max_position_embeddings": 128, "rms_norm_eps": 1e-6, "rope_theta": 10000.0}


def _vgqa_weights(seed: int = 0) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)
    h, f, hd = VGQA["hidden_size"], VGQA["intermediate_size"], 96 // 12

    def r(*shape: int, std: float = 0.1) -> Any:
        return torch.randn(*shape, generator=g) * std

    w = {"model.embed_tokens.weight": r(512, h, std=1.0), "lm_head.weight": r(512, h),
         "model.norm.weight": 1 + r(h)}
    for i, kv in enumerate(VGQA["num_key_value_heads_per_layer"]):
        p = f"model.layers.{i}."
        shapes = {"self_attn.q_proj": (h, h), "self_attn.k_proj": (kv * hd, h),
                  "self_attn.v_proj": (kv * hd, h), "self_attn.o_proj": (h, h),
                  "mlp.gate_proj": (f, h), "mlp.up_proj": (f, h), "mlp.down_proj": (h, f)}
        w |= {f"{p}{name}.weight": r(*shape) for name, shape in shapes.items()}
        w |= {f"{p}{norm}.weight": 1 + r(h)
              for norm in ("input_layernorm", "post_attention_layernorm")}
    return w


def _reference_vgqa_logits(w: dict[str, Any], ids: list[int]) -> Any:
    """DeciLM's forward pass written out: each layer's query heads share its own KV heads."""
    h, n_heads, eps = VGQA["hidden_size"], VGQA["num_attention_heads"], VGQA["rms_norm_eps"]
    hd, n = h // n_heads, len(ids)

    def rms(x: Any, weight: Any) -> Any:
        return weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)

    inv = 1.0 / VGQA["rope_theta"] ** (torch.arange(0, hd, 2).float() / hd)
    angles = torch.outer(torch.arange(n).float(), inv)
    cos, sin = torch.cat([angles, angles], -1).cos(), torch.cat([angles, angles], -1).sin()

    def rope(x: Any) -> Any:  # x: (heads, n, hd), rotate-half convention
        rotated = torch.cat([-x[..., hd // 2 :], x[..., : hd // 2]], -1)
        return x * cos + rotated * sin

    x = w["model.embed_tokens.weight"][ids]
    mask = torch.full((n, n), float("-inf")).triu(1)
    for i, groups in enumerate(VGQA["num_key_value_heads_per_layer"]):
        p = f"model.layers.{i}."
        a = rms(x, w[p + "input_layernorm.weight"])
        q = rope((a @ w[p + "self_attn.q_proj.weight"].T).view(n, n_heads, hd).transpose(0, 1))
        k = rope((a @ w[p + "self_attn.k_proj.weight"].T).view(n, groups, hd).transpose(0, 1))
        v = (a @ w[p + "self_attn.v_proj.weight"].T).view(n, groups, hd).transpose(0, 1)
        heads = []
        for head in range(n_heads):
            g = head // (n_heads // groups)
            scores = q[head] @ k[g].T / math.sqrt(hd) + mask
            heads.append(torch.softmax(scores, -1) @ v[g])
        x = x + torch.cat(heads, -1) @ w[p + "self_attn.o_proj.weight"].T
        b = rms(x, w[p + "post_attention_layernorm.weight"])
        gate = torch.nn.functional.silu(b @ w[p + "mlp.gate_proj.weight"].T)
        x = x + (gate * (b @ w[p + "mlp.up_proj.weight"].T)) @ w[p + "mlp.down_proj.weight"].T
    return rms(x, w["model.norm.weight"]) @ w["lm_head.weight"].T


def test_variable_gqa_expands_exactly(env: Env, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    weights = _vgqa_weights()
    save_file({k: v.contiguous() for k, v in weights.items()}, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps({
        **VGQA, "model_type": "deci", "architectures": ["DeciLMForCausalLM"],
        "auto_map": {"AutoConfig": "configuration_decilm.DeciLMConfig"},
        "hidden_act": "silu", "tie_word_embeddings": False,
    }))
    env.tokenizer.save_pretrained(tmp_path)
    loaded = load_model(tmp_path, device="cpu")
    assert loaded.loader == "deci-llama-vgqa"
    assert loaded.model.config.num_key_value_heads == 6  # lcm(2, 3, 1), not the max
    ids = [int(t) for t in torch.randint(0, 512, (24,), generator=torch.Generator().manual_seed(1))]
    with torch.inference_mode():
        got = loaded.model(input_ids=torch.tensor([ids])).logits[0]
    want = _reference_vgqa_logits(weights, ids)
    assert torch.allclose(got, want, atol=1e-4), (got - want).abs().max()


def test_kv_head_expansion_rules() -> None:
    assert uniform_kv_heads([4, 2, 2, 1, 4], 32, 5) == 4
    assert uniform_kv_heads([2, 3], 12, 2) == 6
    with pytest.raises(ModelLoadError):
        uniform_kv_heads([5], 32, 1)  # 5 does not divide 32 heads
    with pytest.raises(ModelLoadError):
        uniform_kv_heads([4, 4], 32, 3)  # one count per layer
    k = torch.arange(2 * 3 * 5, dtype=torch.float32).view(2 * 3, 5)  # 2 heads of dim 3
    out = expand_kv_heads({"model.layers.0.self_attn.k_proj.weight": k}, [2], 4, 3)
    rows = out["model.layers.0.self_attn.k_proj.weight"].view(4, 3, 5)
    assert torch.equal(rows[0], rows[1]) and torch.equal(rows[2], rows[3])
    assert torch.equal(rows[0], k.view(2, 3, 5)[0]) and torch.equal(rows[2], k.view(2, 3, 5)[1])


# -- pieces -----------------------------------------------------------------------------
def test_prompt_lookup_copies_after_the_latest_longest_match() -> None:
    seq = [1, 2, 3, 9, 9, 1, 2, 3, 7, 8, 5, 2, 3]
    assert prompt_lookup(seq, 2) == [7, 8]  # "2 3" last seen before "7 8"
    assert prompt_lookup([*seq, 42], 3) == []  # 42 never occurred before
    assert prompt_lookup([5, 6, 5], 4) == [6, 5]
    assert prompt_lookup(seq, 0) == []


def test_draft_length_follows_acceptance_and_cost() -> None:
    eager = DraftLength(k_init=2, k_max=8)
    eager.record(0, 0, verify_s=0.010, draft_step_s=None)
    for _ in range(30):  # everything accepted, drafting nearly free
        eager.record(eager.next_k(), eager.next_k(), verify_s=0.011, draft_step_s=0.0005)
    assert eager.next_k() == 8 and eager.acceptance > 0.9
    wary = DraftLength(k_init=4, k_max=8)
    wary.record(0, 0, verify_s=0.010, draft_step_s=None)
    for _ in range(30):  # nothing accepted and drafts cost as much as target steps
        wary.record(4, 0, verify_s=0.012, draft_step_s=0.010)
    assert wary.k == 0
    probes = [wary.next_k() for _ in range(16)]
    assert probes.count(1) == 2 and probes.count(0) == 14  # still probing now and then


def test_banned_first_word_gives_the_next_choice_exactly(env: Env,
                                                          backend: TransformersBackend) -> None:
    """Banning the first non-whitespace token: the rest is greedy from the model's next
    choice, drafts off (every token goes through the banning pick)."""
    rng = random.Random(7)
    prompt = random_prompt(rng)
    plain = generate(backend, prompt, max_tokens=8)
    word = next(t for t in plain.tokens if backend.tokenizer.decode_bytes([t]).strip())
    lead = plain.tokens[: plain.tokens.index(word)]  # whitespace tokens before it
    other = generate(backend, prompt, max_tokens=8, banned_first=frozenset({word}))
    assert other.tokens[: len(lead)] == lead
    logits = fresh_logits(env.target, prompt + lead).clone()
    logits[word] = float("-inf")
    expected = int(logits.argmax())
    assert other.tokens[len(lead)] == expected != word
    rest = reference_greedy(env.target, prompt + other.tokens[: len(lead) + 1],
                            8 - len(lead) - 1)
    assert other.tokens[len(lead) + 1 :] == rest
    assert other.timings.drafted_tokens == 0


def test_scores_are_the_models_log_probabilities(env: Env, backend: TransformersBackend) -> None:
    """`score` (the suffix check's): each continuation's summed log-probabilities, computed
    here the slow way, one token at a time from the full sequence's last logits."""
    rng = random.Random(11)
    prompt = random_prompt(rng, 10, 20)
    continuations = [random_prompt(rng, 1, 6) for _ in range(3)]
    scores = backend.score(prompt, continuations)
    assert scores is not None and len(scores) == 3
    for continuation, score in zip(continuations, scores, strict=True):
        expected, ids = 0.0, list(prompt)
        for token in continuation:
            expected += float(torch.log_softmax(fresh_logits(env.target, ids), -1)[token])
            ids.append(token)
        assert score == pytest.approx(expected, abs=1e-3)
    cancel = CancelToken()
    cancel.cancel()
    assert backend.score(prompt, continuations, cancel=cancel) is None
