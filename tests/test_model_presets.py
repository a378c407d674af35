"""The FIM GGUF presets (#19): found in a real hub cache layout, offline errors in one line, the
template each records is the one its vocabulary selects, `ghostfill models` as a subprocess.

No network here: the hub cache is built under tmp_path with the layout huggingface_hub writes
(blobs named by sha256, snapshots/<rev>/ links, refs/main), holding real GGUF vocabularies.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ghostfill import models
from ghostfill.completion.tokenizer import LlamaCppTokenizer
from ghostfill.errors import ModelLoadError, ModelNotAvailable
from ghostfill.fim import TEMPLATES, detect_template
from tests.conftest import EXAMPLES, vocab

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
