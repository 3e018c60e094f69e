"""Drives the admin UI in headless Chromium through chromedriver (Selenium's WebDriver client).

Run by tests/ui_browser.rs, which starts the gateway and a fake upstream and passes:
    ui_browser.py BASE_URL MASTER_KEY SHOTS_DIR CHROMIUM CHROMEDRIVER
Prints one JSON line on success ({"key": ..., "team_id": ..., ...}); any failed step raises.
"""

import json
import os
import shutil
import sys
import tempfile
import time
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

BASE, MASTER, SHOTS, CHROMIUM, CHROMEDRIVER = sys.argv[1:6]
os.makedirs(SHOTS, exist_ok=True)


def log(msg):
    print(f"[ui_browser] {msg}", file=sys.stderr, flush=True)


def start():
    profile = tempfile.mkdtemp(prefix="llmgate-ui-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--window-size=1280,900",
    ]:
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # The driver is given: Selenium Manager never downloads one.
    service = Service(executable_path=CHROMEDRIVER)
    return webdriver.Chrome(service=service, options=opts), profile


driver, profile = start()
wait = WebDriverWait(driver, 20, ignored_exceptions=[StaleElementReferenceException])


def shot(name):
    path = os.path.join(SHOTS, f"{name}.png")
    driver.save_screenshot(path)
    log(f"screenshot {path}")


def page_ready(name):
    """Waits until the page `name` has drawn (app.js sets data-ready when a page's draw ends)."""
    wait.until(lambda d: d.find_element(By.ID, "page").get_attribute("data-ready") == name)


def go(name):
    driver.execute_script("document.getElementById('page').removeAttribute('data-ready')")
    # Same hash: no hashchange fires by itself, so the page is asked to redraw.
    driver.execute_script(
        "const h = arguments[0];"
        "if (location.hash === h) window.dispatchEvent(new HashChangeEvent('hashchange'));"
        "else location.hash = h;",
        f"#/{name}",
    )
    page_ready(name)


def no_errors_shown():
    errs = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#page .error") if e.text.strip()]
    assert not errs, f"the page shows errors: {errs}"


def console_errors():
    try:
        # A refused sign-in (401) and a route this server lacks (404) are logged as failed loads:
        # expected here. Anything else (a script error, a CSP violation) fails the test.
        return [
            e
            for e in driver.get_log("browser")
            if e.get("level") == "SEVERE" and "Failed to load resource" not in e.get("message", "")
        ]
    except Exception:  # noqa: BLE001 - not every driver keeps the log
        return []


def row_with(text):
    """The table row holding `text` (None while a redraw replaces the rows)."""
    try:
        for tr in driver.find_elements(By.CSS_SELECTOR, "#page tbody tr"):
            if text in tr.text:
                return tr
    except StaleElementReferenceException:
        return None
    return None


def row_text(text):
    row = row_with(text)
    try:
        return row.text if row else ""
    except StaleElementReferenceException:
        return ""


try:
    # ---- sign in with the master key ----
    driver.get(f"{BASE}/ui/")
    wait.until(ec.visibility_of_element_located((By.ID, "signin-form")))
    assert driver.find_element(By.CSS_SELECTOR, "label[for=password]").text == "Master key"
    shot("signin")
    driver.find_element(By.ID, "password").send_keys("sk-wrong")
    driver.find_element(By.CSS_SELECTOR, "#signin-form button[type=submit]").click()
    wait.until(lambda d: "Invalid credentials" in d.find_element(By.ID, "signin-error").text)
    pw = driver.find_element(By.ID, "password")
    pw.clear()
    pw.send_keys(MASTER)
    driver.find_element(By.CSS_SELECTOR, "#signin-form button[type=submit]").click()
    page_ready("keys")
    assert "proxy_admin" in driver.find_element(By.ID, "who").text
    stored = driver.execute_script("return sessionStorage.getItem('llmgate.session')")
    assert stored and MASTER not in stored, "the master key itself is never stored"
    log("signed in")

    # ---- a team ----
    go("teams")
    form = driver.find_element(By.ID, "new-team")
    form.find_element(By.NAME, "team_alias").send_keys("Search")
    form.find_element(By.NAME, "team_id").send_keys("team-search")
    form.find_element(By.NAME, "max_budget").send_keys("50")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(lambda d: row_with("team-search") is not None)
    no_errors_shown()
    log("team created")
    [b for b in row_with("team-search").find_elements(By.TAG_NAME, "button") if b.text == "Members"][0].click()
    panel = wait.until(ec.visibility_of_element_located((By.ID, "mt")))
    assert "Search" in panel.text
    add = driver.find_element(By.CSS_SELECTOR, "form[aria-label='Add a member']")
    add.find_element(By.NAME, "user_id").send_keys("default_user_id")
    add.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(lambda d: "default_user_id" in d.find_element(By.CSS_SELECTOR, "section[aria-labelledby=mt] tbody").text)
    no_errors_shown()
    shot("teams")
    log("member added")

    # ---- a key in it; the secret is shown once ----
    go("keys")
    form = driver.find_element(By.ID, "new-key")
    form.find_element(By.NAME, "key_alias").send_keys("search-svc")
    wait.until(lambda d: len(Select(d.find_element(By.ID, "new-key-team")).options) > 1)
    Select(driver.find_element(By.ID, "new-key-team")).select_by_value("team-search")
    form.find_element(By.NAME, "max_budget").send_keys("10")
    form.find_element(By.NAME, "tpm_limit").send_keys("100000")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    secret_el = wait.until(ec.visibility_of_element_located((By.ID, "new-key-secret")))
    secret = secret_el.text.strip()
    assert secret.startswith("sk-"), secret
    wait.until(lambda d: row_with("search-svc") is not None)
    assert "team-search" in row_text("search-svc"), row_text("search-svc")
    shot("keys-created")
    driver.find_element(By.ID, "dismiss-secret").click()
    assert not driver.find_elements(By.ID, "new-key-secret"), "the secret is gone once dismissed"
    log("key created")

    # ---- a chat call with that key, over HTTP, to the fake upstream ----
    req = urllib.request.Request(
        f"{BASE}/v1/chat/completions",
        data=json.dumps({"model": "g", "messages": [{"role": "user", "content": "hi"}]}).encode(),
        headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=20) as resp:
        assert resp.status == 200, resp.status
        answer = json.loads(resp.read())
    assert answer["choices"][0]["message"]["content"], answer
    log("chat call answered")

    # ---- its spend on the keys page (the spend writer lingers ~0.5 s) ----
    spend_text = ""
    deadline = time.time() + 30
    while time.time() < deadline:
        go("keys")
        row = row_with("search-svc")
        spend_text = row.find_element(By.CSS_SELECTOR, ".spend").text if row else ""
        if spend_text and float(spend_text.lstrip("$")) > 0:
            break
        time.sleep(0.5)
    assert spend_text and float(spend_text.lstrip("$")) > 0, f"no spend on the keys page: {spend_text!r}"
    shot("keys")
    log(f"spend on the keys page: {spend_text}")

    # ---- the edit dialog changes a limit ----
    row = row_with("search-svc")
    [b for b in row.find_elements(By.TAG_NAME, "button") if b.text == "Edit"][0].click()
    dlg = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "dialog[open]")))
    rpm = dlg.find_element(By.NAME, "rpm_limit")
    rpm.clear()
    rpm.send_keys("77")
    dlg.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, "dialog[open]"))
    wait.until(lambda d: "77 rpm" in row_text("search-svc"))
    log("key edited")

    # ---- the logs page, filtered by the key ----
    go("logs")
    wait.until(lambda d: row_with("search-svc") is not None)
    f = driver.find_element(By.ID, "log-filters")
    f.find_element(By.NAME, "api_key").send_keys(secret)
    driver.execute_script("document.getElementById('page').removeAttribute('data-ready')")
    f.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(lambda d: "success" in row_text("search-svc"))
    rows = driver.find_elements(By.CSS_SELECTOR, "#page tbody tr")
    assert len(rows) == 1, [r.text for r in rows]
    no_errors_shown()
    shot("logs")
    log("the call is in the logs")

    # ---- spend charts ----
    go("spend")
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#page svg.chart")) >= 2)
    assert driver.find_elements(By.CSS_SELECTOR, "#page svg.chart path.line"), "a line is drawn"
    legend = " ".join(e.text for e in driver.find_elements(By.CSS_SELECTOR, "#page .legend"))
    assert "search-svc" in legend and "g" in legend, legend
    no_errors_shown()
    shot("spend")

    # ---- models and their health ----
    go("models")
    driver.find_element(By.ID, "run-health").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#page .badge.ok, #page .badge.bad"))
    shot("models")

    # ---- users, organizations, end users ----
    go("users")
    wait.until(lambda d: row_with("default_user_id") is not None)
    for name in ["organizations", "customers"]:
        go(name)
        body = driver.find_element(By.ID, "page").text
        assert "not available" in body or driver.find_elements(By.CSS_SELECTOR, "#page table"), body
        shot(name)

    # ---- a phone-width viewport ----
    driver.set_window_size(390, 844)
    go("keys")
    width = driver.execute_script("return window.innerWidth")
    scroll = driver.execute_script("return document.documentElement.scrollWidth")
    assert scroll <= width + 1, f"the keys page scrolls sideways on a phone: {scroll} > {width}"
    display = driver.execute_script(
        "return getComputedStyle(document.querySelector('#page thead')).display")
    assert display == "none", f"on a phone the table rows are cards: thead is {display}"
    nav = driver.find_element(By.ID, "nav")
    assert nav.is_displayed()
    shot("keys-phone")
    go("spend")
    scroll = driver.execute_script("return document.documentElement.scrollWidth")
    assert scroll <= width + 1, f"the spend page scrolls sideways on a phone: {scroll} > {width}"
    shot("spend-phone")
    driver.set_window_size(1280, 900)

    # ---- a user with a password, made on the users page, signs in with their role ----
    go("users")
    form = driver.find_element(By.ID, "new-user")
    form.find_element(By.NAME, "user_id").send_keys("ann")
    form.find_element(By.NAME, "user_email").send_keys("ann@example.com")
    Select(form.find_element(By.NAME, "user_role")).select_by_value("internal_user")
    form.find_element(By.NAME, "password").send_keys("ann-pw-1")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(lambda d: row_with("ann@example.com") is not None)
    no_errors_shown()
    shot("users")

    # ---- sign out: the session key is deleted ----
    session = json.loads(driver.execute_script("return sessionStorage.getItem('llmgate.session')"))
    driver.find_element(By.ID, "logout").click()
    wait.until(ec.visibility_of_element_located((By.ID, "signin-form")))
    assert driver.execute_script("return sessionStorage.getItem('llmgate.session')") is None

    driver.find_element(By.CSS_SELECTOR, "input[name=mode][value=user]").click()
    user_field = driver.find_element(By.ID, "username")
    assert user_field.is_displayed()
    user_field.clear()
    user_field.send_keys("ann@example.com")
    driver.find_element(By.ID, "password").send_keys("ann-pw-1")
    driver.find_element(By.CSS_SELECTOR, "#signin-form button[type=submit]").click()
    page_ready("keys")
    assert "ann (internal_user)" in driver.find_element(By.ID, "who").text
    no_errors_shown()  # an internal user's keys page lists their own keys, without a 403
    driver.find_element(By.ID, "logout").click()
    wait.until(ec.visibility_of_element_located((By.ID, "signin-form")))
    log("a user signed in with their password and role")

    severe = console_errors()
    assert not severe, f"console errors: {severe}"
    print(json.dumps({"key": secret, "session_key": session["key"], "spend_text": spend_text}))
except Exception:
    try:
        shot("failure")
        log("page text at failure:\n" + driver.find_element(By.TAG_NAME, "body").text)
        log(f"console: {console_errors()}")
    except Exception:  # noqa: BLE001
        pass
    raise
finally:
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)
