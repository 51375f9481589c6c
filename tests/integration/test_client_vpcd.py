"""remsim-client's vpcd front end: the remote SIM appears as a card in a vpcd reader of a
private pcscd, and PC/SC programs (pyscard here) see the bankd's ATR, get their APDUs
answered by the (scripted) bankd and reset the real card through it. The card is only in the
reader while a mapping exists. A second test plays pcscd byte by byte on the vpcd wire."""
import json
import socket
import struct
import subprocess
import time

from fixtures_client import SIM_ATR

# Runs under /usr/bin/python3 with PCSCLITE_CSOCK_NAME of the private pcscd.
PCSC_HELPER = r"""
import json, sys, time
from smartcard.scard import *
reader, ops = sys.argv[1], json.loads(sys.argv[2])
hr, ctx = SCardEstablishContext(SCARD_SCOPE_USER)
assert hr == 0, hr
out, card = [], None
for op in ops:
    if op[0] == "state":
        hr, st = SCardGetStatusChange(ctx, 0, [(reader, SCARD_STATE_UNAWARE)])
        out.append({"present": bool(st[0][1] & SCARD_STATE_PRESENT), "atr": bytes(st[0][2]).hex()})
    elif op[0] == "connect":
        hr, card, proto = SCardConnect(ctx, reader, SCARD_SHARE_SHARED, SCARD_PROTOCOL_T0)
        out.append(hr)
    elif op[0] == "transmit":
        hr, resp = SCardTransmit(card, SCARD_PCI_T0, list(bytes.fromhex(op[1])))
        out.append(bytes(resp).hex() if hr == 0 else "error %#x" % (hr & 0xffffffff))
    elif op[0] == "reset":
        hr, proto = SCardReconnect(card, SCARD_SHARE_SHARED, SCARD_PROTOCOL_T0, SCARD_RESET_CARD)
        out.append(hr)
    elif op[0] == "timed":
        times = []
        for _ in range(op[2]):
            t = time.perf_counter()
            hr, resp = SCardTransmit(card, SCARD_PCI_T0, list(bytes.fromhex(op[1])))
            times.append(time.perf_counter() - t)
            assert hr == 0 and bytes(resp) == b"\x90\x00", (hr, resp)
        out.append(times)
print(json.dumps(out))
"""


def pcsc(pcscd, reader, *ops):
    env = {"PATH": "/usr/bin:/bin", **pcscd.env()}
    r = subprocess.run(["/usr/bin/python3", "-c", PCSC_HELPER, reader, json.dumps(ops)],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def wait_present(pcscd, reader, want: bool, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        st = pcsc(pcscd, reader, ["state"])[0]
        if st["present"] == want or time.monotonic() > deadline:
            assert st["present"] == want, st
            return st
        time.sleep(0.1)


def test_pcsc_programs_use_the_remote_sim(client_bed, remsim_client, pcscd_factory):
    pcscd = pcscd_factory(2)
    reader, port = pcscd.readers[0]
    bed = client_bed()
    c = remsim_client(*bed.client_args(), "-f", "vpcd", "--vpcd-port", port)
    c.wait_for_log(r"INIT -> UNMAPPED")
    time.sleep(0.5)                                      # longer than pcscd's 400 ms poll
    assert pcsc(pcscd, reader, ["state"])[0]["present"] is False   # no mapping, no card

    bed.map()
    c.wait_for_log(r"connecting -> inserted")
    st = wait_present(pcscd, reader, True)
    assert st["atr"] == SIM_ATR.hex()
    mark = bed.bankd.mark()
    out = pcsc(pcscd, reader, ["connect"], ["transmit", "a0a40000023f00"],
               ["transmit", "a0c0000017"], ["transmit", "00a40400023f0000"], ["reset"],
               ["transmit", "00b0000003"])
    assert out == [0, "9f17", bytes(range(0x17)).hex() + "9000", "6112", 0, "ababab9000"]
    assert [t["data"] for t in bed.bankd.received("tpduModemToCard", mark)] == [
        "a0a40000023f00", "a0c0000017", "00a40400023f00", "00b0000003"]
    # SCardReconnect(RESET) became a warm reset at the bankd (RST pulse with VCC on)
    st = [m["slotPhysStatus"] for m in bed.bankd.received("clientSlotStatusInd", mark)]
    assert {"resetActive": True, "vccPresent": True, "clkActive": True,
            "cardPresent": True} in st
    c.wait_for_log(r"pcscd resets the card")

    bed.unmap()
    c.wait_for_log(r"inserted -> removed \(mapping removed\)")
    wait_present(pcscd, reader, False)
    assert pcsc(pcscd, readers_other(pcscd, reader), ["state"])[0]["present"] is False


def readers_other(pcscd, reader):
    return next(name for name, _ in pcscd.readers if name != reader)


class FakePcscd:
    """The pcscd side of one vpcd reader: listens, and speaks length-prefixed messages the
    way the vpcd driver does (including its two separate writes per message)."""

    def __init__(self, port):
        self.listener = socket.create_server(("127.0.0.1", port))
        self.listener.settimeout(10)
        self.sock = None

    def accept(self):
        self.sock, _ = self.listener.accept()
        self.sock.settimeout(10)

    def send(self, payload: bytes):
        self.sock.sendall(struct.pack("!H", len(payload)))
        self.sock.sendall(payload)

    def recv(self) -> bytes:
        hdr = self._exact(2)
        return self._exact(struct.unpack("!H", hdr)[0])

    def _exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    def close(self):
        if self.sock:
            self.sock.close()
        self.listener.close()


def test_vpcd_wire_protocol(client_bed, remsim_client, free_port_factory):
    port = free_port_factory()
    bed = client_bed()
    c = remsim_client(*bed.client_args(), "-f", "vpcd", "--vpcd-port", port,
                      "--auto-get-response")
    bed.map()
    # nothing listens yet: one error line, then quiet retries every second
    c.wait_for_log(r"connect to vpcd: Connection refused; retry in 1000 ms")
    fake = FakePcscd(port)
    try:
        fake.accept()
        c.wait_for_log(r"connecting -> inserted")
        assert c.log_text().count("error [vpcd 127.0.0.1") == 1
        mark = bed.bankd.mark()
        fake.send(b"\x04")                               # GET ATR
        assert fake.recv() == SIM_ATR
        fake.send(b"\x01")                               # POWER ON
        fake.send(b"\x04")
        assert fake.recv() == SIM_ATR
        fake.send(bytes.fromhex("a0a40000023f00"))       # 9F17 -> GET RESPONSE (auto)
        assert fake.recv() == bytes(range(0x17)) + b"\x90\x00"
        fake.send(bytes.fromhex("00a4040000023f00"))     # extended length: not for T=0
        assert fake.recv() == b"\x67\x00"
        fake.send(b"\x02")                               # RESET
        fake.send(b"\x00")                               # POWER OFF
        fake.send(b"\x00")                               # again: no second indication
        fake.send(b"\x04")
        assert fake.recv() == SIM_ATR
        st = [m["slotPhysStatus"] for m in bed.bankd.wait_count("clientSlotStatusInd", 4, mark)]
        time.sleep(0.2)                                  # and no fifth one
        assert len(bed.bankd.received("clientSlotStatusInd", mark)) == 4
        on = {"resetActive": False, "vccPresent": True, "clkActive": True, "cardPresent": True}
        assert st == [
            on,                                                              # POWER ON
            {"resetActive": True, "vccPresent": True, "clkActive": True,     # RESET
             "cardPresent": True}, on,
            {"resetActive": True, "vccPresent": False, "clkActive": False,   # POWER OFF
             "cardPresent": True}]
        assert [t["data"] for t in bed.bankd.received("tpduModemToCard", mark)] == [
            "a0a40000023f00", "a0c0000017"]

        # pcscd goes away: the client puts the card back in once it is there again
        fake.sock.close()
        fake.accept()
        fake.send(b"\x04")
        assert fake.recv() == SIM_ATR
        # the mapping goes: the card leaves the reader (EOF on pcscd's side)
        bed.unmap()
        assert fake.sock.recv(16) == b""
    finally:
        fake.close()


def test_vpcd_oversized_message_drops_the_connection(client_bed, remsim_client,
                                                      free_port_factory):
    port = free_port_factory()
    fake = FakePcscd(port)
    try:
        bed = client_bed()
        c = remsim_client(*bed.client_args(), "-f", "vpcd", "--vpcd-port", port)
        bed.map()
        fake.accept()
        fake.sock.sendall(b"\xff\xff" + b"\x00" * 100)
        assert fake.sock.recv(16) == b""
        c.wait_for_log(r"message of 65535 bytes from pcscd \(limit \d+\); retry in 1000 ms")
        fake.accept()                                    # and it comes back
        fake.send(b"\x04")
        assert fake.recv() == SIM_ATR
    finally:
        fake.close()
