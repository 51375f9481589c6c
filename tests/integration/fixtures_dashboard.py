"""Fixtures for the dashboard's browser test: the node driver (tests/browser/driver.mjs) that
runs Debian's chromium headless through playwright-core, spoken to one JSON line at a time,
and dashboard_bed, the whole system (PostgreSQL, server with tokens required, pcscd with
remsim-vsim cards) with the bankd and the client left for the test to start.

A missing chromium, node or node_modules FAILS the test with the command that fixes it: a
browser test that skips silently proves nothing."""
import json
import os
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
from conftest import REPO_ROOT, _attach_log, _unique_log_name, issue_token, rest_v2

BROWSER_DIR = REPO_ROOT / "tests" / "browser"
CHROMIUM = Path(os.environ.get("REMSIM_CHROMIUM", "/usr/bin/chromium"))
STEP_TIMEOUT = 20.0  # seconds one driver command may take (each has its own, shorter, limit)


def browser_missing() -> str | None:
    """Why the browser test cannot run here, or None."""
    if not shutil.which("node"):
        return "node is not installed"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (Debian package chromium)"
    lock = json.loads((BROWSER_DIR / "package-lock.json").read_text())
    want = lock["packages"]["node_modules/playwright-core"]["version"]
    installed = BROWSER_DIR / "node_modules" / "playwright-core" / "package.json"
    if not installed.exists():
        return f"{BROWSER_DIR}/node_modules is missing (npm ci)"
    have = json.loads(installed.read_text()).get("version")
    if have != want:
        return f"node_modules has playwright-core {have}, package-lock.json wants {want} (npm ci)"
    return None


class DriverError(AssertionError):
    pass


class Driver:
    """The node driver: do("click", sel="...") -> answer dict; a refusal raises DriverError.
    Console errors and CSP violations the page reported are collected in .problems."""

    def __init__(self, log_path: Path):
        self.log_path = log_path
        self.problems = []
        self.loads = 0
        with open(log_path, "wb") as log:
            self.popen = subprocess.Popen(["node", "driver.mjs"], cwd=BROWSER_DIR,
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=log, start_new_session=True)
        self.lines = queue.Queue()
        threading.Thread(target=self._reader, daemon=True).start()

    def _reader(self):
        for raw in self.popen.stdout:
            self.lines.put(raw.decode(errors="replace"))
        self.lines.put(None)

    def do(self, op: str, timeout: float = STEP_TIMEOUT, **args) -> dict:
        __tracebackhide__ = True
        self.popen.stdin.write((json.dumps({"do": op, **args}) + "\n").encode())
        self.popen.stdin.flush()
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise DriverError(f"browser driver: no answer to {op} within {timeout} s") from None
        if line is None:
            raise DriverError(f"browser driver exited during {op}; log:\n"
                              + self.log_path.read_text(errors="replace")[-3000:])
        ans = json.loads(line)
        self.problems += ans.get("problems", [])
        self.loads = ans.get("loads", self.loads)
        if not ans.get("ok"):
            raise DriverError(f"browser: {op} {args}: {ans.get('error')}")
        return ans

    def close(self):
        if self.popen.poll() is None:
            try:
                self.do("quit", timeout=10)
            except (DriverError, OSError, ValueError):
                pass
        try:
            self.popen.stdin.close()
        except OSError:
            pass
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, 9)
            self.popen.wait(10)


@pytest.fixture
def browser(request, tmp_path):
    """browser() -> Driver with chromium not yet opened (do("open", url=..., shots=...))."""
    why = browser_missing()
    if why:
        pytest.fail(f"the dashboard's browser test cannot run: {why}; run scripts/install-deps",
                    pytrace=False)
    log_dir = tmp_path / "logs"
    log_dir.mkdir(exist_ok=True)
    drivers = []

    def start():
        name = _unique_log_name(request.node, "browser")
        d = Driver(log_dir / f"{name}.log")
        _attach_log(request.node, name, d.log_path)
        drivers.append(d)
        return d

    yield start
    for d in drivers:
        d.close()


@pytest.fixture
def shots_dir(request, build_dir):
    """<build dir>/dashboard-screenshots/<test name>/, emptied first: kept after the run (pytest's
    tmp dirs are rotated away), never committed (build*/ is ignored)."""
    path = build_dir / "dashboard-screenshots" / request.node.name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


class DashboardBed:
    """What dashboard_bed set up; bankd() and client() start the agents when the test says."""

    def __init__(self, pg, ctl, key, server, pcscd, vsim, start_bankd, start_client, tmp):
        self.pg, self.ctl, self.key = pg, ctl, key
        self.server, self.pcscd, self.vsim = server, pcscd, vsim
        self._start_bankd, self._start_client, self.tmp = start_bankd, start_client, tmp
        self.url = f"http://127.0.0.1:{server.http_port}/"
        self.admin = self.token("admin", 1)

    def token(self, role, subject, *extra):
        return issue_token(self.ctl, self.key, role, subject, *extra)

    def token_file(self, role, subject):
        path = self.tmp / f"{role}-{subject}.token"
        path.write_text(self.token(role, subject) + "\n")
        path.chmod(0o600)
        return path

    def bankd(self, slots=2):
        return self._start_bankd(self.server, "-t", self.token_file("bankd", 1),
                                 pcscd=self.pcscd, slots=slots, client_auth="required")

    def client(self, client=23, slot=0):
        return self._start_client("-i", "127.0.0.1", "-p", self.server.port, "-c", client,
                                  "-n", slot, "-t", self.token_file("client", client),
                                  name=f"client{client}-{slot}")

    def api(self, method, path, body=None):
        return rest_v2(self.server.http_port, self.admin, method, path, body)


def _start_server(postgres, remsim_server, bin_path, tmp_path):
    ctl = str(bin_path("tools/remsimctl"))
    subprocess.run([ctl, "keygen", "--dir", str(tmp_path)], check=True, capture_output=True,
                   timeout=30)
    key = tmp_path / "server.key"
    server = remsim_server(postgres, "--key", key, "--web-root", REPO_ROOT / "web",
                           auth="required")
    return ctl, key, server


@pytest.fixture
def dashboard_server(postgres, remsim_server, bin_path, tmp_path):
    """PostgreSQL and remsim-server (tokens required, serving web/) only."""
    ctl, key, server = _start_server(postgres, remsim_server, bin_path, tmp_path)
    return DashboardBed(postgres, ctl, key, server, None, None, None, None, tmp_path)


@pytest.fixture
def dashboard_bed(postgres, remsim_server, remsim_bankd, pcscd_factory, vsim_factory,
                  remsim_client, bin_path, tmp_path):
    """PostgreSQL, remsim-server (tokens required, serving web/), a pcscd with 2 readers and
    2 remsim-vsim cards. No bankd, client or mapping yet."""
    ctl, key, server = _start_server(postgres, remsim_server, bin_path, tmp_path)
    pcscd = pcscd_factory(2)
    vsim = vsim_factory(pcscd, cards=2)
    return DashboardBed(postgres, ctl, key, server, pcscd, vsim, remsim_bankd, remsim_client,
                        tmp_path)


def wait_until(check, timeout=10.0, what="condition"):
    """Polls check() (bounded) until it returns something true; returns that."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.05)
