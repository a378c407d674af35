"""Counters behind `ghostfill/stats`: what the user saw, how fast, and what it cost."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class Stats:
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=2000))
    requests: int = 0
    cache_hits: int = 0
    type_through: int = 0
    prefetch_hits: int = 0
    misses: int = 0
    model_calls: int = 0
    cancelled: int = 0
    stale: int = 0
    errors: int = 0
    tokens_evaluated: int = 0
    tokens_reused: int = 0
    shown: int = 0
    accepted: int = 0
    #: Lines cut short by the deadline, and how many of them were completed in the background.
    partial: int = 0
    partial_joined: int = 0
    #: Empty answers (budget spent reading the window) finished in the background, and
    #: `ghostfill/suggestionReady` notifications sent for those and for joined lines.
    late: int = 0
    ready_sent: int = 0
    #: The engine process: incidents (it died or hung), restarts that brought it back,
    #: crash loops reported, and notices (a safe configuration after a crash).
    engine_lost: int = 0
    engine_restored: int = 0
    engine_failing: int = 0
    engine_notice: int = 0
    #: Prompts prepared, and the recent edits they showed (`context.recentEdits`).
    prompts: int = 0
    edits_shown: int = 0
    #: Windows read ahead into their cache slots, and cursor reports (`textDocument/didFocus`).
    warmed: int = 0
    focused: int = 0
    #: Of the warm-ups, short windows (`context.shortWindowTokens`); keystrokes served from
    #: a short window while the full one was not read.
    warmed_short: int = 0
    short_windows: int = 0
    #: Suffix checks run (`completion.suffixCheck`), and those that replaced the model's line.
    suffix_checks: int = 0
    suffix_changed: int = 0
    #: Invoked block answers ordered by the code below (`completion.blockCandidates`), and
    #: those where another block than the model's first came first.
    blocks_ranked: int = 0
    blocks_reordered: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def latency(self, ms: float) -> None:
        with self._lock:
            self.latencies_ms.append(ms)

    def snapshot(self) -> dict[str, object]:
        with self._lock:
            lat = list(self.latencies_ms)
            return {
                "latency_ms": {"p50": round(percentile(lat, 50), 2),
                               "p95": round(percentile(lat, 95), 2), "count": len(lat)},
                "requests": self.requests,
                "cache": {"hits": self.cache_hits, "type_through": self.type_through,
                          "prefetch_hits": self.prefetch_hits, "misses": self.misses},
                "model_calls": self.model_calls,
                "cancelled": self.cancelled,
                "stale": self.stale,
                "errors": self.errors,
                "tokens": {"evaluated": self.tokens_evaluated, "reused": self.tokens_reused},
                "suggestions": {"shown": self.shown, "accepted": self.accepted,
                                "partial": self.partial, "partial_joined": self.partial_joined,
                                "late": self.late, "ready_sent": self.ready_sent},
                "context": {"prompts": self.prompts, "edits_shown": self.edits_shown,
                            "short_windows": self.short_windows},
                "warm_ups": {"done": self.warmed, "short": self.warmed_short,
                             "focus_reports": self.focused},
                "suffix_check": {"ran": self.suffix_checks, "changed": self.suffix_changed,
                                 "blocks_ranked": self.blocks_ranked,
                                 "blocks_reordered": self.blocks_reordered},
                "engine": {"lost": self.engine_lost, "restored": self.engine_restored,
                           "failing": self.engine_failing, "notice": self.engine_notice},
            }
