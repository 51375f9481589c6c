"""Smoke tests for the fixtures in conftest.py, against the real PostgreSQL, pcscd and vpcd.

A broken test bed should fail here, with a clear message, rather than in a feature test.
"""

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

PYTHON = sys.executable  # /usr/bin/python3: child scripts need Debian's pyscard
PSQL = "/usr/bin/psql"

# A minimal vpcd card: GET DATA (00 CA ...) answers the card's own port + 90 00, any other
# APDU 90 00. Run as VPCD_CARD PORT; it prints "inserted" once connected to the reader.
VPCD_CARD = r'''
import socket, struct, sys

port = int(sys.argv[1])
ATR = bytes.fromhex("3B9F96801FC78031A073BE21136743200718000001A5")
sock = socket.create_connection(("127.0.0.1", port))
sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
print("inserted", flush=True)


def recv_exact(n):
    buf = b""
    while len(buf) < n:
        # pcscd writes length and payload as two segments with Nagle on: unless the first
        # is ACKed at once, the second waits out our 40 ms delayed ACK. QUICKACK is not
        # sticky, so it is set before every read.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        chunk = sock.recv(n - len(buf))
        if not chunk:
            sys.exit(0)  # pcscd went away
        buf += chunk
    return buf


def send(payload):
    sock.sendall(struct.pack("!H", len(payload)) + payload)  # one write: one segment


while True:
    (length,) = struct.unpack("!H", recv_exact(2))
    msg = recv_exact(length)
    if length == 1:
        if msg[0] == 0x04:  # get ATR; 0x00 power off, 0x01 power on, 0x02 reset: no reply
            send(ATR)
    elif msg[1] == 0xCA:
        send(struct.pack("!H", port) + b"\x90\x00")
    else:
        send(b"\x90\x00")
'''

# Sends GET DATA through pcscd to each reader named in argv (waiting up to 5 s for its card)
# and prints "<reader name>|<response hex>". pyscard reads PCSCLITE_CSOCK_NAME when it
# creates its context, hence a child process with that variable set.
PCSC_GET_DATA = r'''
import sys, time
from smartcard.System import readers
from smartcard.Exceptions import CardConnectionException, NoCardException

for name in sys.argv[1:]:
    reader = next(r for r in readers() if str(r) == name)
    deadline = time.monotonic() + 5
    while True:  # pcscd polls its readers every 400 ms for new cards
        conn = reader.createConnection()
        try:
            conn.connect()
            break
        except (NoCardException, CardConnectionException):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    data, sw1, sw2 = conn.transmit([0x00, 0xCA, 0x00, 0x00, 0x00])
    print(f"{name}|{bytes(data + [sw1, sw2]).hex()}", flush=True)
    conn.disconnect()
'''


def run(argv, env=None, timeout=30):
    """Run a short-lived client; return its stdout, failing the test with its stderr."""
    res = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout,
                         env={**os.environ, **(env or {})})
    assert res.returncode == 0, f"{argv[0]} failed ({res.returncode}): {res.stderr}"
    return res.stdout


# ---------------------------------------------------------------------------------------------
# Ports, scratch directories, build directory


def test_free_ports_are_distinct_and_bindable(free_port_factory):
    single = free_port_factory()
    base = free_port_factory(4)
    ports = [single, *range(base, base + 4)]
    assert len(set(ports)) == 5
    assert not {35963, 35964} & set(ports)
    for port in ports:
        for addr in ("127.0.0.1", "0.0.0.0"):
            with socket.socket() as sock:
                sock.bind((addr, port))


def test_tmp_short_is_short_and_enterable_by_postgres(tmp_short):
    # A PostgreSQL socket below it must stay under 108 bytes with room to spare.
    assert len(f"{tmp_short}/pg/sock/.s.PGSQL.65535") < 80
    if os.geteuid() == 0:
        assert subprocess.run(["runuser", "-u", "postgres", "--", "test", "-x",
                               str(tmp_short)]).returncode == 0


def test_bin_path_reports_unbuilt_programs(bin_path, build_dir):
    # skipped when run by hand, a failure when the build dir is named
    if "REMSIM_BUILD_DIR" not in os.environ:
        assert build_dir == Path(__file__).resolve().parents[2] / "build"
        expected = pytest.skip.Exception
    else:
        expected = pytest.fail.Exception
    with pytest.raises(expected, match="no/such-program is not built"):
        bin_path("no/such-program")


# ---------------------------------------------------------------------------------------------
# Processes


def test_spawn_ready_by_port_then_terminate(spawn, free_port_factory, tmp_path):
    port = free_port_factory()
    server = spawn([PYTHON, "-m", "http.server", "--bind", "127.0.0.1", port], cwd=tmp_path,
                   ready=port)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/")
    assert conn.getresponse().status == 200
    conn.close()
    assert server.terminate() == -signal.SIGTERM
    assert server.returncode == -signal.SIGTERM


def test_spawn_ready_by_log_then_kill9(spawn):
    proc = spawn([PYTHON, "-c", "import time; print('up and running', flush=True); time.sleep(60)"],
                 ready=r"^up and running$")
    assert proc.returncode is None
    assert proc.kill9() == -signal.SIGKILL


def test_spawn_ready_by_file_env_and_exit_code(spawn, tmp_path):
    flag = tmp_path / "flag"
    script = ("import os, pathlib, sys, time; time.sleep(0.1); pathlib.Path(sys.argv[1]).touch(); "
              "print('X=%s HOME=%s' % (os.environ['REMSIM_X'], os.environ.get('HOME'))); "
              "sys.exit(7)")
    proc = spawn([PYTHON, "-c", script, flag], env={"REMSIM_X": 42, "HOME": None}, ready=flag)
    assert proc.wait() == 7
    assert proc.wait_for_log(r"^X=42 HOME=None$")


def test_spawn_early_exit_fails_fast_with_log(spawn, free_port_factory):
    started = time.monotonic()
    with pytest.raises(Exception, match=r"(?s)exited with 3 before listening.*error: no config"):
        spawn([PYTHON, "-c", "import sys; print('error: no config'); sys.exit(3)"],
              ready=free_port_factory(), timeout=10)
    assert time.monotonic() - started < 2


def test_spawn_port_readiness_needs_the_process_itself_to_listen(spawn, free_port_factory,
                                                                  tmp_path):
    port = free_port_factory()
    spawn([PYTHON, "-m", "http.server", "--bind", "127.0.0.1", port], cwd=tmp_path, ready=port)
    # A second process is not ready just because someone else holds its port.
    with pytest.raises(Exception, match="not ready after 0.3 s"):
        spawn([PYTHON, "-c", "import time; time.sleep(60)"], ready=port, timeout=0.3)


def test_failed_test_shows_logs_and_its_processes_are_stopped(pytester):
    pytester.makeconftest(Path(__file__).with_name("conftest.py").read_text())
    pidfile = pytester.path / "pid"
    script = ("import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); "
              "print('MARKER-7f3a', flush=True); time.sleep(60)")
    pytester.makepyfile(test_inner=f"""
        import sys

        def test_fails(spawn):
            spawn([sys.executable, "-c", {script!r}, {str(pidfile)!r}], name="sleeper",
                  ready="MARKER")
            assert False, "deliberate failure"
        """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*log of sleeper*", "MARKER-7f3a"])
    assert not Path(f"/proc/{pidfile.read_text()}").exists()


# ---------------------------------------------------------------------------------------------
# PostgreSQL


def test_postgres_sql_roundtrip(postgres):
    postgres.psql("CREATE TABLE slot (id int PRIMARY KEY, name text)")
    postgres.psql("INSERT INTO slot VALUES (1, 'one'), (2, 'two')")
    assert postgres.psql("SELECT id, name FROM slot ORDER BY id") == "1|one\n2|two"
    assert postgres.psql("SHOW fsync") == "off"
    assert run([PSQL, "-XAtc", "SELECT count(*) FROM slot"], env=postgres.env()) == "2\n"
    assert run([PSQL, "-XAtc", "SELECT current_user", postgres.dsn]) == "postgres\n"


def test_postgres_listen_notify(postgres):
    psycopg = pytest.importorskip("psycopg")
    received = []
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        conn.add_notify_handler(lambda n: received.append((n.channel, n.payload)))
        conn.execute("LISTEN slot_events")
        postgres.psql("NOTIFY slot_events, 'bank 1 slot 3'")
        deadline = time.monotonic() + 5
        while not received and time.monotonic() < deadline:
            conn.execute("SELECT 1")  # notifications are read along with a reply
            time.sleep(0.01)
    assert received == [("slot_events", "bank 1 slot 3")]


def test_postgres_stop_start_keeps_data(postgres):
    postgres.psql("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')")
    for _ in range(2):
        postgres.stop()
        assert not postgres.running
        with pytest.raises(Exception, match="psql failed"):
            postgres.psql("SELECT 1")
        postgres.start()
        assert postgres.psql("SELECT v FROM kept") == "still here"


def test_postgres_two_clusters_side_by_side_one_on_tcp(pg_factory):
    a, b = pg_factory(), pg_factory(tcp=True)
    assert (a.host, a.port) != (b.host, b.port)
    for cluster, name in ((a, "a"), (b, "b")):
        cluster.psql(f"CREATE TABLE who (name text); INSERT INTO who VALUES ('{name}')")
    assert a.psql("SELECT name FROM who") == "a"
    over_tcp = run([PSQL, "-XAtc", "SELECT name, inet_server_addr() FROM who", b.tcp_dsn])
    assert over_tcp == "b|127.0.0.1\n"
    with pytest.raises(ValueError):
        a.tcp_dsn


# ---------------------------------------------------------------------------------------------
# pcscd and vpcd


def pcsc_reader_names(pcscd):
    lines = run(["pcsc_scan", "-r"], env=pcscd.env()).splitlines()
    return [line.split(": ", 1)[1] for line in lines if line.strip()]


def insert_card(spawn, tmp_path, port):
    card = tmp_path / "vpcd_card.py"
    card.write_text(VPCD_CARD)
    return spawn([PYTHON, card, port], name=f"card-{port}", ready=r"^inserted$")


def get_data_through_pcscd(pcscd, names):
    out = run([PYTHON, "-c", PCSC_GET_DATA, *names], env=pcscd.env())
    return dict(line.split("|") for line in out.splitlines())


def test_pcscd_lists_its_readers(pcscd_factory):
    pcscd = pcscd_factory(4)
    names = [name for name, _ in pcscd.readers]
    assert names == ["remsim-vpcd0 00 00", "remsim-vpcd0 00 01",
                     "remsim-vpcd1 00 00", "remsim-vpcd1 00 01"]
    ports = [port for _, port in pcscd.readers]
    assert ports == list(range(ports[0], ports[0] + 4))
    assert pcsc_reader_names(pcscd) == names


def test_pcscd_apdu_reaches_the_card_in_each_reader(pcscd_factory, spawn, tmp_path):
    pcscd = pcscd_factory(4)
    for _, port in pcscd.readers:
        insert_card(spawn, tmp_path, port)
    answers = get_data_through_pcscd(pcscd, [name for name, _ in pcscd.readers])
    assert answers == {name: f"{port:04x}9000" for name, port in pcscd.readers}


def test_two_pcscd_side_by_side(pcscd_factory, spawn, tmp_path):
    first, second = pcscd_factory(2), pcscd_factory(2)
    assert first.csock != second.csock
    # Same reader names in both, each daemon with its own ports and only its own readers.
    assert pcsc_reader_names(first) == pcsc_reader_names(second) == ["remsim-vpcd0 00 00",
                                                                     "remsim-vpcd0 00 01"]
    name, port = second.readers[1]
    insert_card(spawn, tmp_path, port)
    assert get_data_through_pcscd(second, [name]) == {name: f"{port:04x}9000"}
    assert first.stop() == 0 and second.stop() == 0
