"""The execution viewer (`noetl_core/gateway/viewer.py`, `viewer/`): its login and cookie
rules over plain HTTP, then the pages in a real headless Chromium (Debian's `chromium`
and `chromium-driver`, which `make system-deps` installs) driven by selenium against
`noetl serve`'s server over the embedded runtime: log in through the one-time URL, list,
open a running execution, watch its steps turn done without a reload. Screenshots go to
`test-output/viewer/` (ignored by git)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from noetl_core import embedded, settings
from noetl_core.engine import entries as E
from noetl_core.gateway import tokens, viewer
from noetl_core.playbook import load_text
from noetl_core.runtime.block import Runtime
from noetl_core.serve import Server

from ..conftest import EXAMPLES, ROOT

pytestmark = pytest.mark.integration

SHOTS = ROOT / "test-output" / "viewer"

SLOW = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: slow_viewer, path: tests/slow_viewer}
workload:
  items: [1, 2, 3]
workflow:
  - step: start
    desc: wait a little, then go on
    tool: {kind: python, code: "import time; time.sleep(8); result = {'started': True}"}
    next:
      spec: {mode: inclusive}
      arcs: [{step: each}, {step: side}]
  - step: side
    tool: {kind: python, code: "import time; time.sleep(0.5); result = 'side'"}
    next: finish
  - step: each
    loop: {in: "{{ items }}", iterator: item, spec: {mode: sequential}}
    tool:
      kind: python
      input: {item: "{{ item }}"}
      code: "import time; time.sleep(0.4); result = item * 10"
    next: finish
  - step: finish
    tool:
      kind: python
      input: {values: "{{ each }}", side: "{{ side }}"}
      code: "import time; time.sleep(3); result = {'sum': sum(values)}"
"""

FLAKY = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: flaky_viewer, path: tests/flaky_viewer}
workflow:
  - step: start
    tool:
      kind: python
      input: {execution_id: "{{ execution_id }}"}
      code: |
        import os, tempfile
        path = os.path.join(tempfile.gettempdir(), f"noetl-viewer-flaky-{execution_id}")
        calls = 0
        if os.path.exists(path):
            with open(path) as fh:
                calls = int(fh.read())
        with open(path, "w") as fh:
            fh.write(str(calls + 1))
        if calls < 2:
            raise ConnectionError(f"flaky service unavailable (call {calls + 1})")
        os.remove(path)
        result = {"calls": calls + 1}
      spec:
        policy:
          rules:
            - when: "{{ output.status == 'error' }}"
              then: {do: retry, attempts: 5, backoff: exponential, delay: 0.05}
"""


class Viewed:
    def __init__(self, rt: Runtime, server: Server):
        self.rt, self.server, self.url = rt, server, server.url
        self.key = tokens.load_key(None, rt.settings.home)

    def token(self, *scopes: str) -> str:
        return tokens.create(self.key, "tester", list(scopes), ["*"], time.time())

    def start(self, path: str = "tests/slow_viewer") -> str:
        return self.rt.start(self.rt.catalog.resolve(path, None), {})

    def wait_ended(self, execution_id: str, within: float = 60) -> None:
        deadline = time.monotonic() + within
        while self.rt.log.get(E.terminal_id(execution_id)) is None:
            assert time.monotonic() < deadline, f"{execution_id} did not end"
            time.sleep(0.05)

    @contextlib.contextmanager
    def logged_in(self) -> Iterator[httpx.Client]:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            answer = client.get(self.server.login_url())
            assert answer.status_code == 303, answer.text
            assert viewer.COOKIE in client.cookies
            yield client


@pytest.fixture(scope="module")
def viewed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Viewed]:
    home = tmp_path_factory.mktemp("viewer") / "home"
    with embedded.runtime(settings.load({"NOETL_HOME": str(home)})) as rt:
        rt.catalog.register(EXAMPLES / "hello_world.yaml")
        for name in ("loops", "sub_playbook", "child_sum"):
            rt.catalog.register(EXAMPLES / f"{name}.yaml")
        rt.catalog.register_loaded(load_text(SLOW))
        rt.catalog.register_loaded(load_text(FLAKY))
        server = Server(rt).start()
        try:
            yield Viewed(rt, server)
        finally:
            server.stop()


# -- the login and the cookie over plain HTTP --------------------------------------------


def test_the_login_code_sets_a_read_cookie_once(viewed: Viewed) -> None:
    login = viewed.server.login_url()
    first = httpx.get(login)
    assert first.status_code == 303 and first.headers["location"] == "./"  # /viewer/
    cookie = first.headers["set-cookie"]
    assert cookie.startswith(viewer.COOKIE + "=")
    parts = {p.strip().lower() for p in cookie.split(";")}
    assert "httponly" in parts and "samesite=strict" in parts and "path=/" in parts
    value = cookie.split(";")[0].split("=", 1)[1]
    claims = tokens.verify(viewed.key, f"Bearer {value}", time.time())
    assert claims.scopes == {"read"}
    again = httpx.get(login)
    assert again.status_code == 401 and "set-cookie" not in again.headers
    assert httpx.get(viewed.url + "/viewer/login?code=made-up").status_code == 401
    assert httpx.get(viewed.url + "/viewer/login").status_code == 401


def test_a_login_code_expires_after_five_minutes(viewed: Viewed) -> None:
    logins = viewed.server.logins
    assert logins.ttl == 300
    login = viewed.server.login_url()
    real = logins.clock
    logins.clock = lambda: real() + 301
    try:
        late = httpx.get(login)
    finally:
        logins.clock = real
    assert late.status_code == 401 and "set-cookie" not in late.headers
    assert httpx.get(login).status_code == 401  # and it is gone: no second chance


def test_the_cookie_reads_but_never_starts_or_cancels(viewed: Viewed) -> None:
    execution_id = viewed.start("examples/hello_world")
    viewed.wait_ended(execution_id)
    with viewed.logged_in() as client:
        assert client.get("/v1/executions").status_code == 200
        assert client.get(f"/v1/executions/{execution_id}").status_code == 200
        graph = client.get(f"/v1/executions/{execution_id}/graph")
        assert graph.status_code == 200
        drawn = graph.json()
        assert drawn["status"] == "completed"
        assert all(s["status"] == "done" for s in drawn["steps"])
        entry = drawn["blocks"][-1]["entry_id"]
        detail = client.get(f"/v1/executions/{execution_id}/entries/{entry}")
        assert detail.status_code == 200 and "output" in detail.json()
        with client.stream("GET", f"/v1/executions/{execution_id}/events") as events:
            assert events.status_code == 200
            assert "event: terminal" in "".join(events.iter_text())
        assert client.get("/v1/catalog").status_code == 200
        # the same cookie on anything that changes state: no token, refused
        same_site = {"Origin": viewed.url, "Content-Type": "application/json"}
        start = client.post(
            "/v1/executions",
            content=json.dumps({"path": "examples/hello_world"}),
            headers=same_site,
        )
        assert start.status_code == 401
        cancel = client.post(f"/v1/executions/{execution_id}/cancel", headers=same_site)
        assert cancel.status_code == 401
        register = client.post("/v1/catalog", content='{"source": "x"}', headers=same_site)
        assert register.status_code == 401
        # and its token, sent as a bearer, is read-only
        value = client.cookies[viewer.COOKIE]
        bearer = {**same_site, "Authorization": f"Bearer {value}"}
        body = json.dumps({"path": "examples/hello_world"})
        assert client.post("/v1/executions", content=body, headers=bearer).status_code == 403
    forged = {viewer.COOKIE: viewed.token("read") + "x"}
    answer = httpx.get(viewed.url + "/v1/executions", cookies=forged)
    assert answer.status_code == 401


def test_a_pasted_read_token_signs_in_with_its_paths_and_expiry(viewed: Viewed) -> None:
    """`POST /viewer/session`: how a browser signs in where no login link is printed (the
    deployed gateway). The cookie keeps the pasted token's subject, paths and expiry, and
    only its read scope; the route needs the bearer header and the read scope."""
    viewed.rt.catalog.register(EXAMPLES / "loops.yaml")
    hello = viewed.start("examples/hello_world")
    loops = viewed.start("examples/loops")
    viewed.wait_ended(hello), viewed.wait_ended(loops)
    now = time.time()
    pasted = tokens.create(
        viewed.key, "ana", ["read", "invoke"], ["examples/hello_*"], now, ttl=600
    )
    same_site = {"Origin": viewed.url, "Content-Type": "application/json"}
    with httpx.Client(base_url=viewed.url, timeout=30) as client:
        signed = client.post(
            "/viewer/session",
            content="{}",
            headers={**same_site, "Authorization": f"Bearer {pasted}"},
        )
        assert signed.status_code == 200, signed.text
        assert signed.json()["subject"] == "ana"
        cookie = signed.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
        claims = tokens.verify(viewed.key, f"Bearer {client.cookies[viewer.COOKIE]}", now)
        assert claims.subject == "ana" and claims.scopes == {"read"}
        assert claims.paths == ("examples/hello_*",) and claims.expires <= now + 601
        listed = client.get("/v1/executions").json()["executions"]
        assert {e["execution_id"] for e in listed} >= {hello}
        assert all(e["path"] == "examples/hello_world" for e in listed)
        assert client.get(f"/v1/executions/{hello}/graph").status_code == 200
        assert client.get(f"/v1/executions/{loops}/graph").status_code == 403
        body = json.dumps({"path": "examples/hello_world"})
        assert client.post("/v1/executions", content=body, headers=same_site).status_code == 401
        # the cookie alone does not make another session; signing out clears it
        assert client.post("/viewer/session", content="{}", headers=same_site).status_code == 401
        out = client.delete("/viewer/session", headers=same_site)
        assert out.status_code == 204 and viewer.COOKIE not in client.cookies
        assert client.get("/v1/executions").status_code == 401
    invoke_only = tokens.create(viewed.key, "bot", ["invoke"], ["*"], now)
    refused = httpx.post(
        viewed.url + "/viewer/session",
        content="{}",
        headers={**same_site, "Authorization": f"Bearer {invoke_only}"},
    )
    assert refused.status_code == 403 and "read" in refused.json()["error"]["message"]
    forged = httpx.post(
        viewed.url + "/viewer/session",
        content="{}",
        headers={**same_site, "Authorization": f"Bearer {pasted}x"},
    )
    assert forged.status_code == 401 and "set-cookie" not in forged.headers
    late = tokens.create(viewed.key, "old", ["read"], ["*"], now - 7200, ttl=3600)
    expired = httpx.post(
        viewed.url + "/viewer/session",
        content="{}",
        headers={**same_site, "Authorization": f"Bearer {late}"},
    )
    assert expired.status_code == 401 and "expired" in expired.text
    cross = httpx.post(
        viewed.url + "/viewer/session",
        content="{}",
        headers={
            "Origin": "https://evil.example",
            "Content-Type": "application/json",
            "Authorization": f"Bearer {pasted}",
        },
    )
    assert cross.status_code == 403  # noetl serve's cross-site rule holds here too


def test_the_graph_counts_loops_retries_and_children(viewed: Viewed) -> None:
    started = {name: viewed.start(f"examples/{name}") for name in ("loops", "sub_playbook")}
    started["retry"] = viewed.start("tests/flaky_viewer")
    for execution_id in started.values():
        viewed.wait_ended(execution_id)
    read = {"Authorization": f"Bearer {viewed.token('read')}"}

    def graph(name: str) -> dict[str, Any]:
        answer = httpx.get(f"{viewed.url}/v1/executions/{started[name]}/graph", headers=read)
        assert answer.status_code == 200
        drawn: dict[str, Any] = answer.json()
        assert drawn["status"] == "completed"
        return drawn

    loops = {s["name"]: s for s in graph("loops")["steps"]}
    assert loops["start"]["loop"] and loops["start"]["loop_length"] == 8
    assert loops["squares"]["iterations_done"] == 8 and loops["total"]["status"] == "done"
    assert [(a["from"], a["to"]) for a in graph("loops")["arcs"]] == [
        ("start", "squares"),
        ("squares", "total"),
    ]
    retry = graph("retry")
    flaky = next(s for s in retry["steps"] if s["name"] == "start")
    assert flaky["attempts"] == 3 and flaky["retries"] == 2 and flaky["status"] == "done"
    failed = next(b for b in retry["blocks"] if b["status"] == "retry")
    detail = httpx.get(
        f"{viewed.url}/v1/executions/{started['retry']}/entries/{failed['entry_id']}",
        headers=read,
    ).json()
    assert "flaky service unavailable" in json.dumps(detail["error"])
    assert detail["input"] == {"execution_id": "{{ execution_id }}"}  # as declared
    parent = graph("sub_playbook")
    call = next(s for s in parent["steps"] if s["name"] == "start")
    assert call["tool"] == "playbook" and call["child_path"] == "examples/child_sum"
    assert len(call["children"]) == 1
    child = httpx.get(f"{viewed.url}/v1/executions/{call['children'][0]}/graph", headers=read)
    assert child.json()["parent_execution_id"] == started["sub_playbook"]
    # an entry is shown only under its own execution (whose path the token may read)
    elsewhere = f"{viewed.url}/v1/executions/{started['loops']}/entries/{failed['entry_id']}"
    assert httpx.get(elsewhere, headers=read).status_code == 404
    narrow = tokens.create(viewed.key, "t", ["read"], ["examples/loops"], time.time())
    refused = httpx.get(
        f"{viewed.url}/v1/executions/{started['retry']}/graph",
        headers={"Authorization": f"Bearer {narrow}"},
    )
    assert refused.status_code == 403


def test_the_pages_are_served_with_a_strict_policy(viewed: Viewed) -> None:
    page = httpx.get(viewed.url + "/viewer/")
    assert page.status_code == 200 and '<script src="app.js">' in page.text
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert page.headers["referrer-policy"] == "no-referrer"
    assert httpx.get(viewed.url + "/viewer").headers["location"] == "viewer/"
    script = httpx.get(viewed.url + "/viewer/app.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert httpx.get(viewed.url + "/viewer/style.css").status_code == 200
    assert httpx.get(viewed.url + "/viewer/secrets.txt").status_code == 404
    assert httpx.get(viewed.url + "/viewer/..%2Fapp.py").status_code == 404
    # the page reads with its cookie and follows events through fetch(): no token and
    # no EventSource (which could carry one only in its URL) anywhere in it
    assert "EventSource(" not in script.text and "?token" not in script.text
    assert "access_token" not in script.text


def test_noetl_serve_prints_a_one_time_login_url(tmp_path: Path) -> None:
    import subprocess
    import sys

    from emulators.processes import free_port

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "noetl_core.cli", "serve", "--port", str(port)],
        cwd=ROOT,
        env={**os.environ, "NOETL_HOME": str(tmp_path / "home")},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 60
        line = ""
        while "viewer:" not in line:
            assert time.monotonic() < deadline and process.poll() is None, line
            line = process.stdout.readline()
        url = line.split("viewer:", 1)[1].split()[0]
        assert url.startswith(f"http://127.0.0.1:{port}/viewer/login?code=")
        assert httpx.get(url).status_code == 303
        assert httpx.get(url).status_code == 401
    finally:
        process.terminate()
        process.communicate(timeout=30)


# -- the pages in a real browser ---------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    assert chromium and driver_path, (
        "headless Chromium and its driver are needed: `make system-deps` installs Debian's "
        "chromium and chromium-driver"
    )
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",  # root in a container
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1440,1000",
        "--no-first-run",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def until(what: Callable[[], Any], within: float = 30, why: str = "") -> Any:
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException

    deadline = time.monotonic() + within
    while True:
        try:
            found = what()
            if found:
                return found
        except (StaleElementReferenceException, WebDriverException):
            pass
        assert time.monotonic() < deadline, f"timed out: {why}"
        time.sleep(0.1)


def node_status(driver: Any, step: str) -> str | None:
    """Read in one script: the page redraws its graph on every event."""
    found: str | None = driver.execute_script(
        "const n = document.querySelector(arguments[0]);"
        "return n ? n.getAttribute('data-status') : null",
        f'#graph g.node[data-step="{step}"]',
    )
    return found


def text(driver: Any, selector: str) -> str:
    found: str | None = driver.execute_script(
        "const n = document.querySelector(arguments[0]); return n ? n.textContent : null",
        selector,
    )
    return found or ""


def click(driver: Any, selector: str, why: str) -> None:
    from selenium.webdriver.common.by import By

    def clicked() -> bool:
        driver.find_element(By.CSS_SELECTOR, selector).click()
        return True

    until(clicked, why=why)


def test_the_viewer_shows_a_running_execution_live(viewed: Viewed, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    SHOTS.mkdir(parents=True, exist_ok=True)
    done_id = viewed.start("examples/loops")
    viewed.wait_ended(done_id)
    execution_id = viewed.start()

    browser.get(viewed.server.login_url())
    until(lambda: browser.current_url == viewed.url + "/viewer/", why="the login redirect")
    browser.execute_script("performance.setResourceTimingBufferSize(100000)")
    row = f'#executions tr[data-execution="{execution_id}"]'
    until(lambda: browser.find_elements(By.CSS_SELECTOR, row), why="the execution listed")
    assert browser.find_elements(By.CSS_SELECTOR, f'#executions tr[data-execution="{done_id}"]')
    browser.save_screenshot(str(SHOTS / "1-list.png"))

    click(browser, row + " a", why="clicking the execution")
    until(lambda: node_status(browser, "start") == "running", why="step start running")
    assert node_status(browser, "each") == "pending"
    assert node_status(browser, "side") == "pending"
    assert node_status(browser, "finish") == "pending"
    assert text(browser, "#execution-status .badge") == "running"
    browser.execute_script("window.__noReload = 'still the same page';")
    browser.save_screenshot(str(SHOTS / "2-running.png"))

    # the page changes as the execution runs, with no reload
    until(lambda: node_status(browser, "start") == "done", within=60, why="start done")
    until(lambda: node_status(browser, "each") in ("running", "done"), why="the loop starts")
    assert "loop" in text(browser, '#graph g.node[data-step="each"]')
    until(lambda: node_status(browser, "finish") == "running", within=60, why="finish runs")
    browser.save_screenshot(str(SHOTS / "3-later.png"))
    until(lambda: node_status(browser, "finish") == "done", within=60, why="finish done")
    until(
        lambda: text(browser, "#execution-status .badge") == "completed",
        why="the execution completed",
    )
    assert browser.execute_script("return window.__noReload") == "still the same page"
    assert "loop 3/3" in text(browser, '#graph g.node[data-step="each"]')
    rows = browser.execute_script("return document.querySelectorAll('#timeline .tl-row').length")
    assert rows >= 7  # start, the loop, its 3 iterations, side, finish
    assert node_status(browser, "side") == "done"

    # a block's output on click
    click(browser, '#graph g.node[data-step="finish"]', why="clicking step finish")
    # the placeholder mentions "output" too: wait for the block's own heading and fields
    details = until(
        lambda: (
            (shown := text(browser, "#details")).startswith("finish")
            and "events" in shown
            and shown
        ),
        why="the details of finish",
    )
    assert "output" in details and '"sum": 60' in details
    browser.save_screenshot(str(SHOTS / "4-done.png"))

    # no token in any URL the page asked for, nor in anything the page's script sees
    cookie = browser.get_cookie(viewer.COOKIE)
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    asked: list[str] = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name).concat([location.href])"
    )
    assert any("/events" in url for url in asked) and any("/graph" in url for url in asked)
    for url in asked:
        assert cookie["value"] not in url and "token" not in url.lower(), url
    assert browser.execute_script("return document.cookie") == ""  # HttpOnly

    # the catalog page: no start form until an invoke token is pasted
    browser.get(viewed.url + "/viewer/#/catalog")
    until(lambda: "tests/slow_viewer" in text(browser, "#catalog"), why="the catalog")
    assert not browser.find_elements(By.CSS_SELECTOR, "#catalog textarea")
    browser.find_element(By.ID, "invoke-token").send_keys(viewed.token("invoke"))
    until(lambda: browser.find_elements(By.CSS_SELECTOR, "#catalog textarea"))
    browser.save_screenshot(str(SHOTS / "5-catalog.png"))
    # ... and then starts one with the pasted token, as a bearer header, with the workload
    # typed before the token was edited again (the forms are drawn again, what was typed stays)
    item = '#catalog .catalog-item[data-path="examples/hello_world"]'
    box = browser.find_element(By.CSS_SELECTOR, item + " textarea")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys('{"name": "Grace"}')
    token_box = browser.find_element(By.ID, "invoke-token")
    token_box.send_keys(Keys.CONTROL, "a")
    token_box.send_keys(Keys.BACKSPACE)  # typed, so the page sees it
    until(lambda: not browser.find_elements(By.CSS_SELECTOR, "#catalog textarea"))
    token_box.send_keys(viewed.token("invoke"))
    until(lambda: browser.find_elements(By.CSS_SELECTOR, item + " textarea"))
    typed = browser.find_element(By.CSS_SELECTOR, item + " textarea").get_attribute("value")
    assert typed == '{"name": "Grace"}'
    click(browser, item + " button", why="clicking Start")
    until(lambda: "#/e/" in browser.current_url, why="the started execution's page")
    until(
        lambda: text(browser, "#execution-status .badge") == "completed",
        why="the started execution completed",
    )
    result = until(lambda: text(browser, "#result"), why="the result shown")
    assert "HELLO, GRACE!" in result, result
    # a block's stdout on click (what its code printed)
    click(browser, '#graph g.node[data-step="greet"]', why="clicking step greet")
    details = until(
        lambda: (
            (shown := text(browser, "#details")).startswith("greet") and "events" in shown and shown
        ),
        why="the details of greet",
    )
    assert "stdout" in details and "greeting Grace" in details, details
    if os.environ.get("NOETL_VIEWER_DOCS_SHOT"):  # refreshes docs/viewer.png on demand
        shutil.copyfile(SHOTS / "3-later.png", ROOT / "docs" / "viewer.png")


def test_the_page_signs_in_with_a_pasted_read_token_and_out_again(
    viewed: Viewed, browser: Any
) -> None:
    """Where no login link is printed (the deployed gateway), the page asks for a read
    token, trades it for the cookie, and forgets it; Sign out clears the cookie."""
    from selenium.webdriver.common.by import By

    SHOTS.mkdir(parents=True, exist_ok=True)
    execution_id = viewed.start("examples/hello_world")
    viewed.wait_ended(execution_id)
    browser.get(viewed.url + "/viewer/")
    browser.delete_all_cookies()
    browser.refresh()
    until(lambda: "Not signed in" in text(browser, "#error"), why="the sign-in prompt")
    browser.save_screenshot(str(SHOTS / "6-sign-in.png"))
    field = browser.find_element(By.ID, "sign-in-token")
    field.send_keys(viewed.token("invoke"))  # no read scope: refused, said in the form
    browser.find_element(By.CSS_SELECTOR, "#sign-in button").click()
    until(lambda: "refused (403)" in text(browser, "#sign-in"), why="the refusal")
    assert browser.get_cookie(viewer.COOKIE) is None
    field = browser.find_element(By.ID, "sign-in-token")
    field.send_keys(viewed.token("read"))
    browser.find_element(By.CSS_SELECTOR, "#sign-in button").click()
    row = f'#executions tr[data-execution="{execution_id}"]'
    until(lambda: browser.find_elements(By.CSS_SELECTOR, row), why="signed in: the list")
    cookie = browser.get_cookie(viewer.COOKIE)
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert browser.execute_script("return document.cookie") == ""
    assert not browser.find_elements(By.ID, "sign-in-token")  # the pasted token is gone
    click(browser, "#sign-out", why="Sign out")
    until(lambda: "Not signed in" in text(browser, "#error"), why="signed out")
    assert browser.get_cookie(viewer.COOKIE) is None


FANNED = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: fanned_viewer, path: tests/fanned_viewer}
workflow:
  - step: start
    tool: {kind: noop}
    next:
      spec: {mode: inclusive}
      arcs: [{step: a}, {step: b}, {step: c}, {step: d}]
  - step: a
    tool: {kind: python, code: "import time; time.sleep(3); result = 1"}
  - step: b
    tool: {kind: python, code: "import time; time.sleep(3); result = 2"}
  - step: c
    tool: {kind: python, code: "import time; time.sleep(3); result = 3"}
  - step: d
    tool: {kind: python, code: "import time; time.sleep(3); result = 4"}
"""


def test_blocks_no_worker_has_taken_are_queued_not_running(tmp_path: Path) -> None:
    """Two workers, four steps ready at once: the graph shows two running and two queued
    (the embedded log writes claims with records, so this process's own workers say
    which run); where claims are written first (the shared backends), an issued command
    without a claim is queued."""
    conf = settings.load({"NOETL_HOME": str(tmp_path / "home"), "NOETL_WORKERS": "2"})
    with embedded.runtime(conf) as rt:
        execution_id = rt.start(load_text(FANNED), {})

        def statuses() -> dict[str, str]:
            drawn = viewer.graph_of(rt, execution_id)
            return {s["name"]: s["status"] for s in drawn["steps"]}

        seen = until(
            lambda: (
                sorted(statuses()[s] for s in "abcd") == ["queued"] * 2 + ["running"] * 2
                and statuses()
            ),
            why="two running, two queued",
        )
        assert seen["start"] == "done"
        entries = rt.log.entries(execution_id)
        rows = viewer._blocks(entries, time.time(), claims_first=True)
        open_rows = [r for r in rows if r["step"] in ("a", "b", "c", "d") and r["end"] is None]
        assert open_rows and all(r["status"] == "queued" for r in open_rows)
        elsewhere = viewer._blocks(entries, time.time(), here=None)  # another process runs it
        assert all(r["status"] == "running" for r in elsewhere if r["end"] is None)
        assert rt.wait(execution_id, 60) is not None
        ended = viewer.graph_of(rt, execution_id)
        assert {s["status"] for s in ended["steps"]} == {"done"}


def test_loops_and_children_fold_in_the_timeline(viewed: Viewed, browser: Any) -> None:
    """A loop's iterations sit under its row, folded when there are more than 20; a
    sub-playbook's step unfolds into its child's blocks; each group row has its counts."""
    from selenium.webdriver.common.by import By

    SHOTS.mkdir(parents=True, exist_ok=True)
    numbers = list(range(25))
    wide = viewed.rt.start(viewed.rt.catalog.resolve("examples/loops", None), {"numbers": numbers})
    parent = viewed.start("examples/sub_playbook")
    viewed.wait_ended(wide), viewed.wait_ended(parent)
    browser.get(viewed.server.login_url())
    until(lambda: browser.current_url == viewed.url + "/viewer/", why="the login redirect")

    def rows(step: str) -> list[Any]:
        found: list[Any] = browser.find_elements(
            By.CSS_SELECTOR, f'#timeline .tl-row[data-step="{step}"]'
        )
        return found

    browser.get(f"{viewed.url}/viewer/#/e/{wide}")
    until(lambda: text(browser, "#execution-status .badge") == "completed", why="the loop run")
    until(lambda: rows("squares"), why="the loop's row")
    assert len(rows("squares")) == 1  # 25 iterations: folded under the loop's row
    assert "25/25 done" in rows("squares")[0].text
    click(browser, '#timeline .tl-row[data-step="squares"] .tl-toggle', why="unfolding the loop")
    until(lambda: len(rows("squares")) == 26, why="the 25 iterations shown")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#timeline .tl-row.nested")) == 25
    click(browser, '#timeline .tl-row[data-step="squares"] .tl-toggle', why="folding it again")
    until(lambda: len(rows("squares")) == 1, why="folded again")

    browser.get(f"{viewed.url}/viewer/#/e/{parent}")
    until(lambda: text(browser, "#execution-status .badge") == "completed", why="the parent")
    until(lambda: browser.find_elements(By.CSS_SELECTOR, "#timeline .tl-toggle"), why="a fold")
    assert not browser.find_elements(By.CSS_SELECTOR, "#timeline .tl-row.child")
    click(browser, "#timeline .tl-toggle", why="unfolding the child execution")
    until(
        lambda: len(browser.find_elements(By.CSS_SELECTOR, "#timeline .tl-row.child")) >= 2,
        why="the child's blocks",
    )
    assert "completed" in text(browser, "#timeline")
    browser.save_screenshot(str(SHOTS / "7-child-unfolded.png"))
