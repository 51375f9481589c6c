#!/usr/bin/python3
"""scripts/demo.py: the whole remsim system on one machine, on virtual SIMs.

Started by scripts/demo (which installs the Debian packages and builds first). Runs, all
on loopback and all private to this demo:

  PostgreSQL            a throwaway cluster (the integration harness's PgCluster)
  remsim-server         RSPRO + HTTP, tokens required
  pcscd "bank"          8 vpcd readers, filled by one remsim-vsim with 8 virtual SIMs
  remsim-bankd 1 and 2  4 slots each (readers 0-3 and 4-7, by reader map)
  pcscd "modem"         4 vpcd readers
  remsim-client 1..4    vpcd front end: each one is the card in one modem-side reader
  a "modem" loop        reads ICCID and IMSI through every modem-side reader once a second

maps client i to one bank slot each through the REST API, prints where everything runs,
the API URL and an admin token, and a status line every few seconds. Ctrl-C (or SIGTERM)
stops everything and removes the temporary files; logs stay in the printed directory.
"""
import argparse
import contextlib
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

TOP = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TOP / "tests" / "integration"))
import conftest as harness  # noqa: E402  (PostgreSQL, pcscd and process helpers)

BANKS, SLOTS_PER_BANK, CLIENTS = 2, 4, 4


def say(msg):
    print(f"demo: {msg}", flush=True)


class Demo:
    def __init__(self, build: Path, run: Path, ports):
        self.build, self.run = build, run
        self.http_port, self.rspro_port = ports
        self.procs = []  # started order; stopped in reverse
        self.stack = contextlib.ExitStack()

    def bin(self, rel):
        path = self.build / rel
        if not path.exists():
            raise SystemExit(f"demo: {path} is missing; build first (scripts/demo does)")
        return str(path)

    def start(self, name, argv, env=None, ready=None):
        proc = harness.Proc(name, [str(a) for a in argv], self.run / f"{name}.log", env=env)
        self.procs.append(proc)
        if ready is not None:
            proc.wait_ready(ready, timeout=20)
        return proc

    def ctl(self, *args):
        r = subprocess.run([self.bin("tools/remsimctl"), *map(str, args)],
                           capture_output=True, text=True, timeout=30)
        if r.returncode:
            raise SystemExit(f"demo: remsimctl {' '.join(map(str, args))}: {r.stderr.strip()}")
        return r.stdout

    def token_file(self, role, subject):
        path = self.run / f"{role}-{subject}.token"
        tok = json.loads(self.ctl("token", "issue", "--key", self.key, "--role", role,
                                  "--id", subject, "--ttl", "1d", "--json"))["token"]
        path.write_text(tok + "\n")
        path.chmod(0o600)
        return path, tok

    # -- the parts --------------------------------------------------------------------------

    def database(self):
        template = self.stack.enter_context(harness.pg_template())
        self.pg = harness.PgCluster()
        self.stack.callback(lambda: self.pg.destroy(keep_log_as=self.run / "postgres.log"))
        self.pg._create(template)
        self.pg.start()

    def server(self):
        self.ctl("keygen", "--dir", self.run)
        self.key = self.run / "server.key"
        self.start("remsim-server", [self.bin("server/remsim-server"), "--db", self.pg.dsn,
                                     "--key", self.key, "--rspro-port", self.rspro_port,
                                     "--http-port", self.http_port, "--rspro-auth", "required"],
                   ready=self.rspro_port)
        _, self.admin_token = self.token_file("admin", 1)

    def pcscd(self, nreaders, label):
        p = harness.start_pcscd(nreaders, lambda argv, name: self.start(f"pcscd-{label}", argv))
        self.stack.callback(lambda: shutil.rmtree(p.dir, ignore_errors=True))
        return p

    def bank_side(self):
        n = BANKS * SLOTS_PER_BANK
        self.bank_pcscd = self.pcscd(n, "bank")
        cards = self.run / "cards.json"
        cards.write_text(self.ctl_vsim("--gen-profiles", n, "--seed", 2026))
        self.cards = json.loads(cards.read_text())["cards"]
        readers = [f"{port}={i}" for i, (_, port) in enumerate(self.bank_pcscd.readers)]
        argv = [self.bin("tools/remsim-vsim"), "--profiles", cards,
                *[a for r in readers for a in ("--reader", r)]]
        self.start("remsim-vsim", argv)
        self.bankd_ports = []
        for b in range(1, BANKS + 1):
            rows = [f'{b},{s},"^{self.bank_pcscd.readers[(b - 1) * SLOTS_PER_BANK + s][0]}$"'
                    for s in range(SLOTS_PER_BANK)]
            readers_csv = self.run / f"bankd{b}_pcsc_slots.csv"
            readers_csv.write_text("\n".join(rows) + "\n")
            tok, _ = self.token_file("bankd", b)
            port = harness.free_port()
            self.bankd_ports.append(port)
            self.start(f"remsim-bankd-{b}",
                       [self.bin("agent-bankd/remsim-bankd"), "-i", "127.0.0.1",
                        "-p", self.rspro_port, "-b", b, "-n", SLOTS_PER_BANK, "-I", "127.0.0.1",
                        "-P", port, "-M", readers_csv, "-t", tok, "--client-auth", "required"],
                       env=self.bank_pcscd.env(), ready=port)

    def ctl_vsim(self, *args):
        r = subprocess.run([self.bin("tools/remsim-vsim"), *map(str, args)],
                           capture_output=True, text=True, timeout=30)
        if r.returncode:
            raise SystemExit(f"demo: remsim-vsim {args}: {r.stderr.strip()}")
        return r.stdout

    def modem_side(self):
        self.modem_pcscd = self.pcscd(CLIENTS, "modem")
        for c in range(1, CLIENTS + 1):
            tok, _ = self.token_file("client", c)
            _, port = self.modem_pcscd.readers[c - 1]
            self.start(f"remsim-client-{c}",
                       [self.bin("agent-client/remsim-client"), "-i", "127.0.0.1",
                        "-p", self.rspro_port, "-c", c, "-n", 0, "-t", tok,
                        "-f", "vpcd", "--vpcd-port", port])

    def api(self, method, path, body=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=10)
        try:
            conn.request(method, path, body=json.dumps(body) if body is not None else None,
                         headers={"Authorization": f"Bearer {self.admin_token}",
                                  "Content-Type": "application/json"})
            resp = conn.getresponse()
            raw = resp.read()
            try:
                return resp.status, json.loads(raw or b"null")
            except ValueError:
                return resp.status, raw.decode(errors="replace")
        finally:
            conn.close()

    def map_all(self):
        """Client c (slot 0) <- bank ((c-1) % 2) + 1, slot (c-1) // 2."""
        self.plan = {}
        for c in range(1, CLIENTS + 1):
            b, s = (c - 1) % BANKS + 1, (c - 1) // BANKS
            status, body = self.api("POST", "/api/v2/slotmaps",
                                    {"bank": {"bank_id": b, "slot": s},
                                     "client": {"client_id": c, "slot": 0}})
            if status not in (200, 201):
                raise SystemExit(f"demo: mapping client {c} to bank {b} slot {s}: "
                                 f"{status} {body}")
            self.plan[c] = (b, s)

    def stop(self):
        harness.stop_all(list(reversed(self.procs)))
        self.stack.close()


# ---------------------------------------------------------------------------------------------
# The "modem": reads ICCID and IMSI through the modem-side readers (GSM class, T=0 style)

SELECT = "a0a4000002"


def swap_bcd(data: bytes) -> str:
    return "".join(f"{b & 0xf:x}{b >> 4:x}" for b in data).rstrip("f")


class Modem(threading.Thread):
    def __init__(self, readers, stop_event):
        super().__init__(daemon=True)
        self.readers = readers
        self.stop_event = stop_event
        self.state = {r: {"ok": 0, "failed": 0, "iccid": None, "imsi": None, "error": None}
                      for r in readers}

    def read_card(self, conn):
        def tx(hex_apdu):
            data, sw1, sw2 = conn.transmit(list(bytes.fromhex(hex_apdu)))
            return bytes(data), sw1, sw2

        tx(SELECT + "3f00")
        tx(SELECT + "2fe2")
        iccid, sw1, _ = tx("a0b000000a")
        if sw1 != 0x90:
            raise RuntimeError(f"READ BINARY EF_ICCID: SW {sw1:02x}")
        tx(SELECT + "7f20")
        tx(SELECT + "6f07")
        imsi, sw1, _ = tx("a0b0000009")
        if sw1 != 0x90:
            raise RuntimeError(f"READ BINARY EF_IMSI: SW {sw1:02x}")
        return swap_bcd(iccid), swap_bcd(imsi[1:1 + imsi[0]])[1:]

    def run(self):
        from smartcard.System import readers as list_readers
        while not self.stop_event.is_set():
            present = {str(r): r for r in list_readers()}
            for name, st in self.state.items():
                conn = None
                try:
                    conn = present[name].createConnection()
                    conn.connect()
                    try:
                        st["iccid"], st["imsi"] = self.read_card(conn)
                    finally:
                        conn.disconnect()
                    st["ok"] += 1
                    st["error"] = None
                except Exception as e:  # no card yet, card moved, ...: shown, retried
                    # before its first card a modem is waiting, not failing
                    st["failed"] += 1 if st["ok"] else 0
                    st["error"] = str(e).splitlines()[0][:60] if str(e) else type(e).__name__
                finally:
                    # its PC/SC context goes now, in this thread, while pcscd runs
                    del conn
            self.stop_event.wait(1.0)


def port_or_free(port):
    return port if harness._port_is_free(port) else harness.free_port()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--build", type=Path, default=TOP / "build")
    p.add_argument("--http-port", type=int, default=9997)
    p.add_argument("--rspro-port", type=int, default=9998)
    p.add_argument("--duration", type=float, default=0,
                   help="stop by itself after this many seconds (0: run until Ctrl-C)")
    a = p.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("demo: run as root (PostgreSQL runs as postgres, pcscd in its own "
                         "mount namespace)")
    run = Path(tempfile.mkdtemp(prefix="remsim-demo-"))
    run.chmod(0o755)
    demo = Demo(a.build.resolve(), run, (port_or_free(a.http_port),
                                         port_or_free(a.rspro_port)))
    stop_event = threading.Event()
    modem = None
    signal.signal(signal.SIGTERM, lambda *_: stop_event.set())
    signal.signal(signal.SIGINT, lambda *_: stop_event.set())
    try:
        say(f"logs in {run}")
        demo.database()
        demo.server()
        demo.bank_side()
        demo.modem_side()
        demo.map_all()
        os.environ.update(demo.modem_pcscd.env())  # the modem loop's PC/SC is the modem side
        modem = Modem([name for name, _ in demo.modem_pcscd.readers[:CLIENTS]], stop_event)
        modem.start()
        base = f"http://127.0.0.1:{demo.http_port}"
        dashboard = f"{base}/"
        if demo.api("GET", "/")[0] != 200:
            dashboard += "  (web/ not found: the API below works; see --web-root)"
        print(f"""
remsim demo is running (Ctrl-C stops it)

  PostgreSQL      {demo.pg.dsn}
  remsim-server   RSPRO 127.0.0.1:{demo.rspro_port}, HTTP {base}
  bank pcscd      {demo.bank_pcscd.csock} ({len(demo.bank_pcscd.readers)} readers, remsim-vsim cards)
  remsim-bankd    bank 1 on 127.0.0.1:{demo.bankd_ports[0]}, bank 2 on 127.0.0.1:{demo.bankd_ports[1]}
  modem pcscd     {demo.modem_pcscd.csock} ({CLIENTS} readers: remsim-client vpcd front ends)
  logs            {run}

  dashboard       {dashboard}   (log in with the admin token)
  API             {base}/api/v2/health
  admin token     {demo.admin_token}

  try:  curl -s -H "Authorization: Bearer $TOKEN" {base}/api/v2/banks/1/slots
        PCSCLITE_CSOCK_NAME={demo.modem_pcscd.csock} pcsc_scan -r
""", flush=True)
        started = time.monotonic()
        while not stop_event.wait(5):
            for c, (name, st) in enumerate(modem.state.items(), 1):
                b, s = demo.plan[c]
                what = (f"ICCID {st['iccid']} IMSI {st['imsi']}" if st["error"] is None
                        else f"waiting: {st['error']}")
                say(f"modem {c} (client {c}:0 <- bank {b} slot {s}): {what}; "
                    f"{st['ok']} reads ok, {st['failed']} failed")
            if a.duration and time.monotonic() - started > a.duration:
                break
    finally:
        say("stopping")
        stop_event.set()
        if modem is not None:
            modem.join(10)  # its PC/SC contexts released before pcscd stops
        demo.stop()
        say(f"stopped; logs kept in {run}")


if __name__ == "__main__":
    main()
