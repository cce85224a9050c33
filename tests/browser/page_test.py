"""The page of `rhaiflow serve` in a real browser (Debian's chromium, driven by Playwright):
submits a workflow through the form, watches its tasks go from pending to succeeded and one
to failed (each change a class on the same element), opens a task's detail, sees the list
follow a new execution live, and times the drawing of a 2,000-task graph.

Run by scripts/browser-test: python page_test.py BASE_URL MANY_TASKS_ID OUT_DIR RHAIFLOW STORE
(the binary and the store, to make the role token the login uses, last)
"""

import os
import re
import subprocess
import sys
import time

from playwright.sync_api import expect, sync_playwright

WAIT_MS = 20_000
RENDER_BUDGET_MS = 1_000


def state(name):
    return re.compile(rf"(^|\s)s-{name}(\s|$)")


def main(base, many_id, out, rhaiflow, store):
    with sync_playwright() as playwright:
        args = ["--no-sandbox"] if os.geteuid() == 0 else []
        browser = launch(playwright, args)
        page = browser.new_page(viewport={"width": 1440, "height": 760})
        page.set_default_timeout(WAIT_MS)
        expect.set_options(timeout=WAIT_MS)
        failures = []
        page.on("pageerror", lambda error: failures.append(str(error)))
        try:
            submitted = submit_and_watch(page, base, out)
            list_follows_live(page, base, submitted)
            render_large(page, base, many_id)
            cancel_resume_and_delete(page, base)
            login_as_a_viewer(page, base, rhaiflow, store)
        finally:
            browser.close()
        assert not failures, f"errors in the page: {failures}"


def launch(playwright, args):
    """Chromium, tried three times: on a loaded machine its first start can fail."""
    for attempt in range(3):
        try:
            return playwright.chromium.launch(executable_path="/usr/bin/chromium", args=args, timeout=WAIT_MS)
        except Exception as error:  # noqa: BLE001 - Playwright's errors have no common base to name
            if attempt == 2:
                raise
            print(f"chromium did not start ({error.__class__.__name__}), trying again", file=sys.stderr)


def poll(page, expression):
    """The expression's value once it is not null (wait_for_function would need the eval the
    page's Content-Security-Policy forbids)."""
    for _ in range(WAIT_MS // 100):
        value = page.evaluate(expression)
        if value is not None:
            return value
        page.wait_for_timeout(100)
    raise AssertionError(f"never true: {expression}")


def submit_and_watch(page, base, out):
    page.goto(f"{base}/")
    expect(page.locator("table.executions tbody tr")).to_have_count(1)
    page.click("header >> text=Run a workflow")
    page.select_option("select[name=workflow]", label="page_demo · demo")
    page.fill("#p-name", "ada")
    page.click("form#run button[type=submit]")
    expect(page).to_have_url(re.compile(r"#/executions/[0-9a-f-]+$"))
    node = lambda name: page.locator(f'.canvas .node[title="{name}"]')
    # `warm_up` holds the rest back for two seconds: they are seen pending first.
    expect(node("greet")).to_have_class(state("pending"))
    expect(node("report")).to_have_class(state("pending"))
    page.evaluate("window.greetNode = document.querySelector('.canvas .node[title=\"greet\"]')")
    expect(node("greet")).to_have_class(state("succeeded"))
    expect(node("flaky")).to_have_class(state("failed"))
    expect(node("checks")).to_have_class(state("succeeded"))
    expect(node("flaky").locator(".st")).to_be_visible()
    kept = page.evaluate("window.greetNode.isConnected && window.greetNode.classList.contains('s-succeeded')")
    assert kept, "the node was drawn again instead of its class changing"
    expect(page.locator("#status")).to_have_text("failed")
    # A result with color, shape and label styles its node and shows its value.
    expect(node("paint")).to_have_class(re.compile("shape-circle"))
    expect(node("paint").locator(".name")).to_have_text("painted")
    expect(node("paint").locator(".val")).to_have_text("42")
    # The same tasks as a table, and back.
    page.click("#view")
    expect(page.locator("table.tasks tr.node")).to_have_count(8)
    expect(page.locator('table.tasks tr.node:has(td:text-is("flaky"))')).to_have_class(state("failed"))
    page.click("#view")
    expect(page.locator(".canvas .node")).to_have_count(8)
    # A subgraph's box folds: its members hidden, then shown again.
    page.click('.box .fold:text("checks")')
    expect(node("lint")).to_be_hidden()
    page.click('.box .fold:text("checks")')
    expect(node("lint")).to_be_visible()
    node("flaky").click()
    detail = page.locator("#task")
    expect(detail.locator("h2")).to_have_text("flaky")
    expect(detail.locator("pre.error")).to_contain_text("exited with code 3")
    expect(detail.locator(".output")).to_contain_text("about to fail")
    expect(detail.locator(".attempts")).to_have_text("1")
    page.click(".zoom >> text=Fit")
    page.screenshot(path=os.path.join(out, "serve-page.png"), clip={"x": 0, "y": 0, "width": 1440, "height": 510})
    print(f"screenshot: {os.path.join(out, 'serve-page.png')}")
    return page.evaluate("decodeURIComponent(location.hash.split('/')[2])")


def list_follows_live(page, base, submitted):
    page.goto(f"{base}/#/")
    rows = page.locator("table.executions tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_have_attribute("data-id", submitted)
    page.evaluate(
        """fetch('/api/v1/executions', {method: 'POST', headers: {'Content-Type': 'application/json'},
            body: JSON.stringify({bundle: 'page_demo', workflow: 'demo',
                                  parameters: {name: 'bob', fail: false, wait: 0.5}})})"""
    )
    expect(rows).to_have_count(3)
    expect(rows.first.locator(".badge")).to_have_text("succeeded")


def render_large(page, base, many_id):
    page.goto(f"{base}/#/executions/{many_id}")
    render = poll(page, "window.rhaiflowRender?.tasks === 2000 ? window.rhaiflowRender : null")
    expect(page.locator(".canvas .node")).to_have_count(2000)
    print(f"2,000 tasks drawn in {render['ms']:.0f} ms (table: {render['table']})")
    assert not render["table"], "2,000 tasks should be drawn, not tabled"
    assert render["ms"] < RENDER_BUDGET_MS, f"drawing 2,000 tasks took {render['ms']:.0f} ms"


def cancel_resume_and_delete(page, base):
    """The buttons: a running execution cancelled, resumed (it runs again and fails at
    `flaky`), then deleted."""
    page.goto(f"{base}/#/submit")
    page.select_option("select[name=workflow]", label="page_demo · demo")
    page.fill("#p-name", "cy")
    page.fill("#p-wait", "4")
    page.click("form#run button[type=submit]")
    expect(page).to_have_url(re.compile(r"#/executions/[0-9a-f-]+$"))
    expect(page.locator('.canvas .node[title="warm_up"]')).to_have_class(state("running"))
    page.click("#cancel")
    expect(page.locator("#status")).to_have_text("cancelled")
    expect(page.locator('.canvas .node[title="warm_up"]')).to_have_class(state("cancelled"))
    page.click("#resume")
    expect(page.locator("#status")).to_have_text("running")
    expect(page.locator("#status")).to_have_text("failed")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#delete")
    expect(page).to_have_url(re.compile(r"#/$"))
    expect(page.locator("table.executions tbody tr")).to_have_count(3)


def login_as_a_viewer(page, base, rhaiflow, store):
    """The login on a server that now has a role token: a 401 shows the form, a wrong token is
    refused, the right one is exchanged for an HttpOnly, SameSite=Strict cookie and the call is
    tried again; a viewer sees no button that changes anything."""
    made = subprocess.run(
        [rhaiflow, "tokens", "create", "--role", "viewer", "--name", "browser", "--store", store],
        check=True, capture_output=True, text=True,
    )
    token = made.stdout.strip()
    time.sleep(1.2)  # the server reads its tokens again at most once a second
    page.goto(f"{base}/#/")
    page.reload()  # from another hash, goto only changed the hash
    dialog = page.locator("#login")
    expect(dialog).to_be_visible()
    dialog.locator("input[name=token]").fill("rhaiflow_wrong_token")
    dialog.locator("button[type=submit]").click()
    expect(dialog.locator("#login-error")).to_have_text("This token is not valid.")
    dialog.locator("input[name=token]").fill(token)
    dialog.locator("button[type=submit]").click()
    expect(dialog).to_be_hidden()
    cookie = next(c for c in page.context.cookies() if c["name"] == "rhaiflow_token")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict", cookie
    expect(page.locator("#who")).to_have_text("signed in: viewer")
    expect(page.locator("#logout")).to_be_visible()
    expect(page.locator("table.executions tbody tr")).to_have_count(3)
    expect(page.locator("#nav-submit")).to_be_hidden()
    page.locator("table.executions tbody tr a").first.click()
    expect(page.locator("#status")).to_be_visible()
    expect(page.locator("#resume")).to_be_hidden()
    expect(page.locator("#delete")).to_be_hidden()


if __name__ == "__main__":
    main(*sys.argv[1:6])
