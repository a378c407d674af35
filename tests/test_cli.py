"""The `ghostfill` command, run as a real subprocess with the real default model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ghostfill import __version__
from tests.conftest import EXAMPLES

STATS = EXAMPLES / "stats.py"


def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ghostfill", *args], capture_output=True,
                          text=True, timeout=timeout)


def stats_location() -> str:
    lines = STATS.read_text().split("\n")
    line = next(i for i, s in enumerate(lines) if "standard deviation" in s) + 2
    return f"{STATS}:{line}:5"


def test_version():
    out = run("--version")
    assert out.returncode == 0
    assert __version__ in out.stdout


def test_complete_prints_a_real_completion():
    out = run("complete", stats_location(), "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["text"].strip(), result
    assert result["model"] == "gemma3-270m"
    assert result["timings"]["generated_tokens"] >= 1
    plain = run("complete", stats_location())
    assert plain.returncode == 0
    assert plain.stdout.strip() == result["text"].strip()  # greedy: same answer both times


def test_prompt_fits_the_window_by_the_models_own_tokenizer(gemma_tokenizer, tmp_path: Path):
    # A file far larger than the window: the prompt must be cut to fit.
    big = tmp_path / "big.py"
    body = "".join(f"def f{i}(x):\n    return x * {i} + {i}\n\n\n" for i in range(600))
    big.write_text(body + "def last(x):\n    ")
    n_lines = body.count("\n") + 2
    out = run("prompt", f"{big}:{n_lines}:5", "--json", "--max-tokens", "64")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["context_length"] == 2048
    budget = info["window"]["budget"]
    total = info["token_counts"]["total"]
    assert total + budget["reserved_for_answer"] <= info["context_length"]
    # Recount the shown prompt with the model's own tokenizer, independently of the CLI.
    prefix_tokens = len(gemma_tokenizer.encode(info["prompt"]))
    assert abs(prefix_tokens - info["token_counts"]["prefix"]) <= 2
    assert info["prompt"].endswith("def last(x):\n    ")
    assert info["window"]["prefix_start"] > 0  # it was cut
    # The cut lands on a line start.
    assert body[info["window"]["prefix_start"] - 1] == "\n"


def test_missing_model_is_one_clear_line_and_nonzero_exit(tmp_path: Path):
    out = run("complete", stats_location(), "--model", str(tmp_path / "nope.gguf"))
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "nope.gguf" in lines[0] and "Traceback" not in out.stderr


def test_corrupt_model_is_one_clear_line(tmp_path: Path):
    bad = tmp_path / "truncated.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x01" * 100)
    out = run("complete", stats_location(), "--model", str(bad))
    assert out.returncode != 0
    assert "truncated.gguf" in out.stderr and "Traceback" not in out.stderr
    not_gguf = tmp_path / "model.gguf"
    not_gguf.write_text("hello")
    out = run("complete", stats_location(), "--model", str(not_gguf))
    assert out.returncode != 0 and "not a GGUF" in out.stderr


def test_bad_location_is_a_clear_error():
    out = run("complete", f"{STATS}:999:1")
    assert out.returncode != 0 and "past the end" in out.stderr
    out = run("complete", "no/such/file.py:1:1")
    assert out.returncode != 0 and "no such file" in out.stderr


def test_models_lists_presets_with_offline_state():
    out = run("models", "--json")
    assert out.returncode == 0
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert {"gemma3-270m", "smollm2-135m", "decicoder-1b", "santacoder",
            "tiny-starcoder-py"} <= set(rows)
    assert rows["gemma3-270m"]["offline"] is True
    assert rows["decicoder-1b"]["offline"] is False  # no hub here, not cached
    assert "ghostfill models --download decicoder-1b" in rows["decicoder-1b"]["state"]


def test_prompt_reads_imported_definitions_only_under_root(tmp_path: Path):
    root = tmp_path / "ws"
    (root / "shop").mkdir(parents=True)
    (root / "shop" / "__init__.py").write_text("")
    (root / "shop" / "tax.py").write_text(
        "def vat_for(amount: float, country: str) -> float:\n"
        '    """VAT owed on `amount` in `country`."""\n'
        "    rates = {'DE': 0.19, 'FR': 0.2}\n    return amount * rates[country]\n")
    main = root / "main.py"
    main.write_text("from shop.tax import vat_for\n\n\ndef total(net):\n    return net + vat_for(")
    where = f"{main}:5:{len('    return net + vat_for(') + 1}"
    with_root = run("prompt", where, "--json", "--root", str(root))
    assert with_root.returncode == 0, with_root.stderr
    shown = json.loads(with_root.stdout)["prompt"]
    assert "# shop/tax.py\ndef vat_for(amount: float, country: str) -> float:" in shown
    without = json.loads(run("prompt", where, "--json").stdout)["prompt"]
    assert "def vat_for(" not in without


def test_endpoint_and_tokenizer_need_a_remote_backend():
    out = run("complete", stats_location(), "--endpoint", "http://127.0.0.1:9")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "--endpoint is for a remote backend: add --backend infill" in out.stderr
    out = run("prompt", stats_location(), "--endpoint", "http://127.0.0.1:9",
              "--tokenizer", "x.gguf", "--backend", "llamacpp")
    assert out.returncode == 1 and "--endpoint and --tokenizer are for a remote" in out.stderr


def test_remote_flags_reach_the_configuration():
    """`--backend openai --endpoint URL` with nothing listening: the prompt is still built (the
    probe at load only logs), from the configured template, for that endpoint."""
    out = run("prompt", stats_location(), "--json", "--backend", "openai", "--template",
              "starcoder", "--endpoint", "http://127.0.0.1:9/v1")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["template"] == "starcoder" and info["model"] == "remote"
    assert info["prompt"].startswith("<fim_prefix>")
