"""schemathesis against the server's own OpenAPI document, over real HTTP, with a valid token.

Every operation gets positive cases (valid by the schema) and negative ones (violating it);
every response must be no 5xx and must match the schema: status code, content type, headers
and body. schemathesis also replays requests without the token and expects 401.

The server is the fuzz tests' shared one (conftest.py). The run is bounded: EXAMPLES cases per
operation and mode.
"""

from __future__ import annotations

import os
import time
import traceback
from pathlib import Path

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance
from support import ConductorProcess

EXAMPLES = int(os.environ.get("CONDUCTOR_FUZZ_EXAMPLES", "60"))


def test_api_conforms_to_its_openapi(fuzz_server: ConductorProcess, request: pytest.FixtureRequest) -> None:
    schema = schemathesis.openapi.from_url(fuzz_server.url + "/openapi.json")
    session = requests.Session()
    auth = {"Authorization": f"Bearer {fuzz_server.token}"}
    failures: list[str] = []
    counted = {"cases": 0, "operations": 0}
    started = time.monotonic()
    for result in schema.get_all_operations():
        operation = result.ok()
        counted["operations"] += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                # The same cases on every run, so a failure is reproducible; CONDUCTOR_FUZZ_SEED=random
                # explores new ones.
                derandomize=os.environ.get("CONDUCTOR_FUZZ_SEED") != "random",
                phases=[Phase.explicit, Phase.generate, Phase.shrink],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case: schemathesis.Case) -> None:
                counted["cases"] += 1
                # Every check but "schema-valid data is accepted": the API validates meaning the
                # schema cannot say (time and memory grammars, a script that is not empty, a path
                # that is absolute) and answers those with a 400 naming the field, by design.
                case.call_and_validate(
                    session=session, headers=auth, timeout=30, excluded_checks=[positive_data_acceptance]
                )

            try:
                run()
            except Unsatisfiable:
                pass  # no case of this mode exists (nothing in GET /health can be made invalid)
            except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - report them all at the end
                text = "".join(traceback.format_exception_only(type(exc), exc))
                failures.append(f"{operation.label} [{mode.value}]: {text[:3000]}")
    elapsed = time.monotonic() - started
    summary = (
        f"schemathesis: {counted['cases']} generated cases over {counted['operations']} operations "
        f"({EXAMPLES} per operation and mode) in {elapsed:.0f}s, {len(failures)} failing"
    )
    request.config.conductor_fuzz_summary = [summary]  # type: ignore[attr-defined]
    assert counted["operations"] >= 12
    assert not failures, "\n\n".join(failures)
    # The server survived all of it.
    assert httpx.get(fuzz_server.url + "/health").status_code == 200
    assert not Path(fuzz_server.home, "scripts").exists() or not any(Path(fuzz_server.home, "scripts").iterdir())
