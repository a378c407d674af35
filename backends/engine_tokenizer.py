"""The model's tokenizer, asked through the engine, with what it answered kept here.

Every editor window needs the model's exact token counts on every keystroke, but a
vocabulary is big: Gemma 3's 262k tokens take ~43 MiB in llama.cpp (a `vocab_only` load),
an HF tokenizer more, and with the tokenizer in each `ghostfill serve` three windows cost
three vocabularies beside the one engine (bench/results/engine-memory-*: 1.48x the memory
of one in-process server). So the vocabulary stays in the engine, which has it anyway, and
each window keeps only the answers: a keystroke re-counts mostly the same lines, which are
answered from an LRU here (one round trip, ~0.3 ms, for a text not seen yet).

When there is no engine right now (it died and is being restarted) a call raises
`BackendUnavailable`: the request that needed it answers nothing, quietly, since the user
was already told of the incident once.
"""

from __future__ import annotations

import base64
import threading
from array import array
from collections.abc import Callable, Sequence
from typing import Any

from cachetools import LRUCache

from ghostfill.errors import BackendUnavailable

#: The engine's answer to (op, payload), or None when it has none to give (no engine).
Call = Callable[[str, dict[str, Any]], "dict[str, Any] | None"]

#: Bytes of encodings kept (texts and their ids): a few windows' worth of lines and prefixes.
CACHE_BYTES = 8 << 20


def _entry_size(entry: tuple[int, array[int]]) -> int:
    return entry[0] + entry[1].itemsize * len(entry[1]) + 64


class EngineTokenizer:
    """`Tokenizer` whose vocabulary lives in the engine process (`completion.tokenizer`)."""

    def __init__(self, call: Call, info: dict[str, Any]) -> None:
        self._call = call
        self.name = str(info.get("name") or "engine")
        bos = info.get("bos_id")
        self.bos_id: int | None = int(bos) if bos is not None else None
        self.eos_ids: frozenset[int] = frozenset(int(t) for t in info.get("eos_ids") or ())
        self.add_bos = bool(info.get("add_bos"))
        self.vocab_size = int(info.get("vocab_size") or 0)
        self._encoded: LRUCache[str, tuple[int, array[int]]] = LRUCache(
            CACHE_BYTES, getsizeof=_entry_size)
        self._pieces: dict[int, bytes] = {}
        self._specials: dict[str, int | None] = {}
        self._lock = threading.Lock()

    def _ask(self, op: str, payload: dict[str, Any]) -> dict[str, Any]:
        answer = self._call(op, payload)
        if answer is None:
            raise BackendUnavailable("the engine is not running (it is being restarted)")
        return answer

    def encode(self, text: str) -> list[int]:
        if not text:
            return []
        with self._lock:
            hit = self._encoded.get(text)
        if hit is not None:
            return hit[1].tolist()
        ids = [int(t) for t in self._ask("tokenize", {"text": text})["ids"]]
        with self._lock:
            self._encoded[text] = (len(text), array("i", ids))
        return ids

    def decode_bytes(self, ids: Sequence[int]) -> bytes:
        with self._lock:
            missing = sorted({int(t) for t in ids if int(t) not in self._pieces})
        if missing:
            pieces = self._ask("pieces", {"ids": missing})["pieces"]
            with self._lock:
                for token, piece in zip(missing, pieces, strict=True):
                    self._pieces[token] = base64.b64decode(piece)
        with self._lock:
            return b"".join(self._pieces[int(t)] for t in ids)

    def special_id(self, piece: str) -> int | None:
        with self._lock:
            if piece in self._specials:
                return self._specials[piece]
        found = self._ask("special", {"piece": piece})["id"]
        value = int(found) if found is not None else None
        with self._lock:
            self._specials[piece] = value
        return value


def tokenizer_info(tokenizer: Any) -> dict[str, Any]:
    """What a client's `EngineTokenizer` needs to know up front (sent with `ready`)."""
    return {"name": tokenizer.name, "bos_id": tokenizer.bos_id,
            "eos_ids": sorted(tokenizer.eos_ids), "add_bos": tokenizer.add_bos,
            "vocab_size": tokenizer.vocab_size}


def answer(tokenizer: Any, op: str, message: dict[str, Any]) -> dict[str, Any]:
    """The engine's side of `EngineTokenizer`: one tokenizer call, as the wire carries it."""
    if op == "tokenize":
        text = message["text"]
        if not isinstance(text, str):
            raise TypeError("text must be a string")
        return {"ids": tokenizer.encode(text)}
    if op == "pieces":
        return {"pieces": [base64.b64encode(tokenizer.decode_bytes([int(t)])).decode("ascii")
                           for t in message["ids"]]}
    if op == "special":
        return {"id": tokenizer.special_id(str(message["piece"]))}
    raise ValueError(f"unknown tokenizer call {op!r}")


#: The wire's tokenizer calls (`answer`).
OPS = frozenset({"tokenize", "pieces", "special"})
