"""sbatch's filename patterns for ``--output``/``--error``/``--input``.

Follows the batch-job path of ``fname_create`` in Slurm's
``src/slurmd/slurmstepd/fname.c`` and the "filename pattern" section of ``sbatch(1)``.
"""

from __future__ import annotations

from conductor.domain.numbers import whole_number

__all__ = ["NO_VAL", "default_output_name", "expand_output_pattern"]

# Slurm's NO_VAL (0xfffffffe): what %a prints for a job that is not an array task.
NO_VAL = 4294967294

# fname.c caps "%<width>X" at ten digits.
_MAX_WIDTH = 10
# fname.c uses C isdigit(): ASCII digits only.
_DIGITS = frozenset("0123456789")


def expand_output_pattern(
    pattern: str,
    *,
    job_id: int,
    job_name: str,
    user: str,
    node: str,
    array_job_id: int | None = None,
    array_task_id: int | None = None,
    step_id: int | None = None,
    task_id: int = 0,
    node_index: int = 0,
) -> str:
    """Replace sbatch's filename-pattern symbols in ``pattern``.

    ``%%`` ``%``; ``%A`` array master job id (the job id when not an array task); ``%a``
    array task id (``4294967294``, Slurm's NO_VAL, when not an array task); ``%b`` array
    task id modulo 10; ``%j`` job id; ``%J`` ``jobid.stepid``; ``%s`` step id; ``%N``
    node name; ``%n`` node index in the job; ``%t`` task rank; ``%u`` user; ``%x`` job
    name. ``step_id=None`` is the batch script itself: ``%s`` is ``batch`` and ``%J`` the job
    id alone, as slurmstepd's ``_batch_path_check`` writes them (sbatch(1) shows ``%J`` as
    ``128.0``, a step's).

    A number between ``%`` and the letter zero-pads numeric values to that width, capped at
    10 (``%4j`` -> ``0042``); string values (``%N %u %x``) ignore it.

    Escapes Slurm does not know are kept as written (``%z`` stays ``%z``; a lone trailing
    ``%`` stays). When digits precede an unknown letter, Slurm drops the ``%`` and all but
    the last digit (``%12z`` -> ``2z``); we reproduce that so files land where Slurm would
    put them.

    If the pattern contains a backslash anywhere, no symbol is replaced: backslashes are
    removed (a doubled ``\\\\`` leaves one) and the rest is kept literally.
    """
    if "\\" in pattern:
        return _remove_path_slashes(pattern)

    task_is_array = array_task_id is not None
    numbers: dict[str, int] = {
        "A": (array_job_id if array_job_id is not None else job_id) if task_is_array else job_id,
        "a": array_task_id if array_task_id is not None else NO_VAL,
        "b": (array_task_id if array_task_id is not None else NO_VAL) % 10,
        "j": job_id,
        "n": node_index,
        "t": task_id,
    }
    strings: dict[str, str] = {"N": node, "u": user, "x": job_name}
    step_text = "batch" if step_id is None else None

    out: list[str] = []
    i = 0
    length = len(pattern)
    while i < length:
        char = pattern[i]
        if char != "%":
            out.append(char)
            i += 1
            continue
        if i + 1 < length and pattern[i + 1] == "%":
            out.append("%")
            i += 2
            continue
        j = i + 1
        while j < length and pattern[j] in _DIGITS:
            j += 1
        digits = pattern[i + 1 : j]
        given = whole_number(digits, _MAX_WIDTH) if digits else 0
        width = _MAX_WIDTH if given is None else given  # capped, as fname.c does
        letter = pattern[j] if j < length else ""
        if letter in numbers:
            out.append(f"{numbers[letter]:0{width}d}")
        elif letter in strings:
            out.append(strings[letter])
        elif letter == "s":
            out.append(step_text if step_text is not None else f"{step_id:0{width}d}")
        elif letter == "J":
            # The batch script's is the job id alone (fname.c prints ".stepid" only for other steps).
            out.append(f"{job_id:0{width}d}" + ("" if step_id is None else f".{step_id}"))
        else:
            # Unknown (or missing) letter: keep "%" when there were no digits; otherwise
            # Slurm's quirk keeps only the last digit. The letter is not consumed, so a
            # following "%" still starts an escape.
            out.append(digits[-1] if digits else "%")
            i = j
            continue
        i = j + 1
    return "".join(out)


def _remove_path_slashes(pattern: str) -> str:
    # Slurm's remove_path_slashes(): "\\" keeps one backslash, a single "\" disappears.
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\":
            if i + 1 < len(pattern) and pattern[i + 1] == "\\":
                out.append("\\")
                i += 2
            else:
                i += 1
            continue
        out.append(pattern[i])
        i += 1
    return "".join(out)


def default_output_name(array: bool) -> str:
    """sbatch's default output file: ``slurm-%j.out``, or ``slurm-%A_%a.out`` for arrays."""
    return "slurm-%A_%a.out" if array else "slurm-%j.out"
