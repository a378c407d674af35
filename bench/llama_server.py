"""llama.cpp's `llama-server` as a real remote engine, for the tests and the benchmarks.

* `binary()` builds llama-server from the llama.cpp that the installed llama-cpp-python vendors,
  once, and reuses it from the user cache afterwards (`scripts/llama_server.sh`);
  `$GHOSTFILL_LLAMA_SERVER` names an existing binary instead.
* `with_fim_tokens()` copies a Gemma GGUF with four of its unused control tokens renamed to
  CodeGemma's FIM tokens: llama-server's `/infill` refuses a model without FIM tokens, and the
  embedded Gemma 3 270M has none. The weights are untouched and the model never learned those
  tokens, so what it writes in FIM mode is no measure of quality; it exercises the real
  server (prompt layout, cache, slots, stop rules) with a real model.
* `LlamaServer` runs it on 127.0.0.1 on a free port and stops it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "llama_server.sh"

#: Gemma's unused control tokens -> CodeGemma's FIM tokens (what ghostfill's `codegemma`
#: template and llama.cpp's FIM token detection look for).
FIM_RENAMES = {
    "<unused0>": "<|fim_prefix|>",
    "<unused1>": "<|fim_suffix|>",
    "<unused2>": "<|fim_middle|>",
    "<unused3>": "<|file_separator|>",
}


class BuildError(RuntimeError):
    pass


def binary(timeout_s: float = 3600.0) -> Path:
    """The llama-server binary: `$GHOSTFILL_LLAMA_SERVER`, the cached build, or a new build.

    A first build takes ~10 minutes on 2 cores. Any failure raises BuildError with the end
    of the build's output: a missing engine must fail the run, not skip it.
    """
    given = os.environ.get("GHOSTFILL_LLAMA_SERVER")
    if given:
        path = Path(given)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise BuildError(f"$GHOSTFILL_LLAMA_SERVER={given} is not an executable file")
        return path
    env = {**os.environ, "PYTHON": sys.executable}
    try:
        done = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env,
                              timeout=timeout_s)
    except subprocess.TimeoutExpired as e:
        raise BuildError(f"{SCRIPT} did not finish within {timeout_s:g}s") from e
    lines = done.stdout.strip().splitlines()
    built = Path(lines[-1]) if lines else None
    if done.returncode != 0 or built is None or not built.is_file():
        tail = "\n".join(done.stderr.strip().splitlines()[-30:])
        raise BuildError(f"building llama-server failed ({SCRIPT}, exit {done.returncode}):\n"
                         f"{tail}")
    return built


def cache_dir() -> Path:
    """Where scripts/llama_server.sh keeps its builds (and this module the FIM copies)."""
    root = os.environ.get("GHOSTFILL_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "ghostfill")
    return Path(root) / "llama-server"


def with_fim_tokens(src: Path, dst: Path | None = None) -> Path:
    """Copy the GGUF `src` to `dst` (default: next to the cached builds) with FIM_RENAMES
    applied to its vocabulary; an existing copy newer than `src` is reused."""
    import gguf

    if dst is None:
        dst = cache_dir() / f"{src.stem}-fim.gguf"
        dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.is_file() and dst.stat().st_mtime >= src.stat().st_mtime:
        return dst
    reader = gguf.GGUFReader(str(src))

    def contents(key: str) -> Any:
        found = reader.get_field(key)
        if found is None:
            raise ValueError(f"{src} has no {key}")
        return found.contents()

    arch = contents(gguf.Keys.General.ARCHITECTURE)
    tokens = list(contents(gguf.Keys.Tokenizer.LIST))
    types = list(contents(gguf.Keys.Tokenizer.TOKEN_TYPE))
    for old, new in FIM_RENAMES.items():
        if new in tokens:
            raise ValueError(f"{src} already has {new}")
        index = tokens.index(old)  # ValueError: not a Gemma vocabulary
        tokens[index] = new
        types[index] = gguf.TokenType.CONTROL
    changed = {gguf.Keys.Tokenizer.LIST: tokens, gguf.Keys.Tokenizer.TOKEN_TYPE: types}
    tmp = dst.with_name(dst.name + ".tmp")
    writer = gguf.GGUFWriter(str(tmp), arch=arch, endianess=reader.endianess)
    for field in reader.fields.values():
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue
        kind = field.types[0]
        sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, changed.get(field.name, field.contents()), kind,
                             sub_type=sub)
    for tensor in reader.tensors:
        writer.add_tensor_info(tensor.name, tensor.data.shape, tensor.data.dtype,
                               tensor.data.nbytes, tensor.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for tensor in reader.tensors:
        writer.write_tensor_data(tensor.data, tensor_endianess=reader.endianess)
    writer.close()
    tmp.replace(dst)
    return dst


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    """One llama-server process on 127.0.0.1 (a fixed port once chosen, so it can restart)."""

    def __init__(self, binary: Path, model: Path, log: Path, *, slots: int = 2,
                 ctx_per_slot: int = 2048, threads: int | None = None,
                 api_key: str | None = None, extra: tuple[str, ...] = (),
                 env: dict[str, str] | None = None) -> None:
        self.binary, self.model, self.log = binary, model, log
        self.slots, self.ctx_per_slot, self.threads = slots, ctx_per_slot, threads
        self.api_key, self.extra, self.env = api_key, extra, env or {}
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        cmd = [str(self.binary), "-m", str(self.model), "--host", "127.0.0.1",
               "--port", str(self.port), "-np", str(self.slots),
               "-c", str(self.slots * self.ctx_per_slot),
               # Gemma 3 has sliding-window layers: without a full-size cache for them the
               # server re-reads the whole prompt after an edit instead of reusing its prefix.
               "--swa-full",
               # Repacked weights are the AMX path on Xeons, which crashes (llama.cpp #20824).
               "--no-repack"]
        if self.threads:
            cmd += ["-t", str(self.threads)]
        if self.api_key:
            cmd += ["--api-key", self.api_key]
        return cmd + list(self.extra)

    def start(self, timeout_s: float = 120.0) -> LlamaServer:
        import httpx

        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL,
                                         env={**os.environ, **self.env})
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                tail = self.log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"llama-server exited ({self.proc.returncode}):\n{tail}")
            try:
                # 503 while the model loads, 200 once it serves (no key needed for /health).
                if httpx.get(self.url + "/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"llama-server did not become healthy within {timeout_s:g}s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
