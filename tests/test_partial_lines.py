"""A line cut short by the deadline is shown at once, finished in the background, and joined.

Real engine, real model, the real `CompletionService`. The deadline is made to fall inside
the line deterministically: the service's model runner is wrapped so that, once a few words
have streamed, the stream stalls until the request's deadline has passed (as a slow machine
would), and the backend's own deadline check then cuts the line.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from ghostfill.backends.base import Generation, GenerationRequest
from ghostfill.completion.snapshot import CompletionInput
from ghostfill.config import Config
from ghostfill.engine import CompletionEngine
from ghostfill.lsp.cache import SuggestionCache
from ghostfill.lsp.completions import CompletionService
from ghostfill.lsp.documents import OpenDocument
from ghostfill.lsp.session import DocumentSession
from ghostfill.lsp.stats import Stats

SOURCE = '''import argparse


def build_parser():
    """Command-line options of the report tool."""
    parser = argparse.ArgumentParser(description="Summarise a CSV file.")
    parser.add_argument("path", help="the CSV file to read")
    parser.add_argument("--delimiter", default=",", help="the field separator")
    parser.add_argument("--'''
WORD = re.compile(r"\w+")
URI = "file:///w/report.py"


class Watched:
    """A backend whose answers also stream to `on_text` (`GenerationRequest.on_text`)."""

    def __init__(self, backend: Any, on_text: Callable[[str], None]) -> None:
        self._backend, self._on_text = backend, on_text

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    def generate(self, request: GenerationRequest) -> Generation:
        request.on_text = self._on_text
        return self._backend.generate(request)


@pytest.fixture(scope="module")
def engine(gemma_backend):
    return CompletionEngine(Config().updated({"completion": {"maxTokens": 48}}), gemma_backend)


def test_a_partial_line_is_joined_with_its_continuation(engine: CompletionEngine) -> None:
    # The reference is the uninterrupted answer from the state the service will find: the
    # prompt in the document's KV cache slot and its last token evaluated alone. (llama.cpp's
    # logits depend on the batch a token was evaluated in, so a cold run may pick another word
    # at a close call.) The slot is the document's: the server names a document by its URI.
    for _ in range(2):
        full = engine.complete(CompletionInput.of_text(SOURCE, len(SOURCE), language_id="python",
                                                       path=URI),
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

            # The same call on an engine whose backend's stream is watched.
            watched = CompletionEngine(engine.config, Watched(engine.backend, on_text))
            fn = getattr(watched, fn.__name__)
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def scenario() -> None:
        service = CompletionService(run_model, Stats(), SuggestionCache(64))
        session = DocumentSession(OpenDocument.open(URI, "python", 1, SOURCE))
        doc = session.doc
        offset = len(SOURCE)
        answer = await service.suggest(engine, session, offset, invoked=False,
                                       created=time.monotonic(), debounce_s=0, budget_s=5.0)
        assert stall["words"], "the stream never reached three words"
        assert answer.source == "model" and answer.partial
        assert answer.text and full.text.startswith(answer.text)
        assert len(answer.text) < len(full.text.split("\n")[0])
        # What the server does after showing it: finish the line in the background.
        await service.prefetch_after(engine, session, (offset, offset, answer.text),
                                     offset + len(answer.text), 60.0, partial=True,
                                     multiline=answer.multiline)
        # The user types the first character of the suggestion: the whole line shows.
        session.edit(offset, offset, answer.text[0])
        doc.version += 1
        typed = await service.suggest(engine, session, offset + 1, invoked=False,
                                      created=time.monotonic(), debounce_s=0, budget_s=5.0)
        assert typed.source == "type_through" and not typed.partial
        assert answer.text[0] + typed.text == full.text.split("\n")[0]
        assert service.stats.snapshot()["suggestions"]["partial_joined"] == 1

    asyncio.run(scenario())


# ------------------------------------------------------------- through the server, remote


class _SlowEngine(BaseHTTPRequestHandler):
    """OpenAI-style `/v1/completions` that streams two words, then stalls (a loaded engine);
    asked to continue after them, it finishes the line at once."""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _event(self, text: str, finish: str | None = None) -> None:
        chunk = {"choices": [{"text": text, "index": 0, "finish_reason": finish}]}
        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        self.wfile.flush()

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        try:
            if str(body.get("prompt", "")).endswith("compute(alpha,"):
                self._event(" beta)", "stop")
            else:
                self._event("alpha, ")
                time.sleep(6)
                self._event("beta)", "stop")
            self.wfile.write(b"data: [DONE]\n\n")
        except OSError:
            pass  # the client hung up at its deadline


async def test_the_server_shows_the_words_so_far_then_the_whole_line() -> None:
    from lsprotocol import types
    from pygls.lsp.client import LanguageClient

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _SlowEngine)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    client = LanguageClient("ghostfill-test", "1")
    await client.start_io(sys.executable, "-m", "ghostfill", "serve")
    try:
        await client.initialize_async(types.InitializeParams(
            capabilities=types.ClientCapabilities(),
            initialization_options={
                "model": {"backend": "openai", "template": "prefix-only"},
                "remote": {"endpoint": f"http://127.0.0.1:{httpd.server_address[1]}"},
                "completion": {"latencyBudgetMs": 1500},
                "server": {"debounceMs": 0, "warmOnOpen": False},
            }))
        client.initialized(types.InitializedParams())
        uri = "file:///w/partial.py"
        text = "def f(alpha, beta):\n    return compute("
        client.text_document_did_open(types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1,
                                                 text=text)))
        column = len("    return compute(")

        async def ask(col: int) -> str:
            result = await client.text_document_inline_completion_async(
                types.InlineCompletionParams(
                    text_document=types.TextDocumentIdentifier(uri=uri),
                    position=types.Position(line=1, character=col),
                    context=types.InlineCompletionContext(
                        trigger_kind=types.InlineCompletionTriggerKind.Automatic)))
            assert result is not None and result.items
            return str(result.items[0].insert_text)

        started = time.monotonic()
        assert await ask(column) == "alpha,"  # the words so far, at the deadline
        assert time.monotonic() - started < 5  # not after the stalled line
        stats = None
        for _ in range(100):
            stats = await client.protocol.send_request_async("ghostfill/stats", None)
            if stats.suggestions.partial_joined:
                break
            await asyncio.sleep(0.1)
        assert stats is not None and stats.suggestions.partial == 1
        assert stats.suggestions.partial_joined == 1
        client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[types.TextDocumentContentChangePartial(
                range=types.Range(start=types.Position(line=1, character=column),
                                  end=types.Position(line=1, character=column)),
                text="a")]))
        assert await ask(column + 1) == "lpha, beta)"  # typing into it shows the whole line
        await client.shutdown_async(None)
        client.exit(None)
    finally:
        server = getattr(client, "_server", None)
        if server is not None and server.returncode is None:
            server.kill()  # a failed assertion skipped shutdown/exit
        await client.stop()
        httpd.shutdown()
        httpd.server_close()
