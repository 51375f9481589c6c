"""A scripted RSPRO peer for tests: a plain TCP socket that sends exact
bytes (golden frames from osmo-remsim 1.0, or our own) and reads IPA frames
back, decoding RSPRO with the real `remsimctl rspro` so the tests check what
a peer would see on the wire."""
import json
import socket
import subprocess
import time

PING = bytes.fromhex("0001fe00")
PONG = bytes.fromhex("0001fe01")

# Golden frames captured from osmo-remsim 1.0 (shared/testdata).
OSMO_CONNECT_BANK_REQ = bytes.fromhex(
    "0039ee073036800102810100a22ea02c30240a0102160a6669786d652d6e616d65800c72656d73696d2d"
    "62616e6b648105312e302e30020101020104")  # bank 1, 4 slots
OSMO_CONNECT_CLIENT_REQ = bytes.fromhex(
    "003fee07303c800102810100a234a23230280a0100160d72656d73696d2d616e63686f72800d72656d73"
    "696d2d636c69656e748105312e302e303006020117020100")  # client 23:0


class Frame:
    """One IPA frame: ccm type for CCM frames, decoded RSPRO dict otherwise."""

    def __init__(self, raw: bytes, ctl: str):
        self.raw = raw
        self.stream = raw[2]
        self.ccm = raw[3] if self.stream == 0xFE else None
        self.pdu = None
        if self.stream == 0xEE and raw[3] == 0x07:
            r = subprocess.run([ctl, "rspro", "decode", raw.hex()], capture_output=True,
                               text=True, timeout=10)
            assert r.returncode == 0, r.stderr
            self.pdu = json.loads(r.stdout)

    @property
    def msg_name(self) -> str | None:
        return next(iter(self.pdu["msg"])) if self.pdu else None

    @property
    def msg(self) -> dict | None:
        return self.pdu["msg"][self.msg_name] if self.pdu else None

    def __repr__(self):
        return "Frame(%s)" % (self.msg_name or "CCM %d" % self.ccm)


class RsproPeer:
    def __init__(self, ctl: str, host: str, port: int, timeout: float = 5.0):
        self.ctl = ctl
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def close(self):
        self.sock.close()

    def send(self, data: bytes):
        self.sock.sendall(data)

    def send_json(self, pdu: dict):
        """Encodes a PDU given in remsimctl's JSON form and sends it framed."""
        r = subprocess.run([self.ctl, "rspro", "encode", "--ipa", json.dumps(pdu)],
                           capture_output=True, text=True, timeout=10)
        assert r.returncode == 0, r.stderr
        self.send(bytes.fromhex(r.stdout.strip()))

    def _fill(self, deadline: float) -> bool:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return False
        if not chunk:
            raise EOFError("peer closed the connection")
        self.buf += chunk
        return True

    def recv_frame(self, timeout: float = 5.0) -> Frame | None:
        """Next IPA frame, or None after timeout; EOFError if closed."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 3:
                n = 3 + int.from_bytes(self.buf[:2], "big")
                if len(self.buf) >= n:
                    raw, self.buf = self.buf[:n], self.buf[n:]
                    return Frame(raw, self.ctl)
            if not self._fill(deadline):
                return None

    def expect(self, name: str, timeout: float = 5.0, answer_pings: bool = True) -> Frame:
        """Reads frames until an RSPRO message `name` (or CCM "PING"/"PONG")."""
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            f = self.recv_frame(deadline - time.monotonic())
            if f is None:
                break
            if f.ccm == 0x00 and answer_pings and name != "PING":
                self.send(PONG)
            if (f.ccm == 0x00 and name == "PING") or (f.ccm == 0x01 and name == "PONG") \
                    or f.msg_name == name:
                return f
            seen.append(f)
        raise AssertionError("no %s within %.1fs; saw %r" % (name, timeout, seen))

    def closed_within(self, timeout: float) -> bool:
        """True if the peer closes the connection within timeout (frames are discarded)."""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                self.recv_frame(deadline - time.monotonic())
        except (EOFError, ConnectionResetError):
            return True
        return False


def res(name, result="ok"):
    """A response PDU in remsimctl's JSON form, e.g. res("createMappingRes")."""
    return {"version": 2, "tag": 0, "msg": {name: {"result": result}}}


def connect_bankd(agent, srv):
    """osmo-remsim 1.0's bankd 1 (4 slots) connected to srv, its reset answered."""
    bankd = agent(srv.port, OSMO_CONNECT_BANK_REQ)
    bankd.expect("connectBankRes")
    bankd.expect("resetStateReq")
    bankd.send_json(res("resetStateRes"))
    return bankd


def connect_client(agent, srv):
    """osmo-remsim 1.0's client 23:0 connected to srv."""
    client = agent(srv.port, OSMO_CONNECT_CLIENT_REQ)
    client.expect("connectClientRes")
    return client
