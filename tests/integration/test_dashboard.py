"""The web dashboard (web/) as an operator sees it.

First the server's static answers: content types, caching, the Content-Security-Policy and
the other security headers, no way out of the web root. Then the real thing in Debian's
chromium (headless, driven by playwright-core through tests/browser/driver.mjs): log in, see
a bankd and a client appear live, map them in the UI and watch the APDU counter rise, move
and delete the mapping (the delete with the keyboard only), see a mapping inserted by SQL
appear without a reload, issue and revoke a token, and be refused with a wrong token.
Screenshots of every page land in <build dir>/dashboard-screenshots/<test>/."""
import http.client
import os
import re
import shutil
import socket
import subprocess
import time

import pytest
from conftest import REPO_ROOT
from fixtures_dashboard import DriverError, wait_until

WEB = REPO_ROOT / "web"


def get(port, path, method="GET", headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def raw_status(port, path):
    """Status of a GET sent byte for byte (no client-side normalisation); None if the
    server closed without an answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    m = re.match(rb"HTTP/1\.1 (\d+)", data)
    if m and int(m.group(1)) == 200:
        assert b"root:" not in data
    return int(m.group(1)) if m else None


@pytest.fixture
def web_server(remsim_server):
    """A server (no database needed for files) serving a copy of web/ plus traps: a symlink
    out of the root, a dot file, a file beside the root."""
    def start(root):
        return remsim_server(None, "--web-root", root, auth="off")
    return start


def check_security_headers(h, port):
    csp = h["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["connect-src"] == f"'self' ws://127.0.0.1:{port}"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["object-src"] == "'none'"
    assert "unsafe" not in csp
    assert h["x-content-type-options"] == "nosniff"
    assert h["x-frame-options"] == "DENY"
    assert h["referrer-policy"] == "no-referrer"


def test_static_files_types_caching_and_headers(web_server):
    srv = web_server(WEB)
    port = srv.http_port
    status, h, body = get(port, "/")
    assert status == 200 and h["content-type"] == "text/html; charset=utf-8"
    assert body == (WEB / "index.html").read_bytes()
    assert h["cache-control"] == "no-cache" and h["etag"].startswith('"')
    check_security_headers(h, port)
    for path, ctype in [("/app.js", "text/javascript; charset=utf-8"),
                        ("/pages/banks.js", "text/javascript; charset=utf-8"),
                        ("/style.css", "text/css; charset=utf-8"),
                        ("/favicon.svg", "image/svg+xml")]:
        status, h, body = get(port, path)
        assert (status, h["content-type"]) == (200, ctype), path
        assert body == (WEB / path[1:]).read_bytes()
        check_security_headers(h, port)
    # revalidation: the same ETag gives 304 without a body; HEAD gives the headers only
    status, h, _ = get(port, "/app.js")
    status, h304, body = get(port, "/app.js", headers={"If-None-Match": h["etag"]})
    assert (status, body, h304["etag"]) == (304, b"", h["etag"])
    assert "content-length" not in h304
    status, hh, body = get(port, "/app.js", method="HEAD")
    assert (status, body, hh["content-length"]) == (200, b"", h["content-length"])
    # other methods, unknown files: plain text, still with the headers
    status, h, body = get(port, "/", method="POST")
    assert (status, h["allow"]) == (405, "GET, HEAD")
    status, h, body = get(port, "/nothing-here.js")
    assert (status, h["content-type"], body) == (404, "text/plain; charset=utf-8",
                                                 b"Resource not found")
    check_security_headers(h, port)
    # the other routes keep priority over the files
    status, h, body = get(port, "/metrics")
    assert status == 200 and h["content-type"].startswith("text/plain; version=0.0.4")
    status, h, body = get(port, "/api/v2/health")
    assert h["content-type"] == "application/json"


def test_static_no_way_out_of_the_root(web_server, tmp_path):
    root = tmp_path / "web"
    root.mkdir()
    (root / "index.html").write_text("<!doctype html><title>t</title>")
    (root / "ok.txt").write_text("fine")
    (root / ".secret").write_text("hidden")
    (tmp_path / "beside.txt").write_text("root: outside")
    os.symlink(tmp_path / "beside.txt", root / "link.txt")
    os.symlink("/etc", root / "etc")
    os.symlink(root / "ok.txt", root / "inside.txt")  # a symlink that stays inside is fine
    port = web_server(root).http_port
    assert raw_status(port, b"/ok.txt") == 200
    assert raw_status(port, b"/inside.txt") == 200
    for path in [b"/../beside.txt", b"/%2e%2e/beside.txt", b"/..%2fbeside.txt",
                 b"/link.txt", b"/etc/passwd", b"/.secret", b"/ok.txt%00.js",
                 b"//etc/passwd", b"/a\\..\\beside.txt",
                 b"/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd"]:
        assert raw_status(port, path) in (400, 403, 404, None), path
    # still serving after all that
    assert raw_status(port, b"/") == 200


def test_default_web_root_is_the_source_tree(remsim_server):
    """A server run from its build tree serves this checkout's web/ without --web-root."""
    srv = remsim_server(None, auth="off")
    status, h, body = get(srv.http_port, "/")
    assert (status, body) == (200, (WEB / "index.html").read_bytes())
    assert f"dashboard served from {WEB}" in srv.log_text()


def test_feed_client_logic():
    """web/feed.js against a scripted WebSocket (tests/browser/feed.test.mjs, node:test)."""
    if not shutil.which("node"):
        pytest.fail("node is not installed; run scripts/install-deps", pytrace=False)
    r = subprocess.run(["node", "--experimental-detect-module", "--test",
                        str(REPO_ROOT / "tests" / "browser" / "feed.test.mjs")],
                       capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert re.search(r"^# pass [1-9]", r.stdout, re.M) and "# fail 0" in r.stdout


def test_web_root_missing_is_a_clear_error(bin_path, tmp_path):
    r = subprocess.run([str(bin_path("server/remsim-server")), "--rspro-auth", "off",
                        "--web-root", str(tmp_path / "nope")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "--web-root" in r.stderr and "not a directory" in r.stderr


def test_web_files_need_no_inline_code_and_nothing_external():
    """What the CSP forbids, the files must not need: no inline script, style or handler,
    no innerHTML, nothing fetched from another host (the dashboard works offline)."""
    html = (WEB / "index.html").read_text()
    assert re.findall(r"<script\b[^>]*>", html) == ['<script type="module" src="app.js">']
    assert not re.search(r"<style\b|\sstyle=|\son[a-z]+=", html, re.I)
    files = list(WEB.rglob("*.js")) + list(WEB.rglob("*.css")) + list(WEB.rglob("*.html"))
    assert len(files) >= 10
    for f in files:
        text = f.read_text()
        assert not re.search(r"https?://", text), f
        assert "innerHTML" not in text and "eval(" not in text, f
        assert "setAttribute('style'" not in text, f


# ---------------------------------------------------------------------------------------------
# The browser


class Ui:
    """The dashboard page in chromium, with the steps the test repeats."""

    def __init__(self, driver, shots):
        self.d, self.shots = driver, shots

    def __getattr__(self, op):
        return lambda **kw: self.d.do(op, **kw)

    def goto(self, page):
        self.d.do("click", sel=f"nav a[data-page={page}]")
        self.d.do("wait_text", sel="#page-title", re=f"^{page.capitalize()}$")

    def shot(self, name):
        return self.d.do("screenshot", name=name)["path"]

    def text(self, sel, ms=5000):
        return self.d.do("text", sel=sel, ms=ms)["text"]

    def number(self, sel):
        return int(self.text(sel).strip() or 0)


def apdu_counter(ui, slot):
    return ui.number(f'li.slot[data-bank="1"][data-slot="{slot}"] .apdu-count')


def send_apdus(client, n=10):
    for _ in range(n):
        assert client.apdu("a0a40000023f00").startswith("9f")


def test_dashboard_in_chromium(dashboard_bed, browser, shots_dir):
    bed = dashboard_bed
    started = time.monotonic()
    ui = Ui(browser(), shots_dir)
    ui.open(url=bed.url, shots=str(shots_dir))

    # a wrong token is refused: no navigation, the reason shown
    ui.fill(sel="#login-token", value=bed.token("client", 23))
    ui.click(sel="form.login button[type=submit]")
    ui.wait_text(sel="#login-error", re="Token refused \\(403 forbidden")
    ui.fill(sel="#login-token", value="rst1.not-a-token")
    ui.click(sel="form.login button[type=submit]")
    ui.wait_text(sel="#login-error", re="Token refused \\(401 unauthorized")
    ui.wait(sel="#nav", state="hidden")
    ui.shot("login-refused")

    # log in; the feed goes live
    ui.fill(sel="#login-token", value=bed.admin)
    ui.click(sel="form.login button[type=submit]")
    ui.wait_text(sel="#page-title", re="Overview")
    ui.wait_text(sel="#live", re="^live$")
    loads = ui.d.loads

    # a bankd started now appears live with its slots and cards
    ui.goto("banks")
    bed.bankd(slots=2)
    ui.wait_text(sel="section.bank h2", re="Bank 1 online", ms=10000)
    for slot in (0, 1):  # the workers wait for a client: no card opened yet
        ui.wait_text(sel=f'li.slot[data-bank="1"][data-slot="{slot}"] .worker',
                     re="^ACCEPTING$", ms=10000)
    ui.shot("banks")

    # so does a client
    ui.goto("clients")
    client = bed.client(23, 0)
    ui.wait_text(sel='tbody tr[data-key="23:0"]', re="online", ms=10000)
    ui.shot("clients")

    # map bank 1:0 to client 23:0 in the UI; APDUs flow and the counter rises
    ui.goto("mappings")
    ui.wait(sel='#map-bank option[value="1:0"]', state="attached")
    ui.select(sel="#map-bank", value="1:0")
    ui.wait(sel='#map-client option[value="23:0"]', state="attached")
    ui.select(sel="#map-client", value="23:0")
    ui.click(sel="form.inline-form button[type=submit]")
    ui.wait_text(sel='tbody tr[data-key="1:0"]', re="23:0.*ACTIVE", ms=10000)
    ui.wait_text(sel="#status", re="Mapped bank 1:0 to client 23:0")
    ui.shot("mappings")
    ui.goto("banks")
    send_apdus(client, 10)
    wait_until(lambda: apdu_counter(ui, 0) >= 10, 10, "APDU counter of slot 0 >= 10")
    before = apdu_counter(ui, 0)
    send_apdus(client, 10)
    wait_until(lambda: apdu_counter(ui, 0) >= before + 10, 10, "APDU counter rising")
    ui.wait_text(sel='li.slot[data-slot="0"] .mapping', re="client 23:0 \\(ACTIVE\\)")
    ui.wait_text(sel='li.slot[data-slot="0"] .worker', re="^CONNECTED_CLIENT_MAPPED_CARD$")
    ui.wait_text(sel='li.slot[data-slot="0"] h3', re="card$")
    assert ui.text('li.slot[data-slot="0"] .atr').startswith("3b")
    ui.shot("banks-apdus")

    # move the client to bank slot 1 (confirmed in a dialog); its APDUs now go there
    ui.goto("mappings")
    ui.click(sel='tbody tr[data-key="1:0"] button:has-text("Move")')
    ui.select(sel="#move-bank", value="1:1")
    ui.shot("mappings-move-dialog")
    ui.click(sel='dialog button:has-text("Move")')
    ui.wait_text(sel='tbody tr[data-key="1:1"]', re="23:0.*ACTIVE", ms=10000)
    ui.wait(sel='tbody tr[data-key="1:0"]', state="detached")
    deadline = time.monotonic() + 20
    while not client.apdu("a0a40000023f00", timeout=20).startswith("9f"):
        assert time.monotonic() < deadline, "no APDU through the moved mapping"
        time.sleep(0.2)
    send_apdus(client, 5)
    ui.goto("banks")
    wait_until(lambda: apdu_counter(ui, 1) >= 5, 10, "APDU counter of slot 1")

    # delete it with the keyboard only: the dialog opens on Cancel, Tab reaches Delete
    ui.goto("mappings")
    ui.press(sel='tbody tr[data-key="1:1"] button:has-text("Delete")', key="Enter")
    ui.wait(sel="dialog")
    assert ui.d.do("focused")["focused"] == "button:Cancel"
    ui.press(key="Tab")
    assert ui.d.do("focused")["focused"] == "button:Delete"
    ui.shot("mappings-delete-dialog")
    ui.press(key="Enter")
    ui.wait(sel='tbody tr[data-key="1:1"]', state="detached", ms=10000)
    assert bed.api("GET", "/slotmaps/1/1")[0] == 404

    # a mapping inserted by SQL shows up without a reload, within a second
    t0 = time.monotonic()
    bed.pg.psql("INSERT INTO slotmaps (bank_id, bank_slot, client_id, client_slot) "
                "VALUES (1, 0, 23, 0)")
    ui.wait_text(sel='tbody tr[data-key="1:0"]', re="23:0.*sql", ms=2000)
    assert time.monotonic() - t0 < 1.0, "SQL insert took over a second to show"
    ui.wait_text(sel='tbody tr[data-key="1:0"]', re="ACTIVE", ms=10000)

    # the event log, filtered
    ui.goto("events")
    ui.select(sel="#ev-kind", value="slotmap.delete")
    ui.wait_text(sel="tbody tr", re="slotmap\\.delete")
    assert ui.d.do("count", sel="tbody tr")["count"] == 1
    ui.shot("events")

    # tokens: issue one (shown once), then revoke it
    ui.goto("tokens")
    ui.select(sel="#tok-role", value="client")
    ui.fill(sel="#tok-subject", value="42")
    ui.fill(sel="#tok-comment", value="modem 42")
    ui.click(sel='form.inline-form button[type=submit]')
    ui.wait(sel="#new-token")
    secret = ui.d.do("wait_text", sel="dialog p", re="client token for 42")
    ui.shot("tokens-new")
    ui.click(sel='dialog button:has-text("Done")')
    ui.wait(sel="#new-token", state="detached")
    ui.wait_text(sel="tbody", re="modem 42")
    ui.click(sel='tbody tr:has-text("modem 42") button:has-text("Revoke")')
    ui.fill(sel="#revoke-reason", value="test")
    ui.click(sel='dialog button:has-text("Revoke")')
    ui.wait_text(sel='tbody tr:has-text("modem 42")', re="test")
    ui.shot("tokens")
    assert secret

    ui.goto("overview")
    ui.wait_text(sel=".summary-grid", re="1 / 1")
    ui.shot("overview")
    # a phone's width: no sideways scrolling of the page itself
    ui.viewport(width=390, height=844)
    for page in ("overview", "banks", "mappings"):
        ui.goto(page)
        o = ui.overflow()
        assert o["scroll_width"] <= o["width"], (page, o)
        ui.shot(f"phone-{page}")

    assert ui.d.loads == loads, "the page was reloaded"
    assert ui.d.problems == [], ui.d.problems  # CSP violations and script errors land here
    assert time.monotonic() - started < 60


def login(ui, bed):
    ui.open(url=bed.url, shots=str(ui.shots))
    ui.fill(sel="#login-token", value=bed.admin)
    ui.click(sel="form.login button[type=submit]")
    ui.wait_text(sel="#live", re="^live$")


def test_dashboard_survives_a_server_restart(dashboard_server, browser, spawn, shots_dir):
    """The feed reconnects by itself, and what changed while the server was away is there
    (a fresh snapshot), without a reload."""
    bed = dashboard_server
    ui = Ui(browser(), shots_dir)
    login(ui, bed)
    ui.goto("mappings")
    loads = ui.d.loads
    bed.server.terminate()
    ui.wait_text(sel="#live", re="^(offline|connecting…)$", ms=5000)
    ui.shot("server-down")
    bed.pg.psql("INSERT INTO slotmaps (bank_id, bank_slot, client_id, client_slot) "
                "VALUES (7, 3, 40, 0)")
    spawn(bed.server.argv, name="server-again", ready=bed.server.port)
    ui.wait_text(sel="#live", re="^live$", ms=10000)
    ui.wait_text(sel='tbody tr[data-key="7:3"]', re="40:0")
    # the session survived: still logged in, same page
    ui.wait_text(sel="#page-title", re="^Mappings$")
    assert ui.d.loads == loads
    problems = [p for p in ui.d.problems if "ERR_CONNECTION_REFUSED" not in p]
    assert problems == [], problems


def test_logout_forgets_the_token(dashboard_server, browser, shots_dir):
    bed = dashboard_server
    ui = Ui(browser(), shots_dir)
    login(ui, bed)
    ui.click(sel="#logout")
    ui.wait(sel="#login-token")
    ui.wait_text(sel="#live", re="^not connected$")
    ui.open(url=bed.url, shots=str(ui.shots))  # a reload: no token left to log in with
    ui.wait(sel="#login-token")
    assert ui.d.do("count", sel="#nav a[aria-current]")["count"] == 0


def test_revoked_token_logs_the_page_out(dashboard_server, browser, shots_dir):
    bed = dashboard_server
    status, issued = bed.api("POST", "/tokens", {"role": "admin", "subject": 2,
                                                 "comment": "browser"})
    assert status == 201, issued
    ui = Ui(browser(), shots_dir)
    ui.open(url=bed.url, shots=str(ui.shots))
    ui.fill(sel="#login-token", value=issued["token"])
    ui.click(sel="form.login button[type=submit]")
    ui.wait_text(sel="#live", re="^live$")
    assert bed.api("DELETE", f"/tokens/{issued['token_id']}")[0] == 204
    # the next thing that asks the server with it (the feed, or a page's request) is refused
    try:
        ui.click(sel="nav a[data-page=tokens]", ms=2000)
    except DriverError:
        pass  # the feed was quicker: already logged out
    ui.wait_text(sel="#login-error", re="refused the token", ms=10000)
    ui.wait(sel="#nav", state="hidden")
    ui.shot("revoked")
