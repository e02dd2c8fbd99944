"""What makes a batch script acceptable: one rule for every way a job arrives.

sbatch (cli/sbatch_options.py) and the API (services/submission.py) both ask `script_problem`,
so a script one of them takes the other takes too. The rule is sbatch's: not empty, not only
blanks, a first line `#!` naming an interpreter (the worker executes the script itself, as
slurmd does), no DOS line breaks, no NUL.
"""

from __future__ import annotations

EMPTY = "empty"
BLANK = "blank"
NO_SHEBANG = "no-shebang"
DOS_LINE_BREAKS = "dos"
NUL = "nul"

# Each problem in words, for front ends without Slurm's own wording to copy.
EXPLAINED = {
    EMPTY: "is empty; a batch script must contain at least one command",
    BLANK: "contains only whitespace",
    NO_SHEBANG: "must start with #! followed by the path to an interpreter (for instance #!/bin/sh), "
    "as sbatch requires",
    DOS_LINE_BREAKS: "contains DOS line breaks (\\r\\n) instead of UNIX line breaks (\\n)",
    NUL: "must not contain NUL characters",
}


def script_problem(script: str) -> str | None:
    """The first thing that makes `script` unacceptable (a key of EXPLAINED), or None."""
    if not script:
        return EMPTY
    if not script.strip():
        return BLANK
    if not script.startswith("#!"):
        return NO_SHEBANG
    if "\r\n" in script:
        return DOS_LINE_BREAKS
    if "\x00" in script:
        return NUL
    return None
