"""A bounded schemathesis run against the live server's own OpenAPI document.

Every operation gets generated valid and invalid requests; the server must never answer 5xx,
and every reply must match the documented status codes, content types, headers and schemas.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_schema_conformance,response_headers_conformance"
)


def test_no_server_errors_and_no_schema_violations(live_server, tmp_path) -> None:
    cli = Path(sys.executable).with_name("schemathesis")
    proc = subprocess.run(
        [
            str(cli),
            "run",
            live_server.url + "/openapi.json",
            "--checks",
            CHECKS,
            "--max-examples",
            "25",
            "--generation-deterministic",
            "--request-timeout",
            "30",
            "--phases",
            "examples,coverage,fuzzing",
            "--report-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    selected = re.search(r"Selected: (\d+)/(\d+)", proc.stdout)
    assert selected and selected[1] == selected[2], proc.stdout[-3000:]  # every operation ran
