"""Fixtures for remsim-client's tests: a scripted bankd (control link to the real
remsim-server, data port for the client, answers TPDUs from a Python function), the
remsim-client process with its stdin/stdout as pipes (the shell front end), and
client_bed, which wires PostgreSQL, the server with a key, the scripted bankd and a REST v2
admin API together so that a test maps a slot the way an operator would.
"""
import http.client
import os
import json
import queue
import socket
import subprocess
import threading
import time

import pytest
from conftest import (Proc, _attach_log, _unique_log_name, issue_token,
                      stop_checking_sanitizers)
from rspro_peer import OSMO_CONNECT_BANK_REQ, PONG, Frame

# connectClientRes {ok, tag 2342} exactly as osmo-remsim-bankd 1.0 sends it.
OSMO_BANKD_CONNECT_CLIENT_RES = bytes.fromhex(
    "0037ee07303480010281020926a22ba32930240a0102160a6669786d652d6e616d65800c72656d73696d2d"
    "62616e6b648105312e302e300a0100")
SIM_ATR = bytes.fromhex("3b9f96801fc78031a073be21136743200718000001a5")


# ---------------------------------------------------------------------------------------------
# A few RSPRO messages in DER, built here so that a TPDU answer costs no subprocess. The
# encoding is checked against osmo-remsim's golden bytes in test_client.py.


def _der(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        length = bytes([n])
    elif n < 0x100:
        length = bytes([0x81, n])
    else:
        length = bytes([0x82, n >> 8, n & 0xFF])
    return bytes([tag]) + length + content


def _int(v: int) -> bytes:
    return _der(0x02, v.to_bytes(max(1, (v.bit_length() + 8) // 8), "big", signed=True))


def _slot(a: int, b: int) -> bytes:
    return _der(0x30, _int(a) + _int(b))


def rspro_ipa(msg_tag: int, content: bytes) -> bytes:
    """IPA frame of an RsproPDU (version 2, tag 0) carrying alternative msg_tag."""
    pdu = _der(0x30, bytes.fromhex("800102810100") + _der(0xA2, _der(msg_tag, content)))
    return len(pdu + b"x").to_bytes(2, "big") + b"\xee\x07" + pdu


def set_atr_req(client=(23, 0), atr=SIM_ATR) -> bytes:
    return rspro_ipa(0xAA, _slot(*client) + _der(0x04, atr))


def tpdu_card_to_modem(data: bytes, bank=(1, 0), client=(23, 0)) -> bytes:
    flags = _der(0x30, bytes.fromhex("010100") * 4)
    return rspro_ipa(0xAD, _slot(*bank) + _slot(*client) + flags + _der(0x04, data))


def _tlvs(b: bytes):
    """[(tag, value)] of a run of BER TLVs (single-byte tags, definite lengths)."""
    out, i = [], 0
    while i < len(b):
        tag, n = b[i], b[i + 1]
        i += 2
        if n & 0x80:
            k = n & 0x7F
            n = int.from_bytes(b[i:i + k], "big")
            i += k
        out.append((tag, b[i:i + n]))
        i += n
    if i != len(b):
        raise ValueError("truncated TLV")
    return out


def _slot_dict(b: bytes, a: str, z: str) -> dict:
    (_, x), (_, y) = _tlvs(b)[:2]
    return {a: int.from_bytes(x, "big"), z: int.from_bytes(y, "big")}


_FLAGS = ("tpduHeaderPresent", "finalPart", "procByteContinueTx", "procByteContinueRx")
_STATUS = {0x80: "resetActive", 0x81: "vccPresent", 0x82: "clkActive", 0x83: "cardPresent"}


def fast_decode(raw: bytes):
    """(name, msg) for the two messages a client sends per APDU and per reset, in
    remsimctl's JSON form, decoded here: a remsimctl run per frame (slow under ASan) would
    dominate the APDU times the tests measure. None for anything else."""
    try:
        if raw[2:4] != b"\xee\x07":
            return None
        (tag, body), = _tlvs(raw[4:])
        choice = dict(_tlvs(body))[0xA2]
        (alt, msg), = _tlvs(choice)
        f = _tlvs(msg)
        cs = _slot_dict(f[0][1], "clientId", "slotNr")
        bs = _slot_dict(f[1][1], "bankId", "slotNr")
        if alt == 0xAC and len(f) == 4:
            flags = {k: v[0] != 0 for k, (_, v) in zip(_FLAGS, _tlvs(f[2][1]))}
            return "tpduModemToCard", {"fromClientSlot": cs, "toBankSlot": bs,
                                       "flags": flags, "data": f[3][1].hex()}
        if alt == 0xAE and len(f) == 3:
            st = {_STATUS[t]: v[0] != 0 for t, v in _tlvs(f[2][1])}
            return "clientSlotStatusInd", {"fromClientSlot": cs, "toBankSlot": bs,
                                           "slotPhysStatus": st}
    except (ValueError, KeyError, IndexError):
        pass
    return None


def default_card(tpdu: bytes) -> bytes:
    """A tiny T=0 card: SELECT -> 9F17 (GSM) / 6112 (UICC), GET RESPONSE -> that many
    bytes + 9000, anything else -> 9000. Deterministic, so tests can assert on answers."""
    ins = tpdu[1]
    if ins == 0xA4:
        return b"\x9f\x17" if tpdu[0] == 0xA0 else b"\x61\x12"
    if ins == 0xC0:
        return bytes(range(tpdu[4] or 256)) + b"\x90\x00"
    if ins == 0xB0 and tpdu[4] == 0:  # READ BINARY with Le 0: tell the right length
        return b"\x6c\x04"
    if ins == 0xB0:
        return bytes([0xAB] * tpdu[4]) + b"\x90\x00"
    return b"\x90\x00"


# ---------------------------------------------------------------------------------------------
# The scripted bankd


class BankdConn:
    """One client connection at the scripted bankd's data port."""

    def __init__(self, bankd, sock, peer):
        self.bankd, self.sock, self.peer = bankd, sock, peer
        self.client = None  # (client_id, slot) from connectClientReq
        self.closed = False

    def send(self, data: bytes):
        try:
            self.sock.sendall(data)
        except OSError:
            pass


class ScriptedBankd:
    """bankd 1 with `slots` slots: a control link to the server (answers connect, reset,
    create/remove mapping with ok, PINGs with PONG) and a data port for clients (answers
    connectClientReq with ok + setAtrReq, every tpduModemToCard through card(tpdu) -> bytes).
    Every message received on the data port is recorded as (conn, name, msg dict)."""

    def __init__(self, ctl: str, data_port: int, atr: bytes = SIM_ATR, card=default_card):
        self.ctl, self.port, self.atr, self.card = ctl, data_port, atr, card
        self.cond = threading.Condition()
        self.events = []  # (BankdConn, msg name, msg dict); CCM as "PING"/"PONG"
        self.conns = []
        self.listener = None
        self.control = None
        self.refuse = None  # a result code name to refuse connectClientReq with
        self._threads = []
        self._stop = False

    # -- data port ------------------------------------------------------------------------

    def listen(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(8)
        self.listener = s
        self._spawn(self._accept_loop, s)

    def _spawn(self, fn, *args):
        t = threading.Thread(target=fn, args=args, daemon=True)
        t.start()
        self._threads.append(t)

    def _accept_loop(self, listener):
        while True:
            try:
                sock, peer = listener.accept()
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = BankdConn(self, sock, peer)
            with self.cond:
                self.conns.append(conn)
                self.cond.notify_all()
            self._spawn(self._serve, conn)

    def _record(self, conn, name, msg=None):
        with self.cond:
            self.events.append((conn, name, msg))
            self.cond.notify_all()

    def _serve(self, conn):
        buf = b""
        try:
            while True:
                chunk = conn.sock.recv(65536)
                if not chunk:
                    break
                buf += chunk
                while len(buf) >= 3 and len(buf) >= 3 + int.from_bytes(buf[:2], "big"):
                    n = 3 + int.from_bytes(buf[:2], "big")
                    raw, buf = buf[:n], buf[n:]
                    self._handle(conn, *(fast_decode(raw) or self._decode(raw)))
        except OSError:
            pass
        finally:
            conn.closed = True
            conn.sock.close()
            self._record(conn, "closed")

    def _decode(self, raw):
        f = Frame(raw, self.ctl)
        if f.ccm is not None:
            return {0: "PING", 1: "PONG"}.get(f.ccm, f"CCM {f.ccm}"), None
        return f.msg_name, f.msg

    def _handle(self, conn, name, msg):
        if name in ("PING", "PONG") or name.startswith("CCM"):
            if name == "PING":
                conn.send(PONG)
            self._record(conn, name)
            return
        if name == "connectClientReq":
            slot = msg.get("clientSlot", {})
            conn.client = (slot.get("clientId"), slot.get("slotNr"))
        self._record(conn, name, msg)
        if name == "connectClientReq":
            if self.refuse:
                res = OSMO_BANKD_CONNECT_CLIENT_RES[:-1] + bytes([{"cardNotPresent": 100}
                                                                  [self.refuse]])
                conn.send(res)
                return
            conn.send(OSMO_BANKD_CONNECT_CLIENT_RES + set_atr_req(conn.client, self.atr))
        elif name == "tpduModemToCard":
            bank = (msg["toBankSlot"]["bankId"], msg["toBankSlot"]["slotNr"])
            answer = self.card(bytes.fromhex(msg["data"]))
            if answer is not None:
                conn.send(tpdu_card_to_modem(answer, bank, conn.client))

    def kill(self):
        """The bankd dies: listener and every client connection closed."""
        if self.listener:
            # shutdown() wakes the thread blocked in accept(); close() alone would not, and
            # the port would stay in LISTEN
            try:
                self.listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.listener.close()
            self.listener = None
        with self.cond:
            conns = list(self.conns)
        for c in conns:
            try:
                c.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def restart(self):
        self.listen()

    # -- control link to the server -----------------------------------------------------

    def connect_server(self, server_port: int, timeout: float = 10.0):
        """Connects as osmo-remsim 1.0's bankd 1 (4 slots); returns once accepted."""
        s = socket.create_connection(("127.0.0.1", server_port), timeout=timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.control = s
        s.sendall(OSMO_CONNECT_BANK_REQ)
        self._connected = threading.Event()
        self._spawn(self._control_loop, s)
        assert self._connected.wait(timeout), "server did not answer connectBankReq"

    def _control_loop(self, s):
        buf = b""
        s.settimeout(None)
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    return
                buf += chunk
                while len(buf) >= 3 and len(buf) >= 3 + int.from_bytes(buf[:2], "big"):
                    n = 3 + int.from_bytes(buf[:2], "big")
                    f, buf = Frame(buf[:n], self.ctl), buf[n:]
                    if f.ccm == 0x00:
                        s.sendall(PONG)
                        continue
                    name = f.msg_name
                    if name == "connectBankRes":
                        assert f.msg["result"] == "ok", f.msg
                        self._connected.set()
                    elif name in ("createMappingReq", "removeMappingReq", "resetStateReq"):
                        res = name.replace("Req", "Res")
                        s.sendall(_encode(self.ctl, {"version": 2, "tag": 0,
                                                     "msg": {res: {"result": "ok"}}}))
        except OSError:
            return

    # -- test helpers ----------------------------------------------------------------------

    def wait_for(self, name, timeout=10.0, start=0, where=None):
        """(index, conn, msg) of the first `name` event at index >= start (and where(msg))."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for i in range(start, len(self.events)):
                    conn, n, msg = self.events[i]
                    if n == name and (where is None or where(msg)):
                        return i, conn, msg
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [n for _, n, _ in self.events[start:]]
                    raise AssertionError(f"bankd: no {name} within {timeout} s; saw {seen}")
                self.cond.wait(left)

    def wait_count(self, name, n, start=0, timeout=10.0):
        """The first n `name` messages from index start on, once there are n of them."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                got = [m for _, k, m in self.events[start:] if k == name]
                if len(got) >= n:
                    return got[:n]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"bankd: {len(got)} of {n} {name} in {timeout} s")
                self.cond.wait(left)

    def mark(self) -> int:
        with self.cond:
            return len(self.events)

    def received(self, name, start=0):
        with self.cond:
            return [m for _, n, m in self.events[start:] if n == name]

    def close(self):
        self.kill()
        if self.control:
            self.control.close()


def _encode(ctl, pdu) -> bytes:
    r = subprocess.run([ctl, "rspro", "encode", "--ipa", json.dumps(pdu)], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    return bytes.fromhex(r.stdout.strip())


# ---------------------------------------------------------------------------------------------
# remsim-client with pipes


class ClientProc(Proc):
    """remsim-client with stdin and stdout as pipes (the shell front end's I/O) and stderr
    (the log) in a file. Lines from stdout arrive in a queue: read_line(timeout)."""

    def __init__(self, name, argv, log_path, env=None):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.popen = subprocess.Popen(self.argv, stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, stderr=log, env=env,
                                          start_new_session=True)
        self.lines = queue.Queue()
        threading.Thread(target=self._reader, daemon=True).start()

    def _reader(self):
        for raw in self.popen.stdout:
            self.lines.put(raw.decode(errors="replace").rstrip("\n"))
        self.lines.put(None)  # EOF

    def send_line(self, line: str):
        self.popen.stdin.write((line + "\n").encode())
        self.popen.stdin.flush()

    def close_stdin(self):
        self.popen.stdin.close()

    def read_line(self, timeout: float = 10.0) -> str | None:
        """Next stdout line; None at EOF; AssertionError after timeout."""
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"{self.name}: no stdout line within {timeout} s; log:\n"
                                 + self.log_text()[-3000:]) from None

    def no_line_within(self, timeout: float) -> bool:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            return True
        self.lines.queue.appendleft(line)
        return False

    def apdu(self, hexstr: str, timeout: float = 10.0) -> str:
        self.send_line(hexstr)
        return self.read_line(timeout)


@pytest.fixture
def remsim_client(request, tmp_path, bin_path):
    """remsim_client(*args, name="client", env=None) -> ClientProc running remsim-client with
    args (log level info unless given). Stopped at teardown; sanitizer reports fail the test."""
    log_dir = tmp_path / "logs"
    log_dir.mkdir(exist_ok=True)
    procs = []

    def start(*args, name="client", env=None):
        name = _unique_log_name(request.node, name)
        full_env = dict(os.environ)
        full_env.update({k: str(v) for k, v in (env or {}).items()})
        argv = [bin_path("agent-client/remsim-client"), *map(str, args)]
        if "-l" not in args and "--log-level" not in args:
            argv += ["--log-level", "info"]
        p = ClientProc(name, argv, log_dir / f"{name}.log", env=full_env)
        procs.append(p)
        _attach_log(request.node, name, p.log_path)
        return p

    yield start
    stop_checking_sanitizers(procs)


# ---------------------------------------------------------------------------------------------
# Server + scripted bankd + REST


class ClientBed:
    """What client_bed() set up: pg, server (proc with .port/.http_port), bankd
    (ScriptedBankd), key paths and token(role, id); map()/unmap() go through REST v2."""

    def __init__(self, ctl, key_dir):
        self.ctl = ctl
        self.key = key_dir / "server.key"
        self.pub = key_dir / "server.pub"
        self.admin = None

    def token(self, role, subject, *extra) -> str:
        return issue_token(self.ctl, self.key, role, subject, *extra)

    def rest(self, method, path, body=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.server.http_port, timeout=10)
        headers = {"Authorization": "Bearer " + self.admin}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, "/api/v2" + path, body=data, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def map(self, bank_slot=0, client=23, client_slot=0):
        status, body = self.rest("POST", "/slotmaps",
                                 {"bank": {"bank_id": 1, "slot": bank_slot},
                                  "client": {"client_id": client, "slot": client_slot}})
        assert status == 201, (status, body)

    def unmap(self, bank_slot=0):
        status, body = self.rest("DELETE", f"/slotmaps/1/{bank_slot}")
        assert status == 204, (status, body)

    def client_args(self, client=23, slot=0, *extra):
        return ["-i", "127.0.0.1", "-p", self.server.port, "-c", client, "-n", slot, *extra]


@pytest.fixture
def client_bed(postgres, remsim_server, bin_path, free_port_factory, tmp_path):
    """client_bed(bankd=True, card=default_card) -> ClientBed with a started server (auth
    optional, a key, --bankd-port pointing at the scripted bankd) and, if bankd, the scripted
    bankd listening and connected to the server as bank 1."""
    ctl = str(bin_path("tools/remsimctl"))
    beds = []

    def make(bankd=True, card=default_card):
        key_dir = tmp_path / f"keys{len(beds)}"
        key_dir.mkdir()
        subprocess.run([ctl, "keygen", "--dir", str(key_dir)], check=True, capture_output=True,
                       timeout=30)
        bed = ClientBed(ctl, key_dir)
        beds.append(bed)
        data_port = free_port_factory()
        bed.server = remsim_server(postgres, "--key", bed.key, "--bankd-port", data_port)
        bed.admin = bed.token("admin", 1)
        bed.bankd = ScriptedBankd(ctl, data_port, card=card)
        if bankd:
            bed.bankd.listen()
            bed.bankd.connect_server(bed.server.port)
        return bed

    yield make
    for bed in beds:
        bed.bankd.close()
