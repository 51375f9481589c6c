"""remsim-client against the real remsim-server (PostgreSQL, mappings made through REST v2)
and a scripted bankd: the shell front end relays APDUs the way a modem would send them,
resets reach the bankd, the bankd link comes back after a bankd restart, an unmapping
disconnects, the event script sees every change with the documented environment, tokens
reach server and bankd, and the command line refuses bad input."""
import signal
import socket
import subprocess
import time

import pytest
from fixtures_client import (OSMO_BANKD_CONNECT_CLIENT_RES, SIM_ATR, default_card,
                             fast_decode, set_atr_req, tpdu_card_to_modem)
from rspro_peer import Frame

GOLDEN_SET_ATR = bytes.fromhex(
    "0029ee073026800102810100a21eaa1c300602011702010004123b7d9400005555530a7486930b247c4d5468")
GOLDEN_CARD_TO_MODEM = bytes.fromhex(
    "002fee07302c800102810100a224ad22300602010102010030060201170201"
    "00300c0101000101000101000101000402" "9f17")

GOLDEN_MODEM_TO_CARD = bytes.fromhex(
    "0034ee073031800102810100a229ac27300602011702010030060201010201"
    "00300c01010001010001010001010004" "07a0a40000023f00")
GOLDEN_STATUS_IND = bytes.fromhex(
    "002bee073028800102810100a220ae1e30060201170201003006020101020100300c8001ff810100820100"
    "8301ff")


def operational(bed, c, start=0):
    """Maps client 23:0 to bank slot 1:0 and waits until the client has the card."""
    bed.map()
    c.wait_for_log(r"WAIT_ATR -> OPERATIONAL", start=start)


def test_scripted_bankd_speaks_osmo_bytes(bin_path):
    # the fixture's own codec must match osmo-remsim 1.0's bytes, or the tests prove little
    assert set_atr_req((23, 0), bytes.fromhex("3b7d9400005555530a7486930b247c4d5468")) \
        == GOLDEN_SET_ATR
    assert tpdu_card_to_modem(bytes.fromhex("9f17")) == GOLDEN_CARD_TO_MODEM
    assert OSMO_BANKD_CONNECT_CLIENT_RES[-3:] == b"\x0a\x01\x00"
    ctl = str(bin_path("tools/remsimctl"))
    for raw in (GOLDEN_MODEM_TO_CARD, GOLDEN_STATUS_IND):
        f = Frame(raw, ctl)
        assert fast_decode(raw) == (f.msg_name, f.msg)
    assert fast_decode(GOLDEN_SET_ATR) is None


def test_shell_relays_apdus_as_a_modem_would(client_bed, remsim_client):
    bed = client_bed()
    c = remsim_client(*bed.client_args())
    operational(bed, c)
    _, _, hello = bed.bankd.wait_for("connectClientReq")
    assert hello["clientSlot"] == {"clientId": 23, "slotNr": 0}
    assert hello["identity"]["type"] == "remsimClient"
    assert hello["identity"]["software"] == "remsim-client"
    assert "authToken" not in hello
    assert bed.bankd.wait_for("setAtrRes")[2] == {"result": "ok"}

    mark = bed.bankd.mark()
    assert c.apdu("a0 a4 00 00 02 3f 00") == "9f17"      # GSM SIM: 9Fxx comes back raw
    assert c.apdu("00A4040002 3F00 00") == "6112"         # case 4: Le dropped, 61xx raw
    assert c.apdu("00:70:00:00") == "9000"               # case 1: P3 = 00
    assert c.apdu("00 b0 00 00 04") == "abababab9000"    # case 2
    tpdus = bed.bankd.received("tpduModemToCard", mark)
    assert [t["data"] for t in tpdus] == ["a0a40000023f00", "00a40400023f00", "0070000000",
                                          "00b0000004"]
    for t in tpdus:
        assert t["fromClientSlot"] == {"clientId": 23, "slotNr": 0}
        assert t["toBankSlot"] == {"bankId": 1, "slotNr": 0}
        assert set(t["flags"].values()) == {False}

    # commands, comments and bad lines: exactly one stdout line for each line that asks
    c.send_line("# a comment")
    c.send_line("")
    assert c.apdu("atr") == SIM_ATR.hex()
    assert c.apdu("zz 11") == "error: not a hex APDU"
    assert c.apdu("00 a4 00") .startswith("error: APDU of 3 bytes")
    assert c.apdu("00 a4 04 00 00 00 02 3f 00").startswith("error: extended-length APDU")
    assert c.apdu("00 a4 04 00 05 3f 00") .startswith("error: APDU of 7 bytes does not match")
    assert c.apdu("a0 a4 00 00 02 3f 00") == "9f17"
    c.close_stdin()
    assert c.read_line() is None
    assert c.wait(10) == 0
    assert len(bed.bankd.received("tpduModemToCard", mark)) == 5


def test_shell_auto_get_response(client_bed, remsim_client):
    bed = client_bed()
    c = remsim_client(*bed.client_args(), "--auto-get-response")
    operational(bed, c)
    mark = bed.bankd.mark()
    assert c.apdu("00 a4 04 00 02 3f 00 00") == bytes(range(0x12)).hex() + "9000"
    assert c.apdu("a0 a4 00 00 02 3f 00") == bytes(range(0x17)).hex() + "9000"
    assert c.apdu("00 b0 00 00 00") == "abababab9000"    # 6C04 -> repeated with P3 = 04
    assert [t["data"] for t in bed.bankd.received("tpduModemToCard", mark)] == [
        "00a40400023f00", "00c0000012", "a0a40000023f00", "a0c0000017", "00b0000000",
        "00b0000004"]


def test_shell_waits_for_the_mapping(client_bed, remsim_client):
    bed = client_bed()
    c = remsim_client(*bed.client_args())
    c.wait_for_log(r"INIT -> UNMAPPED")
    c.send_line("a0 a4 00 00 02 3f 00")
    c.wait_for_log(r"waiting for a card: client 23:0 is UNMAPPED")
    assert c.no_line_within(1.0)
    assert bed.bankd.received("tpduModemToCard") == []
    bed.map()
    assert c.read_line() == "9f17"


def test_reset_reaches_the_bankd(client_bed, remsim_client):
    bed = client_bed()
    c = remsim_client(*bed.client_args())
    operational(bed, c)
    mark = bed.bankd.mark()
    assert c.apdu("reset") == SIM_ATR.hex()
    assert c.apdu("reset cold") == SIM_ATR.hex()
    assert c.apdu("a0 a4 00 00 02 3f 00") == "9f17"     # the card still answers after it
    st = [m["slotPhysStatus"] for m in bed.bankd.received("clientSlotStatusInd", mark)]
    run = {"resetActive": False, "vccPresent": True, "clkActive": True, "cardPresent": True}
    assert st == [
        {"resetActive": True, "vccPresent": True, "clkActive": True, "cardPresent": True}, run,
        {"resetActive": True, "vccPresent": False, "clkActive": False, "cardPresent": True}, run]
    for m in bed.bankd.received("clientSlotStatusInd", mark):
        assert m["fromClientSlot"] == {"clientId": 23, "slotNr": 0}
        assert m["toBankSlot"] == {"bankId": 1, "slotNr": 0}


def test_bankd_restart_reconnects_and_relays_again(client_bed, remsim_client):
    def card(tpdu):
        return None if tpdu[1] == 0xEE else default_card(tpdu)   # INS EE: never answered

    bed = client_bed(card=card)
    c = remsim_client(*bed.client_args())
    operational(bed, c)
    assert c.apdu("a0 a4 00 00 02 3f 00") == "9f17"

    c.send_line("00 ee 00 00 00")
    bed.bankd.wait_for("tpduModemToCard", where=lambda m: m["data"] == "00ee000000")
    log_at = len(c.log_text())
    bed.bankd.kill()
    assert c.read_line().startswith("error: no response: ")
    c.wait_for_log(r"OPERATIONAL -> WAIT_BANKD", start=log_at)
    c.wait_for_log(r"waiting for a card", start=log_at)
    c.send_line("a0 a4 00 00 02 3f 00")                  # waits for the bankd to return
    assert c.no_line_within(0.5)

    mark = bed.bankd.mark()
    bed.bankd.restart()
    bed.bankd.wait_for("connectClientReq", start=mark, timeout=15)
    assert c.read_line(15) == "9f17"
    assert c.apdu("00 b0 00 00 02") == "abab9000"


def test_bad_bankd_answers_are_refused_not_crashed_on(client_bed, remsim_client):
    def card(tpdu):
        return b"\x90" if tpdu[1] == 0xEF else default_card(tpdu)  # no status word

    bed = client_bed(card=card)
    c = remsim_client(*bed.client_args())
    operational(bed, c)
    conn = bed.bankd.wait_for("connectClientReq")[1]
    assert c.apdu("00 ef 00 00 00") == "error: no response: response without status word"
    # an answer nobody asked for, then BER garbage: both logged and dropped
    conn.send(tpdu_card_to_modem(b"\x6f\x00"))
    conn.send(bytes.fromhex("0006ee07300380ff02"))
    c.wait_for_log(r"tpduCardToModem \(2 bytes\) without a TPDU outstanding: dropped")
    c.wait_for_log(r"undecodable RSPRO PDU \(5 bytes\) dropped")
    assert c.apdu("a0 a4 00 00 02 3f 00") == "9f17"      # its own answer, not the stray one
    # an IPA length beyond what osmo-remsim accepts: the link is dropped and made again
    mark = bed.bankd.mark()
    conn.send(bytes.fromhex("ffffee07"))
    bed.bankd.wait_for("connectClientReq", start=mark, timeout=15)
    c.wait_for_log(r"WAIT_ATR -> OPERATIONAL", start=c.log_text().index("bad IPA data"))
    assert c.apdu("a0 a4 00 00 02 3f 00", timeout=15) == "9f17"

def test_refused_bankd_connect_backs_off(client_bed, remsim_client):
    bed = client_bed()
    bed.bankd.refuse = "cardNotPresent"
    c = remsim_client(*bed.client_args())
    bed.map()
    c.wait_for_log(r"connect refused: cardNotPresent")
    time.sleep(3.0)
    # osmo-remsim 1.0 retries at once (hundreds of times here); the link's backoff spaces them
    tries = len(bed.bankd.received("connectClientReq"))
    assert 1 <= tries <= 4, tries
    bed.bankd.refuse = None
    c.wait_for_log(r"WAIT_ATR -> OPERATIONAL", timeout=15)
    assert c.apdu("a0 a4 00 00 02 3f 00") == "9f17"


def test_unmapping_disconnects_from_the_bankd(client_bed, remsim_client):
    bed = client_bed()
    c = remsim_client(*bed.client_args())
    operational(bed, c)
    assert c.apdu("a0 a4 00 00 02 3f 00") == "9f17"
    log_at = len(c.log_text())
    bed.unmap()
    c.wait_for_log(r"server: no bankd for us \(port 0\)", start=log_at)
    c.wait_for_log(r"OPERATIONAL -> UNMAPPED \(mapping removed\)", start=log_at)
    bed.bankd.wait_for("closed")
    mark = bed.bankd.mark()
    c.send_line("a0 a4 00 00 02 3f 00")
    assert c.no_line_within(2.0)                         # nothing to answer it, no retries
    assert bed.bankd.received("connectClientReq", mark) == []
    bed.map()                                            # mapped again: the line goes out
    assert c.read_line() == "9f17"


def test_server_loss_does_not_stop_apdus(client_bed, remsim_client):
    bed = client_bed()
    c = remsim_client(*bed.client_args())
    operational(bed, c)
    bed.server.terminate()
    c.wait_for_log(r"server session lost .* OPERATIONAL continues")
    assert c.apdu("a0 a4 00 00 02 3f 00") == "9f17"
    assert "OPERATIONAL ->" not in c.log_text()



def test_restarted_server_keeps_a_working_bankd_link(client_bed, remsim_client, postgres,
                                                     spawn, bin_path, free_port_factory):
    bed = client_bed()
    c = remsim_client(*bed.client_args(), "--log-level", "info")
    operational(bed, c)
    port = bed.server.port
    bed.server.terminate()
    c.wait_for_log(r"server session lost")
    srv = spawn([bin_path("server/remsim-server"), "--rspro-port", port, "--http-port",
                 free_port_factory(), "--db", postgres.dsn, "--key", bed.key, "--bankd-port",
                 bed.bankd.port, "--rspro-auth", "optional"], name="server2", ready=port)
    bed.bankd.connect_server(port)                        # the mapping becomes ACTIVE again
    assert srv.returncode is None
    # the new server tells the client what it already knows: osmo-remsim would reconnect
    c.wait_for_log(r"configuration unchanged \(bank 1:0 at 127.0.0.1 port \d+\): bankd "
                   r"session kept", timeout=15)
    assert c.apdu("a0 a4 00 00 02 3f 00") == "9f17"
    assert "OPERATIONAL ->" not in c.log_text()
    assert len(bed.bankd.received("connectClientReq")) == 1

EVENT_SCRIPT = """#!/bin/sh
cat > /dev/null          # stdin must be /dev/null, not the shell front end's input
echo "script stdout must not reach the APDU output"
line="$(env | grep '^REMSIM_' | sort | tr '\\n' ' ')ARG=$1"
echo "$line" >> "{out}"     # one write: a reader never sees half a line
"""


def read_events(path, n, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= n or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    events = []
    for line in lines:
        env_part, arg = line.rsplit("ARG=", 1)
        env = dict(kv.split("=", 1) for kv in env_part.split())
        assert env["REMSIM_EVENT"] == arg, line           # the event is also $1
        events.append(env)
    return events


def test_event_script_gets_the_documented_environment(client_bed, remsim_client, tmp_path):
    bed = client_bed()
    out = tmp_path / "events.txt"
    script = tmp_path / "event.sh"
    script.write_text(EVENT_SCRIPT.format(out=out))
    script.chmod(0o755)
    c = remsim_client(*bed.client_args(), "-e", script)
    operational(bed, c)
    assert c.apdu("reset") == SIM_ATR.hex()
    bed.unmap()
    c.wait_for_log(r"OPERATIONAL -> UNMAPPED")
    bed.server.terminate()
    ev = read_events(out, 8)
    assert [e["REMSIM_EVENT"] for e in ev] == [
        "server-up", "mapped", "bankd-up", "card-inserted", "reset", "card-removed",
        "unmapped", "server-down"]
    common = {"REMSIM_CLIENT_ID": "23", "REMSIM_CLIENT_SLOT": "0",
              "REMSIM_SERVER_HOST": "127.0.0.1", "REMSIM_SERVER_PORT": str(bed.server.port)}
    mapped = {"REMSIM_BANK_ID": "1", "REMSIM_BANK_SLOT": "0",
              "REMSIM_BANKD_HOST": "127.0.0.1", "REMSIM_BANKD_PORT": str(bed.bankd.port)}
    unmapped = {k: "" for k in mapped}
    for e in ev:
        assert common.items() <= e.items(), e
    assert unmapped.items() <= ev[0].items() and ev[0]["REMSIM_STATE"] == "UNMAPPED"
    for e in ev[1:7]:                                    # up to "unmapped": the mapping's bankd
        assert mapped.items() <= e.items(), e
    assert ev[3]["REMSIM_ATR"] == SIM_ATR.hex() and ev[3]["REMSIM_STATE"] == "OPERATIONAL"
    assert ev[6]["REMSIM_STATE"] == "UNMAPPED"
    assert unmapped.items() <= ev[7].items()
    assert c.no_line_within(0.3)                         # the script's stdout went to stderr
    assert "script stdout must not reach the APDU output" in c.log_text()
    c.wait_for_log(r"event server-down: pid \d+ exited with 0")


def test_event_style_osmo_calls_the_script_as_osmo_remsim_does(client_bed, remsim_client,
                                                              tmp_path):
    """--event-style osmo: osmo-remsim-client 1.1's causes, in its order, as $1 and
    REMSIM_CAUSE, with its variables (shared rspro-protocol.md 6.5)."""
    bed = client_bed()
    out = tmp_path / "events.txt"
    script = tmp_path / "event.sh"
    script.write_text(EVENT_SCRIPT.format(out=out))
    script.chmod(0o755)
    c = remsim_client(*bed.client_args(), "-e", script, "--event-style", "osmo")
    operational(bed, c)
    assert c.apdu("reset") == SIM_ATR.hex()       # no osmo cause: the modem status is kept
    bed.unmap()
    c.wait_for_log(r"OPERATIONAL -> UNMAPPED")
    bed.server.terminate()                         # no osmo cause either
    causes = ["event-server-connect", "event-config-bankd", "event-bankd-connect",
              "request-sim-remote", "request-card-insert", "request-modem-reset",
              "request-card-remove", "request-sim-local", "request-modem-reset",
              "event-config-bankd"]
    deadline = time.monotonic() + 10
    while len(out.read_text().splitlines() if out.exists() else []) < len(causes):
        assert time.monotonic() < deadline, out.read_text() if out.exists() else "no events"
        time.sleep(0.05)
    ev = []
    for line in out.read_text().splitlines():
        env_part, arg = line.rsplit("ARG=", 1)
        env = dict(kv.split("=", 1) for kv in env_part.split())
        assert env["REMSIM_CAUSE"] == arg, line
        ev.append(env)
    assert [e["REMSIM_CAUSE"] for e in ev] == causes
    server = f"127.0.0.1:{bed.server.port}"
    for e in ev:
        assert e["REMSIM_CLIENT_SLOT"] == "23:0" and e["REMSIM_SERVER_ADDR"] == server, e
        assert e["REMSIM_CLIENT_VERSION"] and e["REMSIM_USB_PATH"] == "", e
    bankd = f"127.0.0.1:{bed.bankd.port}"
    for e in ev[1:]:                               # from the configuration on
        assert e["REMSIM_BANKD_ADDR"] == bankd and e["REMSIM_BANKD_SLOT"] == "1:0", e
    assert ev[0]["REMSIM_BANKD_ADDR"] == "" and ev[0]["REMSIM_SERVER_STATE"] == "CONNECTED"
    insert = ev[4]
    assert insert["REMSIM_BANKD_STATE"] == "CONNECTED" and insert["REMSIM_SIM_VCC"] == ""
    # after the shell's warm reset the client reported RST inactive, VCC and CLK on
    removed = ev[6]
    assert (removed["REMSIM_SIM_VCC"], removed["REMSIM_SIM_RST"], removed["REMSIM_SIM_CLK"]) \
        == ("1", "0", "1"), removed
    assert "event request-modem-reset: pid" in c.log_text()


def test_token_goes_to_server_and_bankd(client_bed, remsim_client, tmp_path):
    bed = client_bed()
    token = bed.token("client", 23)
    path = tmp_path / "client.token"
    path.write_text(token + "\n")
    c = remsim_client(*bed.client_args(), "--token", path)
    operational(bed, c)
    bed.server.wait_for_log(r"\[client 23:0 @.*\] token [0-9a-f]{32} valid")
    _, _, hello = bed.bankd.wait_for("connectClientReq")
    assert hello["authToken"] == token
    assert c.apdu("a0 a4 00 00 02 3f 00") == "9f17"


def test_token_file_is_checked_at_start(client_bed, bin_path, tmp_path):
    bed = client_bed(bankd=False)
    exe = str(bin_path("agent-client/remsim-client"))
    cases = [(bed.token("client", 24), "issued for client 24, we are client 23"),
             (bed.token("bankd", 23), "a bankd token, not a client token"),
             ("rst1.garbage", "token file"),
             ("x" * 600, "too long")]
    for text, why in cases:
        path = tmp_path / "t.token"
        path.write_text(text)
        r = subprocess.run([exe, "-c", "23", "-t", str(path)], capture_output=True, text=True,
                           timeout=10, stdin=subprocess.DEVNULL)
        assert r.returncode == 1 and why in r.stderr, (text[:20], r.stderr)
    r = subprocess.run([exe, "-t", str(tmp_path / "missing")], capture_output=True, text=True,
                       timeout=10, stdin=subprocess.DEVNULL)
    assert r.returncode == 1 and "No such file" in r.stderr


@pytest.mark.parametrize("args,msg", [
    (["-c", "1024"], "invalid client id '1024' (0..1023)"),
    (["-n", "x"], "invalid client slot 'x'"),
    (["-p", "0"], "invalid port '0'"),
    (["-p", "65536"], "invalid port '65536'"),
    (["-i", ""], "invalid server host"),
    (["-f", "usb"], "unknown front end 'usb'"),
    (["-f", "vpcd"], "--frontend vpcd needs --vpcd-port"),
    (["--vpcd-port", "4000"], "need --frontend vpcd"),
    (["-l", "loud"], "invalid log level 'loud'"),
    (["--event-style", "osmo2"], "invalid event style 'osmo2' (remsim or osmo)"),
    (["--ping-interval", "5"], "invalid time '5'"),
    (["--bogus"], "unrecognized option"),
    (["surplus"], "unexpected argument 'surplus'"),
])
def test_bad_command_lines_are_refused(bin_path, args, msg):
    r = subprocess.run([str(bin_path("agent-client/remsim-client")), *args],
                       capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL)
    assert r.returncode == 2, r
    assert msg in r.stderr and "--help" in r.stderr, r.stderr


def test_help_and_version(bin_path):
    exe = str(bin_path("agent-client/remsim-client"))
    r = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0
    for opt in ("--server-host", "--server-port", "--client-id", "--client-slot", "--token",
                "--event-script", "--event-style", "--frontend", "--vpcd-port", "--vpcd-host",
                "--auto-get-response", "--log-level"):
        assert opt in r.stdout, opt
    r = subprocess.run([exe, "-V"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and r.stdout.startswith("remsim-client ")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_exits_cleanly(client_bed, remsim_client, free_port_factory, sig):
    bed = client_bed()
    c = remsim_client(*bed.client_args())                # connected and operational
    operational(bed, c)
    lost = remsim_client("-p", free_port_factory(), name="no-server")   # still retrying
    lost.wait_for_log(r"wait-retry")
    for p in (c, lost):
        p.send_signal(sig)
        assert p.wait(5) == 0
        p.wait_for_log(r"\[main\] .*: exiting")


# osmo-remsim 1.0 frames (rspro-protocol.md 8.1, 8.4): client 23:0 named "modem1".
OSMO_CLIENT_CONNECT_REQ = bytes.fromhex(
    "0038ee073035800102810100a22da22b30210a010016066d6f64656d31800d72656d73696d2d636c69656e74"
    "8105312e302e303006020117020100")
OSMO_SERVER_CONNECT_RES = bytes.fromhex(
    "0038ee07303580010281020926a22ca32a30250a0101160a6669786d652d6e616d65800d72656d73696d2d73"
    "65727665728105312e302e300a0100")
OSMO_CONFIG_BANK = bytes.fromhex(
    "0021ee07301e800102810100a216b1143006020101020100300a80047f0000010202270f")
OSMO_CONFIG_BANK_PORT0 = bytes.fromhex(
    "0020ee07301d800102810100a215b11330060201010201003009800400000000020100")
OSMO_CONFIG_BANK_RES = bytes.fromhex("0010ee07300d800102810100a205b2030a0100")


def test_client_speaks_osmo_bytes_to_an_osmo_server(remsim_client, bin_path, free_port_factory):
    version = subprocess.run([str(bin_path("agent-client/remsim-client")), "-V"],
                             capture_output=True, text=True).stdout.split()[1].encode()
    assert len(version) == 5, "the golden frame has a 5-character version string"
    port = free_port_factory()
    srv = socket.create_server(("127.0.0.1", port))
    srv.settimeout(10)
    c = remsim_client("-p", port, "-c", 23, "-n", 0, "-N", "modem1")
    conn, _ = srv.accept()
    conn.settimeout(10)
    with conn, srv:
        conn.sendall(bytes.fromhex("0001fe00"))          # the server PINGs on accept

        def exact(n):
            buf = b""
            while len(buf) < n:                          # recv times out after 10 s
                chunk = conn.recv(n - len(buf))
                assert chunk, "client closed the connection"
                buf += chunk
            return buf

        def frame():
            hdr = exact(3)
            return hdr + exact(int.from_bytes(hdr[:2], "big"))

        got = [frame() for _ in range(3)]
        # the client's PING comes first (keepalive starts on connect), PONG and request follow
        assert got[0] == bytes.fromhex("0001fe00")
        assert sorted(got[1:]) == sorted([bytes.fromhex("0001fe01"),
                                          OSMO_CLIENT_CONNECT_REQ.replace(b"1.0.0", version)])
        conn.sendall(bytes.fromhex("0001fe01") + OSMO_SERVER_CONNECT_RES + OSMO_CONFIG_BANK)
        assert frame() == OSMO_CONFIG_BANK_RES
        c.wait_for_log(r"UNMAPPED -> WAIT_BANKD \(mapped to bank 1:0 at 127.0.0.1 port 9999\)")
        conn.sendall(OSMO_CONFIG_BANK_PORT0)
        assert frame() == OSMO_CONFIG_BANK_RES
        c.wait_for_log(r"WAIT_BANKD -> UNMAPPED \(mapping removed\)")
