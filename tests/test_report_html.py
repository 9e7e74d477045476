"""The HTML leaderboard in a real browser: headless Chromium (Debian's package, installed by
the nox tests session when missing) opens the page from disk, a click on a column header
re-sorts the rows in the DOM, and a screenshot is saved."""

from __future__ import annotations

import shutil

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from test_report import record

from disbench.report import build_report
from disbench.run.store import ResultsStore


def _browser() -> webdriver.Chrome:
    chromium = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    assert chromium and driver, (
        "headless Chromium is needed: apt-get install chromium chromium-driver"
    )
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(driver), options=options)


def test_clicking_a_column_header_sorts_the_rows(tmp_path) -> None:
    store = ResultsStore(tmp_path / "results")
    # MIG order b > c > a; SAP order a > c > b: the rank and the MIG column disagree.
    for method, mig, sap in (("a", 0.1, 0.9), ("b", 0.8, 0.1), ("c", 0.5, 0.5)):
        for seed in range(2):
            store.write(record(f"{method}{seed}", method, seed, mig, sap))
    paths = build_report(store.root, tmp_path / "leaderboard.md")
    browser = _browser()
    try:
        browser.get(paths["html"].resolve().as_uri())
        table = browser.find_element(By.CSS_SELECTOR, "table.sortable")

        def order() -> list[str]:
            return [
                row.find_elements(By.TAG_NAME, "td")[1].get_attribute("data-sort")
                for row in table.find_elements(By.CSS_SELECTOR, "tbody tr")
            ]

        headers = table.find_elements(By.TAG_NAME, "th")
        mig = next(h for h in headers if h.text.startswith("mig."))
        mig.click()
        assert order() == ["a", "c", "b"]  # ascending
        mig.click()
        assert order() == ["b", "c", "a"]  # descending
        assert browser.save_screenshot(str(tmp_path / "leaderboard.png"))
        assert (tmp_path / "leaderboard.png").stat().st_size > 10_000
    finally:
        browser.quit()
