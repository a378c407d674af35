"""`ghostfill doctor`: the report, the child-process probe, and a native crash read as a verdict.

The crashes here are real: child processes that die of SIGSEGV, read by the same code that reads
a llama.cpp crash.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ghostfill.config import Config
from ghostfill.doctor import diagnose, run_probe

#: A child that really segfaults (reads address 0), as llama.cpp's AMX kernel does.
SEGFAULT = "import ctypes; ctypes.string_at(0)"


def amx_in_cpuinfo() -> bool:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return any(flag in text.split() for flag in ("amx_tile", "amx_int8", "amx_bf16"))


def test_a_segfault_in_the_child_is_a_verdict_not_a_dead_terminal():
    result = run_probe([sys.executable, "-c", SEGFAULT], timeout_s=60)
    assert not result.ok
    assert result.signal == "SIGSEGV" and result.returncode == -11
    assert "crashed with signal 11 (SIGSEGV)" in result.verdict


def test_an_error_in_the_child_is_its_one_line_message():
    code = "import sys; print('ghostfill: error: model x is not cached', file=sys.stderr); " \
           "sys.exit(1)"
    result = run_probe([sys.executable, "-c", code], timeout_s=60)
    assert not result.ok and result.signal is None
    assert result.verdict == "load + decode failed: model x is not cached"


def test_a_hung_child_is_a_verdict_within_the_timeout():
    result = run_probe([sys.executable, "-c", "import time; time.sleep(60)"], timeout_s=1)
    assert not result.ok and "did not finish within 1 s" in result.verdict


def test_a_crash_with_extra_buffer_types_is_retried_without_them(tmp_path: Path):
    # The child crashes exactly when the configuration it is given has extra buffer types on,
    # as llama.cpp does on AMX CPUs; the doctor must find and name the cure.
    script = tmp_path / "child.py"
    script.write_text(
        "import ctypes, json, sys\n"
        "config = json.loads(sys.argv[1])\n"
        "if config['model']['extra_buffer_types'] is not False:\n"
        "    ctypes.string_at(0)\n"
        "print(json.dumps({'load_s': 0.1, 'generated_tokens': 3}))\n")
    config = Config().updated({"model": {"extra_buffer_types": True}})
    result = diagnose(config, timeout_s=60, command_for=lambda c: [
        sys.executable, str(script), json.dumps(c.to_dict())])
    assert not result.ok and result.signal == "SIGSEGV"
    assert result.retry is not None and result.retry.ok
    assert "with them off it works: set model.extraBufferTypes to false" in result.verdict


def test_a_crash_either_way_says_so(tmp_path: Path):
    config = Config().updated({"model": {"extra_buffer_types": True}})
    result = diagnose(config, timeout_s=60,
                      command_for=lambda c: [sys.executable, "-c", SEGFAULT])
    assert not result.ok and result.retry is not None and not result.retry.ok
    assert "again with them off" in result.verdict


@pytest.mark.slow
def test_doctor_on_this_machine_loads_and_decodes_the_default_model():
    proc = subprocess.run([sys.executable, "-m", "ghostfill", "doctor", "--json"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["platform"]["cpu"] and report["platform"]["python"]
    llama = report["llama_cpp"]
    assert llama["installed"] and llama["ggml_cpu_features"], llama
    # The default never puts weights in extra buffer types where the CPU has AMX.
    assert llama["options"]["use_extra_bufts"] is (not amx_in_cpuinfo())
    assert report["model"]["available"] and report["model"]["path"].endswith(".gguf")
    probe = report["probe"]
    assert probe["ok"], probe
    assert probe["data"]["generated_tokens"] > 0
    # What the child really loaded with is what the report predicted.
    assert probe["data"]["options"]["use_extra_bufts"] is llama["options"]["use_extra_bufts"]


def test_doctor_text_report_without_probe():
    proc = subprocess.run([sys.executable, "-m", "ghostfill", "doctor", "--no-probe"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "CPU:" in proc.stdout and "llama.cpp options:" in proc.stdout
    assert "model: gemma3-270m" in proc.stdout and "available" in proc.stdout
