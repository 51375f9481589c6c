"""Fixtures for remsim-vsim: virtual SIM/USIM cards in the vpcd readers of a private pcscd.

vsim_factory(pcscd, ...) starts one remsim-vsim process serving cards on some of pcscd's
readers and waits until pcscd shows them; pcsc_factory(pcscd) gives a PC/SC client of that
pcscd. The client runs pyscard in a child process: pcsc-lite reads PCSCLITE_CSOCK_NAME once
per process, so one pytest process cannot talk to two private pcscds itself.
"""

import json
import os
import secrets
import select
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ProcError, make_short_dir

PYTHON = sys.executable  # /usr/bin/python3: the child needs Debian's pyscard
CARD_WAIT = 10.0  # seconds until pcscd shows a started card (it polls every 400 ms)

# The PC/SC child: one JSON request per stdin line, one JSON answer per stdout line, both with
# the request's "id". Connections stay open between requests, keyed by reader name.
PCSC_AGENT = r'''
import json, sys, time
from smartcard import scard as S

def check(rv, what):
    if rv != S.SCARD_S_SUCCESS:
        raise RuntimeError(f"{what}: {S.SCardGetErrorMessage(rv)} (0x{rv & 0xffffffff:08X})")

rv, ctx = S.SCardEstablishContext(S.SCARD_SCOPE_USER)
check(rv, "SCardEstablishContext")
cards = {}  # reader -> (handle, protocol)

def present(reader):
    rv, states = S.SCardGetStatusChange(ctx, 0, [(reader, S.SCARD_STATE_UNAWARE)])
    check(rv, "SCardGetStatusChange")
    return bool(states[0][1] & S.SCARD_STATE_PRESENT)

def op_readers(req):
    rv, names = S.SCardListReaders(ctx, [])
    check(rv, "SCardListReaders")
    return {"readers": names}

def op_wait(req):
    deadline = time.monotonic() + req["wait_s"]
    while present(req["reader"]) != req.get("present", True):
        if time.monotonic() > deadline:
            raise RuntimeError(f"card in {req['reader']} not "
                               f"{'present' if req.get('present', True) else 'gone'}")
        time.sleep(0.02)
    return {}

def op_connect(req):
    op_disconnect({"reader": req["reader"]})
    rv, h, proto = S.SCardConnect(ctx, req["reader"], S.SCARD_SHARE_SHARED,
                                  S.SCARD_PROTOCOL_T0 | S.SCARD_PROTOCOL_T1)
    check(rv, "SCardConnect")
    cards[req["reader"]] = (h, proto)
    rv, _, state, proto, atr = S.SCardStatus(h)
    check(rv, "SCardStatus")
    return {"atr": bytes(atr).hex(), "protocol": "T=0" if proto == S.SCARD_PROTOCOL_T0 else "T=1"}

def op_disconnect(req):
    entry = cards.pop(req["reader"], None)
    if entry:
        S.SCardDisconnect(entry[0], S.SCARD_UNPOWER_CARD)
    return {}

def op_reset(req):
    h, proto = cards[req["reader"]]
    rv, proto = S.SCardReconnect(h, S.SCARD_SHARE_SHARED,
                                 S.SCARD_PROTOCOL_T0 | S.SCARD_PROTOCOL_T1, S.SCARD_RESET_CARD)
    check(rv, "SCardReconnect")
    cards[req["reader"]] = (h, proto)
    return {}

def transmit(reader, apdu):
    h, proto = cards[reader]
    rv, resp = S.SCardTransmit(h, proto, list(apdu))
    check(rv, "SCardTransmit")
    return bytes(resp)

def op_transmit(req):
    return {"resp": transmit(req["reader"], bytes.fromhex(req["apdu"])).hex()}

def op_bench(req):
    apdu, us = bytes.fromhex(req["apdu"]), []
    for _ in range(req["count"]):
        t = time.perf_counter()
        transmit(req["reader"], apdu)
        us.append((time.perf_counter() - t) * 1e6)
    return {"us": us}

for line in sys.stdin:
    req = json.loads(line)
    try:
        ans = globals()["op_" + req["op"]](req)
    except Exception as e:  # the test sees the message
        ans = {"error": f"{type(e).__name__}: {e}"}
    ans["id"] = req["id"]
    print(json.dumps(ans), flush=True)
'''


class PcscError(Exception):
    """A PC/SC call through the child failed (no card, card removed, timeout...)."""


class PcscClient:
    """pyscard against one private pcscd, in a child process (see PCSC_AGENT)."""

    def __init__(self, pcscd, log_path: Path):
        self._log = open(log_path, "wb")
        self.popen = subprocess.Popen([PYTHON, "-c", PCSC_AGENT], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=self._log,
                                      env={**os.environ, **pcscd.env()})
        self._next_id = 0

    def request(self, op: str, timeout: float = 10.0, **args) -> dict:
        """Send one request and wait up to timeout s for its answer; PcscError on failure.
        An answer that comes after its timeout is skipped by later requests."""
        __tracebackhide__ = True
        self._next_id += 1
        rid = self._next_id
        self.popen.stdin.write((json.dumps({"op": op, "id": rid, **args}) + "\n").encode())
        self.popen.stdin.flush()
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.popen.stdout], [], [], left)[0]:
                raise TimeoutError(f"PC/SC {op} got no answer within {timeout} s")
            line = self.popen.stdout.readline()
            if not line:
                raise PcscError(f"PC/SC child exited ({self.popen.poll()}); "
                                f"see {self._log.name}")
            ans = json.loads(line)
            if ans.pop("id") != rid:
                continue  # the late answer of an earlier request that timed out
            if "error" in ans:
                raise PcscError(f"{op} {args.get('reader', '')}: {ans['error']}")
            return ans

    def readers(self) -> list[str]:
        return self.request("readers")["readers"]

    def wait_card(self, reader: str, present: bool = True, timeout: float = CARD_WAIT):
        """Wait until pcscd shows a card in reader (present=False: until it shows none)."""
        self.request("wait", timeout=timeout + 5, reader=reader, present=present,
                     wait_s=timeout)

    def connect(self, reader: str) -> bytes:
        """SCardConnect (shared, T=0 or T=1); returns the ATR."""
        return bytes.fromhex(self.request("connect", reader=reader)["atr"])

    def disconnect(self, reader: str) -> None:
        self.request("disconnect", reader=reader)

    def reset(self, reader: str) -> None:
        self.request("reset", reader=reader)

    def transmit(self, reader: str, apdu, timeout: float = 10.0) -> tuple[bytes, int]:
        """Send an APDU (bytes or hex text) to a connected reader; returns (data, SW)."""
        if isinstance(apdu, str):
            apdu = bytes.fromhex(apdu.replace(" ", ""))
        resp = bytes.fromhex(self.request("transmit", timeout=timeout, reader=reader,
                                          apdu=apdu.hex())["resp"])
        if len(resp) < 2:
            # what SCardTransmit gives when vpcd loses the card in mid-APDU
            raise PcscError(f"transmit {reader}: response {resp.hex() or 'empty'}, no SW")
        return resp[:-2], int.from_bytes(resp[-2:], "big")

    def bench(self, reader: str, apdu: bytes, count: int, timeout: float = 60.0) -> list[float]:
        """count round trips of apdu; returns each one's time in microseconds."""
        return self.request("bench", timeout=timeout, reader=reader, apdu=apdu.hex(),
                            count=count)["us"]

    def close(self) -> None:
        if self.popen.poll() is None:
            self.popen.stdin.close()
            try:
                self.popen.wait(5)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self.popen.stdout.close()
        self._log.close()


class Vsim:
    """A running remsim-vsim. Card k of .profiles sits in reader .reader_names[k] (vpcd port
    .ports[k]); .control() talks to its control socket; .pcsc is a PcscClient of its pcscd."""

    def __init__(self, proc, profiles, profiles_path, reader_names, ports, control_path, pcsc):
        self.proc = proc
        self.profiles = profiles
        self.profiles_path = profiles_path
        self.reader_names = reader_names
        self.ports = ports
        self.control_path = control_path
        self.pcsc = pcsc

    def control(self, cmd: str, timeout: float = 5.0) -> str:
        """Send one control command; returns the answer: its last line starts with "ok" or
        "error" ("status" sends one JSON line per card before it)."""
        if not self.control_path:
            raise ValueError("this remsim-vsim has no control socket (control=False)")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(self.control_path))
            sock.sendall(cmd.encode() + b"\n")
            buf = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ProcError(f"control socket closed after {buf!r}")
                buf += chunk
                last = buf.rstrip(b"\n").rsplit(b"\n", 1)[-1]
                if buf.endswith(b"\n") and (last.startswith(b"ok") or
                                            last.startswith(b"error")):
                    return buf.decode().rstrip("\n")

    def status(self) -> list[dict]:
        """The "status" command's JSON lines, one dict per card."""
        lines = self.control("status").splitlines()
        assert lines[-1].startswith("ok"), lines
        return [json.loads(line) for line in lines[:-1]]

    def card_status(self, index: int) -> dict:
        return next(s for s in self.status() if s["index"] == index)

    def wait_present(self, k: int, present: bool = True, timeout: float = CARD_WAIT) -> None:
        """Wait until pcscd shows card k in its reader (or, present=False, shows none)."""
        self.pcsc.wait_card(self.reader_names[k], present, timeout)


@pytest.fixture
def pcsc_factory(request, tmp_path):
    """pcsc_factory(pcscd) -> PcscClient talking to that pcscd; closed at teardown."""
    clients = []
    log_dir = tmp_path / "logs"
    log_dir.mkdir(exist_ok=True)

    def make(pcscd) -> PcscClient:
        client = PcscClient(pcscd, log_dir / f"pcsc-{len(clients) + 1}.log")
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def vsim_factory(spawn, bin_path, pcsc_factory, tmp_path):
    """vsim_factory(pcscd, cards=None, profiles=None, readers=None, control=True, args=(),
    name="vsim", wait=True, log_level="info") -> Vsim

    Starts remsim-vsim on pcscd's readers. Cards come from the profile file `profiles` (a
    path) or are generated (`cards` of them, default len(readers)). `readers` are indexes
    into pcscd.readers (default: the first min(cards, all) of them); card k goes into
    readers[k]. With wait, returns once pcscd shows every card."""
    dirs = []

    def start(pcscd, cards=None, profiles=None, readers=None, control=True, args=(),
              name="vsim", wait=True, log_level="info"):
        if profiles is None:
            n = cards if cards is not None else len(readers) if readers else len(pcscd.readers)
            profiles = tmp_path / f"{name}-profiles.json"
            gen = subprocess.run([str(bin_path("tools/remsim-vsim")), "--gen-profiles", str(n),
                                  "--seed", str(secrets.randbits(32))],
                                 capture_output=True, text=True, timeout=30, check=True)
            profiles.write_text(gen.stdout)
        profile_list = json.loads(Path(profiles).read_text())["cards"]
        if readers is None:
            readers = list(range(min(len(profile_list), len(pcscd.readers))))
        names = [pcscd.readers[r][0] for r in readers]
        ports = [pcscd.readers[r][1] for r in readers]
        argv = [str(bin_path("tools/remsim-vsim")), "--profiles", str(profiles),
                "--log-level", log_level]
        for k, port in enumerate(ports):
            argv += ["--reader", f"{port}={k}"]
        control_path = None
        if control:
            d = make_short_dir("rs-vsim-")
            dirs.append(d)
            control_path = d / "control.sock"
            argv += ["--control", str(control_path)]
        proc = spawn(argv + [str(a) for a in args], name=name,
                     ready=control_path if control else "serving")
        vsim = Vsim(proc, profile_list, Path(profiles), names, ports, control_path,
                    pcsc_factory(pcscd))
        if wait:
            for k in range(len(names)):
                vsim.wait_present(k)
        return vsim

    yield start
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def vsim(vsim_factory, pcscd):
    """remsim-vsim serving two generated cards in the two readers of the `pcscd` fixture."""
    return vsim_factory(pcscd)
