"""The remote backends against a real llama.cpp `llama-server`, on loopback.

llama-server is built once from the llama.cpp that the installed llama-cpp-python vendors and
cached in the user cache (`scripts/llama_server.sh`, ~10 minutes the first time on 2 cores); a
failed build fails these tests, it does not skip them. Two servers run, each with 2 slots:

* the embedded Gemma 3 270M as it is, with an API key: the `openai` backend on
  `/v1/completions`, and `/infill`, which llama-server refuses for a model without FIM tokens;
* a copy of it whose vocabulary names four unused control tokens as CodeGemma's FIM tokens
  (`bench.llama_server.with_fim_tokens`): `/infill` with `input_extra`, `cache_prompt`,
  `t_max_predict_ms`, `n_indent` and a slot per document. The model never learned those tokens,
  so the tests check what the server does with ghostfill's requests (the prompt it built, what
  it reused, where it stopped, which slot it used), never how good the code is.

Greedy decoding makes each answer a function of the prompt; where a test compares two answers
it compares the server's own outputs for two requests, never a hard-coded text.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ghostfill.backends.base import CancelToken, GenerationRequest, PromptParts
from ghostfill.backends.remote_infill import InfillBackend
from ghostfill.backends.remote_openai import OpenAICompletionsBackend
from ghostfill.bench.llama_server import BuildError, LlamaServer, binary, with_fim_tokens
from ghostfill.completion.crossfile import SnippetStore
from ghostfill.completion.snapshot import CompletionInput, ContextSources
from ghostfill.completion.stopping import LineStopper
from ghostfill.completion.tokenizer import RemoteTokenizer
from ghostfill.config import Config, RemoteConfig
from ghostfill.engine import CompletionEngine
from ghostfill.errors import BackendError
from tests.conftest import ROOT

# A first build of llama-server (the session fixture, when scripts/test.sh has not built it
# already) takes 10-15 minutes on 2 cores: more than pytest's default 600 s per test. Each
# step below has its own bound (server start 120 s, requests 120 s, idle wait 60 s).
pytestmark = pytest.mark.timeout(3600)

KEY = "llama-secret"
KEY_ENV = "GHOSTFILL_TEST_LLAMA_KEY"

#: A module with a function per operation: after `mul`'s body the natural next line is a new
#: `def` at column 0.
OPS = ("def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n\n\n"
       "def mul(a, b):\n")


@pytest.fixture(scope="session")
def server_binary() -> Path:
    try:
        return binary()
    except BuildError as e:
        error = str(e)
    pytest.fail(error, pytrace=False)  # a missing engine fails the run; it is never skipped


@pytest.fixture(scope="session")
def fim_model(gemma_path: Path) -> Path:
    return with_fim_tokens(gemma_path)  # made once, kept next to the cached llama-server


@pytest.fixture(scope="module")
def plain(server_binary: Path, gemma_path: Path,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    log = tmp_path_factory.mktemp("llama-server") / "plain.log"
    # 1536-token slots: not ghostfill's default window, so a probe that read it shows.
    with LlamaServer(server_binary, gemma_path, log, api_key=KEY, ctx_per_slot=1536,
                     env={"LLAMA_SERVER_SLOTS_DEBUG": "1"}) as server:
        yield server


@pytest.fixture(scope="module")
def fim(server_binary: Path, fim_model: Path,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    log = tmp_path_factory.mktemp("llama-server") / "fim.log"
    # -b/-ub 1024 (llama.vim's setting): /infill keeps cross-file chunks only in the part of
    # a slot's context beyond one batch, so with the default 2048 and 2048-token slots it
    # would drop them all. --spm-infill: the suffix first, the typed text last. No RAM prompt
    # cache: what a slot reuses is its own. The debug variable makes /slots show prompts.
    with LlamaServer(server_binary, fim_model, log,
                     extra=("-b", "1024", "-ub", "1024", "--spm-infill", "--cache-ram", "0"),
                     env={"LLAMA_SERVER_SLOTS_DEBUG": "1"}) as server:
        yield server


@pytest.fixture
def keyed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)


def slots(server: LlamaServer) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {server.api_key}"} if server.api_key else {}
    return httpx.get(server.url + "/slots", headers=headers, timeout=10).json()


def wait_idle(server: LlamaServer, timeout_s: float = 60.0) -> list[dict[str, Any]]:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        state = slots(server)
        if not any(s["is_processing"] for s in state):
            return state
        time.sleep(0.05)
    raise AssertionError("llama-server kept a slot busy")


def infill_backend(server: LlamaServer, **kwargs: Any) -> InfillBackend:
    return InfillBackend(RemoteConfig(endpoint=server.url), **kwargs)


def infill_request(prefix: str, suffix: str = "", max_tokens: int = 24,
                   min_indent: int | None = None, **parts: Any) -> GenerationRequest:
    return GenerationRequest(PromptParts(prefix=prefix, suffix=suffix, **parts),
                             max_tokens=max_tokens, min_indent=min_indent)


def raw_infill(server: LlamaServer, body: dict[str, Any]) -> dict[str, Any]:
    """POST a body as ghostfill builds it, unstreamed, to read the server's whole answer.

    Without the prompt cache: every answer then comes from the same batch shapes, so two
    answers to one prompt agree token for token (llama.cpp's CPU kernels are not
    batch-invariant, and re-reading only the last token could flip a near tie)."""
    body = {**body, "stream": False, "cache_prompt": False}
    r = httpx.post(server.url + "/infill", json=body, timeout=120)
    r.raise_for_status()
    return r.json()


# -- /infill --------------------------------------------------------------------------------


def test_infill_is_refused_for_a_model_without_fim_tokens(plain: LlamaServer,
                                                          keyed: None) -> None:
    backend = InfillBackend(RemoteConfig(endpoint=plain.url, api_key_env=KEY_ENV))
    with pytest.raises(BackendError) as info:
        backend.generate(infill_request("def add(a, b):\n", "\n"))
    message = str(info.value)
    assert "does not support /infill (HTTP 501)" in message
    assert "Infill is not supported by this model" in message  # the server's own words
    assert "model.backend openai" in message and "\n" not in message


def test_infill_streams_and_counts(fim: LlamaServer, fim_model: Path) -> None:
    backend = infill_backend(fim)
    info = backend.probe()
    assert backend.slots == 2 == info["total_slots"]
    assert backend.context_length == 2048  # the slot's window, not the model's 32k
    pieces: list[str] = []
    req = infill_request(OPS, "\n", 16, min_indent=4)
    req.on_text = pieces.append
    result = backend.generate(req)
    assert result.text and "".join(pieces) == result.text
    assert result.stop_reason in ("max_tokens", "stop_token")
    assert 0 < result.timings.generated_tokens <= 16
    # The server's prompt: BOS, <fim_suffix> "\n" <fim_prefix> OPS <fim_middle> (SPM),
    # counted in the model's own vocabulary.
    tok = RemoteTokenizer.from_gguf(str(fim_model))
    expected = 1 + 1 + len(tok.encode(OPS)) + 1 + len(tok.encode("\n")) + 1
    assert result.timings.prompt_tokens == expected


def test_input_extra_is_laid_out_before_the_prefix(fim: LlamaServer, fim_model: Path) -> None:
    backend = infill_backend(fim)
    chunk = ("geometry.py", "def area(w, h):\n    return w * h\n")
    base = backend.generate(infill_request(OPS, "\n", 4))
    wait_idle(fim)
    extra = backend.generate(infill_request(OPS, "\n", 4, context=[chunk]))
    tok = RemoteTokenizer.from_gguf(str(fim_model))
    # No <|file_sep|> in this vocabulary: each chunk follows a "--- snippet ---" line.
    added = len(tok.encode("\n\n--- snippet ---\n\n")) + len(tok.encode(chunk[1]))
    assert extra.timings.prompt_tokens - base.timings.prompt_tokens == added
    used = raw_infill(fim, backend.build_body(infill_request(OPS, "\n", 1, context=[chunk])))
    assert used["prompt"].startswith("\n\n--- snippet ---\n\n" + chunk[1] + "<bos>")


def test_cache_prompt_and_typing_along_a_line(fim: LlamaServer) -> None:
    backend = infill_backend(fim)
    backend.probe()
    doc = "cache_test.py"
    line = "    result = a"
    first = backend.generate(infill_request(OPS, "\n", 2, middle=line, document=doc))
    wait_idle(fim)
    again = backend.generate(infill_request(OPS, "\n", 2, middle=line, document=doc))
    wait_idle(fim)
    assert again.timings.prompt_tokens == first.timings.prompt_tokens
    # Everything but the last prompt token came from the slot's cache (llama.cpp re-reads
    # one token to get logits).
    assert again.timings.reused_tokens >= again.timings.prompt_tokens - 1
    # Typing on: with --spm-infill the typed line is the end of the prompt, so a keystroke
    # re-reads its new tokens and <fim_middle>, not the suffix (which precedes them).
    typed = backend.generate(infill_request(OPS, "\n\nprint(mul(2, 3))\n", 2,
                                            middle=line + " * b", document=doc))
    wait_idle(fim)
    typed_more = backend.generate(infill_request(OPS, "\n\nprint(mul(2, 3))\n", 2,
                                                 middle=line + " * b +", document=doc))
    assert typed_more.timings.prompt_tokens > typed.timings.prompt_tokens
    assert 0 < typed_more.timings.evaluated_tokens <= 3


def test_counts_arrive_when_ghostfill_cuts_the_stream(fim: LlamaServer) -> None:
    """A single-line suggestion ends at ghostfill's stop rule, which closes the stream before
    the server's last event: the counts come with every event (`timings_per_token`)."""
    backend = infill_backend(fim)
    backend.probe()

    def one_line() -> GenerationRequest:
        req = infill_request(OPS, "", 64, document="cut.py")
        req.stopper = LineStopper(multiline=False, cursor_line_prefix="")
        return req

    backend.generate(one_line())
    wait_idle(fim)
    result = backend.generate(one_line())
    assert result.stop_reason == "stop_rule" and result.timings.generated_tokens < 64
    prompt = raw_infill(fim, backend.build_body(infill_request(OPS, "", 1)))["tokens_evaluated"]
    assert result.timings.prompt_tokens == prompt
    assert result.timings.reused_tokens >= prompt - 1  # the server's cache_n, not a guess


def test_a_slot_per_document(fim: LlamaServer) -> None:
    backend = infill_backend(fim)
    backend.probe()
    docs = {"alpha.py": "ALPHA_MARKER = 1\n" + OPS, "beta.py": "BETA_MARKER = 2\n" + OPS}
    for _ in range(2):
        for doc, text in docs.items():
            backend.generate(infill_request(text, "\n", 2, document=doc))
            wait_idle(fim)
    state = {s["id"]: s.get("prompt") or "" for s in slots(fim)}
    assert "ALPHA_MARKER" in state[backend.slot_for("alpha.py")]
    assert "BETA_MARKER" in state[backend.slot_for("beta.py")]
    assert backend.slot_for("alpha.py") != backend.slot_for("beta.py")
    # Back to alpha after beta: its slot still holds its prompt.
    result = backend.generate(infill_request(docs["alpha.py"], "\n", 2, document="alpha.py"))
    assert result.timings.reused_tokens >= result.timings.prompt_tokens - 1
    # A third document takes the least recently used slot (beta's).
    beta_slot = backend.slot_for("beta.py")
    backend.slot_for("alpha.py")
    assert backend.slot_for("gamma.py") == beta_slot


def test_n_indent_stops_at_a_dedented_line(fim: LlamaServer) -> None:
    backend = infill_backend(fim)
    free = raw_infill(fim, backend.build_body(infill_request(OPS, "", 64)))
    text = free["content"]
    # llama-server's rule: after the first line, stop where a line's indentation ends short
    # of n_indent, before its first other character (a blank line counts: its "\n" is one).
    cut, start = None, text.find("\n") + 1
    for line in text[start:].split("\n"):
        at = start + len(line) - len(line.lstrip(" \t"))
        if at - start < 4 and at < len(text):
            cut = text[:at]
            break
        start += len(line) + 1
    assert start > 0 and cut is not None, f"no line below the body to test with: {text!r}"
    held = raw_infill(fim, backend.build_body(infill_request(OPS, "", 64, min_indent=4)))
    assert held["content"] == cut
    assert held["stop_type"] == "limit" and held["tokens_predicted"] < free["tokens_predicted"]


def test_t_max_predict_ms_stops_at_a_newline(fim: LlamaServer) -> None:
    backend = infill_backend(fim)
    req = infill_request(OPS, "", 64)
    body = backend.build_body(req)
    assert "t_max_predict_ms" not in body  # no deadline, no limit
    free = raw_infill(fim, body)
    assert free["content"].count("\n") >= 2, free["content"]
    req.deadline = time.monotonic() + 0.001
    body = backend.build_body(req)
    assert body["t_max_predict_ms"] == 1
    limited = raw_infill(fim, body)
    # Out of time from the start: the server stops after the first token with a newline.
    assert limited["stop_type"] == "limit"
    assert free["content"].startswith(limited["content"])
    assert "\n" in limited["content"]
    assert limited["content"].rstrip(" \t").endswith("\n") or \
        limited["content"].count("\n") == 1
    assert limited["tokens_predicted"] < free["tokens_predicted"]


def test_cancel_stops_the_server(fim: LlamaServer) -> None:
    backend = infill_backend(fim)
    backend.probe()
    cancel = CancelToken()
    seen = threading.Event()
    req = infill_request(OPS, "", 1500, document="cancel.py")
    req.cancel = cancel
    req.on_text = lambda _: (seen.set(), cancel.cancel())
    cancels = fim.log.read_text(errors="replace").count("cancel task")
    result = backend.generate(req)
    assert result.stop_reason == "cancelled" and seen.is_set()
    state = wait_idle(fim)
    # The server saw the connection close and cancelled the task (its log says so) ...
    assert fim.log.read_text(errors="replace").count("cancel task") == cancels + 1
    # ... far short of the 1500 tokens asked for: the slot holds the prompt and a few more.
    slot = next(s for s in state if s["id"] == backend.slot_for("cancel.py"))
    prompt = raw_infill(fim, {**backend.build_body(infill_request(OPS, "", 1)),
                              "id_slot": 1 - slot["id"]})["tokens_evaluated"]
    assert prompt < slot["n_prompt_tokens"] < prompt + 1500


def test_engine_sends_parts_cross_file_chunks_and_the_typed_line(fim: LlamaServer,
                                                                 fim_model: Path) -> None:
    config = Config().updated({
        "model": {"backend": "infill"},
        "remote": {"endpoint": fim.url, "tokenizer": str(fim_model)},
        "completion": {"maxTokens": 8, "latencyBudgetMs": 60000},
    })
    engine = CompletionEngine.load(config)
    assert engine.template.name == "codegemma"  # detected from the served vocabulary
    assert engine.backend.slots == 2  # probed at load
    store = SnippetStore()
    other = "def area(w, h):\n    return w * h\n\n\ndef perimeter(w, h):\n    return 2 * (w + h)\n"
    store.add_around("geometry.py", other, 1)
    text = OPS + "    total = area(a, b) + a\n\n\nprint(mul(2, 3))\n"
    offset = text.index("+ a") + 3
    prepared = engine.prepare(CompletionInput.of_text(text, offset, path="main.py"),
                              ContextSources(snippets=store))
    assert prepared.snippets, "the engine chose no cross-file chunk"
    sent: list[dict[str, Any]] = []
    build = engine.backend.build_body
    engine.backend.build_body = lambda req: sent.append(build(req)) or sent[-1]  # record only
    engine.run(prepared)
    body = sent[0]
    assert (body["input_prefix"], body["prompt"]) == (OPS, "    total = area(a, b) + a")
    assert body["input_suffix"] == "\n\n\nprint(mul(2, 3))\n"
    assert [c["filename"] for c in body["input_extra"]] == ["geometry.py"]
    assert body["id_slot"] == engine.backend.slot_for("main.py")
    state = wait_idle(fim)
    used = next(s["prompt"] for s in state if "total = area" in (s.get("prompt") or ""))
    # What the server made of it: the chunk, then (SPM) the suffix, then the prefix with the
    # typed line, then the middle marker.
    assert used.index("def area(w, h)") < used.index("<bos>")
    assert "<|fim_suffix|>\n\n\nprint(mul(2, 3))\n<|fim_prefix|>" in used
    assert used.endswith("<|fim_prefix|>" + text[:offset] + "<|fim_middle|>")


# -- /v1/completions ------------------------------------------------------------------------


def test_openai_completions_on_llama_server(plain: LlamaServer, gemma_path: Path,
                                            keyed: None) -> None:
    tok = RemoteTokenizer.from_gguf(str(gemma_path))
    backend = OpenAICompletionsBackend(RemoteConfig(endpoint=plain.url + "/v1",
                                                    api_key_env=KEY_ENV), tokenizer=tok)
    assert backend.probe()["data"], "llama-server lists its model on /v1/models"
    assert backend.context_length == 1536  # from /props: the slot's window
    pieces: list[str] = []
    prompt = "def fibonacci(n):\n"
    result = backend.generate(GenerationRequest(PromptParts(text=prompt), max_tokens=12,
                                                on_text=pieces.append))
    assert result.text and "".join(pieces) == result.text and len(pieces) > 1
    assert result.stop_reason in ("max_tokens", "stop_token")
    # llama.cpp's counts (usage/timings) agree with the model's own vocabulary: BOS + prompt.
    assert result.timings.prompt_tokens == 1 + len(tok.encode(prompt))
    assert 0 < result.timings.generated_tokens <= 12
    again = backend.generate(GenerationRequest(PromptParts(text=prompt), max_tokens=12))
    assert again.timings.reused_tokens >= again.timings.prompt_tokens - 1


def test_openai_backend_keeps_a_slot_per_document(plain: LlamaServer, keyed: None) -> None:
    docs = {"alpha.py": "ALPHA_MARKER = 1\n" + OPS, "beta.py": "BETA_MARKER = 2\n" + OPS}
    # Twice, with the documents' slots swapped: the server's own choice (similarity to what a
    # slot holds) would keep each prompt where it was the first time.
    for first in ("alpha.py", "beta.py"):
        backend = OpenAICompletionsBackend(RemoteConfig(endpoint=plain.url, api_key_env=KEY_ENV))
        backend.probe()
        assert backend.slots == 2
        backend.slot_for(first)
        for doc, text in docs.items():
            backend.generate(GenerationRequest(PromptParts(text=text, document=doc),
                                               max_tokens=2))
            wait_idle(plain)
        state = {s["id"]: s.get("prompt") or "" for s in slots(plain)}
        assert backend.slot_for(first) == 0
        assert "ALPHA_MARKER" in state[backend.slot_for("alpha.py")]
        assert "BETA_MARKER" in state[backend.slot_for("beta.py")]


def test_openai_deadline_keeps_whole_lines(plain: LlamaServer, keyed: None) -> None:
    backend = OpenAICompletionsBackend(RemoteConfig(endpoint=plain.url, api_key_env=KEY_ENV))
    streamed: list[str] = []
    req = GenerationRequest(PromptParts(text="1. apple\n2. banana\n3."), max_tokens=200,
                            stopper=LineStopper(multiline=True))

    def on_text(piece: str) -> None:
        streamed.append(piece)
        text = "".join(streamed)
        if req.deadline is None and "\n" in text and not text.endswith("\n"):
            req.deadline = time.monotonic()  # time runs out in the middle of line two

    req.on_text = on_text
    result = backend.generate(req)
    text = "".join(streamed)
    assert result.stop_reason == "deadline"
    assert result.text == text[: text.rfind("\n")] and result.text


def test_wrong_key_is_one_clear_line(plain: LlamaServer,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "not-the-key")
    backend = OpenAICompletionsBackend(RemoteConfig(endpoint=plain.url, api_key_env=KEY_ENV))
    with pytest.raises(BackendError) as info:
        backend.generate(GenerationRequest(PromptParts(text="x"), max_tokens=2))
    message = str(info.value)
    assert "HTTP 401" in message and f"${KEY_ENV}" in message and "not-the-key" not in message


# -- the command line -----------------------------------------------------------------------


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ghostfill", *args], capture_output=True,
                          text=True, timeout=300, env={**os.environ, **(env or {})})


def test_cli_complete_with_endpoint_and_tokenizer(fim: LlamaServer, plain: LlamaServer,
                                                  fim_model: Path, gemma_path: Path,
                                                  tmp_path: Path) -> None:
    source = tmp_path / "ops.py"
    source.write_text(OPS + "\n")
    where = f"{source}:10:1"
    out = _cli("complete", where, "--json", "--backend", "infill", "--endpoint", fim.url,
               "--tokenizer", str(fim_model), "--max-tokens", "8")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["template"] == "codegemma" and result["timings"]["prompt_tokens"] > 0
    # The openai backend: ghostfill renders the prompt (prefix-only: Gemma has no FIM tokens).
    out = _cli("complete", where, "--json", "--backend", "openai", "--endpoint", plain.url,
               "--tokenizer", str(gemma_path), "--max-tokens", "8",
               env={"GHOSTFILL_API_KEY": KEY})
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["template"] == "prefix-only" and result["timings"]["generated_tokens"] > 0
    out = _cli("prompt", where, "--json", "--backend", "openai", "--endpoint", plain.url,
               "--tokenizer", str(gemma_path), env={"GHOSTFILL_API_KEY": KEY})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["context_length"] == 1536  # the server's slot, probed


# -- docs/deploy.md -------------------------------------------------------------------------


def _llama_server_commands(markdown: str) -> list[str]:
    """Each llama-server invocation in the bash blocks, continuation lines joined."""
    commands: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", markdown, re.S):
        lines = iter(block.split("\n"))
        for line in lines:
            if re.match(r"\s*(llama-server|\$SERVER)\s", line):
                command = line
                while command.rstrip().endswith("\\"):
                    command = command.rstrip()[:-1] + " " + next(lines)
                commands.append(command)
    return commands


def test_deploy_md_llama_server_flags_exist(server_binary: Path) -> None:
    """Every flag the deployment guide gives llama-server is one this build knows."""
    commands = _llama_server_commands((ROOT / "docs" / "deploy.md").read_text())
    assert len(commands) >= 2  # the DeciCoder command and the one checked here
    help_text = subprocess.run([str(server_binary), "--help"], capture_output=True, text=True,
                               timeout=60).stdout
    known = set(re.findall(r"(?<![\w-])(--?[a-z][\w.-]*)", help_text))
    for command in commands:
        flags = re.findall(r"(?<=\s)(--?[a-z][\w.-]*)", command)
        assert flags and not [f for f in flags if f not in known], command
