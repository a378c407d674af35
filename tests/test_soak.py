"""A short soak over stdio (the full one is `python -m ghostfill.bench.soak`).

Generation goes to a fast stand-in serving engine over real HTTP (bench/standin_engine.py), so
the server's own request path — sync, cancellation, caching, streaming — is what is soaked.
"""

from __future__ import annotations

import asyncio

from ghostfill.bench.soak import soak


def test_no_stale_answers_stable_threads_bounded_memory():
    report = asyncio.run(soak(requests=2000, cancel_share=0.2, seed=1))
    counts = report["counts"]
    assert counts["requests"] == 2000
    assert counts["stale"] == 0, report["mismatches"]
    assert counts["errors"] == 0
    assert counts["answered"] + counts["cancelled"] + counts["empty"] == 2000
    assert counts["answered"] > 1000
    assert report["threads_final"] <= report["threads_after_warmup"] + 2
    assert report["rss_growth_mb"] < 50
