"""Soak: many completion requests with random cancellations over stdio.

The server runs as a real `ghostfill serve` process behind a real LSP client; generation goes to
`bench/standin_engine.py` (a fast stand-in serving engine, stated as such in every report),
so thousands of requests fit in minutes. Checked: no stale answer (every answer matches the
document version it was requested for), the server answers every request that was not
cancelled, its thread count stays stable and its resident memory growth after warm-up is
bounded.

    python -m ghostfill.bench.soak --requests 10000 --out bench/results
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from ghostfill.bench.standin_engine import StandinEngine, answer_for
from ghostfill.lsp.protocol import plain


def proc_status(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "Threads"):
                out[key] = int(value.split()[0])
    return out


async def soak(requests: int, cancel_share: float, seed: int) -> dict[str, Any]:
    from lsprotocol import types
    from pygls.lsp.client import LanguageClient

    rng = random.Random(seed)
    with StandinEngine() as engine:
        client = LanguageClient("ghostfill-soak", "1")
        await client.start_io(sys.executable, "-m", "ghostfill", "serve")
        pid = client._server.pid  # type: ignore[union-attr]
        await client.initialize_async(types.InitializeParams(
            capabilities=types.ClientCapabilities(),
            initialization_options={
                "model": {"backend": "openai", "template": "starcoder"},
                "remote": {"endpoint": engine.url},
                "server": {"debounceMs": 0, "prefetch": False, "cacheSize": 64},
                "completion": {"maxTokens": 16, "latencyBudgetMs": 2000},
            }))
        client.initialized(types.InitializedParams())
        uri = "file:///soak/main.py"
        text = "def handler(event):\n    value = "
        client.text_document_did_open(types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1,
                                                 text=text)))
        version = 1
        counts = {"requests": 0, "answered": 0, "empty": 0, "cancelled": 0, "stale": 0,
                  "errors": 0}
        samples: list[dict[str, Any]] = []
        mismatches: list[dict[str, Any]] = []
        shown = ("", "")  # (document text, answer) of the last fresh answer
        started = time.monotonic()
        warm_status: dict[str, int] | None = None
        alphabet = "abcdefghij_ (),.=+"
        for i in range(requests):
            # An edit at the end of the last line (typing), sometimes a deletion.
            line = text.count("\n")
            col = len(text) - text.rfind("\n") - 1
            if col > 60 or (col > 12 and rng.random() < 0.2):
                new = "" if col > 60 else None
                cut = 1 if new is None else col - 11
                text = text[:-cut]
                change = types.TextDocumentContentChangePartial(
                    range=types.Range(start=types.Position(line=line, character=col - cut),
                                      end=types.Position(line=line, character=col)), text="")
            else:
                ch = rng.choice(alphabet)
                text += ch
                change = types.TextDocumentContentChangePartial(
                    range=types.Range(start=types.Position(line=line, character=col),
                                      end=types.Position(line=line, character=col)), text=ch)
            version += 1
            client.text_document_did_change(types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[change]))
            position = types.Position(line=text.count("\n"),
                                      character=len(text) - text.rfind("\n") - 1)
            msg_id = str(uuid.uuid4())
            future = client.protocol.send_request_async(
                types.TEXT_DOCUMENT_INLINE_COMPLETION,
                types.InlineCompletionParams(
                    text_document=types.TextDocumentIdentifier(uri=uri), position=position,
                    context=types.InlineCompletionContext(
                        trigger_kind=types.InlineCompletionTriggerKind.Automatic)),
                msg_id=msg_id)
            counts["requests"] += 1
            if rng.random() < cancel_share:
                client.protocol.notify("$/cancelRequest", types.CancelParams(id=msg_id))
            try:
                result = await asyncio.wait_for(future, 30)
            except Exception as e:  # cancelled requests answer with RequestCancelled
                if "cancel" in str(e).lower():
                    counts["cancelled"] += 1
                else:
                    counts["errors"] += 1
                continue
            items = list(result.items) if result is not None else []
            if not items:
                counts["empty"] += 1
                continue
            counts["answered"] += 1
            # The stand-in echoes the prompt's tail: an answer for an older version of the
            # document would carry an older tail.
            expected = answer_for(text)
            got = items[0].insert_text
            typed = text[len(shown[0]):] if text.startswith(shown[0]) else None
            through = typed is not None and shown[1].startswith(typed) and \
                got == shown[1][len(typed):]
            if got.rstrip() == expected.rstrip():
                shown = (text, got)
            elif not through:
                counts["stale"] += 1
                if len(mismatches) < 20:
                    mismatches.append({"request": i, "expected": expected, "got": got})
            if i == min(500, requests // 10):
                warm_status = proc_status(pid)
            if i % max(1, requests // 50) == 0:
                samples.append({"request": i, **proc_status(pid),
                                "elapsed_s": round(time.monotonic() - started, 2)})
        final = proc_status(pid)
        stats = await client.protocol.send_request_async("ghostfill/stats", None)
        await client.shutdown_async(None)
        client.exit(None)
        await client.stop()
    warm_status = warm_status or samples[0]
    return {
        "backend": "stand-in serving engine (bench/standin_engine.py), not a model",
        "counts": counts,
        "wall_s": round(time.monotonic() - started, 1),
        "rss_kb_after_warmup": warm_status["VmRSS"],
        "rss_kb_final": final["VmRSS"],
        "rss_growth_mb": round((final["VmRSS"] - warm_status["VmRSS"]) / 1024, 2),
        "threads_after_warmup": warm_status["Threads"],
        "threads_final": final["Threads"],
        "threads_max": max(s["Threads"] for s in samples) if samples else final["Threads"],
        "server_latency": plain(stats.latency_ms),
        "mismatches": mismatches,
        "samples": samples,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--cancel-share", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="bench/results")
    args = parser.parse_args(argv)
    report = asyncio.run(soak(args.requests, args.cancel_share, args.seed))
    report["command"] = "python -m ghostfill.bench.soak " + " ".join(argv or sys.argv[1:])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"soak-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=1))
    print(json.dumps({k: v for k, v in report.items() if k != "samples"}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
