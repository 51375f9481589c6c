"""Fixtures for remsim-bankd's tests: the bankd process itself, SIM cards in vpcd readers,
server keys and tokens, and RSPRO clients on the bankd's port.

Cards come from remsim-vsim (fixtures_vsim.py's vsim_factory) when that is built; until then
a minimal T=0 SIM written here answers SELECT / READ BINARY / GET RESPONSE for the MF and
EF_ICCID, which is all these tests ask of a card.
"""
import http.client
import json
import socket
import struct
import subprocess
import threading
import time

import pytest
from conftest import issue_token
from rspro_peer import OSMO_CONNECT_CLIENT_REQ

SELECT_MF = bytes.fromhex("a0a40000023f00")
SELECT_ICCID = bytes.fromhex("a0a40000022fe2")
READ_ICCID = bytes.fromhex("a0b000000a")
MINI_ATR = bytes.fromhex("3b9f96801fc78031a073be21136743200718000001a5")
CLIENT_IDENTITY = {"type": "remsimClient", "name": "modem1", "software": "remsim-client",
                   "swVersion": "1.0.0"}


class MiniSim:
    """A virtual T=0 SIM on one vpcd reader (testbed.md section 5): connects to the reader's
    port, answers pcscd's control bytes and a few GSM 11.11 commands, records every APDU."""

    def __init__(self, port: int, iccid: str = "98940000000000000010", atr: bytes = MINI_ATR):
        self.port, self.atr = port, atr
        self.iccid = bytes.fromhex(iccid)
        self.apdus, self.controls = [], []
        self.seen = threading.Event()  # pcscd polled us: the card is inserted
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(None)
        self.selected, self.pending = None, b""
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _recv(self, n):
        buf = b""
        while len(buf) < n:
            # not sticky: without it pcscd's split writes cost 40 ms each (testbed.md 6)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    def _answer(self, apdu: bytes) -> bytes:
        ins = apdu[1]
        if ins == 0xA4 and len(apdu) >= 7:  # SELECT by file id
            fid = apdu[5:7]
            if fid in (b"\x3f\x00", b"\x2f\xe2"):
                self.selected = fid
                self.pending = bytes(0x17)
                return b"\x9f\x17"
            return b"\x94\x04"
        if ins == 0xB0:  # READ BINARY
            if self.selected != b"\x2f\xe2":
                return b"\x94\x00"
            return self.iccid[:apdu[4] or 256] + b"\x90\x00"
        if ins == 0xC0:  # GET RESPONSE
            return self.pending[:apdu[4]] + b"\x90\x00"
        return b"\x6d\x00"

    def _run(self):
        try:
            while True:
                (n,) = struct.unpack("!H", self._recv(2))
                msg = self._recv(n)
                self.seen.set()
                if n == 1:
                    self.controls.append(msg[0])
                    if msg[0] == 4:  # GET ATR (also pcscd's presence poll)
                        self._send(self.atr)
                    continue
                self.apdus.append(msg)
                self._send(self._answer(msg))
        except (EOFError, OSError):
            pass

    def _send(self, payload: bytes):
        self.sock.sendall(struct.pack("!H", len(payload)) + payload)

    def remove(self):
        """Pull the card out of the reader."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(5)


@pytest.fixture
def sim_card():
    """sim_card(pcscd, reader=0, iccid=...) -> MiniSim inserted into that vpcd reader, once
    pcscd has seen it. Removed at teardown."""
    cards = []

    def insert(pcscd, reader=0, iccid="98940000000000000010"):
        card = MiniSim(pcscd.readers[reader][1], iccid)
        cards.append(card)
        assert card.seen.wait(5), "pcscd never polled the card"
        time.sleep(0.5)  # one more poll cycle: pcscd marks the reader present
        return card

    yield insert
    for card in cards:
        card.remove()


@pytest.fixture
def server_keys(bin_path, tmp_path):
    """A server key pair and a token factory: keys.token(role, id, *extra) -> str."""
    ctl = str(bin_path("tools/remsimctl"))
    kdir = tmp_path / "keys"
    kdir.mkdir()
    subprocess.run([ctl, "keygen", "--dir", str(kdir)], check=True, capture_output=True,
                   timeout=30)

    class Keys:
        secret = kdir / "server.key"
        public = kdir / "server.pub"

        def token(self, role, subject, *extra):
            return issue_token(ctl, self.secret, role, subject, *extra)

        def token_file(self, role, subject, *extra):
            path = kdir / f"{role}-{subject}.token"
            path.write_text(self.token(role, subject, *extra) + "\n")
            return path

    return Keys()


@pytest.fixture
def remsim_bankd(spawn, bin_path, free_port_factory):
    """remsim_bankd(server=None, *args, pcscd=None, bank_id=1, slots=2, client_auth="off",
    name="bankd", ready=True, cwd=None) -> Proc with .port (its client port).

    Talks to server (a remsim_server Proc; without one it points at a closed port) and to
    pcscd's readers; extra args are appended. Waits until the client port listens."""

    def start(server=None, *args, pcscd=None, bank_id=1, slots=2, client_auth="off",
              name="bankd", ready=True, cwd=None):
        port = free_port_factory()
        server_port = server.port if server is not None else free_port_factory()
        argv = [str(bin_path("agent-bankd/remsim-bankd")), "-i", "127.0.0.1",
                "-p", str(server_port), "-b", str(bank_id), "-n", str(slots),
                "-I", "127.0.0.1", "-P", str(port), "--client-auth", client_auth,
                "--log-level", "info", *map(str, args)]
        env = pcscd.env() if pcscd is not None else {"PCSCLITE_CSOCK_NAME": "/nonexistent"}
        proc = spawn(argv, name=name, env=env, cwd=cwd, ready=port if ready else None)
        proc.port = port
        return proc

    return start


def client_hello(client_id=23, slot=0, token=None):
    """A connectClientReq in remsimctl's JSON form (with the authToken extension if given)."""
    msg = {"identity": CLIENT_IDENTITY, "clientSlot": {"clientId": client_id, "slotNr": slot}}
    if token:
        msg["authToken"] = token
    return {"version": 2, "tag": 0, "msg": {"connectClientReq": msg}}


def tpdu(data: bytes, client=(23, 0), bank=(1, 0)):
    """A tpduModemToCard in remsimctl's JSON form."""
    flags = {"tpduHeaderPresent": False, "finalPart": False, "procByteContinueTx": False,
             "procByteContinueRx": False}
    return {"version": 2, "tag": 0, "msg": {"tpduModemToCard": {
        "fromClientSlot": {"clientId": client[0], "slotNr": client[1]},
        "toBankSlot": {"bankId": bank[0], "slotNr": bank[1]},
        "flags": flags, "data": data.hex()}}}


@pytest.fixture
def bankd_client(rspro_agent):
    """bankd_client(bankd, hello=OSMO_CONNECT_CLIENT_REQ) -> RsproPeer that sent hello
    (bytes, or a dict in remsimctl's JSON form) to the bankd's client port."""

    def connect(bankd, hello=OSMO_CONNECT_CLIENT_REQ):
        peer = rspro_agent(bankd.port)
        if isinstance(hello, dict):
            peer.send_json(hello)
        elif hello:
            peer.send(hello)
        return peer

    return connect


def relay(peer, data: bytes, **kw) -> bytes:
    """Sends one TPDU, returns the card's answer from tpduCardToModem."""
    peer.send_json(tpdu(data, **kw))
    return bytes.fromhex(peer.expect("tpduCardToModem").msg["data"])


def wait_for(fetch, check, timeout=5.0):
    """fetch() until check(result) holds (bounded); returns the last result."""
    deadline = time.monotonic() + timeout
    while True:
        got = fetch()
        if check(got) or time.monotonic() > deadline:
            assert check(got), got
            return got
        time.sleep(0.05)


class Api:
    """GET/POST on the server's /api/v2 with an admin token."""

    def __init__(self, port, token):
        self.port, self.token = port, token

    def request(self, method, path, body=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        h = {"Authorization": "Bearer " + self.token}
        if body is not None:
            body = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        try:
            conn.request(method, "/api/v2" + path, body=body, headers=h)
            r = conn.getresponse()
            data = r.read()
            return r.status, (json.loads(data) if data else None)
        finally:
            conn.close()

    def get(self, path):
        status, body = self.request("GET", path)
        assert status == 200, (status, body)
        return body


class Bed:
    """What bed() started: pg, keys, server, api, pcscd, cards, bankd."""


@pytest.fixture
def bed(postgres, remsim_server, remsim_bankd, pcscd_factory, sim_card, server_keys):
    """bed(*bankd_args, client_auth="off", slots=2, cards=(0,), server_auth="optional",
    bankd_token=False, pubkey=False, cwd=None) -> Bed: PostgreSQL, remsim-server (with a key), pcscd with 2 vpcd
    readers and a card in each reader listed in cards, and a bankd registered as bank 1."""
    def make(*bankd_args, client_auth="off", slots=2, cards=(0,), server_auth="optional",
             bankd_token=False, pubkey=False, cwd=None):
        b = Bed()
        b.pg = postgres
        b.keys = server_keys
        b.server = remsim_server(postgres, "--key", server_keys.secret, auth=server_auth)
        b.api = Api(b.server.http_port, server_keys.token("admin", 1))
        b.pcscd = pcscd_factory(2)
        b.cards = [sim_card(b.pcscd, r, iccid="989400000000000000%02d" % r) for r in cards]
        args = list(bankd_args)
        if bankd_token:
            args += ["--token", server_keys.token_file("bankd", 1)]
        if pubkey:
            args += ["--server-pubkey", server_keys.public]
        b.bankd = remsim_bankd(b.server, *args, pcscd=b.pcscd, slots=slots,
                               client_auth=client_auth, cwd=cwd)
        b.bankd.wait_for_log(r"registered as bank 1 with %d slots" % slots)
        return b

    return make


def map_slot(bed, bank_slot=0, client=23, client_slot=0):
    """Maps bank 1 slot bank_slot to the client via REST v2 and waits for the bankd's ok."""
    status, body = bed.api.request("POST", "/slotmaps", {
        "bank": {"bank_id": 1, "slot": bank_slot},
        "client": {"client_id": client, "slot": client_slot}})
    assert status == 201, body
    wait_for(lambda: bed.api.get("/slotmaps/1/%d" % bank_slot)["state"],
             lambda s: s == "ACTIVE")
