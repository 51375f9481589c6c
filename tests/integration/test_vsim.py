"""remsim-vsim: virtual SIM/USIM cards seen through a real private pcscd and its vpcd readers.

Every APDU goes test -> pyscard -> pcscd -> vpcd -> remsim-vsim and back. Expected values
(ICCID/IMSI encodings, the TS 34.108 XOR algorithm) are computed here from the profile file,
independently of the C code.
"""

import json
import os
import re
import secrets
import shutil
import socket
import statistics
import struct
import subprocess
import threading
import time

import pytest
from fixtures_vsim import PcscError

DEFAULT_ATR = bytes.fromhex("3b08805672656d73696d")
USIM_AID_PREFIX = bytes.fromhex("a0000000871002")  # 3GPP RID + USIM application code


# ---------------------------------------------------------------------------------------------
# Expected values, computed from the profile


def swap_nibbles(hexdigits: str) -> bytes:
    """'8949...' -> b'\\x98\\x94...': each pair of digits with its two nibbles swapped."""
    if len(hexdigits) % 2:
        hexdigits += "f"
    return bytes.fromhex("".join(hexdigits[i + 1] + hexdigits[i]
                                 for i in range(0, len(hexdigits), 2)))


def ef_iccid(iccid: str) -> bytes:
    return swap_nibbles(iccid.ljust(20, "f"))


def ef_imsi(imsi: str) -> bytes:
    # TS 31.102 4.2.2: length, then parity nibble (9 odd / 1 even) + digits, nibble-swapped
    body = swap_nibbles(("9" if len(imsi) % 2 else "1") + imsi)
    return (bytes([len(body)]) + body).ljust(9, b"\xff")


def xor_auth(ki: bytes, rand: bytes):
    """TS 34.108 8.1.2 test algorithm: (XDOUT, RES, CK, IK, AK)."""
    xdout = bytes(a ^ b for a, b in zip(ki, rand))
    return xdout, xdout[:8], xdout[1:] + xdout[:1], xdout[2:] + xdout[:2], xdout[3:9]


def make_autn(ki: bytes, rand: bytes, sqn: bytes, amf: bytes) -> bytes:
    xdout, _, _, _, ak = xor_auth(ki, rand)
    mac = bytes(a ^ b for a, b in zip(xdout[:8], sqn + amf))
    return bytes(a ^ b for a, b in zip(sqn, ak)) + amf + mac


def pin_block(pin: str) -> str:
    return pin.encode().ljust(8, b"\xff").hex()


def tlv_find(data: bytes, tag: int):
    """Value of the first TLV with that one-byte tag inside a 62/6F template, or None."""
    i = 2
    while i + 1 < len(data):
        t, n = data[i], data[i + 1]
        if t == tag:
            return data[i + 2:i + 2 + n]
        i += 2 + n
    return None


class Sim:
    """A connected card: apdu() sends hex text, sel() follows 61xx/9Fxx with GET RESPONSE."""

    def __init__(self, vsim, k=0, pcsc=None):
        self.vsim, self.reader, self.profile = vsim, vsim.reader_names[k], vsim.profiles[k]
        self.pcsc = pcsc or vsim.pcsc
        self.atr = self.pcsc.connect(self.reader)

    def apdu(self, text: str, **kw):
        return self.pcsc.transmit(self.reader, text, **kw)

    def ok(self, text: str) -> bytes:
        data, sw = self.apdu(text)
        assert sw == 0x9000, f"{text}: SW {sw:04X}"
        return data

    def sel(self, text: str) -> bytes:
        """SELECT (or any command answered with 61xx/9Fxx): the data fetched with GET
        RESPONSE."""
        data, sw = self.apdu(text)
        assert data == b"" and sw >> 8 in (0x61, 0x9F), f"{text}: SW {sw:04X}"
        cla = "a0" if sw >> 8 == 0x9F else "00"
        return self.ok(f"{cla}c00000{sw & 0xff:02x}")

    def select_path(self, *fids: str, gsm=False):
        for fid in fids:
            if gsm:
                self.sel(f"a0a4000002{fid}")
            else:
                self.ok(f"00a4000c02{fid}")


# ---------------------------------------------------------------------------------------------
# ATR, file system, T=0


def test_atr_is_default_and_protocol_t0(vsim):
    sim = Sim(vsim, 0)
    assert sim.atr == DEFAULT_ATR
    assert vsim.pcsc.request("connect", reader=sim.reader)["protocol"] == "T=0"


def test_read_iccid_uicc_and_gsm_classes(vsim):
    for k in range(2):
        sim = Sim(vsim, k)
        fcp = sim.sel("00a40004023f00")
        assert fcp[0] == 0x62 and tlv_find(fcp, 0x83) == b"\x3f\x00"
        assert tlv_find(fcp, 0x82)[0] == 0x78  # DF
        fcp = sim.sel("00a40004022fe2")
        assert tlv_find(fcp, 0x82) == bytes.fromhex("4121")  # transparent EF
        assert tlv_find(fcp, 0x80) == b"\x00\x0a"  # 10 bytes
        assert sim.ok("00b000000a") == ef_iccid(sim.profile["iccid"])
        # GSM 11.11 class: 9Fxx and the GSM response format
        resp = sim.sel("a0a40000023f00")
        assert len(resp) == 22 and resp[4:7] == b"\x3f\x00\x01"
        resp = sim.sel("a0a40000022fe2")
        assert len(resp) == 15 and resp[2:7] == b"\x00\x0a\x2f\xe2\x04"
        assert sim.ok("a0b000000a") == ef_iccid(sim.profile["iccid"])
    assert ef_iccid(vsim.profiles[0]["iccid"]) != ef_iccid(vsim.profiles[1]["iccid"])


def test_imsi_in_df_gsm_and_adf_usim(vsim):
    sim = Sim(vsim, 1)
    want = ef_imsi(sim.profile["imsi"])
    sim.select_path("7f20", "6f07")
    assert sim.ok("00b0000009") == want
    sim.select_path("3f00", "7f20", "6f07", gsm=True)
    assert sim.ok("a0b0000009") == want
    # the USIM's AID from EF_DIR record 1: 61 L 4F 10 <AID> 50 04 "USIM"
    sim.select_path("3f00", "2f00")
    rec = sim.ok("00b2010420")
    assert rec[0] == 0x61 and rec[2] == 0x4F and rec[20:26] == b"\x50\x04USIM"
    aid = rec[4:4 + rec[3]]
    assert aid.startswith(USIM_AID_PREFIX) and len(aid) == 16
    fcp = sim.sel("00a4040410" + aid.hex())
    assert tlv_find(fcp, 0x84) == aid and tlv_find(fcp, 0x83) == b"\x7f\xff"
    sim.ok("00a4000c026f07")
    assert sim.ok("00b0000009") == want
    # partial (right-truncated) AID, path from the MF through 7FFF, path from the current DF
    sim.ok("00a4040c07" + USIM_AID_PREFIX.hex())
    sim.ok("00a4080c047fff6f07")
    assert sim.ok("00b0000009") == want
    sim.ok("00a4080c027f20")
    sim.ok("00a4090c026f07")
    assert sim.ok("00b0000009") == want
    # not reachable: EF under another DF, unknown FID, unknown AID, 7FFF before any ADF
    assert sim.apdu("00a4000c026f3a")[1] == 0x6A82
    assert sim.apdu("00a4000c021234")[1] == 0x6A82
    assert sim.apdu("00a4040c05a000000999")[1] == 0x6A82
    vsim.pcsc.reset(sim.reader)
    assert sim.apdu("00a4000c027fff")[1] == 0x6A82


def test_get_response_rules(vsim):
    sim = Sim(vsim, 0)
    assert sim.apdu("00c0000010")[1] == 0x6985  # nothing pending
    data, sw = sim.apdu("00a40004022fe2")
    n = sw & 0xff
    assert sw >> 8 == 0x61 and n > 4
    assert sim.apdu("00c0000000") == (b"", 0x6C00 | n)  # Le 0: "right length is n"
    first, sw = sim.apdu("00c0000004")  # part of it: the rest stays
    assert len(first) == 4 and sw == 0x6100 | (n - 4)
    rest = sim.ok(f"00c00000{n - 4:02x}")
    assert (first + rest)[0] == 0x62 and len(first + rest) == n
    sim.apdu("00a40004022fe2")
    sim.ok("00b000000a")  # any other command drops the pending data
    assert sim.apdu(f"00c00000{n:02x}")[1] == 0x6985


def test_update_binary_then_read(vsim):
    sim = Sim(vsim, 0)
    sim.select_path("7f20", "6f7e")  # EF_LOCI, 11 bytes
    orig = sim.ok("00b000000b")
    sim.ok("00d6000304c0ffee01")
    assert sim.ok("00b000000b") == orig[:3] + bytes.fromhex("c0ffee01") + orig[7:]
    assert sim.ok("00b0000302") == bytes.fromhex("c0ff")
    vsim.pcsc.reset(sim.reader)  # contents survive a reset, like a real card's EEPROM
    sim.select_path("7f20", "6f7e")
    assert sim.ok("00b000000b")[3:7] == bytes.fromhex("c0ffee01")
    assert sim.apdu("00d6000b0100")[1] == 0x6B00  # offset past the end
    assert sim.apdu("00d6000a020000")[1] == 0x6700  # runs past the end
    assert sim.apdu("00b0000c01")[1] == 0x6B00
    assert sim.apdu("00b000000c")[1] == 0x6C0B  # Le longer than the file
    # GSM class: same file, GSM status words
    sim.select_path("3f00", "7f20", "6f7e", gsm=True)
    sim.ok("a0d6000001aa")
    assert sim.ok("a0b0000001") == b"\xaa"
    assert sim.apdu("a0b0000c01")[1] == 0x9402
    # EF_ICCID and EF_IMSI are for the administrator only
    sim.select_path("3f00", "2fe2")
    assert sim.apdu("00d6000001ff")[1] == 0x6982
    sim.select_path("3f00", "7f20", "6f07", gsm=True)
    assert sim.apdu("a0d6000001ff")[1] == 0x9804


def test_read_and_update_records(vsim):
    sim = Sim(vsim, 0)
    sim.ok("00a4000c027f10")
    fcp = sim.sel("00a40004026f3a")  # EF_ADN: 10 records of 30 bytes
    assert tlv_find(fcp, 0x82) == bytes.fromhex("4221001e0a")
    assert sim.ok("00b201041e") == b"\xff" * 30
    rec3 = bytes(range(30))
    sim.ok("00dc03041e" + rec3.hex())
    assert sim.ok("00b203041e") == rec3
    # next / previous move the record pointer: 1, 2, 3, then back to 2
    assert sim.ok("00b200021e") == b"\xff" * 30
    sim.ok("00b200021e")
    assert sim.ok("00b200021e") == rec3
    assert sim.ok("00b200041e") == rec3  # P1 0, mode 04: the current record
    sim.ok("00b200031e")
    sim.ok("00dc00031e" + "11" * 30)  # UPDATE previous: record 1
    assert sim.ok("00b201041e") == b"\x11" * 30
    assert sim.apdu("00b20b041e")[1] == 0x6A83  # record 11 of 10
    assert sim.apdu("00b2010410")[1] == 0x6C1E  # Le must be the record length
    assert sim.apdu("00dc010402abcd")[1] == 0x6700
    assert sim.apdu("00b2010500")[1] == 0x6A86  # unknown mode
    assert sim.apdu("00b0000001")[1] == 0x6981  # READ BINARY on a record file
    sim.select_path("3f00", "2fe2")
    assert sim.apdu("00b201041e")[1] == 0x6981  # READ RECORD on a transparent file
    sim.ok("00a4000c023f00")
    assert sim.apdu("00b0000001")[1] == 0x6986  # no EF selected
    # GSM class
    sim.select_path("3f00", "7f10", "6f3a", gsm=True)
    assert sim.ok("a0b203041e") == rec3
    assert sim.apdu("a0b20b041e")[1] == 0x9402
    assert sim.apdu("a0b0000001")[1] == 0x9408


def test_status_command(vsim):
    sim = Sim(vsim, 0)
    sim.ok("00a4000c027f20")
    data, sw = sim.apdu("80f2000000")
    assert data == b"" and sw >> 8 == 0x6C
    fcp = sim.ok(f"80f20000{sw & 0xff:02x}")
    assert fcp[0] == 0x62 and tlv_find(fcp, 0x83) == b"\x7f\x20"
    assert sim.ok("80f2000c00") == b""
    assert sim.apdu("80f2000100")[1] == 0x6985  # no application selected yet
    sim.sel("00a4040407" + USIM_AID_PREFIX.hex())
    data, sw = sim.apdu("80f2000100")
    data = sim.ok(f"80f20001{sw & 0xff:02x}")
    assert data[0] == 0x84 and data[2:].startswith(USIM_AID_PREFIX)
    assert sim.apdu("80f2030000")[1] == 0x6A86
    assert sim.apdu("00f2000000")[1] == 0x6E00  # STATUS is not an ISO-class command
    resp = sim.ok("a0f2000016")  # GSM: the current DF's response (here the ADF)
    assert len(resp) == 22 and resp[4:6] == b"\x7f\xff"
    sim.select_path("3f00", "7f20", gsm=True)
    assert sim.ok("a0f2000016")[4:6] == b"\x7f\x20"
    assert sim.ok("a0f2000006")[4:6] == b"\x7f\x20"  # the first P3 bytes
    assert sim.apdu("a0f2000017")[1] == 0x6716


# ---------------------------------------------------------------------------------------------
# PINs


def test_verify_pin_counts_down_blocks_and_unblocks(vsim):
    sim = Sim(vsim, 0)
    pin, puk = sim.profile["pin1"], sim.profile["puk1"]
    wrong = "0000" if pin != "0000" else "1111"
    assert sim.apdu("0020000100")[1] == 0x9000  # PIN1 disabled by default: nothing to do
    sim.ok("00280001" + "08" + pin_block(pin))  # ENABLE PIN1 (verifies it too)
    assert sim.apdu("0020000100")[1] == 0x9000  # verified
    vsim.pcsc.reset(sim.reader)
    assert sim.apdu("0020000100")[1] == 0x63C3  # after a reset: 3 tries left
    assert sim.apdu("0020000108" + pin_block(wrong))[1] == 0x63C2
    assert vsim.card_status(0)["pin1_retries"] == 2
    assert sim.apdu("0020000108" + pin_block(wrong))[1] == 0x63C1
    sim.ok("0020000108" + pin_block(pin))  # right: back to 3
    assert vsim.card_status(0)["pin1_retries"] == 3
    for left in (2, 1, 0):
        assert sim.apdu("0020000108" + pin_block(wrong))[1] == 0x63C0 | left
    assert sim.apdu("0020000108" + pin_block(pin))[1] == 0x6983  # blocked
    assert sim.apdu("0020000100")[1] == 0x6983
    # blocked and enabled: PIN-protected files are closed
    sim.select_path("7f20", "6f07")
    assert sim.apdu("00b0000009")[1] == 0x6982
    # UNBLOCK: wrong PUK counts down from 10, the right one sets a new PIN
    assert sim.apdu("002c000100")[1] == 0x63CA
    bad_puk = "00000000" if puk != "00000000" else "11111111"
    assert sim.apdu("002c000110" + pin_block(bad_puk) + pin_block("4321"))[1] == 0x63C9
    assert sim.apdu("002c000110" + pin_block(puk) + pin_block("12"))[1] == 0x6A80
    sim.ok("002c000110" + pin_block(puk) + pin_block("4321"))
    st = vsim.card_status(0)
    assert (st["pin1_retries"], st["puk1_retries"]) == (3, 10)
    assert sim.ok("00b0000009") == ef_imsi(sim.profile["imsi"])  # verified by UNBLOCK
    vsim.pcsc.reset(sim.reader)
    assert sim.apdu("0020000108" + pin_block(pin))[1] == 0x63C2  # the old PIN is gone
    sim.ok("0020000108" + pin_block("4321"))


def test_pin_gsm_class_change_pin2_and_disable(vsim):
    sim = Sim(vsim, 1)
    p = sim.profile
    wrong2 = "9999" if p["pin2"] != "9999" else "8888"
    # GSM: CHV2 is P2 02, wrong -> 9804, last wrong -> 9840
    assert sim.apdu("a020000208" + pin_block(wrong2))[1] == 0x9804
    assert vsim.card_status(1)["pin2_retries"] == 2
    sim.ok("a020000208" + pin_block(p["pin2"]))
    # UICC: PIN2 is P2 81; CHANGE with the old one
    sim.ok("0024008110" + pin_block(p["pin2"]) + pin_block("24680"))
    assert sim.apdu("0020008108" + pin_block(p["pin2"]))[1] == 0x63C2
    sim.ok("0020008108" + pin_block("24680"))
    # PIN1 is disabled: CHANGE refused, DISABLE again refused, ENABLE/DISABLE round trip
    assert sim.apdu("0024000110" + pin_block(p["pin1"]) + pin_block("1111"))[1] == 0x6984
    assert sim.apdu("0026000108" + pin_block(p["pin1"]))[1] == 0x6985
    sim.ok("0028000108" + pin_block(p["pin1"]))
    sim.ok("0024000110" + pin_block(p["pin1"]) + pin_block("1111"))
    sim.ok("0026000108" + pin_block("1111"))
    assert sim.apdu("0026008108" + pin_block("24680"))[1] == 0x6A88  # PIN2 stays enabled
    assert sim.apdu("0020000508" + pin_block("1111"))[1] == 0x6A88  # no such PIN
    assert sim.apdu("0020010108" + pin_block("1111"))[1] == 0x6A86
    assert sim.apdu("0020000104" + "31313131")[1] == 0x6700
    # GSM UNBLOCK CHV2 (P2 02) after blocking it
    for _ in range(3):
        sim.apdu("a020000208" + pin_block("0000"))
    assert sim.apdu("a020000208" + pin_block("24680"))[1] == 0x9840
    sim.ok("a02c000210" + pin_block(p["puk2"]) + pin_block("2222"))
    sim.ok("a020000208" + pin_block("2222"))


def test_pin1_enabled_profile_protects_imsi_and_auth(vsim_factory, pcscd, tmp_path, bin_path):
    gen = subprocess.run([bin_path("tools/remsim-vsim"), "--gen-profiles", "1", "--seed", "7"],
                         capture_output=True, text=True, check=True)
    cards = json.loads(gen.stdout)["cards"]
    cards[0]["pin1_enabled"] = True
    path = tmp_path / "locked.json"
    path.write_text(json.dumps({"cards": cards}))
    vs = vsim_factory(pcscd, profiles=path)
    sim = Sim(vs, 0)
    sim.select_path("7f20", "6f07")
    assert sim.apdu("00b0000009")[1] == 0x6982
    assert sim.apdu("a088000010" + "00" * 16)[1] == 0x9804
    sim.select_path("3f00", "2fe2")
    assert sim.ok("00b000000a") == ef_iccid(cards[0]["iccid"])  # ICCID stays readable
    sim.ok("0020000108" + pin_block(cards[0]["pin1"]))
    sim.select_path("3f00", "7f20", "6f07")
    assert sim.ok("00b0000009") == ef_imsi(cards[0]["imsi"])


# ---------------------------------------------------------------------------------------------
# GET CHALLENGE, authentication


def test_get_challenge_length_and_randomness(vsim):
    sim = Sim(vsim, 0)
    seen = set()
    for n in (1, 8, 16, 32, 255):
        data = sim.ok(f"00840000{n:02x}")
        assert len(data) == n
        seen.add(data)
    assert len(sim.ok("0084000000")) == 256  # P3 0 means 256 under T=0
    many = [sim.ok("0084000010") for _ in range(50)]
    assert len(set(many)) == 50
    assert len({b for m in many for b in m}) > 200  # bytes all over 0..255
    assert sim.apdu("0084010008")[1] == 0x6A86
    assert sim.apdu("a084000008")[1] == 0x6E00  # not in the GSM class


def test_usim_authenticate_3g_and_gsm_context(vsim):
    sim = Sim(vsim, 1)
    ki = bytes.fromhex(sim.profile["ki"])
    rand, sqn, amf = secrets.token_bytes(16), secrets.token_bytes(6), bytes.fromhex("8000")
    autn = make_autn(ki, rand, sqn, amf)
    cmd = "0088008122" + "10" + rand.hex() + "10" + autn.hex()
    assert sim.apdu(cmd)[1] == 0x6985  # only inside the USIM application
    sim.ok("00a4040c07" + USIM_AID_PREFIX.hex())
    data, sw = sim.apdu(cmd)
    assert (data, sw) == (b"", 0x612C)
    resp = sim.ok("00c000002c")
    _, res, ck, ik, _ = xor_auth(ki, rand)
    assert resp == b"\xdb\x08" + res + b"\x10" + ck + b"\x10" + ik
    # a wrong MAC: 98 62, nothing to fetch
    bad = autn[:15] + bytes([autn[15] ^ 1])
    assert sim.apdu("0088008122" + "10" + rand.hex() + "10" + bad.hex()) == (b"", 0x9862)
    # another AMF changes the MAC, so an AUTN with its AMF edited fails too
    edited = autn[:6] + b"\x00\x00" + autn[8:]
    assert sim.apdu("0088008122" + "10" + rand.hex() + "10" + edited.hex())[1] == 0x9862
    # GSM security context: 04 SRES 08 Kc
    xdout = xor_auth(ki, rand)[0]
    data, sw = sim.apdu("0088008011" + "10" + rand.hex())
    assert sw == 0x610E
    assert sim.ok("00c000000e") == b"\x04" + xdout[:4] + b"\x08" + xdout[4:12]
    # malformed: wrong Lc, wrong inner lengths, unsupported context
    assert sim.apdu("0088008121" + "10" + rand.hex() + "10" + autn[:15].hex())[1] == 0x6700
    assert sim.apdu("0088008122" + "0f" + rand.hex() + "10" + autn.hex())[1] == 0x6A80
    assert sim.apdu("0088008422" + "10" + rand.hex() + "10" + autn.hex())[1] == 0x9864
    assert sim.apdu("0088018122" + "10" + rand.hex() + "10" + autn.hex())[1] == 0x6A86


def test_run_gsm_algorithm(vsim):
    for k in range(2):
        sim = Sim(vsim, k)
        ki = bytes.fromhex(sim.profile["ki"])
        sim.select_path("3f00", "7f20", gsm=True)
        for _ in range(3):
            rand = secrets.token_bytes(16)
            xdout = xor_auth(ki, rand)[0]
            assert sim.apdu("a088000010" + rand.hex()) == (b"", 0x9F0C)
            assert sim.ok("a0c000000c") == xdout[:4] + xdout[4:12]
        assert sim.apdu("a08800000f" + "00" * 15)[1] == 0x6700
        assert sim.apdu("a088000110" + "00" * 16)[1] == 0x6B00


def test_status_words_for_everything_else(vsim):
    sim = Sim(vsim, 0)
    cases = {
        "00fe000000": 0x6D00,  # unknown INS
        "a0fe000000": 0x6D00,
        "50a4000c023f00": 0x6E00,  # unknown CLA
        "f0b0000001": 0x6E00,
        "04a4000c023f00": 0x6E00,  # secure messaging
        "01a4000c023f00": 0x6881,  # logical channel 1
        "00a4050c023f00": 0x6A86,  # SELECT P1 05
        "00a40001023f00": 0x6A86,  # SELECT P2 01: next occurrence
        "00a4000c033f0000": 0x6700,  # FID of 3 bytes
        "00a4000c023f": 0x6700,  # shorter than Lc
        "00a4000c023f000000": 0x6700,  # longer than Lc + Le
        "00b000000100": 0x6700,  # case 2 with data
        "a0a40100023f00": 0x6B00,  # GSM: wrong P1P2
        "a0a40000021234": 0x9404,  # GSM: not found
        "a0c0000005": 0x6F00,  # GSM: nothing to GET RESPONSE
        "a0c0010000": 0x6B00,
        "00c0010000": 0x6A86,
        "0010000000": 0x6E00,  # TERMINAL PROFILE is class 80
    }
    for apdu, want in cases.items():
        assert sim.apdu(apdu)[1] == want, apdu
    # commands a terminal sends that need no data
    sim.ok("8010000002ffff")  # TERMINAL PROFILE
    sim.ok("80aa000003a90183")  # TERMINAL CAPABILITY
    # the card still works afterwards
    sim.select_path("3f00", "2fe2")
    assert sim.ok("00b000000a") == ef_iccid(sim.profile["iccid"])


# ---------------------------------------------------------------------------------------------
# Fault injection through the control socket


def test_remove_and_insert(vsim):
    sim = Sim(vsim, 0)
    assert vsim.control("remove 0") == "ok card 0 removed"
    vsim.wait_present(0, present=False)
    with pytest.raises(PcscError):
        sim.apdu("0084000008")
    st = vsim.card_status(0)
    assert st["state"] == "removed" and st["connected"] is False
    assert vsim.control("remove 0").startswith("error card 0: card is already removed")
    # the other card is not affected
    other = Sim(vsim, 1)
    assert len(other.ok("0084000008")) == 8
    assert vsim.control("insert 0") == "ok card 0 inserted"
    vsim.wait_present(0)
    sim = Sim(vsim, 0)
    sim.select_path("3f00", "2fe2")
    assert sim.ok("00b000000a") == ef_iccid(sim.profile["iccid"])
    assert vsim.card_status(0)["connected"] is True
    assert vsim.control("insert 0").startswith("error card 0: card is not removed")
    assert vsim.proc.wait_for_log(r"card 0 @127\.0\.0\.1:\d+\] inserted -> removed "
                                  r"\(removed by control command\)")


def test_control_errors(vsim):
    for cmd, want in {
        "remove 7": "error no card 7 in this process",
        "remove x": "error card index must be a number, not 'x'",
        "remove": "error wrong arguments for 'remove'",
        "remove 0 1": "error wrong arguments for 'remove'",
        "mute 0": "error wrong arguments for 'mute'",
        "mute 0 maybe": "error mute takes on or off, not 'maybe'",
        "delay 0 -5": "error delay must be 0..60000000 microseconds, not '-5'",
        "delay 0 60000001": "error delay must be",
        "frobnicate": "error unknown command 'frobnicate'",
        "": "error empty command",
        "help": "ok commands:",
    }.items():
        assert vsim.control(cmd).startswith(want), cmd
    # an over-long line is refused once; the next line works
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(str(vsim.control_path))
        s.sendall(b"x" * 1000 + b"\nstatus\n")
        buf = b""
        while not buf.endswith(b"ok 2 cards\n"):
            buf += s.recv(4096)
        lines = buf.decode().splitlines()
        assert lines[0] == "error line longer than 254 bytes" and len(lines) == 4
    assert vsim.control("status").endswith("ok 2 cards")
    assert vsim.proc.returncode is None


def test_mute_holds_apdus_until_unmuted(vsim_factory, pcsc_factory, pcscd):
    # debug: every APDU and control byte is in the log should this ever fail (one CI run
    # saw the APDU after "mute 0 off" go unanswered for 10 s; not reproduced since)
    vsim = vsim_factory(pcscd, log_level="debug")
    sim = Sim(vsim, 0)
    sim.ok("0084000008")
    assert vsim.control("mute 0 on") == "ok card 0 mute on"
    assert vsim.card_status(0)["muted"] is True
    with pytest.raises(TimeoutError):
        sim.apdu("0084000008", timeout=1.5)  # no answer while muted
    # card 1 in the same process keeps answering (our first PC/SC client still waits)
    assert len(Sim(vsim, 1, pcsc_factory(pcscd)).ok("0084000008")) == 8
    assert vsim.control("mute 0 off") == "ok card 0 mute off"
    # the held APDU is answered now (its late answer is skipped); then business as usual
    assert len(sim.ok("0084000008")) == 8
    assert vsim.card_status(0)["muted"] is False


def test_mute_then_remove_fails_the_pending_apdu(vsim):
    sim = Sim(vsim, 0)
    vsim.control("mute 0 on")
    result = {}

    def send():
        try:
            result["ok"] = sim.apdu("0084000008", timeout=20)
        except Exception as e:  # the PcscError is what we want to see
            result["error"] = e

    t = threading.Thread(target=send)
    t.start()
    time.sleep(1.0)
    assert t.is_alive()
    vsim.control("remove 0")
    t.join(20)
    assert isinstance(result.get("error"), PcscError), result
    vsim.wait_present(0, present=False)


def test_delay_slows_every_apdu(vsim):
    sim = Sim(vsim, 0)
    assert vsim.control("delay 0 200000") == "ok card 0 delay 200000 us"
    assert vsim.card_status(0)["delay_us"] == 200000
    times = vsim.pcsc.bench(sim.reader, bytes.fromhex("0084000008"), 3)
    assert min(times) >= 200000, times
    # the other card is not slowed down
    other = Sim(vsim, 1)
    assert max(vsim.pcsc.bench(other.reader, bytes.fromhex("0084000008"), 3)) < 150000
    vsim.control("delay 0 0")
    assert max(vsim.pcsc.bench(sim.reader, bytes.fromhex("0084000008"), 3)) < 150000


def test_status_counts_apdus(vsim):
    before = vsim.card_status(1)["apdus"]
    sim = Sim(vsim, 1)
    for _ in range(5):
        sim.ok("0084000004")
    st = vsim.card_status(1)
    assert st["apdus"] == before + 5
    assert st["iccid"] == vsim.profiles[1]["iccid"] and st["imsi"] == vsim.profiles[1]["imsi"]
    assert st["port"] == vsim.ports[1] and st["index"] == 1


# ---------------------------------------------------------------------------------------------
# Many readers, other PC/SC tools, benchmark


def test_eight_readers_one_process(vsim_factory, pcscd_factory):
    pcscd = pcscd_factory(8)
    vs = vsim_factory(pcscd, cards=8)
    assert len(vs.reader_names) == 8
    threads = [line for line in open(f"/proc/{vs.proc.pid}/status") if line.startswith("Threads")]
    assert threads == ["Threads:\t1\n"]
    iccids = set()
    for k in range(8):
        sim = Sim(vs, k)
        sim.select_path("3f00", "2fe2")
        data = sim.ok("00b000000a")
        assert data == ef_iccid(vs.profiles[k]["iccid"])
        iccids.add(data)
    assert len(iccids) == 8
    assert all(s["connected"] for s in vs.status())


def test_opensc_tool_and_pcsc_scan_see_the_card(vsim, pcscd):
    env = {**os.environ, **pcscd.env()}
    if shutil.which("opensc-tool"):
        out = subprocess.run(["opensc-tool", "--reader", "0", "--atr"], env=env,
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip().replace(":", "").lower() == DEFAULT_ATR.hex()
        out = subprocess.run(["opensc-tool", "--reader", "1", "--send-apdu", "00:84:00:00:08"],
                             env=env, capture_output=True, text=True, timeout=30)
        assert "SW1=0x90, SW2=0x00" in out.stdout, out.stdout + out.stderr
    if shutil.which("pcsc_scan"):
        out = subprocess.run(["pcsc_scan", "-n", "-t", "1"], env=env, capture_output=True,
                             text=True, timeout=30)
        text = out.stdout
        assert text.count("Card inserted") >= 2, text
        assert " ".join(f"{b:02X}" for b in DEFAULT_ATR) in text


def test_benchmark_get_challenge_p50(vsim):
    sim = Sim(vsim, 0)
    times = vsim.pcsc.bench(sim.reader, bytes.fromhex("0084000008"), 500)
    assert len(times) == 500
    q = statistics.quantiles(times, n=100)
    print(f"\nremsim-vsim GET CHALLENGE through pcscd, 500 round trips: p50 "
          f"{statistics.median(times):.0f} us, p90 {q[89]:.0f} us, p99 {q[98]:.0f} us")


# ---------------------------------------------------------------------------------------------
# Process: profiles, command line, signals, reconnect


def vsim_run(bin_path, *args, timeout=30):
    return subprocess.run([str(bin_path("tools/remsim-vsim")), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def test_gen_profiles_deterministic_and_valid(bin_path):
    a = vsim_run(bin_path, "--gen-profiles", "50", "--seed", "123")
    b = vsim_run(bin_path, "--gen-profiles", "50", "--seed", "123")
    c = vsim_run(bin_path, "--gen-profiles", "50", "--seed", "124")
    d = vsim_run(bin_path, "--gen-profiles", "50")
    assert a.returncode == 0 and a.stdout == b.stdout and a.stdout != c.stdout
    assert d.returncode == 0 and d.stdout != a.stdout
    cards = json.loads(a.stdout)["cards"]
    assert len(cards) == 50
    assert len({c["iccid"] for c in cards}) == 50 and len({c["imsi"] for c in cards}) == 50
    assert len({c["ki"] for c in cards}) == 50
    for card in cards:
        iccid = card["iccid"]
        assert re.fullmatch(r"89\d{18}", iccid)
        total = 0  # Luhn: every second digit from the right doubled, sum 0 mod 10
        for pos, d in enumerate(int(x) for x in reversed(iccid)):
            total += (2 * d - 9 if d > 4 else 2 * d) if pos % 2 else d
        assert total % 10 == 0, iccid
        assert re.fullmatch(r"00101\d{10}", card["imsi"])
        assert re.fullmatch(r"[0-9a-f]{32}", card["ki"])
        assert re.fullmatch(r"\d{4}", card["pin1"]) and re.fullmatch(r"\d{8}", card["puk1"])
        assert re.fullmatch(r"\d{4}", card["pin2"]) and re.fullmatch(r"\d{8}", card["puk2"])


GOOD_CARD = {"iccid": "89490000000000000017", "imsi": "001010123456789",
             "ki": "000102030405060708090a0b0c0d0e0f", "pin1": "1234", "puk1": "12345678",
             "pin2": "5678", "puk2": "87654321"}


@pytest.mark.parametrize("edit, message", [
    ({"imsi": "00101012345678901"}, "card 1: field 'imsi' must be a string of 6 to 15 digits"),
    ({"imsi": 1234567}, "card 1: field 'imsi' must be a string"),
    ({"ki": "0011"}, "card 1: field 'ki' must be a string of 16 to 16 bytes in hex"),
    ({"ki": "zz" * 16}, "card 1: field 'ki'"),
    ({"iccid": "89abc"}, "card 1: field 'iccid' must be a string of 10 to 20 digits"),
    ({"pin1": "12"}, "card 1: field 'pin1' must be a string of 4 to 8 digits"),
    ({"puk2": "1234"}, "card 1: field 'puk2' must be a string of 8 to 8 digits"),
    ({"atr": "9999"}, "card 1: field 'atr' must start with 3B or 3F"),
    ({"atr": "3b" * 40}, "card 1: field 'atr'"),
    ({"pin1_enabled": "yes"}, "card 1: field 'pin1_enabled' must be true or false"),
    ({"imis": "001010123456789"}, "card 1: unknown field 'imis'"),
    ({"ki": None}, "card 1: missing field 'ki'"),
])
def test_bad_profile_field_names_card_and_field(bin_path, tmp_path, edit, message):
    bad = {k: v for k, v in {**GOOD_CARD, **edit}.items() if v is not None}
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"cards": [GOOD_CARD, bad]}))
    res = vsim_run(bin_path, "--profiles", path, "--reader", "1")
    assert res.returncode == 2
    assert message in res.stderr, res.stderr
    assert "bad profile file" in res.stderr and str(path) in res.stderr


@pytest.mark.parametrize("text, message", [
    ("", "line 1"),
    ("{\"cards\": [", "line 1"),
    ("[]", "expected an object {\"cards\": [...]}"),
    ("{\"cards\": []}", "\"cards\" is empty"),
    ("{\"cards\": [42]}", "card 0: not a JSON object"),
    ("{\"cards\": [{}]}", "card 0: missing field 'iccid'"),
])
def test_bad_profile_files(bin_path, tmp_path, text, message):
    path = tmp_path / "p.json"
    path.write_text(text)
    res = vsim_run(bin_path, "--profiles", path, "--reader", "1")
    assert res.returncode == 2 and message in res.stderr, res.stderr
    res = vsim_run(bin_path, "--profiles", tmp_path / "missing.json", "--reader", "1")
    assert res.returncode == 2 and "missing.json" in res.stderr


@pytest.mark.parametrize("args, message", [
    ([], "need --profiles FILE and at least one --reader"),
    (["--reader", "0"], "invalid --reader '0'"),
    (["--reader", "70000"], "invalid --reader '70000'"),
    (["--reader", "abc"], "invalid --reader 'abc'"),
    (["--reader", "1000=x"], "invalid --reader '1000=x'"),
    (["--reader", "1000=5"], "no card 5"),
    (["--reader", "1000=0", "--reader", "1001=0"], "card 0 is given to two readers"),
    (["--reader", "1000", "--reader", "1000"], "reader port 1000 given twice"),
    (["--reader", "1000", "--reader", "1001", "--reader", "1002"], "only 2 cards"),
    (["--reader", "1000", "--host", "no.such.host.invalid"], "--host no.such.host.invalid"),
    (["--reader", "1000", "--log-level", "loud"], "invalid --log-level 'loud'"),
    (["--reader", "1000", "--seed", "3"], "--seed needs --gen-profiles"),
    (["--reader", "1000", "--bogus"], "unrecognized option"),
    (["--reader", "1000", "extra"], "unexpected argument 'extra'"),
    (["--reader", "1000", "--control", "/nonexistent-dir/x.sock"], "/nonexistent-dir/x.sock"),
])
def test_bad_command_lines(bin_path, tmp_path, args, message):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"cards": [GOOD_CARD, GOOD_CARD]}))
    full = args if not args else ["--profiles", path, *args]
    res = vsim_run(bin_path, *full)
    assert res.returncode == 2, res.stderr
    assert message in res.stderr, res.stderr


@pytest.mark.parametrize("args, message", [
    (["--gen-profiles", "0"], "invalid --gen-profiles '0'"),
    (["--gen-profiles", "x"], "invalid --gen-profiles 'x'"),
    (["--gen-profiles", "2", "--seed", "-1"], "invalid --seed '-1'"),
    (["--gen-profiles", "2", "--reader", "1000"], "--gen-profiles does not go with"),
])
def test_bad_gen_command_lines(bin_path, args, message):
    res = vsim_run(bin_path, *args)
    assert res.returncode == 2 and message in res.stderr, res.stderr


def test_help_and_version(bin_path):
    res = vsim_run(bin_path, "--help")
    assert res.returncode == 0
    for word in ("--profiles", "--reader PORT[=INDEX]", "--control", "--gen-profiles",
                 "--seed", "--host", "--log-level", "mute INDEX on|off"):
        assert word in res.stdout
    res = vsim_run(bin_path, "--version")
    assert res.returncode == 0 and res.stdout.startswith("remsim-vsim ")


def test_sigterm_and_sigint_exit_0(vsim_factory, pcscd):
    vs = vsim_factory(pcscd)
    assert vs.proc.terminate() == 0
    assert not vs.control_path.exists()
    vs = vsim_factory(pcscd, name="vsim-int")
    vs.proc.send_signal(2)
    assert vs.proc.wait() == 0
    assert "stopping (Interrupt)" in vs.proc.log_text()


class FakeVpcd:
    """A vpcd reader port of our own: accepts the card, speaks vpcd's framing."""

    def __init__(self, port):
        self.srv = socket.create_server(("127.0.0.1", port))
        self.srv.settimeout(10)
        self.conn = None

    def accept(self):
        self.conn, _ = self.srv.accept()
        self.conn.settimeout(5)

    def send(self, payload: bytes):
        self.conn.sendall(struct.pack("!H", len(payload)) + payload)

    def recv(self) -> bytes:
        def exact(n):
            buf = b""
            while len(buf) < n:
                chunk = self.conn.recv(n - len(buf))
                assert chunk, "card closed the connection"
                buf += chunk
            return buf
        (n,) = struct.unpack("!H", exact(2))
        return exact(n)

    def close(self):
        if self.conn:
            self.conn.close()
        self.srv.close()


def test_vpcd_protocol_and_reconnect(spawn, bin_path, free_port_factory, tmp_path):
    port = free_port_factory()
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"cards": [{**GOOD_CARD, "atr": "3b9f96801fc78031a073be21136743200718000001a5"}]}))
    fake = FakeVpcd(port)
    proc = spawn([bin_path("tools/remsim-vsim"), "--profiles", path, "--reader", port,
                  "--log-level", "debug"], name="vsim", ready="serving")
    try:
        fake.accept()
        fake.send(b"\x04")  # GET ATR, even while powered off
        assert fake.recv().hex() == "3b9f96801fc78031a073be21136743200718000001a5"
        fake.send(b"\x01")  # power on: no answer
        fake.send(b"")  # an empty message is ignored (and logged)
        fake.send(bytes.fromhex("00a4000c022fe2"))
        assert fake.recv() == b"\x90\x00"
        # two messages in one segment, split across writes: both answered in order
        msg = struct.pack("!H", 5) + bytes.fromhex("00b000000a") + struct.pack("!H", 1) + b"\x04"
        fake.conn.sendall(msg[:3])
        time.sleep(0.05)
        fake.conn.sendall(msg[3:])
        assert fake.recv() == ef_iccid(GOOD_CARD["iccid"]) + b"\x90\x00"
        assert fake.recv().hex().startswith("3b9f")
        fake.send(b"\x09")  # unknown control byte: logged, no answer
        fake.send(bytes.fromhex("0084000002"))
        assert len(fake.recv()) == 4
        # vpcd goes away: the card comes back by itself
        fake.conn.close()
        fake.accept()
        fake.send(b"\x04")
        assert fake.recv().hex().startswith("3b9f")
        proc.wait_for_log(r"inserted -> wait_retry \(vpcd closed the connection\)")
        proc.wait_for_log(r"unknown vpcd control byte 0x09 ignored")
        proc.wait_for_log(r"empty vpcd message ignored")
        proc.wait_for_log(r"apdu 00a4000c022fe2 -> 9000")
    finally:
        fake.close()


def test_waits_for_vpcd_that_is_not_there_yet(spawn, bin_path, free_port_factory, tmp_path):
    port = free_port_factory()
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"cards": [GOOD_CARD]}))
    proc = spawn([bin_path("tools/remsim-vsim"), "--profiles", path, "--reader", port],
                 name="vsim", ready="serving")
    time.sleep(1.0)  # a few refused connects
    assert proc.returncode is None
    fake = FakeVpcd(port)
    try:
        fake.accept()  # backoff is at most 2 s
        fake.send(b"\x04")
        assert fake.recv() == DEFAULT_ATR
    finally:
        fake.close()
    log = proc.log_text()
    assert log.count("connection refused") + log.count("Connection refused") == 1, log


def test_readers_without_index_take_the_unused_cards(spawn, bin_path, tmp_path, tmp_short):
    path = tmp_path / "p.json"
    path.write_text(vsim_run(bin_path, "--gen-profiles", "3", "--seed", "5").stdout)
    sock = tmp_short / "ctl.sock"
    # nothing listens on these ports: the cards wait for their readers
    proc = spawn([bin_path("tools/remsim-vsim"), "--profiles", path, "--reader", "1",
                  "--reader", "2=0", "--reader", "3", "--control", sock], name="vsim",
                 ready=sock)
    from fixtures_vsim import Vsim
    vs = Vsim(proc, json.loads(path.read_text())["cards"], path, [], [], sock, None)
    assert {s["port"]: s["index"] for s in vs.status()} == {1: 1, 2: 0, 3: 2}
    assert all(s["state"] in ("wait_retry", "connecting") for s in vs.status())
    assert proc.terminate() == 0


def test_pcscd_going_away_leaves_cards_waiting(vsim, pcscd):
    sim = Sim(vsim, 0)
    sim.ok("0084000008")
    pcscd.stop()
    vsim.proc.wait_for_log(r"card 0 @127\.0\.0\.1:\d+\] inserted -> wait_retry "
                           r"\(vpcd closed the connection\)")
    time.sleep(1.0)  # some reconnect attempts, logged once
    assert vsim.proc.returncode is None
    assert all(s["state"] in ("wait_retry", "connecting") for s in vsim.status())
    assert vsim.proc.terminate() == 0
