"""The web console in a real browser: Debian's headless Chromium driven by Selenium through
Debian's chromedriver, against a live Nimbo on the fake hypervisor. A new user's path: sign in
with the keys `nimbo credentials` prints, launch an instance and see it running, stop it, upload a
file and download it back, read this month's costs (the chart and a cost line), sign out.

Screenshots land in the test's output folder (``--basetemp``/console-screenshots*); their paths
are printed (``pytest -s`` shows them)."""
from __future__ import annotations

import os
import shutil
import time

import pytest

from tests.conftest import NimboServer

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
WAIT = 20


def _missing() -> str | None:
    try:
        import selenium  # noqa: F401, PLC0415
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        return "Debian's chromium and chromium-driver are not installed (make setup-test)"
    return None


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    why = _missing()
    if why:
        pytest.skip(why)
    from tests.gateway.test_console_http import start_console_server  # noqa: PLC0415
    server, image_id = start_console_server("nimbo-browser-")
    try:
        yield server, image_id
    finally:
        server.stop()
        shutil.rmtree(server.data_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    folder = tmp_path_factory.mktemp("console-screenshots")
    print(f"\nconsole screenshots: {folder}")
    return folder


@pytest.fixture(scope="module")
def downloads(tmp_path_factory):
    return tmp_path_factory.mktemp("console-downloads")


@pytest.fixture(scope="module")
def browser(site, downloads):
    from selenium import webdriver  # noqa: PLC0415
    from selenium.webdriver.chrome.service import Service  # noqa: PLC0415
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1400,1000", "--no-first-run", "--disable-extensions",
                 "--disable-background-networking", "--disable-sync", "--disable-component-update"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


def snap(driver, shots, name: str) -> str:
    path = os.path.join(shots, f"{name}.png")
    driver.save_screenshot(path)
    print(f"screenshot: {path}")
    return path


def wait_for(driver, condition, timeout: float = WAIT):
    from selenium.webdriver.support.ui import WebDriverWait  # noqa: PLC0415
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition)


def by_css(selector: str):
    from selenium.webdriver.common.by import By  # noqa: PLC0415
    return By.CSS_SELECTOR, selector


def text_in(selector: str, text: str):
    def check(driver):
        from selenium.common.exceptions import StaleElementReferenceException  # noqa: PLC0415
        try:
            return any(text in e.text for e in driver.find_elements(*by_css(selector)))
        except StaleElementReferenceException:
            return False
    return check


def click_until(driver, selector: str, condition, timeout: float = WAIT):
    """Click ``selector`` until ``condition`` holds: a screen may redraw itself (instances
    refresh while they change state), and a click on the element it replaced is lost."""
    from selenium.common.exceptions import (  # noqa: PLC0415
        NoSuchElementException, StaleElementReferenceException, TimeoutException)
    deadline = time.monotonic() + timeout
    while True:
        if condition(driver):
            return True
        try:
            driver.find_element(*by_css(selector)).click()
            return wait_for(driver, condition, timeout=min(3.0, max(deadline - time.monotonic(), 0.1)))
        except (StaleElementReferenceException, NoSuchElementException, TimeoutException):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def row_text(driver, selector: str, needle: str) -> str:
    """The text of the first row holding ``needle`` (read again if the screen redrew)."""
    from selenium.common.exceptions import StaleElementReferenceException  # noqa: PLC0415
    for _ in range(50):
        try:
            return next(r.text for r in driver.find_elements(*by_css(selector)) if needle in r.text)
        except (StaleElementReferenceException, StopIteration):
            time.sleep(0.1)
    raise AssertionError(f"no row with {needle!r}")


def sign_in(driver, server: NimboServer) -> None:
    creds = server.credentials()     # what `nimbo credentials` prints
    driver.get(f"{server.endpoint}/console/")
    wait_for(driver, lambda d: d.find_elements(*by_css("#sign-in input[name=accessKeyId], #signed-in-as")))
    if driver.find_elements(*by_css("#signed-in-as")):
        return      # still signed in (the session cookie)
    driver.find_element(*by_css("#sign-in input[name=accessKeyId]")).send_keys(creds["AWS_ACCESS_KEY_ID"])
    driver.find_element(*by_css("#sign-in input[name=secretAccessKey]")).send_keys(creds["AWS_SECRET_ACCESS_KEY"])
    driver.find_element(*by_css("#sign-in button[type=submit]")).click()
    wait_for(driver, text_in("#signed-in-as", "admin"))


def test_sign_in_with_the_keys_of_nimbo_credentials(site, browser, shots):
    server, _ = site
    browser.get(f"{server.endpoint}/")            # the root sends a browser to the console
    wait_for(browser, lambda d: d.find_elements(*by_css("#sign-in")))
    assert browser.current_url.endswith("/console/")
    browser.find_element(*by_css("#sign-in input[name=accessKeyId]")).send_keys("AKIAWRONGWRONGWRONG1")
    browser.find_element(*by_css("#sign-in input[name=secretAccessKey]")).send_keys("not-the-secret-at-all")
    browser.find_element(*by_css("#sign-in button[type=submit]")).click()
    wait_for(browser, text_in("#sign-in .error", "not right"))
    snap(browser, shots, "01-sign-in-refused")
    sign_in(browser, server)
    cookies = {c["name"]: c for c in browser.get_cookies()}
    assert cookies["nimbo_console"]["httpOnly"] is True and cookies["nimbo_console"]["sameSite"] == "Strict"
    assert browser.execute_script("return document.cookie") == ""     # the page cannot read the session
    wait_for(browser, text_in("main h1", "Instances"))
    snap(browser, shots, "02-signed-in")


def test_launch_an_instance_see_it_running_and_stop_it(site, browser, shots):
    server, image_id = site
    browser.get(f"{server.endpoint}/console/#instances")
    wait_for(browser, lambda d: d.find_elements(*by_css(f"#launch-form option[value='{image_id}']")))
    browser.find_element(*by_css("#launch-form input[name=Name]")).send_keys("web-1")
    browser.find_element(*by_css("#launch-form button[type=submit]")).click()
    wait_for(browser, text_in("main table", "web-1"))
    wait_for(browser, text_in("main table .state-running", "running"))
    instance_id = row_text(browser, "main tbody tr", "web-1").split()[0]
    assert instance_id.startswith("i-")
    ec2 = server.client("ec2")
    states = {i["InstanceId"]: i["State"]["Name"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]}
    assert states[instance_id] == "running"            # what the API says
    snap(browser, shots, "03-instance-running")
    click_until(browser, f"button[data-action='StopInstances:{instance_id}']",
                text_in("main table .state-stopped, main table .state-stopping", "stop"))
    wait_for(browser, text_in("main table .state-stopped", "stopped"))
    states = {i["InstanceId"]: i["State"]["Name"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]}
    assert states[instance_id] == "stopped"
    click_until(browser, f"button[data-action='connect:{instance_id}']", text_in("#instance-details pre", "ssh -i"))
    snap(browser, shots, "04-instance-stopped")


def test_upload_a_file_and_download_it_back(site, browser, shots, downloads, tmp_path):
    server, _ = site
    browser.get(f"{server.endpoint}/console/#buckets")
    wait_for(browser, lambda d: d.find_elements(*by_css("#create-bucket input[name=Bucket]")))
    browser.find_element(*by_css("#create-bucket input[name=Bucket]")).send_keys("browser-bucket")
    browser.find_element(*by_css("#create-bucket button[type=submit]")).click()
    wait_for(browser, text_in("main table", "browser-bucket"))
    browser.get(f"{server.endpoint}/console/#buckets/browser-bucket")
    wait_for(browser, lambda d: d.find_elements(*by_css("#upload-form input[type=file]")))
    payload = os.urandom(300_000) + b"end of the file"
    local = tmp_path / "report.bin"
    local.write_bytes(payload)
    prefix = browser.find_element(*by_css("#upload-form input[name=prefix]"))
    prefix.send_keys("docs/")
    browser.find_element(*by_css("#upload-form input[type=file]")).send_keys(str(local))
    browser.find_element(*by_css("#upload-form button[type=submit]")).click()
    wait_for(browser, text_in("main table", "docs/"))
    assert server.client("s3").get_object(Bucket="browser-bucket", Key="docs/report.bin")["Body"].read() == payload
    browser.get(f"{server.endpoint}/console/#buckets/browser-bucket/docs/")
    wait_for(browser, text_in("main table", "report.bin"))
    snap(browser, shots, "05-bucket-with-upload")
    browser.find_element(*by_css("a[data-download='docs/report.bin']")).click()
    target = downloads / "report.bin"
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline and not (target.exists() and target.stat().st_size == len(payload)):
        time.sleep(0.1)
    assert target.read_bytes() == payload               # the same bytes came back
    click_until(browser, "button[data-action='presign:docs/report.bin']", text_in("#presigned .secret", "X-Amz-Signature="))
    assert "null" not in browser.find_element(*by_css("main")).text.split()
    snap(browser, shots, "06-presigned-link")


def test_a_cost_line_and_the_daily_chart(site, browser, shots):
    server, _ = site
    browser.get(f"{server.endpoint}/console/#costs")
    wait_for(browser, text_in("main", "By service"))
    deadline = time.monotonic() + WAIT     # the meter flushes within a fifth of a second here
    while time.monotonic() < deadline:
        if "Amazon Simple Storage Service" in browser.find_element(*by_css("main")).text:
            break
        time.sleep(0.5)
        browser.refresh()
        wait_for(browser, text_in("main", "By service"))
    tables = browser.find_element(*by_css("main")).text
    assert "Amazon Simple Storage Service" in tables and "Amazon Elastic Compute Cloud - Compute" in tables
    exact = browser.find_element(*by_css("#cost-total")).get_attribute("data-exact")
    assert float(exact) > 0
    assert browser.find_elements(*by_css("#daily-chart rect"))      # at least one bar drawn
    snap(browser, shots, "07-costs")
    browser.find_element(*by_css("#sign-out")).click()
    wait_for(browser, lambda d: d.find_elements(*by_css("#sign-in")))
    snap(browser, shots, "08-signed-out")


def test_every_screen_renders_and_a_key_pair_downloads_once(site, browser, shots, downloads):
    server, _ = site
    sign_in(browser, server)
    for screen, heading in (("images", "Images"), ("key-pairs", "Key pairs"), ("volumes", "Volumes and snapshots"),
                            ("security-groups", "Security groups"), ("addresses", "Addresses"),
                            ("account", "Account")):
        browser.get(f"{server.endpoint}/console/#{screen}")
        wait_for(browser, text_in("main h1", heading))
        wait_for(browser, lambda d: not d.find_elements(*by_css("main p.error")) and d.find_elements(*by_css("main table, main p.muted")))
        snap(browser, shots, f"10-{screen}")
    browser.get(f"{server.endpoint}/console/#key-pairs")
    wait_for(browser, lambda d: d.find_elements(*by_css("#create-key-pair input[name=KeyName]")))
    browser.find_element(*by_css("#create-key-pair input[name=KeyName]")).send_keys("laptop")
    browser.find_element(*by_css("#create-key-pair button[type=submit]")).click()
    wait_for(browser, text_in("main table", "laptop"))
    pem = downloads / "laptop.pem"
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline and not (pem.exists() and pem.stat().st_size > 0):
        time.sleep(0.1)
    assert "PRIVATE KEY" in pem.read_text()
    pairs = server.client("ec2").describe_key_pairs()["KeyPairs"]
    assert "laptop" in [k["KeyName"] for k in pairs]


def test_the_focus_file_downloads_and_reads_as_a_table(site, browser, shots, downloads):
    """What the issue's new user does last: download this month's FOCUS file and open it."""
    import csv  # noqa: PLC0415
    from decimal import Decimal  # noqa: PLC0415

    from billing import focus  # noqa: PLC0415
    server, _ = site
    sign_in(browser, server)
    browser.get(f"{server.endpoint}/console/#costs")
    wait_for(browser, lambda d: d.find_elements(*by_css("#download-focus")))
    link = browser.find_element(*by_css("#download-focus"))
    name = link.get_attribute("download")
    link.click()
    target = downloads / name
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline and not (target.exists() and target.stat().st_size > 0):
        time.sleep(0.1)
    with open(target, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and set(focus.MANDATORY) <= set(rows[0])
    assert sum(Decimal(r["BilledCost"]) for r in rows) > 0
    assert {r["ServiceName"] for r in rows} >= {"Amazon Elastic Compute Cloud", "Amazon Simple Storage Service"}
