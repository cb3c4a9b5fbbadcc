"""A real browser on the real thing: headless Debian Chromium (driven by Playwright) against a
`sepsis-api serve` process and the Streamlit UI started with the same command as `sepsis-api ui`.

Screenshots of every page go to test-output/screenshots/ (gitignored).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from sepsis_api.ui.launch import ui_command, ui_env
from server import ChildProcess, ServerProcess

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "test-output" / "screenshots"
VIEWPORT = {"width": 1440, "height": 900}  # a laptop screen
WAIT_MS = 30_000

if not CHROMIUM.exists():
    reason = (
        f"{CHROMIUM} is missing: run `bash scripts/ensure-test-tools.sh` (as root) to "
        "install Debian's chromium; Playwright's own browser download is never used"
    )
    if os.environ.get("CI"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason, allow_module_level=True)

sync_api = pytest.importorskip("playwright.sync_api")
# expect() has its own 5 s default, apart from the page's; a busy machine needs the same bound.
sync_api.expect.set_options(timeout=WAIT_MS)


class UIProcess(ChildProcess):
    """`streamlit run ui/app.py` via ui_command, on a free loopback port, pointed at an API."""

    name = "ui"
    health = "/_stcore/health"

    def __init__(self, api_url: str, log_dir: Path) -> None:
        super().__init__(log_dir, ui_env(api_url, None))

    def command(self) -> list[str]:
        return ui_command("127.0.0.1", self.port)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, UIProcess]]:
    data = tmp_path_factory.mktemp("browser")
    with ServerProcess(data) as api, UIProcess(api.url, data) as ui:
        yield api, ui


@pytest.fixture(scope="module")
def page(running):
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
        tab = context.new_page()
        tab.set_default_timeout(WAIT_MS)
        yield tab
        context.close()
        browser.close()


def settle(page) -> None:
    """Wait until Streamlit has finished the current script run."""
    page.wait_for_timeout(300)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=WAIT_MS)


def shot(page, name: str) -> None:
    """The whole page: Streamlit scrolls inside its own container, so grow the viewport."""
    settle(page)
    height = page.evaluate(
        '() => Math.max(...[...document.querySelectorAll(\'[data-testid="stMain"], '
        '[data-testid="stAppViewContainer"], section\')].map(e => e.scrollHeight))'
    )
    page.set_viewport_size({"width": VIEWPORT["width"], "height": min(max(height, 900), 3200)})
    page.wait_for_timeout(500)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    page.set_viewport_size(VIEWPORT)
    # 256 colours without dithering: the same flat UI at a third of the size (docs copies).
    with Image.open(path) as img:
        small = img.convert("RGB").quantize(
            256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
        )
    small.save(path, optimize=True)


def go(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=title).click()
    settle(page)


def test_clinician_journey_in_a_real_browser(running, page, test_csv: Path) -> None:
    expect = sync_api.expect
    api, ui = running

    page.goto(ui.url)
    expect(page.get_by_text(f"Connected to the API at {api.url}")).to_be_visible()
    expect(page.get_by_text("not a validated clinical device").first).to_be_visible()
    expect(page.locator('[data-testid="stMetricValue"]').first).to_have_text(
        re.compile(r"0\.\d{3}")
    )
    shot(page, "home")

    # Predict: fill the generated form by its labels, tick "not measured", submit.
    go(page, "Predict")
    values = {
        "Plasma glucose · PRG": "6",
        "Blood work result 1 · PL (mu U/ml)": "148",
        "Blood pressure · PR (mm Hg)": "72",
        "Blood work result 2 · SK (mm)": "35",
        "Body mass index · M11 (kg/m²)": "33.6",
        "Blood work result 4 · BD2 (mu U/ml)": "0.627",
        "Age (years)": "50",
    }
    for label, value in values.items():
        box = page.get_by_label(label, exact=True)
        box.fill(value)
        box.press("Enter")
        settle(page)
    page.locator('[data-testid="stCheckbox"]').filter(has_text="Not measured").nth(3).click()
    settle(page)  # TS (the 4th feature that may be missing) is now "not measured"
    expect(page.get_by_label("Blood work result 3 · TS (mu U/ml)", exact=True)).to_be_disabled()
    page.get_by_text("No (0)").click()
    page.get_by_label("Patient ID (optional)", exact=True).fill("BROWSER-1")
    page.get_by_label("Patient ID (optional)", exact=True).press("Enter")
    settle(page)
    page.get_by_role("button", name="Estimate risk").click()
    risk = page.locator('[data-testid="stMetric"]').filter(has_text="Sepsis risk")
    expect(risk.locator('[data-testid="stMetricValue"]')).to_have_text(
        re.compile(r"^\d{1,3}\.\d%$")
    )
    expect(page.get_by_text(re.compile(r"^(Low|Moderate|High) risk$")).first).to_be_visible()
    chart = page.locator('[data-testid="stVegaLiteChart"]')
    expect(chart).to_be_visible()
    expect(chart.locator("canvas, svg").first).to_be_visible()
    assert chart.bounding_box()["height"] > 150  # bars drawn, not an empty frame
    shot(page, "predict")

    # Batch: upload the data set's own test file (BOM, CR line endings) and score it.
    go(page, "Batch (ward list)")
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(test_csv))
    page.get_by_role("button", name="Score 169 patients").click()
    scored = page.locator('[data-testid="stMetric"]').filter(has_text="Patients scored")
    expect(scored.locator('[data-testid="stMetricValue"]')).to_have_text("169")
    shot(page, "batch")

    # History: the estimates above are in the server's log; find the patient, open the record.
    go(page, "History")
    expect(page.get_by_text(re.compile(r"Page 1 · estimates 1–25"))).to_be_visible()
    page.get_by_label("Patient ID", exact=True).fill("BROWSER-1")
    page.get_by_label("Patient ID", exact=True).press("Enter")
    expect(page.get_by_text(re.compile(r"Page 1 · estimates 1–1 \(the oldest\)"))).to_be_visible()
    box = page.locator('[data-testid="stDataFrame"]').first.bounding_box()
    page.mouse.click(box["x"] + 20, box["y"] + 35 + 17)  # the first row's selection marker
    settle(page)
    expect(page.get_by_text(re.compile(r"^Estimate "))).to_be_visible()
    expect(page.locator('[data-testid="stVegaLiteChart"]')).to_be_visible()  # its reasons
    shot(page, "history")

    # Model: the card with its plots fetched over HTTP.
    go(page, "Model")
    expect(page.get_by_text("Performance of the candidate models")).to_be_visible()
    images = page.locator('[data-testid="stImage"] img')
    expect(images.first).to_be_visible()
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=\"stImage\"] img')]"
        ".slice(0, 6).every(i => i.complete && i.naturalWidth > 0)"
    )
    shot(page, "model")

    for name in ("home", "predict", "batch", "history", "model"):
        assert (SHOTS / f"{name}.png").stat().st_size > 10_000


def test_monitoring_page_after_shifted_traffic(running, page, train_csv: Path) -> None:
    """`sepsis-api traffic` fills the server (PL + 30, outcomes drawn from a model); the
    Monitoring page then shows the drift alarm, the figures and the charts."""
    from test_monitoring import send_traffic

    expect = sync_api.expect
    api, ui = running
    send_traffic(api.url, train_csv, 1200, "PL=+30")

    page.goto(ui.url)
    settle(page)
    go(page, "Monitoring")
    expect(page.get_by_text("Feature drift by week")).to_be_visible()
    expect(page.get_by_text(re.compile(r"Drift alert: .*\(PL\)")).first).to_be_visible()
    auc = page.locator('[data-testid="stMetric"]').filter(has_text="ROC AUC")
    expect(auc.locator('[data-testid="stMetricValue"]')).to_have_text(re.compile(r"^0\.\d{3}$"))
    charts = page.locator('[data-testid="stVegaLiteChart"]')
    expect(charts).to_have_count(7)
    for i in range(7):
        expect(charts.nth(i).locator("canvas, svg").first).to_be_visible()
    assert charts.first.bounding_box()["height"] > 250  # the heatmap's rows, not an empty frame
    shot(page, "monitoring")
    assert (SHOTS / "monitoring.png").stat().st_size > 10_000
