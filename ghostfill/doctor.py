"""`ghostfill doctor`: what this machine is, what llama.cpp will do on it, and whether one load
and decode works.

The load and decode run in a child process (`python -m ghostfill.doctor CONFIG_JSON`), so a
native fault inside llama.cpp or torch (a segfault, an abort) becomes a verdict with the
options in use and what to try, instead of a dead terminal. When the crash happened with
llama.cpp's extra buffer types on, the probe is run again with them off, and the verdict says
whether that is the cure.
"""

from __future__ import annotations

import json
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ghostfill import __version__
from ghostfill.config import Config
from ghostfill.errors import GhostfillError

if TYPE_CHECKING:
    from ghostfill.engine import CompletionEngine

#: What the probe completes: short, so the decode itself is what is tested.
PROBE_SOURCE = 'def mean(values):\n    """Arithmetic mean."""\n    return '
PROBE_MAX_TOKENS = 16
PROBE_TIMEOUT_S = 300.0


@dataclass
class ProbeResult:
    ok: bool
    #: One line for a person: what happened and what to try.
    verdict: str
    returncode: int | None
    signal: str | None = None
    seconds: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)
    stderr_tail: str = ""
    #: A second run that changed one option after a crash (None if there was none).
    retry: ProbeResult | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "retry"}
        out["retry"] = self.retry.to_dict() if self.retry else None
        return out


def _llama_cpp() -> Any | None:
    try:
        import llama_cpp
    except ImportError:
        return None
    return llama_cpp


def platform_report() -> dict[str, Any]:
    from ghostfill.backends.cpu_features import INTERESTING_FLAGS, cpu_flags, cpu_name

    flags = cpu_flags()
    return {
        "ghostfill": __version__,
        "python": sys.version.split()[0],
        "system": f"{platform.system()} {platform.release()} {platform.machine()}",
        "cpu": cpu_name(),
        "cpu_flags": [f for f in INTERESTING_FLAGS if f in flags],
    }


def llama_cpp_report(config: Config) -> dict[str, Any]:
    """ggml's CPU features as this build reports them, and the options a load will use."""
    from ghostfill.backends.cpu_features import choose_extra_buffer_types, ggml_features

    llama_cpp = _llama_cpp()
    if llama_cpp is None:
        return {"installed": False,
                "hint": "the CPU backend needs llama-cpp-python: pip install 'ghostfill[cpu]'"}
    features = ggml_features(llama_cpp)
    choice = choose_extra_buffer_types(config.model.extra_buffer_types, ggml=features)
    return {
        "installed": True,
        "version": getattr(llama_cpp, "__version__", "?"),
        "ggml_cpu_features": {k: v for k, v in features.items() if v.strip() != "0"},
        "options": {
            "use_extra_bufts": choice.enabled,
            "extra_buffer_types": choice.reason,
            "n_threads": config.model.threads or "all cores",
            "context_length": config.model.context_length or "the model's (2048 at most)",
            "flash_attn": True,
        },
    }


def model_report(config: Config) -> dict[str, Any]:
    from ghostfill.backends.factory import is_remote
    from ghostfill.models import resolve

    mc = config.model
    if is_remote(config):
        return {"name": mc.name, "backend": mc.backend, "endpoint": config.remote.endpoint,
                "available": bool(config.remote.endpoint)}
    try:
        model = resolve(mc.name, offline=True)
    except GhostfillError as e:
        return {"name": mc.name, "available": False, "problem": str(e)}
    return {"name": model.display_name, "available": True, "path": str(model.path),
            "kind": model.kind}


def probe_command(config: Config) -> list[str]:
    return [sys.executable, "-m", "ghostfill.doctor", json.dumps(config.to_dict())]


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def run_probe(command: list[str], timeout_s: float = PROBE_TIMEOUT_S) -> ProbeResult:
    """Run one probe child and read its outcome: a JSON line, an error line, or a signal."""
    started = time.monotonic()
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s,
                              check=False, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        partial = (e.stderr or b"")[-2000:]
        return ProbeResult(False, f"load + decode did not finish within {timeout_s:.0f} s",
                           None, seconds=time.monotonic() - started,
                           stderr_tail=partial.decode(errors="replace")
                           if isinstance(partial, bytes) else str(partial))
    seconds = time.monotonic() - started
    tail = proc.stderr[-2000:]
    if proc.returncode < 0:
        name = _signal_name(-proc.returncode)
        return ProbeResult(False, f"load + decode crashed with signal {-proc.returncode} "
                                  f"({name})", proc.returncode, name, seconds, stderr_tail=tail)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode == 0 and lines:
        data = json.loads(lines[-1])
        return ProbeResult(True, _ok_verdict(data), 0, seconds=seconds, data=data,
                           stderr_tail=tail)
    last = next((ln for ln in reversed(proc.stderr.splitlines()) if ln.strip()), "no output")
    return ProbeResult(False, f"load + decode failed: {last.removeprefix('ghostfill: error: ')}",
                       proc.returncode, seconds=seconds, stderr_tail=tail)


def _ok_verdict(data: dict[str, Any]) -> str:
    tokens = data.get("generated_tokens", 0)
    per_token = data.get("decode_ms_per_token")
    speed = f", {per_token:.1f} ms/token" if per_token else ""
    return (f"load + decode OK: loaded in {data.get('load_s', 0):.1f} s, "
            f"{tokens} tokens generated{speed}")


def diagnose(config: Config, *, timeout_s: float = PROBE_TIMEOUT_S,
             command_for: Callable[[Config], list[str]] = probe_command) -> ProbeResult:
    """Probe with the configuration as is; after a crash with extra buffer types on, probe
    again with them off and say whether that is the fix."""
    result = run_probe(command_for(config), timeout_s)
    if result.ok or result.signal is None:
        return result
    from ghostfill.backends.factory import is_remote

    options = llama_cpp_report(config).get("options", {})
    if not is_remote(config) and options.get("use_extra_bufts"):
        safe = config.updated({"model": {"extra_buffer_types": False}})
        retry = run_probe(command_for(safe), timeout_s)
        result.retry = retry
        if retry.ok:
            result.verdict += (" with llama.cpp's extra buffer types on; with them off it "
                               "works: set model.extraBufferTypes to false")
        else:
            result.verdict += (" with extra buffer types on, and again with them off "
                               f"({retry.verdict}); try --backend transformers or another "
                               "llama-cpp-python build, and run with --json for details")
    else:
        result.verdict += ("; try model.threads=1, another model, or another "
                           "llama-cpp-python build (pip install --force-reinstall "
                           "--no-binary llama-cpp-python llama-cpp-python)")
    return result


def doctor(config: Config, *, probe: bool = True,
           timeout_s: float = PROBE_TIMEOUT_S) -> dict[str, Any]:
    report: dict[str, Any] = {
        "platform": platform_report(),
        "llama_cpp": llama_cpp_report(config),
        "model": model_report(config),
        "backend": config.model.backend,
    }
    if probe:
        report["probe"] = diagnose(config, timeout_s=timeout_s).to_dict()
    return report


def format_report(report: dict[str, Any]) -> str:
    out: list[str] = []
    p = report["platform"]
    out.append(f"ghostfill {p['ghostfill']}  Python {p['python']}  {p['system']}")
    out.append(f"CPU: {p['cpu']}  flags: {' '.join(p['cpu_flags']) or '-'}")
    lc = report["llama_cpp"]
    if lc.get("installed"):
        features = " ".join(f"{k}" if v.strip() == "1" else f"{k}={v.strip()}"
                            for k, v in lc["ggml_cpu_features"].items())
        out.append(f"llama-cpp-python {lc['version']}  ggml: {features}")
        options = "  ".join(f"{k}={v}" for k, v in lc["options"].items()
                            if k != "extra_buffer_types")
        out.append(f"llama.cpp options: {options}")
        out.append(f"  extra buffer types {lc['options']['extra_buffer_types']}")
    else:
        out.append(f"llama-cpp-python: not installed ({lc['hint']})")
    m = report["model"]
    where = m.get("path") or m.get("endpoint") or m.get("problem", "")
    out.append(f"model: {m['name']} ({'available' if m['available'] else 'NOT available'}) "
               f"{where}")
    probe = report.get("probe")
    if probe:
        out.append(("OK  " if probe["ok"] else "FAIL") + f" {probe['verdict']}")
        if not probe["ok"] and probe["stderr_tail"].strip():
            out.append("  last output: " + probe["stderr_tail"].strip().splitlines()[-1][:200])
    return "\n".join(out)


def _probe_main(config_json: str) -> int:
    """In the child: load, decode, print one JSON line. A native crash ends the process here,
    and the parent reads the signal."""
    import math

    from ghostfill.completion.snapshot import CompletionInput
    from ghostfill.engine import CompletionEngine

    config = Config().updated(json.loads(config_json))
    config = config.updated({"completion": {"max_tokens": PROBE_MAX_TOKENS,
                                            "alternatives": 0}})
    started = time.monotonic()
    engine = CompletionEngine.load(config)
    load_s = time.monotonic() - started
    print(f"ghostfill doctor: loaded; decoding with {_options(engine)}", file=sys.stderr,
          flush=True)
    result = engine.complete(CompletionInput.of_text(PROBE_SOURCE, len(PROBE_SOURCE),
                                                     path="probe.py"),
                             deadline=time.monotonic() + math.inf)
    generated = len(result.tokens)
    decode_ms = float(result.timings.get("decode_ms", 0.0) or 0.0)
    print(json.dumps({
        "load_s": round(load_s, 3),
        "model": result.model,
        "text": result.text,
        "generated_tokens": generated,
        "decode_ms_per_token": round(decode_ms / generated, 2) if generated and decode_ms
        else None,
        "options": _options(engine),
    }), flush=True)
    return 0


def _options(engine: CompletionEngine) -> dict[str, object]:
    info = engine.describe()
    return {"backend": info.backend, **info.options}


if __name__ == "__main__":
    try:
        sys.exit(_probe_main(sys.argv[1]))
    except GhostfillError as e:
        print(f"ghostfill: error: {e}", file=sys.stderr)
        sys.exit(1)
