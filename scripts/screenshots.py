"""Screenshots of the dashboard's main pages on the demo data, for the documentation (docs/images/).

Runs the demo (``leadloop demo``: its data set replayed through the real endpoints) unless
``--reuse`` takes the database a demo left in instance/demo, then serves the dashboard on that
database and signs in with the same headless Chromium as the browser tests, at a laptop's
1366 pixels wide (each page as tall as it is, up to ``MAX_HEIGHT``), and saves one PNG per page.

    .venv/bin/python scripts/screenshots.py [--reuse] [--leads 600] [--out docs/images]
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from selenium.webdriver.common.by import By  # noqa: E402

from integration.demo.runner import DEMO_DIR, run_demo  # noqa: E402
from integration.embedded_redis import stop_embedded_redis  # noqa: E402
from integration.web import create_app  # noqa: E402
from tests.dashboard_support import chrome, live_server  # noqa: E402

WIDTH, MAX_HEIGHT = 1366, 2000
#: file name -> the page's path (with its filters).
PAGES = {
    "dashboard-overview.png": "/dashboard/",
    "dashboard-funnel.png": "/dashboard/funnel?by=source&step=mql-%3Eaccepted",
    "dashboard-handoff.png": "/dashboard/handoff?by=band",
    "dashboard-content.png": "/dashboard/content",
    "dashboard-sla.png": "/dashboard/sla?by=owner",
    "dashboard-revenue.png": "/dashboard/revenue?by=band",
    "dashboard-leads.png": "/dashboard/leads?band=hot",
}


def capture(base: str, token: str, out: Path) -> list[Path]:
    """Sign in, then save each page's screenshot; return the files written."""
    written = []
    with chrome() as driver:
        driver.get(f"{base}/dashboard/login")
        driver.find_element(By.ID, "token").send_keys(token)
        driver.find_element(By.CSS_SELECTOR, "form.login button").click()
        for name, path in PAGES.items():
            driver.set_window_size(WIDTH, 768)
            driver.get(base + path)
            if driver.find_element(By.TAG_NAME, "h1").text.startswith("404"):
                print(f"skipped {name}: {path} is not part of this version")
                continue
            if name == "dashboard-leads.png":  # and the first lead's page
                first = driver.find_element(By.CSS_SELECTOR, "table tbody th a").get_attribute("href")
                written.append(_shoot(driver, out / name))
                driver.get(first)
                name = "dashboard-lead.png"
            written.append(_shoot(driver, out / name))
    return written


def _shoot(driver, target: Path) -> Path:
    height = min(MAX_HEIGHT, driver.execute_script("return document.documentElement.scrollHeight"))
    driver.set_window_size(WIDTH, max(768, height + 140))  # the window's frame is part of its size
    driver.save_screenshot(str(target))
    print(f"wrote {target.relative_to(ROOT)}")
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reuse", action="store_true", help="use the database a demo left in instance/demo")
    parser.add_argument("--leads", type=int, default=600, help="the demo's number of leads")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args()
    database = DEMO_DIR / "demo.db"
    if not args.reuse or not database.exists():
        if run_demo(leads=args.leads) != 0:
            return 1
    args.out.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(24)
    instance = Path(tempfile.mkdtemp(prefix="ll-shots-"))
    try:
        app = create_app({"DATABASE_URL": f"sqlite:///{database}", "LEADLOOP_INSTANCE_DIR": str(instance),
                          "LEADLOOP_DASHBOARD_TOKEN": token, "LOG_LEVEL": "WARNING"})
        with live_server(app) as base:
            capture(base, token, args.out)
    finally:
        stop_embedded_redis(instance)
    return 0


if __name__ == "__main__":
    sys.exit(main())
