"""remsim-client's simtrace2 front end against a simulated SIMtrace2 card emulator
(tests/usb/fake_cardem, umockdev) that plays firmware and modem: bring-up order and ATR, T=0
cases 1-4 with procedure bytes, partial data and GET RESPONSE, modem resets forwarded to the
bankd and to the event script (also in the middle of a TPDU), a new ATR and a moved mapping
seen by the modem, a two-slot board's second slot, unplug and re-plug in the middle of an
APDU, malformed USB messages, and the errors an operator meets (no device, busy,
no permission, wrong firmware, --list-devices and --help). The full-system test uses the real server, bankd, pcscd and
remsim-vsim; the others a scripted bankd, to stay fast."""
import re
import secrets
import subprocess
import time

from fixtures_client import SIM_ATR, set_atr_req
from fixtures_usb import SECOND_ATR
from test_relay import wait_for
from test_vsim import ef_iccid, make_autn, xor_auth

USIM_AID = "a0000000871002"
CONFIG = (1, 8, "010000000000")


def bringup(atr: bytes):
    """The host messages of a bring-up (simtrace2-cardem.md 9.1), in order."""
    return [(1, 2, "%02x" % len(atr) + atr.hex()), (1, 5, "01"), (2, 2, "01"),
            (2, 1, "022c01")]


def mapped(bed, c):
    """Maps client 23:0 to bank slot 1:0; returns the ATR line the modem saw."""
    if (1, 8, CONFIG[2]) not in c.outs():
        c.expect("out 1 8")
    mark, at = len(c.seen), len(c.log_text())
    bed.map()
    atr = c.expect("atr ")
    assert c.outs(mark) == bringup(SIM_ATR), c.outs(mark)
    powered(c, at)
    return atr


def powered(c, at):
    """Waits until the client has seen the modem power the card up (log offset at on)."""
    m = c.wait_for_log(r"bring-up: SET_ATR", start=at)
    c.wait_for_log(r"slot status: RST inactive", start=m.end())


def modem_reset(c):
    """The modem resets the card; returns once the client has passed the reset on (status
    and header travel on different endpoints: a header sent earlier could overtake it)."""
    at = len(c.log_text())
    c.cmd("reset")
    c.expect("atr ")
    m = c.wait_for_log(r"the modem resets the card \(warm\)", start=at)
    c.wait_for_log(r"slot status: RST inactive", start=m.end())


def test_bringup_order_and_tpdu_cases(client_bed, usb_client):
    bed = client_bed()
    c = usb_client(*bed.client_args())
    c.expect("out 1 8")
    assert c.outs() == [CONFIG]                      # status events on at device up
    assert mapped(bed, c).split()[1] == SIM_ATR.hex()

    def relayed(tpdu, answer):
        mark = bed.bankd.mark()
        assert c.apdu(tpdu) == answer
        _, _, msg = bed.bankd.wait_for("tpduModemToCard", start=mark)
        assert msg["data"] == tpdu.replace(" ", "")  # header + command data, as one TPDU

    relayed("a0a4000002 3f00", "9f17")               # case 4, GSM: SW only
    relayed("a0c0000017", bytes(range(0x17)).hex() + "9000")   # GET RESPONSE, case 2
    relayed("a0b000000a", "ab" * 10 + "9000")        # READ BINARY, case 2
    relayed("a0b0000000", "6c04")                    # SW alone as the procedure byte
    relayed("00d6000002 abcd", "9000")               # UPDATE BINARY, case 3
    relayed("0044000000", "9000")                    # ACTIVATE FILE, case 1
    relayed("00a4000402 3f00", "6112")               # case 4, UICC
    relayed("00c0000012", bytes(range(0x12)).hex() + "9000")
    relayed("00c0000031", bytes(range(0x31)).hex() + "9000")   # PB + 49: a 64-byte message
    relayed("00c00000f8", bytes(range(0xf8)).hex() + "9000")   # near the 280-byte limit
    relayed("00ee000000", "9000")                    # unknown INS: forwarded as case 2
    mark = bed.bankd.mark()                          # command data in 3-byte pieces
    c.cmd("apdu-chunked 3 00d6000008 0102030405060708")
    assert c.expect("rsp ").split()[1] == "9000"
    assert bed.bankd.wait_for("tpduModemToCard", start=mark)[2]["data"] == \
        "00d60000080102030405060708"
    # the procedure byte the modem got is always the INS
    raw = [line.split()[2] for line in c.seen if line.startswith("rsp ")]
    assert raw[0] == "a49f17" and raw[1].startswith("c0") and raw[3] == "6c04"
    assert c.errors() == []
    mark = len(c.seen)                               # SIGTERM: the modem back on its own SIM
    c.terminate()
    assert c.expect("exit ") == "exit 0"
    assert c.outs(mark) == [(1, 5, "00"), (2, 2, "00")]


def test_modem_reset_reaches_bankd_and_event_script(client_bed, usb_client, tmp_path):
    bed = client_bed()
    out = tmp_path / "events.txt"
    script = tmp_path / "event.sh"
    script.write_text(f'#!/bin/sh\necho "$1|$REMSIM_USB_DEVICE|$REMSIM_STATE" >> {out}\n')
    script.chmod(0o755)
    c = usb_client(*bed.client_args(), "-e", script)
    mapped(bed, c)
    bed.bankd.wait_count("clientSlotStatusInd", 3)  # the power-up after the bring-up
    mark = bed.bankd.mark()
    c.cmd("reset")                                   # STATUS 0x13 then 0x03 on interrupt IN
    c.expect("atr ")
    st = bed.bankd.wait_count("clientSlotStatusInd", 2, start=mark)
    assert [s["slotPhysStatus"] for s in st] == [
        {"resetActive": True, "vccPresent": True, "clkActive": True},
        {"resetActive": False, "vccPresent": True, "clkActive": True}]
    c.cmd("power-off")
    st = bed.bankd.wait_count("clientSlotStatusInd", 3, start=mark)
    assert st[2]["slotPhysStatus"]["vccPresent"] is False
    deadline = time.monotonic() + 10
    while "modem-reset" not in (out.read_text() if out.exists() else "") and \
            time.monotonic() < deadline:
        time.sleep(0.05)
    lines = out.read_text().splitlines()
    dev = "1-1 1d50:60e3 if 0"
    assert lines[0] == f"usb-arrived|{dev}|INIT" or lines[0].startswith("usb-arrived|" + dev)
    assert f"modem-reset|{dev}|OPERATIONAL" in lines
    assert c.errors() == []


def test_unplug_mid_apdu_and_replug(client_bed, usb_client, tmp_path):
    def slow_card(tpdu):
        if tpdu[1] == 0xB2:                          # READ RECORD answers late
            time.sleep(0.4)
            return bytes([0x5A] * tpdu[4]) + b"\x90\x00"
        return b"\x90\x00"

    bed = client_bed(card=slow_card)
    out = tmp_path / "events.txt"
    script = tmp_path / "event.sh"
    script.write_text(f'#!/bin/sh\necho "$1" >> {out}\n')
    script.chmod(0o755)
    c = usb_client(*bed.client_args(), "-e", script)
    mapped(bed, c)
    assert c.apdu("a0b2010404") == "5a5a5a5a9000"
    fds = c.fds()
    for cycle in range(3):
        mark, log_at = bed.bankd.mark(), len(c.log_text())
        c.cmd("apdu a0b2010408")                     # at the bankd when the cable goes
        bed.bankd.wait_for("tpduModemToCard", start=mark)
        c.cmd("unplug")
        c.expect("unplugged")
        c.wait_for_log(r"device lost: unplugged", start=log_at)
        c.wait_for_log(r"answer to a TPDU the modem abandoned: dropped", start=log_at)
        c.wait_for_log(r"no SIMtrace2/sysmoQMOD card-emulation device found", start=log_at)
        o = len(c.seen)
        c.cmd("plug")
        c.expect("atr ", timeout=5)                  # found again, brought up again
        powered(c, log_at)
        assert c.outs(o) == [CONFIG] + bringup(SIM_ATR)
        assert c.apdu("a0b2010402") == "5a5a9000"
        assert c.apdu("a0a40000023f00") == "9000"
    assert c.fds() == fds                            # nothing leaks per cycle
    assert c.returncode is None
    assert c.errors() == []
    text = out.read_text()
    assert text.count("usb-removed") == 3 and text.count("usb-arrived") == 4


def test_malformed_usb_messages_are_dropped(client_bed, usb_client):
    bed = client_bed()
    c = usb_client(*bed.client_args())
    mapped(bed, c)
    cases = [
        ("raw-bulk 010600", r"malformed bulk message dropped: 3 bytes"),
        ("raw-bulk 0106000000001400", r"malformed bulk message dropped: 8 bytes, length "
                                      r"field 20"),
        ("raw-bulk 0163000000000800", r"unknown message class 1 type 99"),
        ("raw-bulk 0106000000002c01" + "00" * 292, r"malformed bulk message dropped: 300 bytes"),
        ("raw-irq 0104000000006400" + "00" * 92, r"interrupt IN: message larger than 64"),
        ("raw-bulk 0106000000001300010000000900a4a4a4a4a4", r"RX_DATA with a wrong length"),
        ("raw-irq 0104000000000a000100", r"STATUS of 2 bytes: dropped"),
        ("raw-bulk 0106000000001400020000000600010203040506", r"6 command bytes without a "
                                                               r"header"),
    ]
    for cmd, pattern in cases:
        at = len(c.log_text())
        c.cmd(cmd)
        c.wait_for_log(pattern, start=at)
    assert c.apdu("a0a40000023f00") == "9f17"        # still working
    assert c.returncode is None


def test_operator_errors_and_device_selection(client_bed, usb_client, remsim_client, bin_path):
    bed = client_bed(bankd=False)
    lst = usb_client("--list-devices", frontend=False, name="list")
    assert lst.expect("exit ") == "exit 0"
    assert re.search(r"^1-1 1d50:60e3 serial=00112233445566778899aabbccddeeff "
                     r'product="SIMtrace 2" cardem-interfaces=0$', lst.log_text(), re.M)
    other = usb_client("--list-devices", "--usb-serial", "0000", frontend=False, name="list2")
    assert other.expect("exit ") == "exit 1"                # the filters apply to the list
    assert "1d50:60e3" not in other.log_text()
    assert "no SIMtrace2-family board (vendor 1d50) found" in other.log_text()

    hlp = usb_client("--help", frontend=False, name="help")
    assert hlp.expect("exit ") == "exit 0"
    assert re.search(r"^SIMtrace2-family boards found \(--list-devices\):\n1-1 1d50:60e3 ",
                     hlp.log_text(), re.M)
    # a user without access to /dev/bus/usb (node 0600 root, client as nobody)
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    perm = usb_client(*bed.client_args(), fake_args=["--node-mode", "0600"], wrap=nobody,
                      name="perm")
    perm.wait_for_log(r"1-1: no permission to open the device: install a udev rule such as "
                      r'SUBSYSTEM=="usb", ATTR\{idVendor\}=="1d50", MODE="0660", '
                      r'GROUP="plugdev"')

    none = remsim_client(*bed.client_args(), "-f", "simtrace2", name="nodev")
    none.wait_for_log(r"error \[simtrace2\] no SIMtrace2/sysmoQMOD card-emulation device "
                      r"found .*--list-devices")
    busy = usb_client(*bed.client_args(), fake_args=["--busy"], name="busy")
    busy.wait_for_log(r"1-1 1d50:60e3 if 0: interface 0 is busy: another program")
    sniff = usb_client(*bed.client_args(), fake_args=["--sniffer"], name="sniffer")
    sniff.wait_for_log(r"1-1 \(1d50:60e3\) has no card-emulation interface: it runs other "
                       r"firmware")
    wrong = usb_client(*bed.client_args(), "--usb-serial", "0000", name="serial")
    wrong.wait_for_log(r"no SIMtrace2/sysmoQMOD card-emulation device found with serial 0000")
    right = usb_client(*bed.client_args(), "--usb-serial", "00112233445566778899aabbccddeeff",
                       "--usb-path", "1-1", "--usb-interface", "0", name="right")
    right.wait_for_log(r"absent -> up \(interface claimed")
    other = usb_client(*bed.client_args(), "--usb-interface", "1", name="if1")
    other.wait_for_log(r"1-1 has no cardem interface 1")
    bad = subprocess.run([bin_path("agent-client/remsim-client"), "--usb-path", "1-1"],
                         capture_output=True, text=True, timeout=10)
    assert bad.returncode == 2 and "--usb-* and --modem-reset-ms need --frontend simtrace2" \
        in bad.stderr
    for p in (perm, none, busy, sniff, wrong, right, other):
        assert p.returncode is None
    right.terminate()
    assert right.expect("exit ") == "exit 0"


def test_full_system_modem_script_and_moved_mapping(usb_bed, usb_client, tmp_path):
    bed = usb_bed
    card0, card1 = bed.vsim.profiles
    c = usb_client("-i", "127.0.0.1", "-p", bed.server.port, "-c", 23, "-n", 0, "-t",
                   bed.token_file(tmp_path, "client", 23))
    c.expect("out 1 8")
    mark = len(c.seen)
    bed.map(0)
    atr = c.expect("atr ").split()[1]
    bank_atr = wait_for(lambda: bed.bank_slot(0), lambda s: s["atr"])["atr"]
    assert atr == bank_atr.lower()                   # the modem sees the bank card's ATR
    assert [o[:2] for o in c.outs(mark)] == [(1, 2), (1, 5), (2, 2), (2, 1)]

    # the modem's script: reset, then what a modem does first
    modem_reset(c)
    assert c.apdu("a0a4000002 3f00").startswith("9f")            # SELECT MF (GSM)
    assert c.apdu("a0a4000002 2fe2").startswith("9f")            # SELECT EF_ICCID
    assert c.apdu("a0b000000a") == ef_iccid(card0["iccid"]).hex() + "9000"   # case 2
    assert c.apdu("a0a4000002 7f20").startswith("9f")
    assert c.apdu("a0a4000002 6f7e").startswith("9f")            # EF_LOCI
    assert c.apdu("a0d6000004 c0ffee01") == "9000"               # case 3 UPDATE BINARY
    assert c.apdu("a0b0000004") == "c0ffee019000"
    sel = c.apdu("00a4000402 3f00")                              # case 4 with FCP
    assert re.fullmatch(r"61[0-9a-f]{2}", sel), sel
    fcp = c.apdu("00c00000" + sel[2:])                           # GET RESPONSE
    assert fcp.startswith("62") and fcp.endswith("9000") and len(fcp) == 2 * int(sel[2:], 16) + 4
    ki = bytes.fromhex(card0["ki"])
    rand, sqn, amf = secrets.token_bytes(16), secrets.token_bytes(6), bytes.fromhex("8000")
    autn = make_autn(ki, rand, sqn, amf)
    assert c.apdu("00a4040c07" + USIM_AID) == "9000"
    assert c.apdu("0088008122" + "10" + rand.hex() + "10" + autn.hex()) == "612c"
    _, res, ck, ik, _ = xor_auth(ki, rand)
    assert c.apdu("00c000002c") == (b"\xdb\x08" + res + b"\x10" + ck + b"\x10" + ik).hex() \
        + "9000"

    # the mapping moves to the other card: removal, then insertion with its ATR
    mark, at = len(c.seen), len(c.log_text())
    status, body = bed.api("DELETE", "/slotmaps/1/0")
    assert status == 204, body
    bed.map(1)
    new_atr = c.expect("atr ", timeout=15).split()[1]
    powered(c, at)
    assert new_atr == SECOND_ATR
    outs = c.outs(mark)
    assert outs[:3] == [(1, 5, "00"), (2, 2, "00"), (2, 1, "022c01")], outs
    assert outs[3:] == [(1, 2, "%02x" % (len(SECOND_ATR) // 2) + SECOND_ATR),
                        (1, 5, "01"), (2, 2, "01"), (2, 1, "022c01")], outs
    assert c.apdu("a0a4000002 3f00").startswith("9f")
    assert c.apdu("a0a4000002 2fe2").startswith("9f")
    assert c.apdu("a0b000000a") == ef_iccid(card1["iccid"]).hex() + "9000"
    assert c.errors() == []


def test_qmod_second_slot_new_atr_and_reset_mid_tpdu(client_bed, usb_client):
    """A two-slot board (sysmoQMOD ids, endpoints 01/82/83 for slot 2): the client for
    --usb-interface 1 finds its endpoints in the descriptors. A new ATR from the bankd
    re-inserts the card; a modem reset while a TPDU is at the bankd drops its late answer,
    and the modem's next command, sent before that answer came, waits for it and then gets
    its own answer (not the stale one, not an error)."""
    def slow_card(tpdu):
        if tpdu[1] == 0xB2:
            time.sleep(1.0)
            return b"\x5a" * tpdu[4] + b"\x90\x00"
        return b"\x90\x00"

    bed = client_bed(card=slow_card)
    c = usb_client(*bed.client_args(), "--usb-interface", "1", fake_args=["--qmod"])
    c.wait_for_log(r"\[simtrace2 1-1 1d50:4004 if 1\] absent -> up")
    mapped(bed, c)
    assert c.apdu("a0b2010402") == "5a5a9000"

    new_atr = bytes.fromhex("3b02abcd")
    mark = len(c.seen)
    _, conn, _ = bed.bankd.wait_for("connectClientReq")
    bmark = bed.bankd.mark()
    conn.send(set_atr_req(conn.client, new_atr))
    assert c.expect("atr ").split()[1] == new_atr.hex()
    assert c.outs(mark) == [(1, 2, "04" + new_atr.hex()), (1, 5, "00"), (1, 5, "01"),
                            (2, 1, "022c01")]
    bed.bankd.wait_for("setAtrRes", start=bmark)

    at, mark = len(c.log_text()), bed.bankd.mark()
    c.cmd("apdu a0b2010408")                         # at the bankd for 1 s
    bed.bankd.wait_for("tpduModemToCard", start=mark)
    modem_reset(c)
    assert "answer to a TPDU the modem abandoned" not in c.log_text()[at:]
    assert c.apdu("a0a40000023f00") == "9000"        # answered by its own answer only
    assert [line for line in c.seen if line.startswith("rsp ")][-1].split()[2] == "a49000"
    log = c.log_text()[at:]
    held = re.search(r"header a0 a4 00 00 02 waits until the card has answered", log)
    assert held and "abandoned: dropped" in log[held.end():], log
    assert c.errors() == []


# Two remsim-clients in one simulated device: the first (client 24, interface 0) in the
# background, the second ("$@" as given) in the foreground; SIGTERM reaches both.
TWO_CLIENTS = r"""
trap 'kill -TERM $a $b 2>/dev/null' TERM INT
"$@" -c 24 --usb-interface 0 & a=$!
"$@" & b=$!
rc=0
for p in $a $b; do
    while :; do
        wait $p; r=$?
        if [ $r -gt 128 ] && kill -0 $p 2>/dev/null; then continue; fi
        break
    done
    [ $r -ne 0 ] && rc=$r
done
exit $rc
"""


def test_qmod_one_client_per_slot(client_bed, usb_client):
    """A sysmoQMOD-style board serves two modems: one remsim-client per card-emulation
    interface, both running at once. Each claims its own interface (neither gets "busy",
    neither re-selects the configuration under the other), and the mapped one relays APDUs
    while the other stays up on its own endpoints."""
    def card(tpdu):
        return (b"\x5a" * tpdu[4] if tpdu[1] == 0xB2 else b"") + b"\x90\x00"

    bed = client_bed(card=card)
    c = usb_client(*bed.client_args(), "--usb-interface", "1", fake_args=["--qmod"],
                   wrap=["/bin/sh", "-c", TWO_CLIENTS, "sh"])
    c.wait_for_log(r"\[simtrace2 1-1 1d50:4004 if 0\] absent -> up")
    c.wait_for_log(r"\[simtrace2 1-1 1d50:4004 if 1\] absent -> up")
    c.expect("other-slot-out 04 0108")      # CONFIG of the slot-1 client, on its own OUT
    mapped(bed, c)                           # client 23 on slot 2: bring-up on 01/82/83
    assert c.apdu("a0b2010402") == "5a5a9000"
    assert c.apdu("a0a40000023f00") == "9000"
    assert not re.search(r"busy|cannot claim|cannot select configuration", c.log_text())
    assert c.errors() == []


def test_atr_longer_than_the_emulator_takes(client_bed, usb_client):
    """The firmware holds at most 33 ATR bytes: a longer ATR from the bank takes the modem
    back to its local SIM with a log line saying why; the next ATR that fits brings the
    remote card back (SET_ATR first, as in a bring-up)."""
    bed = client_bed()
    c = usb_client(*bed.client_args())
    mapped(bed, c)
    _, conn, _ = bed.bankd.wait_for("connectClientReq")
    mark, at = len(c.seen), len(c.log_text())
    conn.send(set_atr_req(conn.client, bytes.fromhex("3b") + bytes(33)))   # 34 bytes
    c.wait_for_log(r"remote -> local \(new ATR too long for the emulator\)", start=at)
    c.expect("out 2 1")
    assert c.outs(mark) == [(1, 5, "00"), (2, 2, "00"), (2, 1, "022c01")]
    assert not any(line.startswith("atr ") for line in c.seen[mark:])

    mark = len(c.seen)
    conn.send(set_atr_req(conn.client, SIM_ATR))
    assert c.expect("atr ").split()[1] == SIM_ATR.hex()
    assert c.outs(mark) == bringup(SIM_ATR)
    powered(c, at)
    assert c.apdu("a0a40000023f00") == "9f17"        # the scripted card's SELECT answer
