"""Token-id sequence helpers the backends share: cache reuse and model-free drafts."""

from __future__ import annotations


def common_prefix(a: list[int], b: list[int]) -> int:
    """Length of the longest common prefix of two token-id sequences."""
    n = min(len(a), len(b))
    i = 0
    step = 256  # slices first: prompts share long prefixes and element loops are slow
    while i + step <= n and a[i : i + step] == b[i : i + step]:
        i += step
    while i < n and a[i] == b[i]:
        i += 1
    return i


#: A moved window is shifted in the cache when its first SHIFT_PROBE tokens are found there
#: and at least SHIFT_MIN_TOKENS in a row match (smaller moves are cheaper to re-read).
SHIFT_PROBE = 16
SHIFT_MIN_TOKENS = 64


def shift_match(cached: list[int], tokens: list[int]) -> tuple[int, int, int] | None:
    """How a cache holding `cached` serves `tokens` after their window start moved down:
    (head, start, kept) — the common head stays, cached[head:start] are the lines cut, and
    `kept` tokens from `start` on match `tokens` after the head (to be shifted back). None
    when no long enough run matches."""
    head = common_prefix(cached, tokens)
    probe = tokens[head : head + SHIFT_PROBE]
    if len(probe) < SHIFT_PROBE or head >= len(cached) - SHIFT_PROBE:
        return None
    start = head
    while True:
        try:
            start = cached.index(probe[0], start + 1)
        except ValueError:
            return None
        if cached[start : start + SHIFT_PROBE] == probe:
            break
    kept = common_prefix(cached[start:], tokens[head:])
    return (head, start, kept) if kept >= SHIFT_MIN_TOKENS else None


def prompt_lookup(seq: list[int], k: int, max_ngram: int = 3, min_ngram: int = 1) -> list[int]:
    """Up to `k` tokens that followed the latest earlier occurrence of seq's last n-gram.

    Code repeats itself (names, call patterns, closing lines), so copying from the context is a
    free draft model. Longer n-grams are tried first: they predict better; `min_ngram` is the
    shortest match worth drafting from.
    """
    if k <= 0:
        return []
    n_seq = len(seq)
    for n in range(min(max_ngram, n_seq - 1), min_ngram - 1, -1):
        pattern = seq[n_seq - n :]
        first = pattern[0]
        # Latest occurrence first: recent code is the likeliest to repeat.
        for start in range(n_seq - n - 1, -1, -1):
            if seq[start] == first and seq[start : start + n] == pattern:
                return seq[start + n : start + n + k]
    return []
