"""The dashboard in a real headless browser (Debian's chromium through Selenium), served by a
real HTTP server on the hand-built store: sign in through the form, every page renders with its
charts and without a console error at a laptop's 1366x768, the filters change the figures, the
lead search finds a lead whose page shows its timeline and reasons, and without the token every
page is 401 with no data. No browser: these tests fail with what to install; they never skip."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait
from sqlalchemy.orm import Session

from tests.conftest import running_app
from tests.dashboard_support import DATA_PAGES, OTHER_TOKEN, TOKEN, chrome, live_server, seed_store

#: Every page of the navigation, with the charts it must draw (the ids of its SVGs).
PAGES = {"Overview": ["funnel-chart", "time-chart"], "Funnel": ["funnel-chart", "time-chart", "conversion-chart"],
         "Hand-off": ["acceptance-chart", "rules-chart", "reasons-chart"],
         "Content": ["touched-chart", "mql-rate-chart", "repeat-chart"],
         "SLA": ["sla-met-chart", "sla-missed-chart", "first-action-chart"],
         "Revenue": ["won-chart", "amount-chart", "win-rate-chart", "first-content-chart"],
         "Recycle": ["recycled-chart", "back-chart"]}


@pytest.fixture
def base_url(config: dict[str, Any], migrated_engine: Any) -> Iterator[str]:
    with Session(migrated_engine) as session:
        seed_store(session)
    with running_app(config, LEADLOOP_DASHBOARD_TOKEN=TOKEN) as app, live_server(app) as url:
        yield url


@pytest.fixture
def browser() -> Iterator[Any]:
    try:
        with chrome() as driver:
            yield driver
    except RuntimeError as exc:  # no browser installed: fail, and say what to install
        pytest.fail(str(exc))


def console_errors(driver: Any) -> list[dict[str, Any]]:
    """The console's errors since the last call (reading the log empties it)."""
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def follow(driver: Any, element: Any) -> None:
    """Click ``element`` (a link or a submit button) and wait for the next page to replace this one.

    The old page's window carries a mark the new page's does not have; polling the mark (instead
    of an element of the old page going stale) never asks chromedriver about a node mid-navigation,
    which it may answer with an "unknown error".
    """
    driver.execute_script("window.leadloopOldPage = true")
    element.click()
    WebDriverWait(driver, 15, ignored_exceptions=(WebDriverException,)).until(
        lambda d: d.execute_script("return window.leadloopOldPage === undefined && document.readyState === 'complete'"))


def sign_in(driver: Any, base_url: str, token: str = TOKEN) -> None:
    driver.get(f"{base_url}/dashboard/")
    assert driver.find_element(By.TAG_NAME, "h1").text == "Sign in to the leadloop dashboard"
    field = driver.find_element(By.ID, "token")
    assert driver.find_element(By.CSS_SELECTOR, "label[for=token]").text == "Dashboard token"
    field.send_keys(token)
    follow(driver, driver.find_element(By.CSS_SELECTOR, "form.login button"))
    # The browser logs the 401 of the page that showed the form as a failed load; nothing else.
    assert [e for e in console_errors(driver) if "status of 401" not in e["message"]] == []


def key_figure(driver: Any, label: str) -> str:
    for block in driver.find_elements(By.CSS_SELECTOR, ".key-figures div"):
        if block.find_element(By.TAG_NAME, "dt").text == label:
            return block.find_element(By.TAG_NAME, "dd").text
    raise AssertionError(f"no key figure {label!r}")


def test_sign_in_then_every_page_renders_its_charts_without_console_errors(browser, base_url):
    sign_in(browser, base_url)
    assert browser.find_element(By.TAG_NAME, "h1").text == "Overview"
    for label, charts in PAGES.items():
        follow(browser, browser.find_element(By.LINK_TEXT, label))
        assert browser.find_element(By.TAG_NAME, "h1").text == label
        assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"
        for chart_id in charts:
            svg = browser.find_element(By.ID, chart_id)
            assert svg.get_attribute("role") == "img"
            assert svg.find_element(By.TAG_NAME, "title").get_attribute("textContent")
            assert svg.size["width"] > 300 and svg.find_elements(By.TAG_NAME, "rect"), chart_id  # bars drawn
        # Usable on a laptop: the page is no wider than the window.
        assert browser.execute_script("return document.documentElement.scrollWidth") <= 1366
        assert console_errors(browser) == [], label
    follow(browser, browser.find_element(By.LINK_TEXT, "Leads"))
    assert browser.find_elements(By.CSS_SELECTOR, "table tbody tr") and console_errors(browser) == []


def test_filters_change_the_figures(browser, base_url):
    sign_in(browser, base_url)
    assert key_figure(browser, "Leads") == "6" and key_figure(browser, "MQLs") == "4"
    # The plain GET form: a date typed into the "From" field, then Apply.
    browser.execute_script("document.getElementById('since').value = '2026-04-01'")
    follow(browser, browser.find_element(By.CSS_SELECTOR, "form.filters button"))
    assert "since=2026-04-01" in browser.current_url
    assert key_figure(browser, "Leads") == "2" and key_figure(browser, "MQLs") == "1"
    follow(browser, browser.find_element(By.LINK_TEXT, "Funnel"))
    Select(browser.find_element(By.ID, "by")).select_by_value("source")
    follow(browser, browser.find_element(By.CSS_SELECTOR, "form.filters button"))
    caption = browser.find_element(By.CSS_SELECTOR, "table.report caption").text
    groups = [cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "table.report tbody th")]
    assert caption == "Funnel by source" and groups == ["ads", "webinar"]
    description = browser.find_element(By.CSS_SELECTOR, "#conversion-chart desc").get_attribute("textContent")
    assert description == "ads: 33.3 %; webinar: 100.0 %"  # new -> mql: 1 of 3 ads leads, 3 of 3 webinar


def test_lead_search_finds_a_lead_and_its_page_shows_timeline_and_reasons(browser, base_url):
    sign_in(browser, base_url)
    follow(browser, browser.find_element(By.LINK_TEXT, "Leads"))
    browser.find_element(By.ID, "email").send_keys("ada@acme-robotics.com")
    Select(browser.find_element(By.ID, "band")).select_by_visible_text("hot")
    follow(browser, browser.find_element(By.CSS_SELECTOR, "form.filters button"))
    rows = browser.find_elements(By.CSS_SELECTOR, "table tbody tr")
    assert len(rows) == 1
    follow(browser, rows[0].find_element(By.TAG_NAME, "a"))
    assert browser.find_element(By.TAG_NAME, "h1").text == "Lead hubspot:101"
    timeline = browser.find_element(By.CSS_SELECTOR, "table.timeline").text
    assert "mql → accepted (disposition)" in timeline and "sql → won (score)" in timeline
    assert "Job title: VP Engineering" in browser.find_element(By.TAG_NAME, "main").text
    assert console_errors(browser) == []


def test_without_the_token_every_page_is_401_and_shows_no_data(browser, base_url):
    for path in DATA_PAGES:
        answer = requests.get(base_url + path, timeout=10)
        assert answer.status_code == 401 and "acme-robotics" not in answer.text
        browser.get(base_url + path)
        assert "acme-robotics" not in browser.page_source and "owner-1" not in browser.page_source
    console_errors(browser)  # the 401s, and the site's favicon.ico a text page makes the browser ask for
    browser.get(f"{base_url}/dashboard/funnel")
    assert browser.find_elements(By.ID, "token") and not browser.find_elements(By.CSS_SELECTOR, "svg.chart")
    sign_in(browser, base_url, token=OTHER_TOKEN)
    assert browser.find_element(By.CSS_SELECTOR, "p.error").text == "That is not the dashboard token."
    assert not browser.find_elements(By.CSS_SELECTOR, "svg.chart")


def test_scripts_read_the_pages_with_a_bearer_token(base_url):
    good = requests.get(f"{base_url}/dashboard/leads.csv", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert good.status_code == 200 and "ada@acme-robotics.com" in good.text
    wrong = requests.get(f"{base_url}/dashboard/leads.csv", headers={"Authorization": f"Bearer {OTHER_TOKEN}"},
                         timeout=10)
    assert wrong.status_code == 401 and "acme-robotics" not in wrong.text
