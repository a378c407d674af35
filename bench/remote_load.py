"""Load: several editors (LSP sessions) sharing one serving engine.

Starts one real `python -m llama_cpp.server` with the embedded model on 127.0.0.1 and N
`ghostfill serve` processes configured with the OpenAI-compatible remote backend. Every session
types its own line of code one character at a time, all at once, and measures keystroke →
suggestion. The engine serves one request at a time, so this shows queueing under load.

    python -m ghostfill.bench.remote_load --sessions 8 --keystrokes 20 --out bench/results
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ghostfill.bench.latency import pct

LINES = [
    "    total = sum(item.price * item.quantity for item in order.items)",
    "    names = sorted({user.name for user in users if user.active})",
    "    result = {key: value for key, value in pairs if value is not None}",
    "    path = os.path.join(base_dir, 'data', f'{name}.json')",
    "    response = client.get(url, params={'page': page}, timeout=10)",
    "    rows = [row.strip().split(',') for row in handle if row.strip()]",
    "    score = max(0.0, min(1.0, (value - low) / (high - low)))",
    "    message = f'{count} files processed in {elapsed:.2f} seconds'",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_engine(model: Path, log: Path,
                 extra: tuple[str, ...] = ()) -> tuple[subprocess.Popen[bytes], str]:
    """`python -m llama_cpp.server` with the model on 127.0.0.1, plus `extra` arguments."""
    import httpx

    port = free_port()
    out = log.open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(model),
                             "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048",
                             *extra], stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    end = time.monotonic() + 120
    while time.monotonic() < end:
        try:
            if httpx.get(f"{url}/v1/models", timeout=1.0).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("llama_cpp.server did not start")


async def session(index: int, url: str, keystrokes: int, source: str) -> list[float]:
    from lsprotocol import types
    from pygls.lsp.client import LanguageClient

    client = LanguageClient(f"load-{index}", "1")
    await client.start_io(sys.executable, "-m", "ghostfill", "serve")
    await client.initialize_async(types.InitializeParams(
        capabilities=types.ClientCapabilities(),
        initialization_options={"model": {"backend": "openai", "template": "prefix-only"},
                                "remote": {"endpoint": url},
                                "server": {"debounceMs": 0},
                                "completion": {"maxTokens": 24, "latencyBudgetMs": 5000}}))
    client.initialized(types.InitializedParams())
    line = LINES[index % len(LINES)]
    indent = len(line) - len(line.lstrip())
    text = source + line[:indent]
    row = text.count("\n")
    uri = f"file:///load/session{index}.py"
    client.text_document_did_open(types.DidOpenTextDocumentParams(
        text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1,
                                             text=text)))
    latencies: list[float] = []
    for i, ch in enumerate(line[indent : indent + keystrokes]):
        col = indent + i
        started = time.monotonic()
        client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=i + 2),
            content_changes=[types.TextDocumentContentChangePartial(
                range=types.Range(start=types.Position(line=row, character=col),
                                  end=types.Position(line=row, character=col)), text=ch)]))
        await client.text_document_inline_completion_async(types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=row, character=col + 1),
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Automatic)))
        latencies.append((time.monotonic() - started) * 1000)
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    return latencies


async def run(sessions: int, keystrokes: int, url: str) -> list[list[float]]:
    source = "import os\n\n\ndef process(order, users, pairs, base_dir, name, client, url):\n"
    return await asyncio.gather(*(session(i, url, keystrokes, source)
                                  for i in range(sessions)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--keystrokes", type=int, default=20)
    parser.add_argument("--out", default="bench/results")
    args = parser.parse_args(argv)
    from ghostfill.models import resolve

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    proc, url = start_engine(resolve("gemma3-270m").path, out / "remote-load-engine.log")
    try:
        started = time.monotonic()
        per_session = asyncio.run(run(args.sessions, args.keystrokes, url))
        wall = time.monotonic() - started
    finally:
        proc.terminate()
        proc.wait(10)
    flat = [x for s in per_session for x in s]
    report: dict[str, Any] = {
        "command": "python -m ghostfill.bench.remote_load " + " ".join(argv or sys.argv[1:]),
        "engine": "llama-cpp-python server, embedded gemma3-270m, one request at a time",
        "sessions": args.sessions,
        "keystrokes": len(flat),
        "p50_ms": round(pct(flat, 50), 1),
        "p95_ms": round(pct(flat, 95), 1),
        "per_session_p50_ms": [round(pct(s, 50), 1) for s in per_session],
        "wall_s": round(wall, 1),
    }
    path = out / f"remote-load-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps({**report, "latencies_ms": per_session}, indent=1))
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
