"""sprio's formats: Slurm 22.05's defaults, less the factors without weight, and its fields."""

from __future__ import annotations

from conductor.cli.sprio import DEFAULT, LONG, _drop_unweighted, _line

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
