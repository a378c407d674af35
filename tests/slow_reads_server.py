"""`ghostfill serve` on a slow disk: the definition index takes seconds to read files whose
names start with "slow" (a network home directory, a cold disk, an antivirus scan).

Everything else is the real server; only the read is slowed, so that a test can show what the
server does on its event loop meanwhile (tests/test_off_loop.py).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from ghostfill.completion import definitions

SLOW_S = float(os.environ.get("GHOSTFILL_TEST_SLOW_READ_S", "5"))
_summary = definitions.DefinitionIndex.summary


def _slow_summary(self: definitions.DefinitionIndex, file: Path,
                  deadline: float = float("inf")) -> object:
    if file.name.startswith("slow"):
        time.sleep(SLOW_S)
    return _summary(self, file, deadline)


definitions.DefinitionIndex.summary = _slow_summary  # type: ignore[method-assign]

if __name__ == "__main__":
    from ghostfill.cli import main

    sys.exit(main(["serve"]))
