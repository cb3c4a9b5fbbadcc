"""Fixtures for the web UI tests: point the UI's settings at a real API and run its pages."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from streamlit.testing.v1 import AppTest

from sepsis_api.config import get_settings
from sepsis_api.ui.launch import APP_PATH as APP

TIMEOUT = 60  # seconds per script run; generous for a loaded CI machine


def page_path(page: str) -> str:
    return f"pages/{page}.py"


@pytest.fixture
def point_ui(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, str | None], None]]:
    """point_ui(url, key): the UI's settings (read by get_settings) now name that API."""

    def point(url: str, key: str | None = None) -> None:
        monkeypatch.setenv("SEPSIS_API_UI_API_URL", url)
        if key is None:
            monkeypatch.delenv("SEPSIS_API_UI_API_KEY", raising=False)
        else:
            monkeypatch.setenv("SEPSIS_API_UI_API_KEY", key)
        get_settings.cache_clear()  # AppTest runs the scripts in this process

    yield point
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.fixture
def open_page(point_ui: Callable[[str, str | None], None]) -> Callable[..., AppTest]:
    """open_page(url, page="home", key=None) -> an AppTest that has rendered that page."""

    def open_(url: str, page: str = "home", key: str | None = None) -> AppTest:
        point_ui(url, key)
        at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
        assert not at.exception, [e.value for e in at.exception]
        if page != "home":
            at.switch_page(page_path(page)).run()
            assert not at.exception, [e.value for e in at.exception]
        return at

    return open_
