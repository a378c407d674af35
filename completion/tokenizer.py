"""One tokenizer abstraction for every backend: llama.cpp's (GGUF), Hugging Face's, and the
approximate one for servers that tokenize themselves (`RemoteTokenizer`).

Budgets are counted with the model's own tokenizer, and user text is always tokenized as
plain text: a file that literally contains `<fim_middle>` must not produce the control token.
Control tokens enter a prompt only by id, looked up through `special_id`.
"""

from __future__ import annotations

import codecs
import ctypes
import logging
import re
import threading
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any, Protocol, runtime_checkable

_log = logging.getLogger("ghostfill.llama_cpp")
_LOG_CALLBACK: Any = None


def route_llama_logs(llama_cpp: Any) -> None:
    """Send llama.cpp's own log lines to Python logging (debug) instead of raw stderr.

    A CLI error must stay one line, and a language server's stderr is the editor's log.
    """
    global _LOG_CALLBACK
    if _LOG_CALLBACK is not None:
        return

    @llama_cpp.llama_log_callback
    def callback(level: int, text: bytes, user_data: Any) -> None:
        _log.debug("%s", text.decode("utf-8", errors="replace").rstrip())

    _LOG_CALLBACK = callback  # keep a reference: C holds only the pointer
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))


@runtime_checkable
class Tokenizer(Protocol):
    """What the context engine and the prompt renderer need from a tokenizer."""

    name: str
    bos_id: int | None
    eos_ids: frozenset[int]
    add_bos: bool
    vocab_size: int

    def encode(self, text: str) -> list[int]:
        """Tokenize `text` as plain text: no BOS, special-token strings stay text."""
        ...

    def decode_bytes(self, ids: Sequence[int]) -> bytes:
        """Raw bytes of the tokens (a token may hold part of a UTF-8 character)."""
        ...

    def special_id(self, piece: str) -> int | None:
        """Id of the control token spelled `piece`, or None when the vocabulary has none."""
        ...


def count_tokens(tokenizer: Tokenizer, text: str) -> int:
    return len(tokenizer.encode(text)) if text else 0


def decode(tokenizer: Tokenizer, ids: Sequence[int]) -> str:
    return tokenizer.decode_bytes(ids).decode("utf-8", errors="replace")


class StreamDecoder:
    """Turns a stream of token ids into text without splitting UTF-8 characters."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self._tokenizer = tokenizer
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, token_id: int) -> str:
        return self._decoder.decode(self._tokenizer.decode_bytes([token_id]))

    def flush(self) -> str:
        return self._decoder.decode(b"", final=True)


class LlamaCppTokenizer:
    """Tokenizer of a llama.cpp model (a full GGUF or a `vocab_only` one)."""

    def __init__(self, llama: Any, name: str = "") -> None:
        self._llama = llama
        model = llama._model
        self.name = name or "llama.cpp"
        bos = model.token_bos()
        self.bos_id = bos if bos >= 0 else None
        self.eos_ids = frozenset(t for t in (model.token_eos(), model.token_eot()) if t >= 0)
        self.add_bos = bool(model.add_bos_token()) and self.bos_id is not None
        self.vocab_size = model.n_vocab()
        self._special_cache: dict[str, int | None] = {}
        self._pieces: dict[tuple[int, bool], bytes] = {}
        # Keystroke path: the same lines are tokenized again and again.
        self._encode_cached = lru_cache(maxsize=8192)(self._encode_uncached)

    @classmethod
    def from_gguf(cls, path: str) -> LlamaCppTokenizer:
        import llama_cpp

        route_llama_logs(llama_cpp)
        llama = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
        return cls(llama, name=str(path))

    def _encode_uncached(self, text: str) -> tuple[int, ...]:
        data = text.encode("utf-8", errors="surrogatepass")
        if not data:
            return ()
        return tuple(self._llama._model.tokenize(data, add_bos=False, special=False))

    def encode(self, text: str) -> list[int]:
        if len(text) <= 256:
            return list(self._encode_cached(text))
        return list(self._encode_uncached(text))

    def decode_bytes(self, ids: Sequence[int]) -> bytes:
        return b"".join(self.piece(t) for t in ids)

    def special_id(self, piece: str) -> int | None:
        if piece not in self._special_cache:
            self._special_cache[piece] = self._lookup_special(piece)
        return self._special_cache[piece]

    def _lookup_special(self, piece: str) -> int | None:
        model = self._llama._model
        as_special = model.tokenize(piece.encode(), add_bos=False, special=True)
        if len(as_special) != 1:
            return None
        as_text = model.tokenize(piece.encode(), add_bos=False, special=False)
        # A control token is one id when parsed as special and more (or other) ids as text.
        if list(as_text) == list(as_special):
            return None
        return int(as_special[0])

    def piece(self, token_id: int, special: bool = False) -> bytes:
        """Bytes of one token (control tokens render as empty unless `special`)."""
        key = (int(token_id), special)
        cached = self._pieces.get(key)
        if cached is None:
            cached = self._pieces[key] = self._token_to_piece(*key)
        return cached

    def _token_to_piece(self, token_id: int, special: bool) -> bytes:
        # llama-cpp-python's own token_to_piece returns its whole 32-byte buffer (NULs
        # included) and truncates longer pieces; call the C function and honour its length.
        import ctypes

        import llama_cpp

        vocab = self._llama._model.vocab
        size = 64
        while True:
            buf = ctypes.create_string_buffer(size)
            n = llama_cpp.llama_token_to_piece(vocab, token_id, buf, size, 0, special)
            if n < 0:
                size = -n
                continue
            return buf.raw[:n]


class HFTokenizer:
    """Tokenizer of a Hugging Face model (`transformers.PreTrainedTokenizerBase`)."""

    def __init__(self, tokenizer: Any, name: str = "") -> None:
        self._tok = tokenizer
        self.name = name or getattr(tokenizer, "name_or_path", "hf")
        self.bos_id = tokenizer.bos_token_id
        eos = tokenizer.eos_token_id
        self.eos_ids = frozenset([eos] if isinstance(eos, int) else (eos or []))
        # BOS is added when the tokenizer would add it to plain text itself.
        probe = tokenizer("a", add_special_tokens=True)["input_ids"]
        self.add_bos = self.bos_id is not None and bool(probe) and probe[0] == self.bos_id
        self.vocab_size = len(tokenizer)
        self._added = dict(tokenizer.get_added_vocab())
        self._byte_decoder = _bytes_to_unicode_inverse()

    def encode(self, text: str) -> list[int]:
        if not text:
            return []
        tok = self._tok
        # `split_special_tokens` keeps `<fim_middle>` in user text as ordinary text.
        try:
            return list(tok(text, add_special_tokens=False, split_special_tokens=True)["input_ids"])
        except TypeError:  # very old tokenizers: no split_special_tokens
            return list(tok.encode(text, add_special_tokens=False))

    def decode_bytes(self, ids: Sequence[int]) -> bytes:
        tokens = self._tok.convert_ids_to_tokens([int(i) for i in ids])
        out = bytearray()
        for token in tokens:
            if token is None:
                continue
            out += _token_bytes(token, self._byte_decoder)
        return bytes(out)

    def special_id(self, piece: str) -> int | None:
        return self._added.get(piece)


def _token_bytes(token: str, byte_decoder: dict[str, int]) -> bytes:
    """Bytes of one vocabulary entry (byte-level BPE or SentencePiece form)."""
    if token.startswith("<0x") and token.endswith(">") and len(token) == 6:
        return bytes([int(token[3:5], 16)])
    if all(ch in byte_decoder for ch in token):
        return bytes(byte_decoder[ch] for ch in token)
    return token.replace("\u2581", " ").encode("utf-8")


@lru_cache(maxsize=1)
def _bytes_to_unicode_inverse() -> dict[str, int]:
    # GPT-2 byte-level BPE maps every byte to a printable character; this is its inverse.
    bs = list(range(ord("!"), ord("~") + 1))
    bs += list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs, strict=True)}


#: Approximate pre-tokenizer: words (with their leading space), 1-3 digits, punctuation runs,
#: whitespace runs. Long runs are cut further below, the way subword vocabularies split them.
_PIECES = re.compile(r" ?[^\W\d_]+| ?\d{1,3}| ?[^\s\w]+|_+|\n+|[^\S\n]+|\s")
_WORD_CHUNK = 5
_PUNCT_CHUNK = 2
_SPACE_CHUNK = 8
_MAX_INTERNED = 1 << 18


class RemoteTokenizer:
    """Tokenizer for a backend whose server tokenizes: exact with a local one, else approximate.

    With `local` (e.g. `RemoteTokenizer.from_gguf("model-vocab-only.gguf")`) every call goes to
    the model's real tokenizer. Without it, text is split by a regex into pieces the size of
    typical code BPE tokens (a word with its leading space, up to 3 digits, 2 punctuation marks,
    8 spaces; words longer than 5 characters count one token per 5 characters). Measured on
    Python sources it counts more tokens than code tokenizers do: +2-3% against DeepSeek-Coder
    and Llama's SentencePiece, about +20% against StarCoder's (DeciCoder, tiny_starcoder) and
    Gemma 3's, about +30% against Qwen2's; single files vary by some ±10% around that. Erring
    on the side of more tokens keeps a prompt budgeted with it inside the server's window. (It
    is not meant for GPT-2's original tokenizer, which has no whitespace merges and needs about
    45% more.) The test suite checks the margin against local GGUF vocabularies. Ids are
    interned per piece, so `decode_bytes` gives back the exact text; they mean nothing to the
    server, which only ever sees text.

    Without a vocabulary there is no way to know which control tokens the served model has, so
    `specials` names them (the configured template's `control_tokens`). Anything else is "not in
    the vocabulary": template detection then falls back to prefix-only instead of guessing, and
    a configured template the specials do not cover fails with a clear TemplateError.
    """

    def __init__(self, local: Tokenizer | None = None, *, specials: Iterable[str] = (),
                 name: str = "") -> None:
        self.local = local
        self.specials = frozenset(specials)
        self.approximate = local is None
        self.name = name or (local.name if local is not None else "approximate")
        self.bos_id: int | None = local.bos_id if local is not None else None
        self.eos_ids: frozenset[int] = local.eos_ids if local is not None else frozenset()
        self.add_bos: bool = local.add_bos if local is not None else False
        self.vocab_size: int = local.vocab_size if local is not None else 1 << 20
        self._lock = threading.Lock()
        # Ids 0-255 are single bytes; pieces and control tokens are interned after them.
        self._pieces: list[bytes] = [bytes([b]) for b in range(256)]
        self._ids: dict[str, int] = {}
        self._special: dict[str, int] = {}

    @classmethod
    def from_gguf(cls, path: str) -> RemoteTokenizer:
        """Exact counts from a GGUF's vocabulary (a `vocab_only` load: no weights in memory)."""
        return cls(LlamaCppTokenizer.from_gguf(path))

    def encode(self, text: str) -> list[int]:
        if self.local is not None:
            return self.local.encode(text)
        out: list[int] = []
        for match in _PIECES.finditer(text):
            for piece in _split(match.group()):
                out.extend(self._intern(piece))
        return out

    def decode_bytes(self, ids: Sequence[int]) -> bytes:
        if self.local is not None:
            return self.local.decode_bytes(ids)
        pieces = self._pieces
        return b"".join(pieces[i] for i in ids if 0 <= i < len(pieces))

    def special_id(self, piece: str) -> int | None:
        if self.local is not None:
            return self.local.special_id(piece)
        if piece not in self.specials:
            return None
        with self._lock:
            if piece not in self._special:
                self._special[piece] = len(self._pieces)
                self._pieces.append(b"")  # control tokens render as nothing, as in llama.cpp
            return self._special[piece]

    def _intern(self, piece: str) -> list[int]:
        known = self._ids.get(piece)
        if known is not None:
            return [known]
        data = piece.encode("utf-8", errors="surrogatepass")
        with self._lock:
            if len(self._pieces) >= _MAX_INTERNED:
                return list(data)  # table full: fall back to bytes (over-counts, stays exact)
            token_id = self._ids.setdefault(piece, len(self._pieces))
            if token_id == len(self._pieces):
                self._pieces.append(data)
            return [token_id]


def _split(piece: str) -> list[str]:
    body = piece.lstrip(" ")
    if not body:
        size = _SPACE_CHUNK
    elif body[0].isalpha():
        size = _WORD_CHUNK
    elif body[0].isspace():
        size = _SPACE_CHUNK
    elif body[0].isdigit():
        return [piece]
    else:
        size = _PUNCT_CHUNK
    if len(piece) <= size + 1:
        return [piece]
    # The leading space rides with the first chunk, as in byte-level BPE.
    head = size + (len(piece) - len(body))
    rest = piece[head:]
    return [piece[:head], *(rest[i : i + size] for i in range(0, len(rest), size))]
