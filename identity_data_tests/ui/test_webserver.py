"""End to end through the Dagster UI in headless Chromium: what a user of this project sees and
clicks (lineage, catalog, checks, automation, a partition launched from the UI and run by the
daemon), against a real webserver and daemon on a tiny sample."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from identity_data_tests.ui.dagster_ui import Stack, chromium, dagster_stack, require_chromium

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page

pytestmark = pytest.mark.slow

GROUPS = ("raw", "labels", "annotations", "warehouse")
# Generous: two cores shared with the code server, the daemon and a run worker.
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require_chromium()
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


def test_lineage_shows_groups_assets_and_training_examples_upstream(stack: Stack, page: Page):
    from playwright.sync_api import expect

    page.goto(stack.url)
    page.get_by_role("link", name="Lineage").click()
    expect(page.get_by_text("Global asset lineage")).to_be_visible()
    for group in GROUPS:
        expect(page.get_by_role("button", name=group, exact=True).first).to_be_visible()
    page.screenshot(path=stack.root / "asset-graph.png")

    page.get_by_role("button", name="raw", exact=True).first.click()
    expect(page.get_by_text("production_captures", exact=True).first).to_be_visible()
    page.get_by_role("button", name="warehouse", exact=True).first.click()
    expect(page.get_by_text("production_training_examples", exact=True).first).to_be_visible()

    page.goto(f"{stack.url}/assets/warehouse/production_training_examples")
    page.get_by_role("tab", name="Lineage").click()
    page.get_by_role("button", name="Upstream").click()
    expect(page.get_by_text("consensus_labels", exact=True).first).to_be_visible()
    page.screenshot(path=stack.root / "training-examples-upstream.png")
    page.get_by_role("button", name="Downstream").click()
    expect(page.get_by_text("consensus_labels", exact=True)).to_have_count(0)
