"""Render every dashboard in headless Chromium and report charts in error (run in .venv-superset).

``python -m dashboards.browser --url URL --out DIR [--manager FÖRVALTNING ...]`` logs in as the admin
from ``credentials.json`` and as each named förvaltning's manager, opens each dashboard that user may
list, waits until every chart has rendered, saves a screenshot per user and dashboard in
``DIR/<user>/`` and prints a JSON report; it exits 1 if any chart failed. A chart counts as failed if
its data request answered an HTTP error or its box shows an error alert, Superset's "Data error" or
"No results" (in English or as our language packs say them: the pages are Swedish). Each dashboard's report also lists the texts that hold Superset's English
(``language.ENGLISH_UI``), read from the page and from its menus opened; ``--language en`` switches each
user to English first, as Superset's language menu does. Selenium runs Debian's chromium and
chromedriver with the flags from the stack notes (no downloads, no network).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from dashboards import language
from dashboards.api import Superset
from dashboards.home import SupersetHome

FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1600,3000", "--lang=sv-SE",
)  # fmt: skip
CHART_HOLDER = "[data-test='dashboard-component-chart-holder']"
# Superset's raw error panels and its empty chart, in English and as our language packs say them
ERROR_TEXTS = language.in_every_language("Data error", "This endpoint requires", "Unexpected error")
NO_RESULTS = language.in_every_language("No results")


def chromium(profile: Path) -> webdriver.Chrome:
    """Debian's chromium through Debian's chromedriver; Selenium Manager must not try to download."""
    os.environ["SE_OFFLINE"] = "true"
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    service = Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    return webdriver.Chrome(service=service, options=options)


def log_in(driver: webdriver.Chrome, url: str, username: str, password: str, attempts: int = 3) -> None:
    """Fill the login form; retried because React may re-render the form while it is being typed into."""
    for _ in range(attempts):
        driver.get(f"{url}/login/")
        wait = WebDriverWait(driver, 60)
        wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "button[type='submit']")))
        time.sleep(1)
        for field, value in (("username", username), ("password", password)):
            box = driver.find_element(By.ID, field)
            box.clear()
            box.send_keys(value)
        driver.find_element(By.CSS_SELECTOR, "button[type='submit']").click()
        try:
            WebDriverWait(driver, 20).until(lambda d: "/login" not in d.current_url)
            return
        except TimeoutException:
            continue
    raise RuntimeError(f"could not log in to {url} as {username}")


def failed_data_requests(driver: webdriver.Chrome) -> list[str]:
    """Chart-data responses with an HTTP error status, from Chromium's network log."""
    failed = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") != "Network.responseReceived":
            continue
        response = message["params"]["response"]
        if "/api/v1/chart/data" in response["url"] and response["status"] >= 400:
            failed.append(f"HTTP {response['status']} {response['url']}")
    return failed


def _rendered(driver: webdriver.Chrome) -> int:
    return len(driver.find_elements(By.CSS_SELECTOR, f"{CHART_HOLDER} [data-test='chart-container']"))


def _loading(driver: webdriver.Chrome) -> int:
    return len(driver.find_elements(By.CSS_SELECTOR, f"{CHART_HOLDER} .loading"))


# Every visible text node, and the placeholders, tooltips and labels of visible elements.
VISIBLE_TEXTS = """
const texts = new Set(), shown = e => e && e.getClientRects().length > 0
    && getComputedStyle(e).visibility !== 'hidden';
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
while (walker.nextNode()) {
  const t = walker.currentNode.textContent.trim();
  if (t && shown(walker.currentNode.parentElement)) texts.add(t);
}
for (const e of document.querySelectorAll('[placeholder], [title], [aria-label]'))
  for (const a of ['placeholder', 'title', 'aria-label'])
    if (shown(e) && e.getAttribute(a) && e.getAttribute(a).trim()) texts.add(e.getAttribute(a).trim());
return [...texts];
"""
# The menus a manager opens on a dashboard: the dashboard's own (⋯) and the first chart's (⋮), with
# their submenus.
MENUS = ("[data-test='actions-trigger']", f"{CHART_HOLDER} [data-test='slice-header'] .ant-dropdown-trigger")


def interface_texts(driver: webdriver.Chrome) -> set[str]:
    """What the page says to its user, its menus opened one at a time (they are closed again)."""
    texts = set(driver.execute_script(VISIBLE_TEXTS))
    for menu in MENUS:
        triggers = [t for t in driver.find_elements(By.CSS_SELECTOR, menu) if t.is_displayed()]
        if not triggers:
            continue
        triggers[0].click()
        time.sleep(1)
        texts |= set(driver.execute_script(VISIBLE_TEXTS))
        for submenu in driver.find_elements(By.CSS_SELECTOR, ".ant-dropdown-menu-submenu-title"):
            if submenu.is_displayed():  # Download and Share open on hover
                ActionChains(driver).move_to_element(submenu).perform()
                time.sleep(1)
                texts |= set(driver.execute_script(VISIBLE_TEXTS))
        driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
        time.sleep(0.5)
    return texts


def render(driver: webdriver.Chrome, url: str, dashboard: dict, expected: int, out: Path) -> dict:
    """Open one dashboard, wait for all its charts, screenshot it, and collect what failed."""
    driver.get_log("performance")  # drop what earlier pages logged
    driver.get(f"{url}/superset/dashboard/{dashboard['slug'] or dashboard['id']}/")
    errors = []
    try:
        WebDriverWait(driver, 90).until(lambda d: _rendered(d) >= expected and not _loading(d))
    except TimeoutException:
        errors.append(
            f"timed out: {_rendered(driver)} of {expected} charts rendered, {_loading(driver)} loading"
        )
    time.sleep(2)  # let ECharts finish its animation before the screenshot
    errors += failed_data_requests(driver)
    for holder in driver.find_elements(By.CSS_SELECTOR, CHART_HOLDER):
        text = holder.text.strip().split("\n")[0][:80]
        if holder.find_elements(By.CSS_SELECTOR, "[role='alert'], .ant-alert-error") or any(
            e in holder.text for e in ERROR_TEXTS
        ):
            errors.append(f"error in chart '{text}'")
        elif any(e in holder.text for e in NO_RESULTS):
            errors.append(f"no data in chart '{text}'")
    shot = out / f"{dashboard['slug'] or dashboard['id']}.png"
    driver.save_screenshot(str(shot))
    return {
        "title": dashboard["dashboard_title"],
        "charts": expected,
        "errors": errors,
        "screenshot": str(shot),
        "english": language.english(sorted(interface_texts(driver))),
    }


def check_user(url: str, username: str, password: str, out: Path, lang: str | None = None) -> dict[str, dict]:
    """Render every dashboard this user may list, in a browser profile of its own (and in ``lang`` if
    given, picked as from Superset's language menu; else the server's default, Swedish)."""
    api = Superset(url, username, password)
    out.mkdir(parents=True, exist_ok=True)
    profile = Path(tempfile.mkdtemp(prefix="knutpunkt-chromium-"))
    driver = chromium(profile)
    try:
        log_in(driver, url, username, password)
        if lang:
            driver.get(f"{url}/lang/{lang}")
        report = {}
        for dashboard in sorted(api.list("dashboard"), key=lambda d: d["id"]):
            n = len(api.request("GET", f"/api/v1/dashboard/{dashboard['id']}/charts").json()["result"])
            report[dashboard["slug"] or str(dashboard["id"])] = render(driver, url, dashboard, n, out)
        return report
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def check_all(
    url: str, out: Path, managers: list[str] = (), lang: str | None = None
) -> dict[str, dict[str, dict]]:
    """The admin's and each named manager's dashboards: user -> dashboard slug -> result."""
    creds = SupersetHome.from_env().read_credentials()
    users = {"admin": creds["admin"]} | {m: creds["managers"][m] for m in managers}
    return {
        who: check_user(url, cred["username"], cred["password"], out / cred["username"], lang)
        for who, cred in users.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--out", type=Path, required=True, help="folder for the screenshots")
    parser.add_argument("--manager", action="append", default=[], help="also as this förvaltning's manager")
    parser.add_argument("--language", help="switch each user to this language first (e.g. en)")
    args = parser.parse_args()
    report = check_all(args.url.rstrip("/"), args.out, args.manager, args.language)
    print(json.dumps(report, ensure_ascii=False, indent=2))
    results = [r for dashboards in report.values() for r in dashboards.values()]
    return 0 if results and not any(r["errors"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
