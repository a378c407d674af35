"""Shared fixtures: real models and real tokenizers that exist offline."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VOCAB_DIR = Path(os.environ.get("GHOSTFILL_VOCAB_DIR", ROOT.parent / "shared" / "vocab"))
DATA_DIR = Path(os.environ.get("GHOSTFILL_DATA_DIR", ROOT.parent / "shared" / "data"))
EXAMPLES = ROOT / "examples"
SERVE = [sys.executable, "-m", "ghostfill", "serve"]

# The engine processes the servers under test start live in a folder of this test session
# (short: socket paths are limited), not beside the user's own; they are stopped at the end.
RUNTIME_DIR = os.environ.setdefault("GHOSTFILL_RUNTIME_DIR",
                                    tempfile.mkdtemp(prefix="gf-rt-", dir="/tmp"))
# Servers under test keep their state (crash markers, the acceptance statistics file) in a
# folder of this test session, never in the user's own.
STATE_DIR = os.environ.setdefault("GHOSTFILL_STATE_DIR", tempfile.mkdtemp(prefix="gf-state-"))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    from ghostfill.backends import engine_control
    from ghostfill.backends.engine_place import all_places

    for place in all_places():
        engine_control.stop(place, timeout=5.0)


def vocab(name: str) -> Path:
    path = VOCAB_DIR / f"ggml-vocab-{name}.gguf"
    if not path.is_file():
        pytest.skip(f"vocabulary {path} is not available")
    return path


@pytest.fixture(scope="session")
def gemma_path() -> Path:
    from ghostfill.models import resolve

    return resolve("gemma3-270m").path


@pytest.fixture(scope="session")
def gemma_backend(gemma_path: Path):
    from ghostfill.backends.llamacpp import LlamaCppBackend

    backend = LlamaCppBackend(gemma_path, context_length=2048, model_name="gemma3-270m")
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def starcoder_tokenizer():
    from ghostfill.completion.tokenizer import LlamaCppTokenizer

    return LlamaCppTokenizer.from_gguf(str(vocab("starcoder")))


@pytest.fixture(scope="session")
def gemma_tokenizer(gemma_backend):
    return gemma_backend.tokenizer
