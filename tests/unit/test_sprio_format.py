"""sprio's formats: Slurm 22.05's defaults, less the factors without weight, and its fields."""

from __future__ import annotations

from typing import Any

import pytest

from conductor.cli import sprio
from conductor.cli.sprio import DEFAULT, LONG, _drop_unweighted, _line, report

WEIGHTS = {"age": 1000, "fairshare": 10000, "job_size": 0, "partition": 0, "qos": 2000}
JOB = {"job_id": 42, "partition": "debug", "user": "ann", "qos": "normal", "priority": 7123, "nice": 0,
       "age": 0.5, "fairshare": 0.25, "job_size": 0.0, "partition_factor": 0.0, "qos_factor": 1.0}


def test_default_and_long_formats_leave_out_unweighted_factors() -> None:
    assert _drop_unweighted(DEFAULT, WEIGHTS) == "%.15i %9r %.10Y %.10S %.10A %.10F %.10Q"
    assert _drop_unweighted(LONG, WEIGHTS) == "%.15i %9r %.8u %.8o %.10Y %.10S %.10A %.10F %.10n %.10Q %.11N"


def test_lines_as_sprio_prints_them() -> None:
    fmt = _drop_unweighted(DEFAULT, WEIGHTS)
    assert _line(fmt, None, WEIGHTS) == (
        "          JOBID PARTITION   PRIORITY       SITE        AGE  FAIRSHARE        QOS"
    )
    assert _line(fmt, JOB, WEIGHTS) == (
        "             42 debug           7123          0        500       2500       2000"
    )
    assert _line("%i %a %f %q", JOB, WEIGHTS) == "42 0.5000000 0.2500000 1.0000000"
    assert _line("%.15i %.10A %.10F", {"weights": True}, WEIGHTS) == "        Weights       1000      10000"


def test_weights_suppress_the_jobs() -> None:
    fmt = _drop_unweighted(DEFAULT, WEIGHTS)
    header = "          JOBID PARTITION   PRIORITY       SITE        AGE  FAIRSHARE        QOS\n"
    # As Slurm 22.05 prints it (src/sprio/print.c): nothing under PRIORITY, 1 under SITE.
    weights = "        Weights                               1       1000      10000       2000\n"
    assert report(fmt, WEIGHTS, [JOB], header=True, weights_only=True) == header + weights
    assert report(fmt, WEIGHTS, [JOB], header=False, weights_only=True) == weights
    assert report(fmt, WEIGHTS, [JOB], header=False, weights_only=False) == (
        "             42 debug           7123          0        500       2500       2000\n"
    )


class _Answering:
    """The client sprio makes, answering /priority with one pending job."""

    def __init__(self, *_: object) -> None:
        pass

    def get(self, path: str, **_: str) -> dict[str, Any]:
        assert path == "/priority"
        return {"multifactor": True, "weights": WEIGHTS, "jobs": [JOB]}

    def close(self) -> None:
        pass


@pytest.mark.parametrize("flag", ["-w", "--weights"])
def test_sprio_w_prints_only_the_weights(
    flag: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sprio, "Client", _Answering)
    assert sprio.main([flag]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["JOBID", "Weights"]
    assert sprio.main(["-h", flag, "-o", "%.15i %.10A"]) == 0
    assert capsys.readouterr().out == "        Weights       1000\n"
