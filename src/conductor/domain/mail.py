"""The kinds of mail a job may ask for: sbatch's --mail-type, the API's `mail_type`.

One list for every front end (sbatch, `POST /jobs/submit`, slurmrestd's `job/submit`), the
names of Slurm's parse_mail_type (src/common/proc_args.c), matched without regard to case.
Slurm skips a word it does not know when another is valid ("BEGIN,FOO" is BEGIN); here every
word must be one of them, so a typo is an error rather than mail silently not asked for.

Pure and import-free: sbatch imports it on every submission.
"""

from __future__ import annotations

# In the order sbatch(1) lists them, for messages.
MAIL_TYPE_ORDER = (
    "NONE",
    "BEGIN",
    "END",
    "FAIL",
    "REQUEUE",
    "ALL",
    "INVALID_DEPEND",
    "STAGE_OUT",
    "TIME_LIMIT",
    "TIME_LIMIT_90",
    "TIME_LIMIT_80",
    "TIME_LIMIT_50",
    "ARRAY_TASKS",
)
MAIL_TYPES = frozenset(MAIL_TYPE_ORDER)


def mail_type_problem(value: str) -> str | None:
    """Why `value`, a comma-separated list of mail types, is refused (naming the word and the
    rule), or None if every word is one of MAIL_TYPES (any case, blanks around it allowed)."""
    for item in value.split(","):
        word = item.strip()
        if word.upper() not in MAIL_TYPES:
            shown = f"'{word[:40]}'" if word else "an empty entry"
            return f"{shown} is not a mail type; expected a comma-separated list of {', '.join(MAIL_TYPE_ORDER)}"
    return None
