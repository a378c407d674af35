"""`ghostfill serve` on a slow disk: the definition index's read of a file whose name starts
with "slow" blocks until the test lets it go (a network home directory, a cold disk, an
antivirus scan).

Everything else is the real server; only that read is held, so that a test can show what the
server does on its event loop meanwhile (tests/test_off_loop.py). The read announces itself
by creating `<file>.reading` and waits for `<file>.release` (at most a minute).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ghostfill.completion import definitions

_summary = definitions.DefinitionIndex.summary


def _held_summary(self: definitions.DefinitionIndex, file: Path,
                  deadline: float = float("inf")) -> object:
    if file.name.startswith("slow"):
        file.with_name(file.name + ".reading").touch()
        release = file.with_name(file.name + ".release")
        give_up = time.monotonic() + 60
        while not release.exists() and time.monotonic() < give_up:
            time.sleep(0.05)
    return _summary(self, file, deadline)


definitions.DefinitionIndex.summary = _held_summary  # type: ignore[method-assign]

if __name__ == "__main__":
    from ghostfill.cli import main

    sys.exit(main(["serve"]))
