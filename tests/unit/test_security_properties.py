"""Property-based tests of what parses untrusted input on the way in, and of the guards around it.

The domain parsers (time, memory, arrays, dependencies, patterns, host lists) have their own
property tests beside them; here: a whole submission (`submission.build_rows`), sbatch's option
and #SBATCH parser, the redaction of database URLs, and the no-symlink reading of job output.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from conductor.api.auth import hash_token, new_token
from conductor.api.models import JobDescription
from conductor.cli.getopt import GetoptError
from conductor.cli.sbatch_options import SbatchError, build_plan, first_pass
from conductor.domain.errors import SpecError
from conductor.errors import Invalid, Unsatisfiable
from conductor.scheduler.policy import NodeView
from conductor.services.submission import SECRET_VARIABLES, Limits, Submitter, build_rows
from conductor.store import redact_secrets, redact_url
from conductor.userfiles import Reader, open_for, read_tail

NOW = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
LIMITS = Limits(max_script_bytes=4096, max_environment_bytes=2048, max_array_tasks=50, default_partition="debug")
NODES = [
    NodeView(
        name="n1",
        cpu_ids=tuple(range(8)),
        free_cpu_ids=list(range(8)),
        memory_mb=16_000,
        free_memory_mb=16_000,
        partitions=frozenset({"debug", "long"}),
    )
]
SUBMITTER = Submitter(user="alice", uid=1000, gid=1000, home="/home/alice", host="h")


def grammar(alphabet: str, max_size: int = 24) -> st.SearchStrategy[str]:
    """Text drawn mostly from a grammar's own characters, sometimes from anything."""
    return st.one_of(st.text(alphabet=alphabet, max_size=max_size), st.text(max_size=max_size))


_TEXT = st.text(max_size=40)
_INT = st.integers(min_value=-3, max_value=200_000)
FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "name": _TEXT,
    "account": _TEXT,
    "partition": st.one_of(st.sampled_from(["debug", "long", "nope"]), _TEXT),
    "qos": _TEXT,
    "environment": st.one_of(
        st.none(),
        st.dictionaries(
            st.one_of(st.sampled_from(sorted(SECRET_VARIABLES) + ["PATH", "HOME"]), st.text(max_size=12)),
            st.text(max_size=30),
            max_size=6,
        ),
        st.lists(st.text(max_size=20), max_size=5),
    ),
    "current_working_directory": st.one_of(st.sampled_from(["/tmp", "/home/alice/w", "rel/dir", "/a/../b"]), _TEXT),
    "standard_output": grammar("%jxAaNu%./-_abc", 30),
    "standard_error": grammar("%jxAaNu%./-_abc", 30),
    "standard_input": grammar("/-_.abc", 20),
    "ntasks": _INT,
    "ntasks_per_node": _INT,
    "nodes": st.one_of(_INT, grammar("0123456789-", 8)),
    "cpus_per_task": _INT,
    "memory_per_node": st.one_of(_INT, grammar("0123456789.KMGTkmgtb", 10)),
    "memory_per_cpu": st.one_of(_INT, grammar("0123456789.KMGTkmgtb", 10)),
    "time_limit": st.one_of(_INT, grammar("0123456789:-", 14), st.sampled_from(["UNLIMITED", "infinite", "1-00:00:00"])),
    "exclusive": st.one_of(st.booleans(), _TEXT),
    "hold": st.booleans(),
    "begin_time": grammar("now+0123456789:-Tsecondminutehourdaytomorrow", 24),
    "dependency": grammar("afterokanynotburstsingleton:,?+0123456789_", 40),
    "array": grammar("0123456789-,:%", 20),
    "priority": _INT,
    "nice": st.integers(min_value=-20_000, max_value=20_000),
    "requeue": st.booleans(),
    "signal": grammar("BR:SIGUSRTERM0123456789@", 16),
    "open_mode": st.sampled_from(["append", "truncate", "neither"]),
    "comment": _TEXT,
    "mail_type": _TEXT,
    "mail_user": _TEXT,
}


@st.composite
def job_descriptions(draw: st.DrawFn) -> dict[str, Any]:
    keys = draw(st.sets(st.sampled_from(sorted(FIELDS)), max_size=10))
    return {key: draw(FIELDS[key]) for key in keys}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(
    raw=job_descriptions(),
    script=st.one_of(st.just("#!/bin/sh\ntrue\n"), st.text(min_size=1, max_size=60).map("#!/bin/sh\n".__add__), grammar("#!/bin/sh\necho hi\x00", 60)),
)
def test_build_rows_accepts_or_refuses_with_a_named_field(raw: dict[str, Any], script: str) -> None:
    try:
        job = JobDescription.model_validate(raw)
    except ValidationError:
        assume(False)  # the HTTP layer answers these with a 422 naming the field
        return
    try:
        rows = build_rows(job, script, submitter=SUBMITTER, limits=LIMITS, nodes=NODES, now=NOW)
    except Invalid as exc:
        assert exc.field and exc.message
        event(f"refused: {exc.field}")
        return
    except Unsatisfiable as exc:
        assert "Requested node configuration is not available" in str(exc)
        event("unsatisfiable")
        return
    event("accepted")
    assert 1 <= len(rows) <= LIMITS.max_array_tasks
    for row in rows:
        # Whatever was asked, the job is the submitter's, in an absolute directory, and carries
        # no credentials in its environment.
        assert (row["user_name"], row["uid"], row["gid"]) == ("alice", 1000, 1000)
        assert os.path.isabs(row["work_dir"])
        environment = json.loads(row["environment"])
        assert not SECRET_VARIABLES & set(environment)
        assert len(row["script"].encode()) <= LIMITS.max_script_bytes
        assert row["cpus_per_task"] * row["ntasks"] <= 8


_ARG = st.one_of(
    st.sampled_from(
        ["-n", "2", "-c", "--mem=1G", "--time", "1:00", "--array=0-3%2", "-J", "x", "--wrap", "echo",
         "--export=NONE", "--export", "ALL,A=1", "-o", "out-%j", "--dependency=afterok:1", "--", "job.sh",
         "--hold", "--parsable", "-p", "debug", "--begin=now+60", "--mem-per-cpu", "--signal=B:USR1@30"]
    ),
    st.text(max_size=16),
)


@settings(max_examples=400, deadline=None)
@given(
    argv=st.lists(_ARG, max_size=8),
    directives=st.lists(st.lists(_ARG, max_size=3).map(" ".join), max_size=4),
    body=st.text(max_size=40),
)
def test_sbatch_parser_accepts_or_refuses_cleanly(argv: list[str], directives: list[str], body: str) -> None:
    script = "#!/bin/bash\n" + "".join(f"#SBATCH {d}\n" for d in directives) + body
    environ = {"PATH": "/usr/bin", "HOME": "/home/alice", "USER": "alice", "CONDUCTOR_TOKEN": "cond_x"}
    try:
        first = first_pass(argv)
        plan = build_plan(first, script, script_path="job.sh", environ=environ, cwd="/work")
    except (SbatchError, GetoptError, SpecError):
        return
    assert isinstance(plan.job, dict)
    json.dumps(plan.job)  # the request body must be serialisable as it is


_PASSWORD = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="@/:?#[]%"), min_size=4, max_size=30)


@given(password=_PASSWORD, user=st.from_regex(r"[a-z]{1,8}", fullmatch=True), noise=st.text(max_size=30))
def test_database_passwords_are_redacted(password: str, user: str, noise: str) -> None:
    url = f"postgresql://{user}:{password}@db.example:5432/conductor"
    message = f"{noise} could not connect to {url} ({noise}) password={password} {noise}"
    assert password not in redact_secrets(message, url)
    assert password not in redact_url(url)
    # Without being told the URL, the URL and conninfo forms are still caught.
    assert password not in redact_secrets(f"error with {url} and password={password}")


def test_tokens_are_random_and_stored_as_hashes() -> None:
    tokens = {new_token() for _ in range(200)}
    assert len(tokens) == 200
    token = tokens.pop()
    assert token.startswith("cond_") and len(token) >= 40
    assert hash_token(token) == hash_token(token) and token not in hash_token(token)
    assert len(hash_token(token)) == 64


# ----------------------------------------------------------------- reading job output
def test_output_reading_refuses_links_anywhere_on_the_path(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "out.txt").write_text("data\n")
    (tmp_path / "linkdir").symlink_to(real)
    (real / "link.txt").symlink_to(real / "out.txt")
    os.mkfifo(real / "fifo")
    me = Reader(os.geteuid(), frozenset({os.getegid()}))
    assert read_tail(str(real / "out.txt"), 100, me) == "data\n"
    assert read_tail(str(real / "out.txt"), 2, me) == "a\n"
    assert read_tail(str(tmp_path / "linkdir" / "out.txt"), 100, me) is None
    assert read_tail(str(real / "link.txt"), 100, me) is None
    assert read_tail(str(real / "fifo"), 100, me) is None  # and it does not block
    assert read_tail(str(real), 100, me) is None
    assert read_tail("relative/out.txt", 100, me) is None
    assert read_tail(str(real / "out.txt"), 100, Reader(os.geteuid() + 1, frozenset())) is None
    with pytest.raises(OSError):
        os.close(open_for(str(tmp_path / "linkdir" / "out.txt"), me))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(st.sampled_from(["real", "linkdir", "..", ".", "out.txt", "link.txt", "nope", ""]), max_size=6))
def test_read_tail_never_reads_through_a_link(tmp_path: Path, parts: list[str]) -> None:
    real = tmp_path / "real"
    if not real.exists():
        real.mkdir()
        (real / "out.txt").write_text("data\n")
        (real / "real").symlink_to(real)  # a loop for good measure
        (tmp_path / "linkdir").symlink_to(real)
        (real / "link.txt").symlink_to(real / "out.txt")
    path = str(tmp_path) + "/" + "/".join(parts)
    result = read_tail(path, 100, Reader(os.geteuid(), frozenset({os.getegid()})))
    if result is not None:
        assert result == "data\n"
        # It was read, so no component of the path was a link.
        walked = tmp_path
        for part in parts:
            if part in ("", "."):
                continue
            walked = walked.parent if part == ".." else walked / part
            assert part == ".." or not walked.is_symlink()
