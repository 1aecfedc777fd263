"""The Dagster UI as data engineers use it, in a real browser: Playwright drives Debian's Chromium
against a real code server + dagster-webserver + dagster-daemon (okr_assets_tests/ui/stack.py)
filled by `okr-assets demo`. The scenarios: Materialize an unpartitioned asset; backfill a date
range of okr_processed from the partitions dialog; the landing and Kafka sensors running and
ticking; the drift report's Markdown summary; and, last so that its screenshot shows everything
materialized, every asset of the lineage graph with its checks.

Every step waits on page state (Playwright's auto-waiting locators and `expect`), never on fixed
sleeps, and saves a screenshot under the test's tmp_path (`NN-step.png`); pytest keeps the
folders of the last runs under its basetemp.
"""

import datetime as dt
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

from okr_assets_tests.test_definitions import EXPECTED_ASSETS, EXPECTED_CHECKS
from okr_assets_tests.ui.stack import KAFKA_MESSAGES, UiStack, ui_stack

# Whole-stack tests share one xdist worker: they start servers and time them, so they run one
# after another while the other worker takes the in-process tests.
pytestmark = pytest.mark.xdist_group("stack")

# Debian's Chromium (`make system-deps` installs it); Playwright's own browser download does not
# work on our machines. OKR_TEST_CHROMIUM points at another Chromium build.
CHROMIUM = Path(os.environ.get("OKR_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1600, "height": 1000}
# Wide enough for the whole lineage graph at the zoom level that shows each asset's details.
GRAPH_VIEWPORT = {"width": 2400, "height": 1100}
RUN_TIMEOUT_MS = 120_000
# The backfill daemon looks at backfills every 30 s: one pass launches the run, a later one marks
# the backfill complete.
BACKFILL_TIMEOUT_MS = 150_000

# Generous waits for page state on a busy 2-core machine; a passing step returns as soon as it holds.
expect.set_options(timeout=20_000)

CHECKS_BY_ASSET: dict[str, list[str]] = {}
for _asset, _check in sorted(EXPECTED_CHECKS):
    CHECKS_BY_ASSET.setdefault(_asset, []).append(_check)


class Shots:
    """One screenshot per step, numbered in order, in the test's own tmp_path."""

    def __init__(self, page: Page, folder: Path) -> None:
        self.page, self.folder, self.count = page, folder, 0

    def take(self, step: str) -> Path:
        self.count += 1
        path = self.folder / f"{self.count:02d}-{step}.png"
        self.page.screenshot(path=path, animations="disabled")  # dialogs fully faded in
        return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):  # a missing browser is a broken setup: fail, never skip
        pytest.fail(f"Chromium not found at {CHROMIUM}. Install it with `make system-deps` (as root) or "
                    "`apt-get install chromium`, or set OKR_TEST_CHROMIUM to a Chromium binary.", pytrace=False)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def stack(browser: Browser, tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str) -> Iterator[UiStack]:
    with ui_stack(tmp_path_factory.mktemp("ui_stack"), kafka_bootstrap) as running:
        yield running


@pytest.fixture
def page(browser: Browser, stack: UiStack) -> Iterator[Page]:
    # Fixed locale and time zone: the tests read times as the UI formats them ("1:05:12 PM").
    context = browser.new_context(base_url=stack.url, viewport=VIEWPORT, locale="en-US", timezone_id="UTC")
    context.set_default_timeout(30_000)
    try:
        yield context.new_page()
    finally:
        context.close()
        stack.assert_alive()


@pytest.fixture
def shots(page: Page, tmp_path: Path) -> Iterator[Shots]:
    taken = Shots(page, tmp_path)
    yield taken
    taken.take("end")  # the page as the test left it, also when it failed


def test_materialize_an_unpartitioned_asset(page: Page, shots: Shots, stack: UiStack) -> None:
    # The demo never materializes okr_model_performance: a user does it here.
    page.goto("/assets/okr_model_performance")
    expect(page.get_by_text("Latest materialization")).to_be_visible()
    shots.take("asset")
    page.get_by_role("button").filter(has_text=re.compile(r"^Materialize$")).click()
    toast = page.get_by_text(re.compile(r"^Launched run [0-9a-f]{8}$"))
    expect(toast).to_be_visible()
    run_id = toast.inner_text().split()[-1]
    shots.take("launched")
    # The toast fades within seconds; the Runs page lists the run for good.
    page.goto("/runs")
    page.get_by_role("link").filter(has_text=re.compile(rf"^{run_id}$")).first.click()
    expect(page).to_have_url(re.compile(rf"/runs/{run_id}"))
    expect(_visible_text(page, "Success")).to_be_visible(timeout=RUN_TIMEOUT_MS)
    shots.take("run-succeeded")

    data = stack.graphql("""query($id: ID!) { runOrError(runId: $id) { ... on Run {
        status assetMaterializations { assetKey { path } } } } }""", {"id": _full_run_id(page)})
    run = data["runOrError"]
    assert run["status"] == "SUCCESS"
    assert [m["assetKey"]["path"] for m in run["assetMaterializations"]] == [["okr_model_performance"]]
    page.goto("/assets/okr_model_performance?view=checks")
    for name in CHECKS_BY_ASSET["okr_model_performance"]:
        expect(_visible_text(page, name)).to_be_visible()
    expect(_visible_text(page, "Passed")).to_be_visible()
    shots.take("checks")


def test_backfill_a_date_range_from_the_partitions_dialog(page: Page, shots: Shots, stack: UiStack) -> None:
    today = dt.datetime.now(dt.UTC).date()
    days = [(today - dt.timedelta(days=n)).isoformat() for n in range(9, 4, -1)]  # 5 days with data
    page.goto("/assets/okr_processed")
    expect(page.get_by_text("Latest materialization")).to_be_visible()
    page.get_by_role("button").filter(has_text=re.compile(r"^Materialize")).first.click()
    # okr_processed and okr_rejects are written by one step: the UI says so and selects both.
    page.get_by_role("dialog").filter(has_text="okr_rejects").get_by_role("button", name="Confirm").click()
    dialog = page.get_by_role("dialog").filter(has_text="Launch runs to materialize")
    selection = dialog.get_by_placeholder("No matching partitions")
    selection.fill(f"[{days[0]}...{days[-1]}]")
    selection.press("Enter")
    expect(dialog.get_by_text(f"{len(days)} partitions", exact=True)).to_be_visible()
    shots.take("partitions-dialog")
    dialog.get_by_role("button", name="Launch backfill").click()
    toast = page.get_by_text(re.compile(r"^Created backfill \w+$"))
    expect(toast).to_be_visible()
    backfill_id = toast.inner_text().split()[-1]
    page.goto(f"/runs/b/{backfill_id}")
    expect(page.get_by_text(f"{days[0]}...{days[-1]}")).to_be_visible()
    shots.take("backfill-requested")
    status = page.get_by_text("Status", exact=True).locator("xpath=following-sibling::*[1]")
    expect(status).to_have_text("Succeeded", timeout=BACKFILL_TIMEOUT_MS)
    for asset in ("okr_processed", "okr_rejects"):
        row = page.locator("[class*=VirtualizedTable_row]").filter(has=page.locator(f'a[href="/assets/{asset}"]'))
        expect(row).to_contain_text("100% completed")
        # partitions targeted, in progress, succeeded, failed
        counts = row.locator("[class*=VirtualizedTable_cellBox]").all_inner_texts()[-4:]
        assert counts == [str(len(days)), "0", str(len(days)), "0"], (asset, counts)
    shots.take("backfill-succeeded")

    data = stack.graphql("""query($id: String!) { partitionBackfillOrError(backfillId: $id) {
        ... on PartitionBackfill { status runs { status tags { key value }
          assetMaterializations { assetKey { path } partition } } } } }""", {"id": backfill_id})
    backfill = data["partitionBackfillOrError"]
    assert backfill["status"] == "COMPLETED_SUCCESS"
    assert [r["status"] for r in backfill["runs"]] == ["SUCCESS"]  # single-run backfill policy
    materialized = {(m["assetKey"]["path"][0], m["partition"])
                    for r in backfill["runs"] for m in r["assetMaterializations"]}
    assert materialized == {(a, d) for a in ("okr_processed", "okr_rejects") for d in days}

    # What the asset page then tells a data engineer: the range the run wrote, its row accounting
    # and rejects by reason, the owner, and the warehouse type of each column.
    page.goto("/assets/okr_processed")
    # (Short Markdown renders in place, longer behind "[Show Markdown]"; no rejects reads "none".)
    for key, value in (("partition_range", f"{days[0]} .. {days[-1]}"), ("counts_add_up", "true"),
                       ("rejects_by_reason", re.compile(r"reason|none|Show Markdown"))):
        row = page.get_by_role("row").filter(has=page.get_by_text(key, exact=True))
        expect(row).to_contain_text(value)
    expect(page.get_by_text("okr-data-platform")).to_be_visible()
    expect(page.get_by_role("row").filter(has=page.get_by_text("cycle_start", exact=True))).to_contain_text("DATE")
    shots.take("asset-metadata")


def test_automation_page_shows_sensors_running_and_ticking(page: Page, shots: Shots) -> None:
    page.goto("/automation")
    for sensor in ("okr_landing_sensor", "okr_kafka_sensor"):
        row = page.locator("[class*=ListItem_listItem]").filter(
            has=page.get_by_role("link", name=re.compile(rf"\b{sensor}\b")))
        expect(row.get_by_role("checkbox").last).to_be_checked()  # the running toggle
    shots.take("automation")

    for sensor, tag in (("okr_landing_sensor", "okr/landing_files"), ("okr_kafka_sensor", "okr/kafka_offsets")):
        page.goto(f"/locations/okr_assets/sensors/{sensor}")
        latest = page.get_by_role("row").filter(has=page.get_by_text("Latest tick", exact=True))
        expect(latest).to_contain_text(re.compile(r"\d{1,2}:\d{2}:\d{2} [AP]M"), timeout=60_000)
        expect(page.get_by_role("row").filter(has_text="Running").get_by_role("checkbox")).to_be_checked()
        shots.take(sensor)
        # The runs it launched say what they land: the files, or the exact Kafka offset range.
        page.get_by_role("button", name="Runs", exact=True).click()
        expect(page.get_by_text(re.compile(rf"^{tag}: ")).first).to_be_visible(timeout=60_000)
        shots.take(f"{sensor}-runs")
    expect(page.get_by_text(f"okr/kafka_offsets: 0:0-{KAFKA_MESSAGES - 1}")).to_be_visible()


def test_drift_report_renders_its_markdown_summary(page: Page, shots: Shots) -> None:
    page.goto("/assets/okr_drift_report")
    summary = page.get_by_role("row").filter(has=page.get_by_text("summary", exact=True))
    summary.get_by_text("[Show Markdown]").click()
    dialog = page.get_by_role("dialog").filter(has_text="summary")
    expect(dialog.get_by_text(re.compile(r"^(No practically relevant drift|Drift detected)"))).to_be_visible()
    expect(dialog.get_by_text(re.compile(r"^Reference: training cycles"))).to_be_visible()
    table = dialog.locator("table")
    expect(table.locator("th").first).to_have_text("feature")
    for feature in ("progress", "confidence", "okr_kind", "predicted_risk"):
        expect(table.get_by_role("cell", name=feature, exact=True)).to_be_visible()
    shots.take("drift-summary")


def test_lineage_shows_every_asset_and_its_checks(page: Page, shots: Shots) -> None:
    # Last, so that its screenshot shows the graph after the other tests' runs (all materialized).
    page.set_viewport_size(GRAPH_VIEWPORT)
    page.goto("/asset-groups")
    expect(page.get_by_text("Global asset lineage")).to_be_visible()
    page.get_by_role("button", name="settings", exact=True).last.click()
    page.get_by_role("menuitem", name="Expand all groups").click()
    page.keyboard.press("Escape")
    for asset, group in EXPECTED_ASSETS.items():
        node = page.locator("[class*=AssetNode_assetNodeBox]").filter(
            has=page.get_by_text(asset, exact=True))
        expect(node, f"{asset} in the graph").to_have_count(1)
        checks = len(CHECKS_BY_ASSET.get(asset, []))
        # The node's "Asset checks" row: "k / n Passed" once evaluated, "–" for an asset without.
        expected = re.compile(rf"\d+ / {checks}\b") if checks else "–"
        expect(node.get_by_text("Asset checks").locator("xpath=..")).to_contain_text(expected)
        expect(page.get_by_text(group, exact=True).first).to_be_visible()
    shots.take("lineage")

    page.set_viewport_size(VIEWPORT)
    for asset, names in CHECKS_BY_ASSET.items():
        page.goto(f"/assets/{asset}?view=checks")
        for name in names:
            expect(_visible_text(page, name), f"check {name} of {asset}").to_be_visible()
    shots.take("checks")


def _visible_text(page: Page, text: str) -> Locator:
    # Truncated names have a hidden copy of the full text for measuring: match the shown one.
    return page.get_by_text(text, exact=True).filter(visible=True).first


def _full_run_id(page: Page) -> str:
    match = re.search(r"/runs/([0-9a-f-]{36})", page.url)
    assert match, page.url
    return match.group(1)
