"""`ghostfill serve` with a scripted engine in place of the model, for tests of the server's
own behaviour (supersession, staleness, type-through, cancellation) whose subject is not the
model.

Everything but the backend is the real server: the LSP handlers, sessions, the engine's
prompt, stop rules and filters. The backend (`ScriptedBackend`) answers what the script file
named by `GHOSTFILL_SCRIPT` says, re-read at every request, a token at a time through the
backends' own per-token loop (`TokenLoop`), so cancel, deadline and stop rules act as they do
on a real model. The script is JSON:

    {"answer": "text the model generates",
     "alternatives": ["..."], # optional: what it generates with the first words banned
     "token_ms": 0,          # time per generated token
     "hold": "/path/file",   # optional: wait before the first token until this file exists
     "hold_load": "/path",   # optional: the model's load ends once this file exists
     "warm_hold": "/path"}   # optional: documents' warm-ups wait for it (or a cancel)

Each request appends a line to `<script>.log` with the request's prompt tail, its cross-file
context ((path, text) pairs) and its size in tokens when it starts
and one with its stop reason when it ends, so a test can see what reached the model and how
it ended. Tokens come from a real vocabulary (StarCoder's, which has FIM
tokens), so prompts are rendered as for a real FIM model.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from ghostfill.backends.base import CancelToken, Generation, GenerationRequest, Timings
from ghostfill.backends.token_loop import TokenLoop
from ghostfill.completion.tokenizer import LlamaCppTokenizer, decode

VOCAB = Path(os.environ.get("GHOSTFILL_VOCAB_DIR",
                            Path(__file__).resolve().parents[2] / "shared" / "vocab"))


class ScriptedBackend:
    name = "scripted"
    model_name = "scripted"
    context_length = 2048
    resumable = True

    def __init__(self, script: Path) -> None:
        self.script = script
        self.tokenizer = LlamaCppTokenizer.from_gguf(str(VOCAB / "ggml-vocab-starcoder.gguf"))

    def _read(self) -> dict[str, Any]:
        return json.loads(self.script.read_text())

    def generate(self, request: GenerationRequest) -> Generation:
        script = self._read()
        timings = Timings(prompt_tokens=len(request.tokens))
        loop = TokenLoop(request, timings, tokenizer=self.tokenizer, limit=request.max_tokens)
        with open(f"{self.script}.log", "a") as log:
            tail = decode(self.tokenizer, request.tokens[-40:])
            log.write(json.dumps({"prompt_tail": tail,
                                  "context": [list(c) for c in request.prompt.context],
                                  "prompt_tokens": len(request.tokens)}) + "\n")
        answer = self._answer(script, request.banned_first)
        # A resumed generation has the answer's first tokens at the end of its prompt.
        for done in range(min(len(answer), len(request.tokens)), 0, -1):
            if request.tokens[-done:] == answer[:done]:
                answer = answer[done:]
                break
        hold = script.get("hold")
        while hold and not Path(hold).exists():
            if loop.interrupted():
                return self._done(loop, timings)
            time.sleep(0.01)
        token_s = float(script.get("token_ms", 0)) / 1000
        for token in answer:
            end = time.monotonic() + token_s
            while time.monotonic() < end:
                if loop.interrupted():
                    return self._done(loop, timings)
                time.sleep(min(0.005, token_s))
            if loop.interrupted() or not loop.push(token):
                return self._done(loop, timings)
        loop.reason = "stop_token"
        return self._done(loop, timings)

    def _answer(self, script: dict[str, Any], banned: frozenset[int]) -> list[int]:
        """The answer's ids; with first tokens banned (a retry, another choice), the first of
        the answer and its "alternatives" that starts with none of them, as a model's next
        choice would (nothing when none is left)."""
        texts = [script.get("answer", "")]
        if not banned:
            return self.tokenizer.encode(texts[0])
        for text in texts + list(script.get("alternatives", [])):
            ids = self.tokenizer.encode(text)
            first = next((t for t in ids if self.tokenizer.decode_bytes([t]).strip()), None)
            if first not in banned:
                return ids
        return []

    def _done(self, loop: TokenLoop, timings: Timings) -> Generation:
        timings.generated_tokens = len(loop.tokens)
        with open(f"{self.script}.log", "a") as log:
            log.write(json.dumps({"end": loop.reason, "tokens": len(loop.tokens)}) + "\n")
        return Generation(loop.finish(), list(loop.tokens), loop.reason, timings)

    def score(self, prompt: list[int], continuations: list[list[int]], *,
              document: str | None = None,
              cancel: CancelToken | None = None) -> list[float] | None:
        """A script has answers, not probabilities."""
        return None

    def warm(self, tokens: list[int], cancel: CancelToken | None = None,
             document: str | None = None) -> int:
        """Logs the warm-up and its end; {"warm_hold": path} holds a document's warm-up (not
        the load's first decode) until that file exists or it is cancelled."""
        def note(entry: dict[str, Any]) -> None:
            with open(f"{self.script}.log", "a") as log:
                log.write(json.dumps({**entry, "document": document or ""}) + "\n")

        note({"warm": len(tokens), "tail": decode(self.tokenizer, tokens[-40:])})
        hold = self._read().get("warm_hold") if document and self.script.exists() else None
        while hold and not Path(hold).exists():
            if cancel is not None and cancel.cancelled:
                note({"warm_end": "cancelled"})
                return 0
            time.sleep(0.01)
        note({"warm_end": "done"})
        return 0

    def probe(self) -> dict[str, object]:
        return {}

    def options(self) -> dict[str, object]:
        return {"script": str(self.script)}

    def close(self) -> None:
        pass


def _install() -> None:
    from ghostfill.backends import factory

    script = Path(os.environ["GHOSTFILL_SCRIPT"])

    def create_backend(config: object, on_progress: object = None,
                       on_event: object = None) -> ScriptedBackend:
        # {"hold_load": path}: the "model" loads once that file exists.
        hold = json.loads(script.read_text()).get("hold_load") if script.exists() else None
        while hold and not Path(hold).exists():
            time.sleep(0.01)
        return ScriptedBackend(script)

    factory.create_backend = create_backend  # type: ignore[assignment]


if __name__ == "__main__":
    _install()
    from ghostfill.cli import main

    sys.exit(main(["serve"]))
