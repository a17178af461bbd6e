"""End to end through the Dagster UI in headless Chromium: what a user of this project sees and
clicks (lineage, catalog, checks, automation, a partition launched from the UI and run by the
daemon), against a real webserver and daemon on a tiny sample."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from identity_data.contracts import ROW_ACCOUNTING
from identity_data.defs.automation import AUTOMATION_SENSORS
from identity_data.defs.raw.checks import UNDECODABLE_RATE
from identity_data.defs.raw.schemas import CaptureManifest
from identity_data.defs.warehouse.schemas import TrainingExample
from identity_data.validation import schema_check_name
from identity_data_tests.test_definitions import EXPECTED_GROUPS
from identity_data_tests.ui.dagster_ui import Stack, chromium, dagster_stack, require_browser

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Locator, Page

pytestmark = pytest.mark.slow

GROUPS = ("raw", "labels", "annotations", "warehouse")
# From the default zoom past the smallest: Dagster 1.13 switches to compact boxes after 8 clicks
# and stops drawing boxes after 17, at 1600x1000.
ZOOM_OUT_CLICKS = 30
# Compact boxes draw names at 24 px; full nodes at 14 px or less.
COMPACT_FONT_PX = 20
# The code location of `-m identity_data.definitions`.
LOCATION = "identity_data.definitions"
# Generous: two cores shared with the code server, the daemon and a run worker.
TIMEOUT_MS = 60_000
# From launch to success took 35 s with a load average of 6 on two cores.
RUN_TIMEOUT_MS = 180_000


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require_browser()
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    with dagster_stack(tmp_path_factory.mktemp("dagster_ui")) as running:
        yield running


@pytest.fixture(scope="module")
def browser(stack: Stack) -> Iterator[BrowserContext]:
    with chromium(stack.root / "chromium-profile") as context:
        context.set_default_timeout(TIMEOUT_MS)
        yield context


@pytest.fixture
def page(browser: BrowserContext) -> Iterator[Page]:
    page = browser.new_page()
    yield page
    page.close()


def nav(page: Page, name: str) -> Locator:
    return page.get_by_role("navigation").get_by_role("link", name=name)


def group_in_sidebar(page: Page, group: str) -> Locator:
    # The lineage sidebar names each group button by its icon, then the group twice.
    return page.get_by_role("button", name=f"asset_group {group} {group}", exact=True)


def test_lineage_shows_groups_assets_and_training_examples_upstream(stack: Stack, page: Page):
    from playwright.sync_api import expect

    page.goto(stack.url)
    nav(page, "Lineage").click()
    expect(page.get_by_text("Global asset lineage")).to_be_visible()
    for group in GROUPS:
        expect(group_in_sidebar(page, group)).to_be_visible()
    expect(page.get_by_text("fetching statuses")).to_have_count(0)
    page.screenshot(path=stack.root / "asset-graph.png")

    jump = page.get_by_role("combobox", name="Jump to…")
    jump.fill("prod_examples")
    jump.press("Enter")
    expect(page.get_by_text("warehouse / prod_examples")).to_be_visible()
    expect(page.get_by_role("link", name=schema_check_name(TrainingExample))).to_be_visible()

    nav(page, "Catalog").click()
    search = page.get_by_role("textbox", name="Search and filter assets")
    search.fill("prod_")
    search.press("Enter")
    for key in ("raw / prod_captures", "warehouse / prod_examples"):
        expect(page.get_by_role("link", name=key).first).to_be_visible()
    expect(page.get_by_role("link", name="labels / consensus_labels")).to_have_count(0)

    page.get_by_role("link", name="warehouse / prod_examples").first.click()
    page.get_by_role("tab", name="Lineage").click()
    page.get_by_role("button", name="Upstream").click()
    expect(page.get_by_text("consensus_labels", exact=True).first).to_be_visible()
    page.screenshot(path=stack.root / "training-examples-upstream.png")
    page.get_by_role("button", name="Downstream").click()
    expect(page.get_by_text("consensus_labels", exact=True)).to_have_count(0)
    expect(page.get_by_text("prod_examples", exact=True).first).to_be_visible()


@pytest.mark.parametrize("group", EXPECTED_GROUPS)
def test_zoomed_out_lineage_shows_every_asset_name_uncut(stack: Stack, page: Page, group: str):
    """Zoomed out, the graph draws each asset as a compact box with its key's last part in large
    type, cut in the middle when too long for the box: every name must still read whole."""
    from playwright.sync_api import expect

    page.goto(f"{stack.url}/locations/{LOCATION}/asset-groups/{group}/lineage")
    names = {key.split("/")[-1] for key in EXPECTED_GROUPS[group]}
    expect(page.locator("svg foreignObject").first).to_be_visible()
    # Each text the graph draws, with its font size: compact boxes use large type.
    drawn_texts = """() => Array.from(document.querySelectorAll('svg foreignObject *'))
        .filter(e => e.children.length === 0 && e.textContent.trim())
        .map(e => [e.textContent, parseFloat(getComputedStyle(e).fontSize)])"""
    zoom_out = page.locator("[aria-label=zoom_out]").first
    # The graph draws only the boxes in view, so step out one click at a time, reading each
    # step, until the smallest zoom, where it draws group outlines only.
    compact: set[str] = set()
    for _ in range(ZOOM_OUT_CLICKS):
        zoom_out.click()
        page.wait_for_timeout(400)
        texts = page.evaluate(drawn_texts)
        large = {text for text, size in texts if size >= COMPACT_FONT_PX}
        if compact and not texts:
            break
        compact |= large
    page.screenshot(path=stack.root / f"{group}-zoomed-out.png")
    assert sorted(names - compact) == []
    assert sorted(text for text in compact if "…" in text) == []


def test_asset_page_shows_materialization_and_passed_checks(stack: Stack, page: Page):
    from playwright.sync_api import expect

    page.goto(f"{stack.url}/assets/raw/camp_captures")
    expect(page.get_by_text("Latest materialization")).to_be_visible()
    expect(page.get_by_text(stack.campaign).first).to_be_visible()
    page.get_by_role("tab", name="Checks").click()
    checks = (schema_check_name(CaptureManifest), ROW_ACCOUNTING, UNDECODABLE_RATE)
    for check in checks:
        expect(page.get_by_text(check, exact=True).first).to_be_visible()
    expect(page.get_by_text("Succeeded", exact=True)).to_have_count(len(checks))
    page.get_by_text(ROW_ACCOUNTING, exact=True).first.click()
    expect(page.get_by_text("Passed", exact=True).first).to_be_visible()


def test_automation_lists_sensors_and_daily_schedule(stack: Stack, page: Page):
    from playwright.sync_api import expect

    page.goto(stack.url)
    nav(page, "Automation").click()
    for sensor in ("campaign_drop_sensor", "label_export_sensor", *AUTOMATION_SENSORS):
        expect(page.get_by_text(sensor, exact=True).first).to_be_visible()
    expect(page.get_by_text("production_daily_schedule", exact=True)).to_be_visible()
    expect(page.get_by_text("At 02:00 AM UTC").first).to_be_visible()


def test_materialize_one_partition_from_the_ui_runs_on_the_daemon(stack: Stack, page: Page):
    from playwright.sync_api import expect

    page.goto(f"{stack.url}/assets/raw/prod_captures")
    page.get_by_role("button", name="Materialize…").first.click()
    # raw_production cannot be subset: the UI asks to materialize its quarantine output too.
    expect(page.get_by_text("raw / prod_quarantine")).to_be_visible()
    page.get_by_role("button", name="Confirm").click()
    dialog = page.get_by_role("dialog")
    partitions = dialog.get_by_role("textbox").first
    partitions.fill(stack.day)
    partitions.press("Enter")
    expect(dialog.get_by_text("1 partition", exact=True)).to_be_visible()
    dialog.get_by_role("button", name="Launch 1 run").click()
    launched = page.get_by_text(re.compile(r"^Launched run \w+$"))
    expect(launched).to_be_visible()
    run_id = launched.inner_text().split()[-1]

    nav(page, "Runs").click()
    run_link = page.get_by_role("link", name=f"run {run_id}")
    # The runs table is a grid of divs: the innermost div holding the run's link and its
    # launcher is the run's row.
    row = page.locator("div").filter(has=run_link).filter(has_text="Manually launched").last
    expect(row).to_contain_text(f"partition: {stack.day}")
    # Queued until the daemon's QueuedRunCoordinator launches it, then a run worker executes it.
    expect(row).to_contain_text("Success", timeout=RUN_TIMEOUT_MS)

    run_link.click()
    expect(page.get_by_text("RUN_SUCCESS").first).to_be_visible()
    page.goto(f"{stack.url}/assets/raw/prod_captures")
    page.get_by_role("tab", name="Checks").click()
    expect(page.get_by_text("Succeeded", exact=True)).to_have_count(2)
