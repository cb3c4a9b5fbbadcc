"""``sepsis-api config``: the settings table."""

from __future__ import annotations

from sepsis_api.cli import out


def config() -> None:
    """Print every setting as a Markdown table (environment variable, default, meaning)."""
    from sepsis_api.config import settings_table

    out.print(settings_table(), markup=False, highlight=False, soft_wrap=True)
