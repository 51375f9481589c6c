"""remsimctl rspro: what a developer sees when decoding captures and
encoding test PDUs with the real binary, checked against the golden data
captured from osmo-remsim 1.0."""
import json
import os
import subprocess

import pytest

TESTDATA = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "testdata")


def golden_vectors():
    """(fields JSON, hex) of every line of rspro-vectors.tsv."""
    with open(os.path.join(TESTDATA, "rspro-vectors.tsv")) as f:
        rows = [l.rstrip("\n").split("\t") for l in f if l.strip() and not l.startswith("#")]
    return [(r[1], r[2]) for r in rows[1:]]


@pytest.fixture
def ctl(bin_path):
    exe = str(bin_path("tools/remsimctl"))

    def run(*args, stdin=None):
        return subprocess.run([exe, *args], input=stdin, capture_output=True, text=True, timeout=30)

    return run


def test_decode_all_golden_vectors_from_stdin(ctl):
    vectors = golden_vectors()
    r = ctl("rspro", "decode", stdin="".join(h + "\n" for _, h in vectors))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == len(vectors) == 90
    for (fields, _), line in zip(vectors, lines):
        assert json.loads(line) == json.loads(fields)
    # the one vector with version 32 decodes, with a warning
    assert "version 32, expected 2" in r.stderr


def test_encode_all_golden_vectors(ctl):
    vectors = golden_vectors()
    r = ctl("rspro", "encode", stdin="".join(f + "\n" for f, _ in vectors))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [h for _, h in vectors]


def test_decode_whole_ipa_frame_and_encode_framed(ctl):
    frame = "0010ee07300d800102810100a205a5030a0100"
    r = ctl("rspro", "decode", frame)
    assert r.returncode == 0
    assert json.loads(r.stdout) == {"version": 2, "tag": 0, "msg": {"createMappingRes": {"result": "ok"}}}
    r = ctl("rspro", "encode", "--ipa", r.stdout.strip())
    assert r.stdout.strip() == frame


def test_pretty_output(ctl):
    r = ctl("rspro", "decode", "--pretty", "300a800102810100a202b300")
    assert r.returncode == 0
    assert r.stdout.startswith("{\n")
    assert json.loads(r.stdout)["msg"] == {"resetStateReq": {}}


@pytest.mark.parametrize("hexstr,message", [
    ("zz", "not a hex string"),
    ("ffffffff", "malformed PDU"),
    ("300d800102810100a205a5030a010000", "trailing bytes"),
    # createMappingReq with bank id 1024
    ("301b800102810100a213a4113006020117020100300702020400020100", "value out of range"),
    ("300d800102810100a205b9030a0100", "unknown message type"),
])
def test_decode_bad_input(ctl, hexstr, message):
    r = ctl("rspro", "decode", hexstr)
    assert r.returncode == 1
    assert message in r.stderr
    assert r.stdout == ""


def test_bad_lines_do_not_stop_the_good_ones(ctl):
    r = ctl("rspro", "decode", stdin="ffff\n300a800102810100a202b300\n")
    assert r.returncode == 1
    assert "line 1" in r.stderr
    assert "resetStateReq" in r.stdout


@pytest.mark.parametrize("doc,message", [
    ("{", "invalid JSON"),
    ('{"version":2,"tag":0}', 'missing field "msg"'),
    ('{"version":2,"tag":0,"msg":{"createMappingReq":{"client":{"clientId":2000,"slotNr":0},'
     '"bank":{"bankId":1,"slotNr":0}}}}', "constraint"),
])
def test_encode_bad_input(ctl, doc, message):
    r = ctl("rspro", "encode", doc)
    assert r.returncode == 1
    assert message in r.stderr


def test_help_and_usage_errors(ctl):
    r = ctl("--help")
    assert r.returncode == 0 and "rspro" in r.stdout and "token" in r.stdout
    r = ctl("rspro", "--help")
    assert r.returncode == 0 and "decode" in r.stdout
    assert ctl("rspro").returncode == 2
    r = ctl("rspro", "frobnicate")
    assert r.returncode == 2 and "unknown action" in r.stderr
    r = ctl("nosuchcommand")
    assert r.returncode == 2 and "unknown command" in r.stderr
    assert ctl("rspro", "decode", "--bogus").returncode == 2
