"""The SIM relay end to end, every part real: PostgreSQL, remsim-server (tokens required),
a private pcscd with remsim-vsim cards, remsim-bankd (client tokens required) and
remsim-client with the shell front end. APDUs go client -> bankd -> pcscd -> card and back;
the server only maps. Covers: card contents and algorithms through the relay, a mapping
moved by SQL, bankd and server killed, a card pulled and put back, clients without a valid
token, and the bankd's worker states in its log and in the API."""
import re
import secrets
import signal
import subprocess
import time

import pytest
from conftest import issue_token, rest_v2
from test_vsim import ef_iccid, ef_imsi, make_autn, pin_block, xor_auth

USIM_AID = "a0000000871002"


class Bed:
    """What relay_bed() started; client(...) starts a shell client, api() asks REST v2."""

    def __init__(self, ctl, key, server, bankd, vsim, start_client, restart_bankd):
        self.ctl, self.key = ctl, key
        self.server, self.bankd, self.vsim = server, bankd, vsim
        self._start_client = start_client
        self.restart_bankd = restart_bankd
        self.admin = self.token("admin", 1)

    def token(self, role, subject, *extra):
        return issue_token(self.ctl, self.key, role, subject, *extra)

    def token_file(self, tmp_path, role, subject, *extra):
        path = tmp_path / f"{role}-{subject}-{secrets.token_hex(4)}.token"
        path.write_text(self.token(role, subject, *extra) + "\n")
        path.chmod(0o600)
        return path

    def client(self, token_file, client=23, slot=0, name="client"):
        args = ["-i", "127.0.0.1", "-p", self.server.port, "-c", client, "-n", slot]
        if token_file is not None:
            args += ["-t", token_file]
        return self._start_client(*args, name=name)

    def api(self, method, path, body=None):
        return rest_v2(self.server.http_port, self.admin, method, path, body)

    def map(self, bank_slot, client=23, client_slot=0):
        status, body = self.api("POST", "/slotmaps", {"bank": {"bank_id": 1, "slot": bank_slot},
                                                      "client": {"client_id": client,
                                                                 "slot": client_slot}})
        assert status == 201, body

    def bank_slot(self, slot):
        status, body = self.api("GET", "/banks/1/slots")
        assert status == 200, body
        return next((s for s in body["slots"] if s["slot"] == slot), None)


def wait_for(fetch, check, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        got = fetch()
        if check(got) or time.monotonic() > deadline:
            assert check(got), got
            return got
        time.sleep(0.05)


@pytest.fixture
def relay_bed(postgres, remsim_server, remsim_bankd, pcscd_factory, vsim_factory,
              remsim_client, bin_path, tmp_path):
    """Server (tokens required), pcscd with 2 remsim-vsim cards, bankd 1 with 2 slots
    (client tokens required). No mapping and no client yet."""
    ctl = str(bin_path("tools/remsimctl"))
    subprocess.run([ctl, "keygen", "--dir", str(tmp_path)], check=True, capture_output=True,
                   timeout=30)
    key = tmp_path / "server.key"
    server = remsim_server(postgres, "--key", key, auth="required")
    pcscd = pcscd_factory(2)
    vsim = vsim_factory(pcscd, cards=2)
    bed = Bed(ctl, key, server, None, vsim, remsim_client, None)
    bankd_token = bed.token_file(tmp_path, "bankd", 1)

    def start_bankd():
        bed.bankd = remsim_bankd(server, "-t", bankd_token, pcscd=pcscd, slots=2,
                                 client_auth="required", name="bankd")
        return bed.bankd

    start_bankd()
    bed.restart_bankd = start_bankd
    wait_for(lambda: bed.bank_slot(1), lambda s: s is not None)
    return bed


def test_card_contents_and_algorithms_through_the_relay(relay_bed, tmp_path):
    bed = relay_bed
    card = bed.vsim.profiles[0]
    bed.map(0)
    c = bed.client(bed.token_file(tmp_path, "client", 23))

    assert c.apdu("a0a40000023f00").startswith("9f")
    assert c.apdu("a0a40000022fe2").startswith("9f")
    assert c.apdu("a0b000000a") == ef_iccid(card["iccid"]).hex() + "9000"
    assert c.apdu("a0a40000027f20").startswith("9f")
    assert c.apdu("a0a40000026f07").startswith("9f")
    assert c.apdu("a0b0000009") == ef_imsi(card["imsi"]).hex() + "9000"

    # USIM AUTHENTICATE with the XOR test algorithm, T=0 style: 61xx then GET RESPONSE
    ki = bytes.fromhex(card["ki"])
    rand, sqn, amf = secrets.token_bytes(16), secrets.token_bytes(6), bytes.fromhex("8000")
    autn = make_autn(ki, rand, sqn, amf)
    assert c.apdu("00a4040c07" + USIM_AID) == "9000"
    assert c.apdu("0088008122" + "10" + rand.hex() + "10" + autn.hex()) == "612c"
    _, res, ck, ik, _ = xor_auth(ki, rand)
    assert c.apdu("00c000002c") == (b"\xdb\x08" + res + b"\x10" + ck + b"\x10" + ik).hex() \
        + "9000"

    # a wrong PIN costs a try; the right one restores them
    wrong = "0000" if card["pin1"] != "0000" else "9999"
    assert c.apdu("0020000108" + pin_block(wrong)) == "63c2"
    assert c.apdu("0020000108" + pin_block(wrong)) == "63c1"
    assert c.apdu("0020000108" + pin_block(card["pin1"])) == "9000"
    slot = wait_for(lambda: bed.bank_slot(0), lambda s: (s["apdu_count"] or 0) >= 10)
    assert slot["atr"] and slot["card_present"] is True


def test_sql_update_moves_the_client_to_another_card(relay_bed, tmp_path, postgres):
    bed = relay_bed
    bed.map(0)
    c = bed.client(bed.token_file(tmp_path, "client", 23))
    first, second = bed.vsim.profiles[0], bed.vsim.profiles[1]
    c.apdu("a0a40000022fe2")
    assert c.apdu("a0b000000a") == ef_iccid(first["iccid"]).hex() + "9000"

    postgres.psql("UPDATE slotmaps SET bank_slot = 1 WHERE bank_id = 1 AND bank_slot = 0")
    # the client is re-pointed; the new card's ICCID comes back without a restart
    deadline = time.monotonic() + 20
    while True:
        c.apdu("a0a40000022fe2", timeout=20)
        got = c.apdu("a0b000000a", timeout=20)
        if got == ef_iccid(second["iccid"]).hex() + "9000" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert got == ef_iccid(second["iccid"]).hex() + "9000"
    assert c.apdu("atr")  # the ATR the new card gave (remsim-vsim: the same default)


def test_bankd_killed_then_restarted(relay_bed, tmp_path):
    bed = relay_bed
    card = bed.vsim.profiles[0]
    bed.map(0)
    c = bed.client(bed.token_file(tmp_path, "client", 23))
    assert c.apdu("a0a40000023f00").startswith("9f")
    bed.bankd.popen.send_signal(signal.SIGKILL)
    bed.bankd.popen.wait(10)
    # on another port: it says so to the server, which sends the client there
    bed.restart_bankd()
    # lines typed while the card is away wait; the backoff is at most a few seconds here
    c.send_line("a0a40000022fe2")
    first = c.read_line(timeout=40)
    if first.startswith("error"):  # the one in flight when the link broke
        first = c.apdu("a0a40000022fe2", timeout=40)
    assert first.startswith("9f"), first
    assert c.apdu("a0b000000a") == ef_iccid(card["iccid"]).hex() + "9000"


def test_server_killed_while_apdus_flow(relay_bed, tmp_path):
    """The server is not in the APDU path: none of 300 APDUs fails while it is killed."""
    bed = relay_bed
    bed.map(0)
    c = bed.client(bed.token_file(tmp_path, "client", 23))
    assert c.apdu("a0a40000023f00").startswith("9f")
    answers = []
    for i in range(300):
        if i == 100:
            bed.server.popen.send_signal(signal.SIGKILL)
        answers.append(c.apdu("a0a40000023f00"))
    assert all(a.startswith("9f") for a in answers), [a for a in answers if
                                                     not a.startswith("9f")][:3]
    assert bed.server.popen.wait(5) == -signal.SIGKILL


def test_card_pulled_and_put_back(relay_bed, tmp_path):
    bed = relay_bed
    card = bed.vsim.profiles[0]
    bed.map(0)
    c = bed.client(bed.token_file(tmp_path, "client", 23))
    assert c.apdu("a0a40000023f00").startswith("9f")
    assert bed.vsim.control("remove 0").startswith("ok")
    answer = c.apdu("a0a40000023f00", timeout=20)
    assert answer.startswith("error") or answer == "", answer
    wait_for(lambda: bed.bank_slot(0), lambda s: s["card_present"] is False, timeout=15)
    assert bed.vsim.control("insert 0").startswith("ok")
    deadline = time.monotonic() + 30
    while True:
        got = c.apdu("a0a40000022fe2", timeout=30)
        if got.startswith("9f") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert got.startswith("9f"), got
    assert c.apdu("a0b000000a") == ef_iccid(card["iccid"]).hex() + "9000"
    wait_for(lambda: bed.bank_slot(0), lambda s: s["card_present"] is True, timeout=15)


@pytest.mark.parametrize("kind", ["none", "other-client", "expired"])
def test_no_valid_token_no_apdu(relay_bed, tmp_path, kind):
    bed = relay_bed
    bed.map(0)
    an_hour_ago = int(time.time()) - 3600
    token = {"none": None,
             "other-client": bed.token_file(tmp_path, "client", 24),
             "expired": bed.token_file(tmp_path, "client", 23, "--now", an_hour_ago,
                                       "--ttl", "10m")}[kind]
    # remsim-client refuses another client's token at start (exit 1); an expired one it
    # presents, and the server and bankd refuse it. Either way: no answer, ever.
    c = bed.client(token)
    if kind == "other-client":
        assert c.wait(10) == 1
        assert "issued for client 24, we are client 23" in c.log_text()
    else:
        c.send_line("a0a40000023f00")
        if not c.no_line_within(6):
            line = c.read_line(1)
            assert line is None or not line.startswith("9f"), line
    # the card was never touched
    assert (bed.bank_slot(0)["apdu_count"] or 0) == 0
    assert bed.bank_slot(0)["worker_state"] != "CONNECTED_CLIENT_MAPPED_CARD"


def test_worker_states_in_log_and_api(relay_bed, tmp_path):
    bed = relay_bed
    seen = set()

    def state():
        s = bed.bank_slot(0)["worker_state"]
        seen.add(s)
        return s

    wait_for(state, lambda s: s == "ACCEPTING")
    bed.map(0)
    c = bed.client(bed.token_file(tmp_path, "client", 23))
    assert c.apdu("a0a40000023f00").startswith("9f")
    wait_for(state, lambda s: s == "CONNECTED_CLIENT_MAPPED_CARD")
    c.terminate()
    wait_for(state, lambda s: s in ("INIT", "ACCEPTING"))
    log = bed.bankd.log_text()
    for a, b in [("ACCEPTING", "CONNECTED_WAIT_ID"), ("CONNECTED_WAIT_ID", "CONNECTED_CLIENT"),
                 ("CONNECTED_CLIENT", "CONNECTED_CLIENT_MAPPED"),
                 ("CONNECTED_CLIENT_MAPPED", "CONNECTED_CLIENT_MAPPED_CARD")]:
        assert re.search(rf"{a} -> {b} \(", log), (a, b)
    assert re.search(r"CONNECTED_CLIENT_MAPPED_CARD -> INIT \(", log)
    assert {"ACCEPTING", "CONNECTED_CLIENT_MAPPED_CARD"} <= seen
