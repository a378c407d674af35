"""Where a benchmark's figures go: one timestamped JSON with the command that made it, and its
plot beside it, so every figure in docs/benchmarks.md can be traced to a file and rerun."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def write_results(out_dir: str | Path, name: str, module: str, argv: list[str] | None,
                  payload: dict[str, Any],
                  plot: Callable[[Path], None] | None = None) -> Path:
    """Write `<out_dir>/<name>-<stamp>.json` (payload plus the command) and, with `plot`,
    `<name>-<stamp>.png`; returns the JSON's path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    command = f"python -m ghostfill.bench.{module} " + " ".join(
        argv if argv is not None else sys.argv[1:])
    json_path = stem.with_suffix(".json")
    json_path.write_text(json.dumps({"command": command.strip(), **payload}, indent=1))
    if plot is not None:
        plot(stem.with_suffix(".png"))
    print(f"wrote {json_path}")
    return json_path
