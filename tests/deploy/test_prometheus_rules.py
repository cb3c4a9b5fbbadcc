"""The alerting rules are valid and fire when they should (promtool, installed by
scripts/ensure-test-tools.sh)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "rules"


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        reason = "promtool not found; run scripts/ensure-test-tools.sh (as root)"
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return found


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=RULES, capture_output=True, text=True, timeout=120, check=False)


def test_rules_pass_promtool_check(promtool):
    done = run(promtool, "check", "rules", "sepsis-api.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 5 rules found" in done.stdout


def test_rules_unit_tests_pass(promtool):
    done = run(promtool, "test", "rules", "sepsis-api.test.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_rule_that_fires_too_early_fails_the_unit_tests(promtool, tmp_path):
    # The unit tests can fail: with "for: 1h" dropped, the drift alert fires at minute 80.
    (tmp_path / "sepsis-api.yml").write_text(
        (RULES / "sepsis-api.yml").read_text().replace("for: 1h", "for: 0m", 1)
    )
    (tmp_path / "sepsis-api.test.yml").write_text((RULES / "sepsis-api.test.yml").read_text())
    done = subprocess.run(
        [promtool, "test", "rules", "sepsis-api.test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    assert "SepsisApiFeatureDrift" in done.stdout + done.stderr
