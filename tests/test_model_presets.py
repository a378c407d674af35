"""The FIM GGUF presets (#19): found in a real hub cache layout, offline errors in one line, the
template each records is the one its vocabulary selects, `ghostfill models` as a subprocess.

No network here: the hub cache is built under tmp_path with the layout huggingface_hub writes
(blobs named by sha256, snapshots/<rev>/ links, refs/main), holding real GGUF vocabularies.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from lsprotocol import types
from pygls.lsp.client import LanguageClient

from ghostfill import models
from ghostfill.completion.tokenizer import LlamaCppTokenizer
from ghostfill.errors import ModelLoadError, ModelNotAvailable
from ghostfill.fim import TEMPLATES, detect_template
from tests.conftest import EXAMPLES, SERVE, vocab
from tests.lsp_helpers import stats

NEW = ("qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b", "qwen2.5-coder-3b", "qwen2.5-coder-7b",
       "starcoder2-3b", "deepseek-coder-1.3b", "codegemma-2b", "codestral-22b")
REV = "0123456789abcdef0123456789abcdef01234567"


def place_in_hub_cache(hub: Path, preset: models.Preset, source: Path, *,
                       blob_name: str | None = None, link: bool = False) -> Path:
    """Put `source` where hf_hub_download would have left the preset's file (`link`: the blob
    is a link to it, for files too big to copy)."""
    repo = hub / ("models--" + preset.location.replace("/", "--"))
    blob = repo / "blobs" / (blob_name or hashlib.sha256(source.read_bytes()).hexdigest())
    blob.parent.mkdir(parents=True, exist_ok=True)
    if link:
        blob.symlink_to(source)
    else:
        blob.write_bytes(source.read_bytes())
    snapshot = repo / "snapshots" / REV / preset.filename
    snapshot.parent.mkdir(parents=True, exist_ok=True)
    snapshot.symlink_to(os.path.relpath(blob, snapshot.parent))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(REV)
    return snapshot


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ghostfill", *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **env})


class LocalHub:
    """A hub endpoint on 127.0.0.1 that serves files the way huggingface.co's resolve URLs do
    (HEAD with commit, etag and size; GET with ranges), so that hf_hub_download really runs."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[Path, str]] = {}  # url path -> (file, etag)
        self.gets = 0
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _headers(self) -> tuple[Path, int] | None:
                found = hub.files.get(self.path.split("?")[0])
                if found is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                source, etag = found
                size = source.stat().st_size
                start = 0
                ranged = self.headers.get("Range", "")
                if ranged.startswith("bytes="):
                    start = int(ranged[6:].split("-")[0] or 0)
                self.send_response(206 if start else 200)
                self.send_header("X-Repo-Commit", REV)
                self.send_header("ETag", f'"{etag}"')
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(size - start))
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
                self.end_headers()
                return source, start

            def do_HEAD(self) -> None:
                self._headers()

            def do_GET(self) -> None:
                found = self._headers()
                if found is not None:
                    hub.gets += 1
                    source, start = found
                    with source.open("rb") as f:
                        f.seek(start)
                        while block := f.read(1 << 20):
                            self.wfile.write(block)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def serve(self, preset: models.Preset, source: Path, *, etag: str | None = None) -> bytes:
        data = source.read_bytes()
        path = f"/{preset.location}/resolve/main/{preset.filename}"
        self.files[path] = (source, etag or hashlib.sha256(data).hexdigest())
        return data

    def env(self, cache: Path) -> dict[str, str]:
        return {"HF_ENDPOINT": self.url, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "0",
                "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
                "HF_HUB_DISABLE_TELEMETRY": "1"}


@pytest.fixture
def local_hub() -> Iterator[LocalHub]:
    hub = LocalHub()
    yield hub
    hub.server.shutdown()
    hub.server.server_close()


def test_new_presets_are_hub_ggufs_with_what_the_listing_shows():
    for name in NEW:
        p = models.PRESETS[name]
        assert p.source == "hf-gguf" and p.filename.endswith(".gguf") and "/" in p.location
        assert p.quantization and p.quantization.upper() in p.filename.upper()
        assert p.size_bytes > 0 and p.ram_gb * 1e9 > p.size_bytes
        assert p.template in TEMPLATES and TEMPLATES[p.template].is_fim
        assert p.trained_context >= p.context_length
        assert not p.sha256 or len(p.sha256) == 64


@pytest.mark.parametrize("env_var", ["HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"])
def test_a_gguf_in_the_hub_cache_is_found_offline(tmp_path, monkeypatch, env_var):
    cache = tmp_path / "hub"
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv(env_var, str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    preset = models.PRESETS["qwen2.5-coder-0.5b"]
    placed = place_in_hub_cache(cache, preset, vocab("qwen2"))

    found = models.resolve("qwen2.5-coder-0.5b", offline=True)
    assert found.kind == "gguf" and found.path == placed and found.preset is preset

    row = next(r for r in models.status() if r["name"] == "qwen2.5-coder-0.5b")
    assert row["offline"] is True and row["state"] == "cached"
    assert row["location"] == str(placed)
    assert row["size_bytes"] == placed.stat().st_size  # the file's, not the recorded one


def test_verification_uses_the_hubs_checksum_and_removes_a_damaged_file(hub):
    preset = models.PRESETS["deepseek-coder-1.3b"]  # no sha256 recorded: the hub's decides
    good = place_in_hub_cache(hub, preset, vocab("deepseek-coder"))
    assert models.verify_gguf(preset, good) == "sha256 matches the hub's checksum"

    recorded = models.PRESETS["qwen2.5-coder-1.5b"]  # recorded sha256 differs from this file
    other = place_in_hub_cache(hub, recorded, vocab("qwen2"))
    assert "repository has changed" in models.verify_gguf(recorded, other)

    damaged = models.PRESETS["starcoder2-3b"]
    bad = place_in_hub_cache(hub, damaged, vocab("starcoder"), blob_name="0" * 64)
    with pytest.raises(ModelLoadError, match="matches neither"):
        models.verify_gguf(damaged, bad)
    assert not bad.exists() and not (bad.parent.parent.parent / "blobs" / ("0" * 64)).exists()


def test_a_cached_file_that_is_not_gguf_is_refused(hub, tmp_path):
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"<html>rate limited</html>")
    place_in_hub_cache(hub, models.PRESETS["codegemma-2b"], junk)
    with pytest.raises(ModelLoadError, match="not a GGUF"):
        models.resolve("codegemma-2b", offline=True)


@pytest.mark.parametrize("offline", [True, False])  # config's offline, or HF_HUB_OFFLINE alone
def test_offline_and_not_cached_is_one_line_with_the_way_out(hub, offline):
    with pytest.raises(ModelNotAvailable) as e:
        models.resolve("qwen2.5-coder-1.5b", offline=offline)
    message = str(e.value)
    assert "\n" not in message
    assert "network access is off" in message
    assert "ghostfill models --download qwen2.5-coder-1.5b" in message
    assert "1.6 GB" in message


@pytest.mark.parametrize(
    ("preset", "vocabulary"),
    [
        ("deepseek-coder-1.3b", "deepseek-coder"),  # DeepSeek-Coder's own 32256-token vocabulary
        # StarCoder's tokenizer: StarCoder2 kept its <fim_…> tokens (ids 1-3), as did DeciCoder
        # and tiny_starcoder_py, which use it unchanged.
        ("starcoder2-3b", "starcoder"),
        ("decicoder-1b", "starcoder"),
        ("tiny-starcoder-py", "starcoder"),
    ],
)
def test_recorded_template_is_the_one_the_vocabulary_selects(preset, vocabulary):
    tokenizer = LlamaCppTokenizer.from_gguf(str(vocab(vocabulary)))
    assert detect_template(tokenizer).name == models.PRESETS[preset].template


def test_default_model_is_prefix_only_as_recorded(gemma_path):
    tokenizer = LlamaCppTokenizer.from_gguf(str(gemma_path))
    assert detect_template(tokenizer).name == models.PRESETS["gemma3-270m"].template


def test_download_progress_reaches_the_callback_and_not_the_terminal():
    seen: list[float] = []
    bar = models._progress_bar(seen.append, quiet=True)(total=200, unit="B")
    bar.update(50)
    bar.update(150)
    bar.close()
    assert seen == [0.25, 1.0]


def test_models_command_lists_size_memory_fim_and_cache_state(hub):
    place_in_hub_cache(hub, models.PRESETS["qwen2.5-coder-0.5b"], vocab("qwen2"))
    env = {"HF_HUB_CACHE": str(hub), "HF_HUB_OFFLINE": "1"}
    out = cli("models", env=env)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    for name in NEW:
        line = next(s for s in lines if s.startswith(name + " "))
        assert "RAM ~" in line and "FIM " + models.PRESETS[name].template in line
    line = next(s for s in lines if s.startswith("codestral-22b "))
    assert "13.3 GB" in line and "offline=no" in line
    assert "offline=yes" in next(s for s in lines if s.startswith("qwen2.5-coder-0.5b "))
    assert "prefix-only" in next(s for s in lines if s.startswith("gemma3-270m "))

    rows = {r["name"]: r for r in json.loads(cli("models", "--json", env=env).stdout)}
    assert rows["qwen2.5-coder-0.5b"]["state"] == "cached"
    assert rows["qwen2.5-coder-7b"]["size_bytes"] == 8_098_525_600
    assert rows["starcoder2-3b"]["fim"] == "starcoder"
    assert "--download starcoder2-3b" in rows["starcoder2-3b"]["state"]


def test_download_without_network_is_a_one_line_error(hub):
    env = {"HF_HUB_CACHE": str(hub), "HF_HUB_OFFLINE": "1"}
    out = cli("models", "--download", "qwen2.5-coder-1.5b", env=env)
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    error = out.stderr.strip()
    assert error.count("\n") == 0 and "network access is off" in error

    out = cli("models", "--download", "no-such-model", env=env)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert "unknown model 'no-such-model'" in out.stderr


def test_download_of_a_cached_preset_verifies_it_offline(hub):
    shutil.rmtree(hub)
    place_in_hub_cache(hub, models.PRESETS["deepseek-coder-1.3b"], vocab("deepseek-coder"))
    out = cli("models", "--download", "deepseek-coder-1.3b",
              env={"HF_HUB_CACHE": str(hub), "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 0, out.stderr
    assert "already cached; sha256 matches the hub's checksum" in out.stdout


def test_complete_runs_a_preset_from_the_hub_cache(hub, gemma_path):
    """The whole path: preset name -> hub cache -> the llama.cpp backend. The default model's
    weights stand in for the preset's (the real ones are not here)."""
    place_in_hub_cache(hub, models.PRESETS["qwen2.5-coder-0.5b"], gemma_path,
                       blob_name=models.PRESETS["gemma3-270m"].sha256, link=True)
    stats = EXAMPLES / "stats.py"
    line = next(i for i, s in enumerate(stats.read_text().split("\n"))
                if "standard deviation" in s) + 2
    out = cli("complete", f"{stats}:{line}:5", "--model", "qwen2.5-coder-0.5b", "--offline",
              "--json", env={"HF_HUB_CACHE": str(hub), "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["model"] == "qwen2.5-coder-0.5b"
    assert result["timings"]["generated_tokens"] >= 1


def test_download_fetches_into_the_hub_cache_and_checks_the_file(tmp_path, local_hub):
    preset = models.PRESETS["deepseek-coder-1.3b"]
    data = local_hub.serve(preset, vocab("deepseek-coder"))
    cache = tmp_path / "hub"
    out = cli("models", "--download", preset.name, env=local_hub.env(cache))
    assert out.returncode == 0, out.stderr
    assert "sha256 matches the hub's checksum" in out.stdout
    placed = cache / "models--TheBloke--deepseek-coder-1.3b-base-GGUF" / "snapshots" / REV
    assert (placed / preset.filename).read_bytes() == data
    assert "Traceback" not in out.stderr

    again = cli("models", "--download", preset.name, env=local_hub.env(cache))
    assert again.returncode == 0 and "already cached" in again.stdout
    assert local_hub.gets == 1  # the second time nothing was fetched


def test_a_download_that_matches_no_checksum_is_removed(tmp_path, local_hub):
    preset = models.PRESETS["qwen2.5-coder-0.5b"]  # sha256 recorded; served file differs
    local_hub.serve(preset, vocab("qwen2"), etag="f" * 64)
    cache = tmp_path / "hub"
    out = cli("models", "--download", preset.name, env=local_hub.env(cache))
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert "matches neither the preset nor the hub" in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("ghostfill: error:")
    blobs = cache / "models--ggml-org--Qwen2.5-Coder-0.5B-Q8_0-GGUF" / "blobs"
    assert not [b for b in blobs.iterdir() if not b.name.endswith(".lock")]


def test_a_download_at_load_time_reports_progress(tmp_path, local_hub):
    """What the language server's `$/progress` hears when a preset is fetched before loading
    (in a fresh process: huggingface_hub reads HF_ENDPOINT once, at import)."""
    preset = models.PRESETS["starcoder2-3b"]
    local_hub.serve(preset, vocab("starcoder"))
    script = (
        "import json\n"
        "from ghostfill import models\n"
        "seen = []\n"
        f"found = models.resolve({preset.name!r}, offline=False, on_download=seen.append)\n"
        "again = models.resolve(found.spec, offline=True)\n"
        "print(json.dumps([str(found.path), str(again.path), seen]))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, env={**os.environ, **local_hub.env(tmp_path / "hub")})
    assert out.returncode == 0, out.stderr
    path, cached, seen = json.loads(out.stdout)
    assert Path(path).name == preset.filename and cached == path
    assert seen and seen[-1] == 1.0 and seen == sorted(seen)
    assert out.stderr == ""  # quiet: the server's stderr is the editor's log


async def test_the_server_reports_a_download_at_start_then_the_load(tmp_path, gemma_path,
                                                                    local_hub):
    """A preset not cached yet, network allowed: the server fetches it and `$/progress` goes
    up once for the download and once more for the load. The default model's weights stand in
    for the preset's."""
    preset = models.PRESETS["qwen2.5-coder-0.5b"]
    local_hub.serve(preset, gemma_path, etag=models.PRESETS["gemma3-270m"].sha256)
    client = LanguageClient("ghostfill-tests", "1")
    values: list[object] = []
    client.feature(types.WINDOW_WORK_DONE_PROGRESS_CREATE)(lambda params: None)
    client.feature(types.PROGRESS)(lambda params: values.append(params.value))
    client.feature(types.WINDOW_LOG_MESSAGE)(lambda params: None)
    messages: list[str] = []
    client.feature(types.WINDOW_SHOW_MESSAGE)(lambda params: messages.append(params.message))
    await client.start_io(*SERVE, env={**os.environ, **local_hub.env(tmp_path / "hub")})
    try:
        await client.initialize_async(types.InitializeParams(
            capabilities=types.ClientCapabilities(
                window=types.WindowClientCapabilities(work_done_progress=True)),
            initialization_options={"model": {"name": preset.name},
                                    "server": {"engine": "private", "debounceMs": 0}}))
        client.initialized(types.InitializedParams())
        state = "loading"
        for _ in range(1200):
            state = (await stats(client)).state
            if state != "loading":
                break
            await asyncio.sleep(0.1)
        assert state == "ready", messages
    finally:
        await client.shutdown_async(None)
        client.exit(None)
        await client.stop()

    def field(value: object, name: str) -> object:
        return value.get(name) if isinstance(value, dict) else getattr(value, name, None)

    percents = [field(v, "percentage") for v in values if field(v, "kind") == "report"]
    drop = next(i for i in range(1, len(percents)) if percents[i] < percents[i - 1])
    download, load = percents[:drop], percents[drop:]
    assert download == sorted(download) and download[-1] >= 95, percents
    assert load == sorted(load) and load[-1] >= 90, percents
    assert field(values[-1], "kind") == "end"
    assert local_hub.gets == 1
