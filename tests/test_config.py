"""Settings: environment names, and the README's table generated from the class."""

from __future__ import annotations

import json
import re
from pathlib import Path

from sepsis_api.config import Settings, env_name, settings_table

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_configuration_table_matches_the_settings_class():
    text = README.read_text(encoding="utf-8")
    found = re.search(
        r"<!-- settings-table:start -->\n(.*?)\n<!-- settings-table:end -->", text, re.S
    )
    assert found, "README lost its settings-table markers"
    assert found[1] == settings_table(), "README table is stale: paste `sepsis-api config`"


def test_every_setting_is_read_from_its_documented_variable(monkeypatch):
    values = {
        "model_dir": "/m",
        "model_version": "v1",
        "data_dir": "/d",
        "database_url": "sqlite:///x.db",
        "db_auto_upgrade": "false",
        "sqlite_synchronous": "FULL",
        "audit_wait_seconds": "0.5",
        "api_keys": "a:" + "k" * 16,
        "api_keys_file": "/keys",
        "admin_keys": "ops:" + "o" * 16,
        "admin_keys_file": "/admin",
        "model_poll_seconds": "2.5",
        "host": "0.0.0.0",
        "port": "9",
        "workers": "3",
        "max_batch_rows": "7",
        "access_log": "false",
        "max_body_bytes": "11",
        "mlflow_model": "random_forest",
        "public_url": "https://sepsis.example.org",
        "cds_issuers": '{"https://ehr.example.org": "https://ehr.example.org/jwks"}',
        "cds_fhir_servers": "https://ehr.example.org/fhir",
        "cds_timeout_seconds": "1.5",
        "cds_jwks_cache_seconds": "60.0",
        "cds_jwt_max_seconds": "120.0",
        "cds_cors_origins": "https://ehr.example.org",
        "ui_public_url": "https://ui.example.org",
        "fhir_mapping": "/fhir-mapping.json",
        "monitoring_interval_seconds": "42.5",
        "ui_api_url": "http://api:1",
        "ui_api_key": "u" * 16,
        "ui_api_key_file": "/uikey",
        "ui_host": "0.0.0.0",
        "ui_port": "2",
    }
    assert set(values) == set(Settings.model_fields), "a new setting needs a value here"
    for field, value in values.items():
        monkeypatch.setenv(env_name(field), value)
    settings = Settings(_env_file=None)
    for field, value in values.items():
        got = getattr(settings, field)
        if isinstance(got, dict):  # a JSON object in the environment
            assert got == json.loads(value), field
        else:
            assert str(got).lower() == value.lower(), field
    assert env_name("api_keys") == "SEPSIS_API_KEYS"


def test_the_ui_key_comes_from_its_variable_or_else_from_its_file(tmp_path):
    secret = tmp_path / "ui_api_key"
    secret.write_text("# the web UI's key\nui:" + "u" * 24 + "\n", encoding="utf-8")
    assert Settings(_env_file=None, ui_api_key_file=secret).ui_key() == "u" * 24
    secret.write_text("v" * 24, encoding="utf-8")
    assert Settings(_env_file=None, ui_api_key_file=secret).ui_key() == "v" * 24
    both = Settings(_env_file=None, ui_api_key="w" * 16, ui_api_key_file=secret)
    assert both.ui_key() == "w" * 16
    assert Settings(_env_file=None).ui_key() is None
