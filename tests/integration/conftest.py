"""Fixtures for remsim's integration tests.

Throwaway PostgreSQL 15 clusters, private pcscd instances with vpcd readers, supervised child
processes and free loopback ports. Everything a fixture starts is stopped at teardown, pass or
fail, and when a test fails the logs of everything it started are attached to its report.
test_harness.py shows each fixture in use.
"""

import contextlib
import glob
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from functools import lru_cache
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PG_BIN = Path("/usr/lib/postgresql/15/bin")
PSQL = "/usr/bin/psql"
VPCD_DRIVER_GLOB = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so.*"
PCSCD_MAX_READERS = 16  # pcsc-lite silently ignores readers beyond 16

START_TIMEOUT = 10.0  # seconds a process gets to become ready
STOP_GRACE = 5.0  # seconds between SIGTERM and SIGKILL
LOG_TAIL_BYTES = 64 * 1024  # per log attached to a failure report
ERROR_TAIL_BYTES = 4 * 1024  # per log quoted in an exception message
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")

# The vpcd entry shipped in /etc/reader.conf.d/vpcd uses these; a system pcscd may hold them.
_RESERVED_PORTS = {35963, 35964}
_ports_handed_out: set[int] = set()


# ---------------------------------------------------------------------------------------------
# Free ports


def _ephemeral_port_range() -> tuple[int, int]:
    lo, hi = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    return int(lo), int(hi)


def _port_is_free(port: int) -> bool:
    # A wildcard bind without SO_REUSEADDR fails if anything at all holds the port on any
    # address (vpcd listens on 0.0.0.0), connections in TIME_WAIT included.
    for family, addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError:  # no IPv6 on this machine
            continue
        with sock:
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind((addr, port))
            except OSError:
                return False
    return True


def _xdist_worker() -> tuple[int, int]:
    """(this worker's index, number of workers) under pytest-xdist, else (0, 1)."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", ...
    count = os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")
    if name.startswith("gw") and name[2:].isdigit() and count.isdigit():
        return int(name[2:]), max(1, int(count))
    return 0, 1


def free_port(n: int = 1) -> int:
    """Return P such that TCP ports P .. P+n-1 are all unused; never the same port twice.

    Ports come from outside the kernel's ephemeral range, so that an outgoing connection
    cannot take one between this check and the bind() of the program under test.
    """
    lo, hi = _ephemeral_port_range()
    if lo - 10000 >= 1000:
        first, last = 10000, lo - n
    elif 65535 - hi >= 1000:
        first, last = hi + 1, 65536 - n
    else:  # no room outside the ephemeral range: accept the small race
        first, last = 10000, 65536 - n
    # pytest-xdist workers (scripts/test runs several) draw from interleaved blocks of 64
    # ports, so two workers never hand out the same port between check and bind.
    worker, workers = _xdist_worker()
    for _ in range(500):
        base = random.randint(first, last)
        if workers > 1 and n <= 64:
            block = base - base % (64 * workers) + 64 * worker
            base = block + random.randint(0, 64 - n)
            if base < first or base > last:
                continue
        ports = set(range(base, base + n))
        if ports & (_ports_handed_out | _RESERVED_PORTS):
            continue
        if all(_port_is_free(p) for p in ports):
            _ports_handed_out.update(ports)
            return base
    raise RuntimeError(f"no {n} consecutive free TCP ports in {first}-{last + n - 1}")


@pytest.fixture
def free_port_factory():
    """free_port_factory(n=1) -> P, with TCP ports P .. P+n-1 free (see free_port)."""
    return free_port


def _pgid_of(pid: str) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The fields after the ")" closing the command name are: state, ppid, pgrp, ...
    return int(stat.rsplit(")", 1)[1].split()[2])


def listening_ports(pgid: int) -> set[int]:
    """TCP ports (IPv4 or IPv6, any address) listened on by a process of group pgid.

    Read from /proc instead of probed by connecting: a server under test never sees a probe
    connection, and a port held by some other program does not count.
    """
    inodes = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or _pgid_of(pid) != pgid:
            continue
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[len("socket:["):-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            # sl local_address rem_address st ... inode (field 9); st 0A = LISTEN
            fields = row.split()
            if fields[3] == "0A" and fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


# ---------------------------------------------------------------------------------------------
# Scratch directories and logs


@lru_cache(maxsize=None)
def _postgres_can_enter(path: str) -> bool:
    if os.geteuid() != 0:
        return True  # PostgreSQL then runs as ourselves
    check = ["runuser", "-u", "postgres", "--", "test", "-x", path]
    return subprocess.run(check, stderr=subprocess.DEVNULL, timeout=10).returncode == 0


def make_short_dir(prefix: str = "rs-") -> Path:
    """Create a new mode-0755 directory with a short path that the postgres user can enter.

    Unix socket paths (PostgreSQL's, pcscd's) must stay under 108 bytes, and initdb fails in
    a tree the postgres user cannot traverse (mktemp's 0700 dirs, root's home,
    /tmp/pytest-of-root). The caller removes the directory.
    """
    base = os.environ.get("TMPDIR", "")
    if not (base and len(base) <= 40 and os.path.isdir(base) and _postgres_can_enter(base)):
        base = "/tmp"
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    path.chmod(0o755)
    return path


@pytest.fixture
def tmp_short():
    """A short, world-traversable scratch directory (see make_short_dir), removed afterwards."""
    path = make_short_dir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _tail(path: Path, limit: int) -> str:
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - limit))
            text = f.read().decode(errors="replace")
    except OSError as e:
        return f"(log not readable: {e})"
    return f"[... first {size - limit} bytes left out ...]\n{text}" if size > limit else text


# name -> log file, for every process or server a test started; see pytest_runtest_makereport
_LOGS_KEY = pytest.StashKey[dict]()


def _unique_log_name(node, name: str) -> str:
    logs = node.stash.setdefault(_LOGS_KEY, {})
    unique, n = name, 1
    while unique in logs:
        n += 1
        unique = f"{name}-{n}"
    return unique


def _attach_log(node, name: str, path: Path) -> None:
    node.stash.setdefault(_LOGS_KEY, {})[name] = Path(path)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # Attach the logs to the failing phase's own report: pytest prints the sections of failed
    # reports only, and during setup and call the processes and their logs still exist.
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for name, path in item.stash.get(_LOGS_KEY, {}).items():
            report.sections.append((f"log of {name} ({path})", _tail(path, LOG_TAIL_BYTES)))


def pytest_report_header(config):
    return f"remsim build dir: {_build_dir()}"


# ---------------------------------------------------------------------------------------------
# Child processes


class ProcError(Exception):
    """A supervised process misbehaved: exited early, never got ready, missed a log line."""


class Proc:
    """A child process with stdout and stderr in one log file, in its own process group.

    A readiness spec (`ready` of spawn and wait_ready) is one of:
      int               a TCP port that a process of its group listens on (any address)
      str or re.Pattern a regular expression (str: multi-line) that appears in the log
      pathlib.Path      a file or socket that exists
      callable(proc)    anything else, returning true once ready
    """

    def __init__(self, name: str, argv, log_path: Path, env=None, cwd=None):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = Path(log_path)
        with open(self.log_path, "wb") as log:
            # A session of its own: signals reach its whole process group, and a Ctrl-C on
            # pytest leaves the process to the fixture's teardown.
            self.popen = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                          start_new_session=True)

    def __repr__(self):
        return f"<Proc {self.name} pid={self.pid} returncode={self.returncode}>"

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        """None while running, else the exit code (negative: killed by that signal)."""
        return self.popen.poll()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def _error(self, what: str) -> ProcError:
        return ProcError(f"{self.name} (pid {self.pid}) {what}; log {self.log_path}:\n"
                         f"{_tail(self.log_path, ERROR_TAIL_BYTES)}")

    def wait_ready(self, ready, timeout: float = START_TIMEOUT) -> None:
        """Wait until `ready` holds; fail at once, with the log, if the process exits first."""
        __tracebackhide__ = True  # the ProcError message says it all
        check, what = _readiness_check(ready)
        deadline = time.monotonic() + timeout
        while not check(self):
            if self.returncode is not None:
                raise self._error(f"exited with {self.returncode} before {what}")
            if time.monotonic() > deadline:
                raise self._error(f"not ready after {timeout} s: no {what}")
            time.sleep(0.02)

    def wait_for_log(self, pattern, timeout: float = START_TIMEOUT, start: int = 0) -> re.Match:
        """Wait for a regex (str: multi-line) in the log from character offset `start` on;
        `start=len(proc.log_text())` waits for a new line only."""
        __tracebackhide__ = True
        regex = re.compile(pattern, re.M) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        while True:
            exited = self.returncode is not None  # checked before reading: no line is missed
            match = regex.search(self.log_text(), start)
            if match:
                return match
            if exited:
                raise self._error(f"exited with {self.returncode} without logging "
                                  f"/{regex.pattern}/")
            if time.monotonic() > deadline:
                raise self._error(f"did not log /{regex.pattern}/ within {timeout} s")
            time.sleep(0.02)

    def send_signal(self, sig: int) -> None:
        """Signal the process group. Does nothing once the process has been reaped."""
        # While poll() says running, the PID is not reaped and so cannot have been reused.
        if self.popen.poll() is not None:
            return
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:  # it left its process group: signal the process alone
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def wait(self, timeout: float = START_TIMEOUT) -> int:
        """Wait for the process to exit by itself; return its exit code."""
        __tracebackhide__ = True
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise self._error(f"still running after {timeout} s") from None

    def terminate(self, grace: float = STOP_GRACE) -> int:
        """SIGTERM, then SIGKILL if still running after `grace` s; return the exit code."""
        stop_all([self], grace)
        return self.returncode

    def kill9(self) -> int:
        """SIGKILL (a crash, as far as peers can tell); return the exit code."""
        self.send_signal(signal.SIGKILL)
        return self.wait()


def _readiness_check(ready):
    """Turn a readiness spec (see Proc) into (check(proc) -> bool, description)."""
    if isinstance(ready, bool):
        raise TypeError("a readiness spec is a port, regex, Path or callable, not a bool")
    if isinstance(ready, int):
        return (lambda p: ready in listening_ports(p.pid)), f"listening socket on TCP port {ready}"
    if isinstance(ready, (str, re.Pattern)):
        regex = re.compile(ready, re.M) if isinstance(ready, str) else ready
        return (lambda p: regex.search(p.log_text()) is not None), f"log line /{regex.pattern}/"
    if isinstance(ready, Path):
        return (lambda p: ready.exists()), f"file {ready}"
    if callable(ready):
        return ready, getattr(ready, "__name__", repr(ready))
    raise TypeError(f"unsupported readiness spec {ready!r}")


def stop_all(procs, grace: float = STOP_GRACE) -> None:
    """SIGTERM all at once, SIGKILL whatever still runs after `grace` seconds, reap all."""
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in procs:
        try:
            proc.popen.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
    for proc in procs:
        try:
            proc.popen.wait(10)
        except subprocess.TimeoutExpired:
            pass  # stuck in the kernel even after SIGKILL: nothing more to do from here


@pytest.fixture
def spawn(request, tmp_path):
    """spawn(argv, *, name=None, env=None, cwd=None, ready=None, timeout=10.0) -> Proc

    Starts argv with stdout+stderr in <tmp_path>/logs/<name>.log (kept by pytest after the
    run), then waits for `ready` (see Proc). `env` entries are added to os.environ (a None
    value removes the variable). Every process is stopped at teardown, all at once.
    """
    log_dir = tmp_path / "logs"
    log_dir.mkdir(exist_ok=True)
    procs = []

    def start(argv, *, name=None, env=None, cwd=None, ready=None, timeout=START_TIMEOUT):
        __tracebackhide__ = True
        name = _unique_log_name(request.node, name or Path(str(argv[0])).name)
        full_env = dict(os.environ)
        for key, value in (env or {}).items():
            if value is None:
                full_env.pop(key, None)
            else:
                full_env[key] = str(value)
        proc = Proc(name, argv, log_dir / f"{name}.log", env=full_env, cwd=cwd)
        procs.append(proc)
        _attach_log(request.node, name, proc.log_path)
        if ready is not None:
            proc.wait_ready(ready, timeout)
        return proc

    yield start
    stop_checking_sanitizers(procs)


def stop_checking_sanitizers(procs) -> None:
    """Stops procs (stop_all); then fails the test if any log has a sanitizer report.

    Our programs run under ASan/UBSan in one of the two test builds: a report in any log
    (often printed only at exit, for leaks) fails the test that started it.
    """
    stop_all(procs)
    for proc in procs:
        text = proc.log_text()
        for marker in SANITIZER_MARKERS:
            if marker in text:
                pytest.fail(f"{proc.name}: sanitizer report in {proc.log_path}:\n"
                            + text[text.index(marker):][:ERROR_TAIL_BYTES], pytrace=False)


def issue_token(ctl, key, role: str, subject, *extra) -> str:
    """`remsimctl token issue` with the server's secret key file: the token text."""
    r = subprocess.run([str(ctl), "token", "issue", "--key", str(key), "--role", role,
                        "--id", str(subject), *map(str, extra)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def rest_v2(http_port: int, token: str, method: str, path: str, body=None):
    """One /api/v2 request with an admin token: (status, decoded JSON body or None)."""
    conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=10)
    try:
        conn.request(method, "/api/v2" + path,
                     body=json.dumps(body) if body is not None else None,
                     headers={"Authorization": f"Bearer {token}",
                              "Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"null")
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------------
# PostgreSQL


def _as_postgres(argv) -> list[str]:
    # initdb and postgres refuse to run as root.
    argv = [str(a) for a in argv]
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def _chown_postgres(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, "postgres", "postgres")


class PgCluster:
    """A private PostgreSQL 15 cluster: unix socket in a directory of its own, optionally
    TCP on 127.0.0.1, trust authentication, no durability (fsync and friends off)."""

    user = "postgres"
    dbname = "postgres"

    def __init__(self, tcp: bool = False):
        self.port = free_port()
        self.tcp = tcp
        self.dir = make_short_dir("rs-pg-")
        self.datadir = self.dir / "data"
        self.host = str(self.dir / "sock")
        self.log_path = self.dir / "server.log"  # inside: it must be writable by postgres

    def __repr__(self):
        return f"<PgCluster {self.dsn}>"

    def _create(self, template: Path) -> None:
        _chown_postgres(self.dir)
        # Copying an initdb'ed template takes 0.07 s, initdb itself 0.9 s.
        subprocess.run(["cp", "-a", str(template), str(self.datadir)], check=True, timeout=60)
        os.mkdir(self.host)
        _chown_postgres(Path(self.host))
        # In postgresql.conf rather than on pg_ctl's command line, so that every later
        # start() brings the server back exactly as it was.
        with open(self.datadir / "postgresql.conf", "a") as conf:
            conf.write(f"port = {self.port}\n"
                       f"unix_socket_directories = '{self.host}'\n"
                       f"listen_addresses = '{'127.0.0.1' if self.tcp else ''}'\n"
                       "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n")

    def _conninfo(self, host: str, dbname: str | None = None) -> str:
        return f"host={host} port={self.port} user={self.user} dbname={dbname or self.dbname}"

    @property
    def dsn(self) -> str:
        """libpq keyword string for the unix socket."""
        return self._conninfo(self.host)

    @property
    def tcp_dsn(self) -> str:
        """libpq keyword string for 127.0.0.1 (clusters made with tcp=True only)."""
        if not self.tcp:
            raise ValueError("this cluster does not listen on TCP; use pg_factory(tcp=True)")
        return self._conninfo("127.0.0.1")

    def env(self) -> dict[str, str]:
        return {"PGHOST": self.host, "PGPORT": str(self.port), "PGUSER": self.user,
                "PGDATABASE": self.dbname}

    def psql(self, sql: str, dbname: str | None = None) -> str:
        """Run SQL with psql -At (unaligned, tuples only) and return its output without the
        last newline. Raises ProcError with psql's message if a statement fails."""
        argv = [PSQL, "-X", "-v", "ON_ERROR_STOP=1", "-At", "-d", self._conninfo(self.host, dbname),
                "-c", sql]
        res = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        if res.returncode != 0:
            raise ProcError(f"psql failed ({res.returncode}) on {sql!r}: {res.stderr.strip()}")
        return res.stdout.removesuffix("\n")

    @property
    def running(self) -> bool:
        return (self.datadir / "postmaster.pid").exists()

    def _pg_ctl(self, *args, check: bool = True) -> None:
        argv = _as_postgres([PG_BIN / "pg_ctl", "-D", self.datadir, "-l", self.log_path,
                             "-w", "-t", "30", *args])
        res = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        if check and res.returncode != 0:
            raise ProcError(f"pg_ctl {' '.join(args)} failed: {res.stdout}{res.stderr}\n"
                            f"server log:\n{_tail(self.log_path, ERROR_TAIL_BYTES)}")

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        self._pg_ctl("start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: mode "fast" (disconnects clients), "smart" or "immediate" (crash)."""
        self._pg_ctl("-m", mode, "stop")

    def destroy(self, keep_log_as: Path | None = None) -> None:
        """Stop the server whatever it takes, optionally keep its log, delete the rest."""
        if self.running:
            self._pg_ctl("-m", "fast", "stop", check=False)
        if self.running:  # pg_ctl gave up: kill the postmaster, its children follow it
            try:
                pid = int((self.datadir / "postmaster.pid").read_text().split()[0])
                os.kill(pid, signal.SIGKILL)
            except (OSError, ValueError, IndexError):
                pass
        if keep_log_as is not None and self.log_path.exists():
            shutil.copy(self.log_path, keep_log_as)
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def pg_template():
    """A fresh initdb (as a template to copy), removed on exit. Benchmarks use it too."""
    base = make_short_dir("rs-pgtpl-")
    try:
        _chown_postgres(base)
        argv = _as_postgres([PG_BIN / "initdb", "-D", base / "data", "-A", "trust", "-U",
                             "postgres", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"])
        res = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        if res.returncode != 0:
            raise ProcError(f"initdb failed: {res.stdout}{res.stderr}")
        yield base / "data"
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def _pg_template():
    """One initdb per session; every cluster starts as a copy of it."""
    if not (PG_BIN / "initdb").exists():
        pytest.skip(f"PostgreSQL 15 is not installed ({PG_BIN}/initdb missing)")
    with pg_template() as data:
        yield data


@pytest.fixture
def pg_factory(request, tmp_path, _pg_template):
    """pg_factory(tcp=False) -> started PgCluster. All are destroyed at teardown; their
    server logs are kept as <tmp_path>/logs/pg*.log."""
    log_dir = tmp_path / "logs"
    log_dir.mkdir(exist_ok=True)
    clusters = []

    def make(tcp: bool = False) -> PgCluster:
        cluster = PgCluster(tcp=tcp)
        name = _unique_log_name(request.node, "pg")
        clusters.append((name, cluster))
        _attach_log(request.node, name, cluster.log_path)
        cluster._create(_pg_template)
        cluster.start()
        return cluster

    yield make
    for name, cluster in clusters:
        kept = log_dir / f"{name}.log"
        cluster.destroy(keep_log_as=kept)
        _attach_log(request.node, name, kept)  # for a failure reported at teardown


@pytest.fixture
def postgres(pg_factory):
    """A started PgCluster, reachable on its unix socket only."""
    return pg_factory()


# ---------------------------------------------------------------------------------------------
# pcscd with vpcd readers


class Pcscd:
    """A private pcscd; clients find it through env(), i.e. PCSCLITE_CSOCK_NAME=csock.

    readers is [(name, port)], one entry per vpcd reader: a virtual card connects to
    127.0.0.1:port to be inserted into that reader and closes the connection to be removed.
    """

    def __init__(self, dir: Path, readers: list[tuple[str, int]], proc: Proc):
        self.dir = dir
        self.csock = str(dir / "run" / "pcscd.comm")
        self.readers = readers
        self.proc = proc
        self.log = proc.log_path

    def __repr__(self):
        return f"<Pcscd {self.csock} readers={self.readers}>"

    def env(self) -> dict[str, str]:
        return {"PCSCLITE_CSOCK_NAME": self.csock}

    def stop(self) -> int:
        """Stop pcscd (takes 1-2 s); return its exit code. Connected cards see EOF."""
        return self.proc.terminate()


def _vpcd_driver() -> Path:
    found = sorted(p for p in glob.glob(VPCD_DRIVER_GLOB) if not os.path.islink(p))
    if not found:
        pytest.skip(f"vpcd driver not installed ({VPCD_DRIVER_GLOB}; "
                    "apt-get install vsmartcard-vpcd)")
    return Path(found[-1])


def _write_vpcd_config(dir: Path, nreaders: int, base_port: int) -> list[tuple[str, int]]:
    """Fill dir/drv and dir/conf/reader.conf; return the readers as [(name, port)]."""
    driver = _vpcd_driver()
    readers, entries = [], []
    for i in range(nreaders // 2):
        # One driver copy per entry: vpcd keeps its two slots in static variables, so
        # entries sharing one file (or a symlink to it) overwrite each other's readers.
        copy = dir / "drv" / f"libifdvpcd-{i}.so"
        shutil.copy(driver, copy)
        port = base_port + 2 * i
        # Unique names: entries with the same FRIENDLYNAME give duplicate reader names.
        entries.append(f'FRIENDLYNAME "remsim-vpcd{i}"\n'
                       f"DEVICENAME   /dev/null:{port}\n"
                       f"LIBPATH      {copy}\n")
        readers += [(f"remsim-vpcd{i} 00 00", port), (f"remsim-vpcd{i} 00 01", port + 1)]
    (dir / "conf" / "reader.conf").write_text("\n".join(entries))
    return readers


def start_pcscd(nreaders: int, start_proc) -> Pcscd:
    """A private pcscd with nreaders vpcd readers (even, 2..16), started through
    start_proc(argv, name) -> Proc (the spawn fixture, or a plain Proc in scripts/demo).

    Reader 2i+k is "remsim-vpcd<i> 00 0<k>" on TCP port BASE+2i+k (vpcd listens on 0.0.0.0).
    pcscd always uses /run/pcscd, so each instance runs in a mount namespace of its own with
    a private directory bind-mounted there; any number of instances can run side by side.
    The caller stops pcscd.proc and removes pcscd.dir.
    """
    if nreaders <= 0 or nreaders % 2 or nreaders > PCSCD_MAX_READERS:
        raise ValueError(f"nreaders must be even, 2..{PCSCD_MAX_READERS}, not {nreaders}")
    dir = make_short_dir("rs-pcscd-")  # the client socket path must stay short too
    for sub in ("run", "conf", "drv"):
        (dir / sub).mkdir()
    readers = _write_vpcd_config(dir, nreaders, free_port(nreaders))
    os.makedirs("/run/pcscd", exist_ok=True)  # the bind mount's target
    script = 'mount --bind "$0" /run/pcscd && exec pcscd -f -i -c "$1"'
    argv = ["unshare", "-m", "sh", "-c", script, dir / "run", dir / "conf" / "reader.conf"]
    proc = start_proc(argv, "pcscd")
    pcscd = Pcscd(dir, readers, proc)
    proc.wait_ready(dir / "run" / "pcscd.comm")  # created once all readers are loaded

    # A busy port only logs "init failed"; pcscd then runs on without that reader.
    want = {port for _, port in readers}

    def vpcd_ports_listening(p):
        return want <= listening_ports(p.pid)

    try:
        proc.wait_ready(vpcd_ports_listening, timeout=3)
    except ProcError as e:
        missing = sorted(want - listening_ports(proc.pid))
        raise ProcError(f"vpcd ports {missing} are not listening: {e}") from None
    return pcscd


@pytest.fixture
def pcscd_factory(spawn):
    """pcscd_factory(nreaders=2) -> started Pcscd with nreaders vpcd readers (start_pcscd)."""
    if os.geteuid() != 0:
        pytest.skip("a private pcscd needs root (mount namespace)")
    if not shutil.which("pcscd"):
        pytest.skip("pcscd is not installed (apt-get install pcscd)")
    started = []

    def make(nreaders: int = 2) -> Pcscd:
        p = start_pcscd(nreaders, lambda argv, name: spawn(argv, name=name))
        started.append(p)
        return p

    yield make
    stop_all([p.proc for p in started])  # 1-2 s each, so all at once, before their dirs go
    for p in started:
        shutil.rmtree(p.dir, ignore_errors=True)


@pytest.fixture
def pcscd(pcscd_factory):
    """A started Pcscd with 2 vpcd readers."""
    return pcscd_factory(2)


# ---------------------------------------------------------------------------------------------
# Built binaries


def _build_dir() -> Path:
    return Path(os.environ.get("REMSIM_BUILD_DIR") or REPO_ROOT / "build").resolve()


@pytest.fixture(scope="session")
def build_dir() -> Path:
    """$REMSIM_BUILD_DIR, or build/ at the top of the repository."""
    return _build_dir()


@pytest.fixture(scope="session")
def bin_path(build_dir):
    """bin_path("tools/remsimctl") -> Path of that built program.

    A missing program skips the test when run by hand against build/, but
    fails it when REMSIM_BUILD_DIR names the build (as scripts/test does):
    there a missing binary is a broken build, not something to skip."""

    def find(relpath: str) -> Path:
        path = build_dir / relpath
        if not (path.is_file() and os.access(path, os.X_OK)):
            if os.environ.get("REMSIM_BUILD_DIR"):
                pytest.fail(f"{relpath} is not built: no executable {path}")
            pytest.skip(f"{relpath} is not built: no executable {path} "
                        "(build with CMake into build/, or set REMSIM_BUILD_DIR)")
        return path

    return find


# ---------------------------------------------------------------------------------------------
# remsim programs


@pytest.fixture
def remsim_server(spawn, bin_path, free_port_factory):
    """remsim_server(pg=None, *args, name="server", auth="optional") -> Proc

    Starts remsim-server on free RSPRO and HTTP ports (proc.port, proc.http_port), against
    the PgCluster pg if given, and waits until it listens (and, with pg, until it has loaded
    the slot mappings). auth is the --rspro-auth policy: "optional" lets the scripted
    osmo-remsim peers in without tokens; extra args are appended.
    """

    def start(pg=None, *args, name="server", auth="optional"):
        port, http_port = free_port_factory(), free_port_factory()
        argv = [str(bin_path("server/remsim-server")), "--rspro-port", str(port),
                "--http-port", str(http_port), "--log-level", "info", "--rspro-auth", auth]
        if pg is not None:
            argv += ["--db", pg.dsn]
        proc = spawn(argv + [str(a) for a in args], name=name, ready=port)
        proc.port, proc.http_port = port, http_port
        if pg is not None:
            proc.wait_for_log("slot mappings loaded")
        return proc

    return start


@pytest.fixture
def rspro_agent(bin_path):
    """rspro_agent(port, hello=None, host="127.0.0.1") -> RsproPeer (rspro_peer.py)

    A scripted RSPRO peer connected to port; hello (bytes) is sent at once. Every peer is
    closed at teardown."""
    from rspro_peer import RsproPeer

    peers = []

    def connect(port, hello=None, host="127.0.0.1"):
        p = RsproPeer(str(bin_path("tools/remsimctl")), host, port)
        peers.append(p)
        if hello:
            p.send(hello)
        return p

    yield connect
    for p in peers:
        p.close()


# Fixtures of one part each (fixtures_vsim.py, fixtures_bankd.py, ...) live in their own
# modules, loaded as plugins of this conftest.
pytest_plugins = sorted(m.stem for m in Path(__file__).parent.glob("fixtures_*.py"))
