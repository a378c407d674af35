"""What this CPU and this llama.cpp build can do, and the load options that follow from it.

One decision lives here: whether llama.cpp may put weights in its *extra buffer types* (the CPU
backend's repacked layouts, and on Intel Xeons with AMX the AMX buffer type). On such CPUs the
AMX matrix multiply segfaults at its first `ldtilecfg` (llama.cpp #20824, unfixed upstream;
the tile permission must be requested per thread, PR #26954, unmerged), on the first decode,
killing whatever process holds the model. Loading with `use_extra_bufts = false` avoids it
(what llama-server's `--no-repack` does). Measured with `python -m ghostfill.bench.extra_bufts`
(docs/benchmarks.md): on an AMD EPYC the embedded models run about as fast either way (every
figure within 6 %); on an AMX Xeon the embedded model decodes as fast without them
as a build without AMX (issue #14's measurement). Repacking is what extra buffer types exist
for (Q4_0/Q8_0 layouts), so "auto" keeps them wherever they are safe and switches them off only
where AMX is present.
"""

from __future__ import annotations

import platform
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

#: CPU flags that matter to llama.cpp's CPU backend, in the order a report lists them.
INTERESTING_FLAGS = ("avx", "avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx512_bf16",
                     "avx_vnni", "amx_tile", "amx_int8", "amx_bf16", "asimd", "sve")
AMX_FLAGS = ("amx_tile", "amx_int8", "amx_bf16")


@cache
def cpu_flags() -> frozenset[str]:
    """The processor's feature flags as the kernel reports them (Linux); empty elsewhere.

    Read from /proc/cpuinfo rather than a CPUID library: it is what the kernel enables (AMX
    needs kernel support too), and no extra dependency is needed for one file read.
    """
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return frozenset()
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return frozenset(flags)


@cache
def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Hardware", "cpu model"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def ggml_features(llama_cpp: Any) -> dict[str, str]:
    """ggml's own report of its CPU backend (`llama_print_system_info`): which instruction
    sets this build uses, AMX and repacking included, as {name: value}."""
    try:
        info = llama_cpp.llama_print_system_info().decode("utf-8", errors="replace")
    except Exception:  # an old or broken build: the report says so instead of failing
        return {}
    return {k: v for k, v in re.findall(r"([A-Za-z0-9_]+) = ([^|]+?)\s*(?:\||$)", info)}


@dataclass(frozen=True)
class ExtraBufferChoice:
    enabled: bool
    #: Why, in words a report or a log line can show.
    reason: str


def amx_present(ggml: dict[str, str] | None = None, flags: frozenset[str] | None = None) -> bool:
    flags = cpu_flags() if flags is None else flags
    ggml = ggml or {}
    return any(f in flags for f in AMX_FLAGS) or any(
        ggml.get(k, "0").strip() not in ("0", "") for k in ("AMX_INT8", "AMX_BF16", "AMX")
    )


def choose_extra_buffer_types(setting: bool | None, *, ggml: dict[str, str] | None = None,
                              flags: frozenset[str] | None = None) -> ExtraBufferChoice:
    """`model.extraBufferTypes`: True/False as configured; None ("auto") off where AMX is."""
    if setting is not None:
        return ExtraBufferChoice(setting, "set by model.extraBufferTypes")
    if amx_present(ggml, flags):
        return ExtraBufferChoice(
            False, "off: this CPU has AMX, whose llama.cpp kernel crashes (llama.cpp #20824); "
                   "set model.extraBufferTypes=true to opt back in")
    return ExtraBufferChoice(True, "on: no AMX on this CPU")
