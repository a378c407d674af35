"""Memory that must not grow with use (issue #21): what a parse reads, what a message leaves.

The soak (`python -m ghostfill.bench.soak`, tests/test_soak.py) measures the whole server; these
pin the two leaks it found to their causes, without timing: bytes counted by tracemalloc, and
entries counted by the server itself.
"""

from __future__ import annotations

import asyncio
import sys
import tracemalloc

from ghostfill.completion.definitions import _parse_within
from ghostfill.completion.syntax import SyntaxDocument

SOURCE = "".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(500))  # ~14 KB


def traced_growth(step, warmup: int, times: int) -> int:
    """Bytes still allocated after `times` calls of `step`, counted after `warmup` calls.

    py-tree-sitter allocates through Python's allocator, so trees count too: a tree that
    incremental parses have reshaped settles a few hundred KB above the first parse's.
    """
    tracemalloc.start()
    try:
        for i in range(warmup):
            step(i)
        before = tracemalloc.get_traced_memory()[0]
        for i in range(warmup, warmup + times):
            step(i)
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def test_incremental_parses_keep_no_chunks():
    # py-tree-sitter keeps a reference to every chunk a read callback returns; the parses
    # below read several chunks of 4 KB each: 200 of them that kept the chunks held 4.4 MB.
    doc = SyntaxDocument(SOURCE, "python")

    def step(i: int) -> None:  # type a character somewhere, then delete it: same text
        at = ((i // 2) * 7919) % len(doc.text)
        doc.edit(at, at + i % 2, "" if i % 2 else "x")
        assert doc.refresh()

    assert traced_growth(step, warmup=200, times=200) < 1024 * 1024


def test_budgeted_parses_keep_no_chunks():
    source = (SOURCE * 5).encode()  # 70 KB: the first chunk (64 KB) is a new object
    # A 64 KB chunk kept per parse would be 1.3 MB over 20 parses.
    grown = traced_growth(lambda i: _parse_within(source, "python", 10.0), warmup=3, times=20)
    assert grown < 256 * 1024


def test_notifications_leave_nothing_behind():
    """pygls files a future per didChange that nothing takes out again; the server must."""
    from lsprotocol import types
    from pygls.lsp.client import LanguageClient

    async def run() -> dict:
        client = LanguageClient("memory-test", "1")
        await client.start_io(sys.executable, "-m", "ghostfill", "serve")
        await client.initialize_async(types.InitializeParams(
            capabilities=types.ClientCapabilities(),
            initialization_options={"model": {"backend": "openai"},
                                    "remote": {"endpoint": "http://127.0.0.1:9"}}))
        client.initialized(types.InitializedParams())
        for _ in range(300):  # until the backend is set up (its messages are answered)
            stats = await client.protocol.send_request_async("ghostfill/stats", None)
            if stats.state != "loading":
                break
            await asyncio.sleep(0.1)
        uri = "file:///memory/a.py"
        client.text_document_did_open(types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1,
                                                 text="")))
        for n in range(300):
            client.text_document_did_change(types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=n + 2),
                content_changes=[types.TextDocumentContentChangePartial(
                    range=types.Range(start=types.Position(line=0, character=n),
                                      end=types.Position(line=0, character=n)), text="x")]))
        stats = await client.protocol.send_request_async("ghostfill/stats", None)
        await client.shutdown_async(None)
        client.exit(None)
        await client.stop()
        return stats.held._asdict()

    held = asyncio.run(run())
    assert held["documents"] == 1
    assert held["pending_messages"] == 0, held
