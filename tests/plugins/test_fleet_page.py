"""The Customers page, as an operator sees it: in a real browser (headless Chromium, driven
by Playwright), served by Airflow's real api-server with the plugin loaded, behind Airflow's
own token."""

from __future__ import annotations

import os
import shutil

import pytest
import requests

from tests.conftest import API_PASSWORD, API_USER
from tests.factory import run_once, write
from tests.undo.test_undo import two_schools

HELD = "filter: {default: {person: {delete: {count: 1}}}}\n"


def chromium() -> str:
    """The system's Chromium: CI installs it (.ci/run); elsewhere its absence skips the test
    with the reason, as the reference files' absence does."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("Chromium is not installed: .ci/run installs it with apt-get")
    pytest.skip("Chromium is not installed (apt-get install chromium)")


@pytest.fixture
def fleet(airflow_api, customers, db_url, monkeypatch, tmp_path):
    """Three customers in the page's database: one applied, one held, one paused."""
    from sisflow.db.connection import connect

    monkeypatch.setenv("SISFLOW_DATABASE_URL", db_url)
    customers("fine", "name: Fine kommune\nsis_vendor: IST Extens\n")
    customers("held", f"name: Holdt kommune\n{HELD}")
    customers("paused", "name: Pause kommune\npause: [{start: 2020-01-01, end: 2099-12-31}]\n")
    conn = connect(db_url)
    for customer in ("fine", "held"):
        path = write(tmp_path, two_schools(), f"{customer}-1.xml")
        assert run_once(conn, customer, path)["status"] == "committed"
    held = run_once(conn, "held", write(tmp_path, two_schools(pupils_a=1), "held-2.xml"))
    assert held["status"] == "held"
    conn.close()
    return {"url": airflow_api["SISFLOW_AIRFLOW_API_URL"], "held": held["id"]}


def token(url: str) -> str:
    answer = requests.post(
        f"{url}/auth/token", json={"username": API_USER, "password": API_PASSWORD}, timeout=30
    )
    answer.raise_for_status()
    return answer.json()["access_token"]


def test_without_airflows_token_the_page_is_refused(fleet):
    url = f"{fleet['url']}/sisflow/customers"
    assert requests.get(url, timeout=30).status_code == 401
    assert requests.get(url, timeout=30, headers={"Authorization": "Bearer x"}).status_code == 403
    assert requests.get(f"{url}/held", timeout=30).status_code == 401
    ok = requests.get(url, timeout=30, headers={"Authorization": f"Bearer {token(fleet['url'])}"})
    assert ok.status_code == 200 and "Holdt kommune" in ok.text


def test_the_page_in_a_browser_rows_filters_and_links(fleet, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        # the UI's session: Airflow's token in its cookie, as after a login
        context.add_cookies([{"name": "_token", "value": token(fleet["url"]), "url": fleet["url"]}])
        page = context.new_page()
        page.goto(f"{fleet['url']}/sisflow/customers")
        rows = page.locator("tr[data-customer]")
        assert rows.count() == 3
        assert (
            page.locator("tr[data-customer=held] td")
            .nth(0)
            .inner_text()
            .startswith("Holdt kommune")
        )
        held = page.locator("tr[data-customer=held]")
        assert held.get_attribute("data-flags") == "held"
        assert f"sisflow filter open {fleet['held']}" in held.inner_text()
        assert "paused" in page.locator("tr[data-customer=paused]").inner_text()
        page.screenshot(path=str(tmp_path / "customers.png"), full_page=True)

        page.click("a[data-filter=held]")
        assert [r.get_attribute("data-customer") for r in rows.all()] == ["held"]
        page.click("a[data-vendor='IST Extens']")
        assert [r.get_attribute("data-customer") for r in rows.all()] == []
        page.goto(f"{fleet['url']}/sisflow/customers?vendor=IST+Extens")
        assert [r.get_attribute("data-customer") for r in rows.all()] == ["fine"]

        page.goto(f"{fleet['url']}/sisflow/customers?sort=name")
        page.click("text=Holdt kommune")
        assert page.locator("h1").inner_text() == "Holdt kommune"
        assert page.locator(f"tr[data-run='{fleet['held']}']").inner_text().count("held") >= 1
        page.screenshot(path=str(tmp_path / "customer.png"), full_page=True)
        browser.close()
