"""What a piece of command-line code imports, run in a fresh interpreter: a command's start-up
cost is mostly its imports, and some modules cost milliseconds each."""

from __future__ import annotations

import subprocess
import sys


def heavy_imports(code: str, heavy: set[str]) -> list[str]:
    """Those of `heavy` that running `code` in a fresh interpreter imported."""
    check = f"{code}\nimport sys as _sys\nprint('\\n'.join(sorted({sorted(heavy)!r} & _sys.modules.keys())))\n"
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise AssertionError(out.stderr)
    return out.stdout.split()
