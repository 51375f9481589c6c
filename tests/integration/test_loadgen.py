"""remsim-loadgen against the real server and PostgreSQL: simulated bankds and
clients connect, mappings made by SQL reach them (and their removal too), a
refused identity and a missing server are reported, bad options are refused.
The benchmarks (scripts/bench server) rely on exactly these events."""
import json
import subprocess

import pytest

INSERT = "INSERT INTO slotmaps (bank_id, bank_slot, client_id, client_slot) VALUES "


def events(proc, ev=None):
    """The JSON event lines loadgen wrote so far (its log also holds stderr)."""
    out = []
    for line in proc.log_text().splitlines():
        if line.startswith("{"):
            e = json.loads(line)
            if ev is None or e["ev"] == ev:
                out.append(e)
    return out


@pytest.fixture
def loadgen(spawn, bin_path):
    """loadgen(port, *args, name=...) -> Proc running remsim-loadgen --json."""

    def start(port, *args, name="loadgen", json=True):
        argv = [bin_path("tools/remsim-loadgen"), "--port", port, *args]
        return spawn(argv + ["--json"] if json else argv, name=name)

    return start


@pytest.fixture
def server(remsim_server, postgres):
    return remsim_server(postgres)


def test_sql_mappings_reach_simulated_clients(server, postgres, loadgen):
    lg = loadgen(server.port, "--banks", 3, "--slots-per-bank", 4, "--clients", 10,
                 "--until-mapped", 10, "--duration", 15)
    lg.wait_for_log(r'"ev":"all_connected"')
    # client i gets bank slot i: banks 1..3, slots 0..3
    postgres.psql(INSERT + ", ".join(f"({1 + i // 4}, {i % 4}, {i}, 0)" for i in range(10)))
    assert lg.wait(timeout=10) == 0

    configs = {tuple(e["client"]): e for e in events(lg, "config")}
    assert len(configs) == 10
    for i in range(10):
        cfg = configs[(i, 0)]
        assert cfg["bank"] == [1 + i // 4, i % 4]
        assert (cfg["ip"], cfg["port"]) == ("127.0.0.1", 9999)
        assert cfg["create_to_config_us"] >= 0
    creates = events(lg, "create")
    assert sorted(tuple(e["client"]) for e in creates) == [(i, 0) for i in range(10)]
    assert {e["result"] for e in creates} == {"ok"}
    assert {e["bank"] for e in events(lg, "bankd_up")} == {1, 2, 3}

    summary = events(lg, "summary")[-1]
    assert summary["mapped"] == 10 and summary["goal_met"] is True
    assert summary["banks_up"] == 3 and summary["clients_up"] == 10
    assert summary["create_to_config_us"]["n"] == 10
    assert summary["all_connected_s"] <= summary["all_mapped_s"] <= summary["elapsed_s"]


def test_deleted_mapping_gives_port_zero(server, postgres, loadgen):
    lg = loadgen(server.port, "--banks", 1, "--slots-per-bank", 4, "--clients", 2,
                 "--first-client", 7, "--slots-per-client", 2, "--duration", 15)
    lg.wait_for_log(r'"ev":"all_connected"')
    postgres.psql(INSERT + "(1, 0, 7, 0), (1, 3, 7, 1)")
    lg.wait_for_log(r'"ev":"all_mapped"')

    postgres.psql("DELETE FROM slotmaps WHERE client_slot = 1")
    lg.wait_for_log(r'"ev":"config","client":\[7,1\],"bank":\[0,0\],"ip":"0\.0\.0\.0","port":0')
    removes = events(lg, "remove")
    assert [(e["bank"], e["client"], e["result"]) for e in removes] == [([1, 3], [7, 1], "ok")]

    lg.terminate()
    assert lg.returncode == 0  # every agent was still connected
    summary = events(lg, "summary")[-1]
    assert summary["mapped"] == 1 and summary["configs"] == 3
    assert summary["stop"] == "Terminated"


def test_text_summary_without_json(server, postgres, loadgen):
    postgres.psql(INSERT + "(5, 1, 3, 2)")  # made before the agents connect
    # client slots 3:0, 3:1, 3:2
    lg = loadgen(server.port, "--banks", 1, "--first-bank", 5, "--clients", 3,
                 "--first-client", 3, "--slots-per-client", 3, "--until-mapped", 1,
                 "--duration", 10, json=False)
    assert lg.wait(timeout=15) == 0
    text = lg.log_text()
    assert "stopped by --until-mapped" in text
    assert "bankds  1/1 up, clients 3/3 up" in text and "mapped  1 clients" in text
    assert "createMappingReq -> configClientBankReq: p50" in text
    assert "{" not in text  # no JSON without --json


def test_bankd_refuses_a_slot_it_does_not_have(server, postgres, loadgen):
    lg = loadgen(server.port, "--banks", 1, "--slots-per-bank", 2, "--clients", 1,
                 "--until-mapped", 1, "--duration", 2)
    lg.wait_for_log(r'"ev":"all_connected"')
    postgres.psql(INSERT + "(1, 5, 0, 0)")
    lg.wait_for_log(r'"ev":"create","bank":\[1,5\],"client":\[0,0\],"result":"illegalSlotId"')
    server.wait_for_log(r"bankd 1 refused mapping B1:5 <-> C0:0: illegalSlotId")
    assert lg.wait(timeout=10) == 1  # never mapped
    assert "FAILED: 0 of 1 clients mapped" in lg.log_text()


def test_refused_identity_is_retried(server, loadgen):
    first = loadgen(server.port, "--banks", 1, "--duration", 15, name="first")
    first.wait_for_log(r'"ev":"bankd_up"')
    second = loadgen(server.port, "--banks", 1, "--duration", 2, name="second")
    assert second.wait(timeout=10) == 1
    refused = events(second, "refused")
    assert refused and {e["result"] for e in refused} == {"identityInUse"}
    summary = events(second, "summary")[-1]
    assert summary["refused"] == len(refused) and summary["reconnects"] >= 1
    assert summary["banks_up"] == 0
    assert "FAILED: 0/1 bankds and 0/0 clients connected" in second.log_text()
    assert first.returncode is None


def test_server_down_keeps_retrying(loadgen, free_port_factory):
    port = free_port_factory()  # nobody listens there
    lg = loadgen(port, "--banks", 1, "--clients", 2, "--duration", 2)
    assert lg.wait(timeout=10) == 1
    summary = events(lg)[-1]
    assert summary["ev"] == "summary" and summary["stop"] == "--duration"
    assert summary["connects"] == 0 and summary["reconnects"] >= 3
    assert f"no connection to the server 127.0.0.1 port {port} came up" in lg.log_text()


@pytest.mark.parametrize("args, message", [
    ([], "nothing to simulate"),
    (["--banks", "1", "--port", "0"], "invalid --port '0'"),
    (["--banks", "1", "--duration", "0"], "invalid --duration"),
    (["--banks", "1", "--connect-rate", "fast"], "invalid --connect-rate"),
    (["--banks", "1", "--slots-per-bank", "1024"], "invalid --slots-per-bank"),
    (["--banks", "2", "--first-bank", "1023"], "bank ids 1023..1024 exceed 1023"),
    (["--clients", "10000"], "raise --slots-per-client"),
    (["--clients", "3", "--until-mapped", "4"], "more than the 3 simulated clients"),
    (["--banks", "1", "--log-level", "loud"], "invalid --log-level"),
    (["--banks", "1", "extra"], "unexpected argument 'extra'"),
    (["--no-such-option"], "unrecognized option"),
])
def test_bad_options_exit_2(bin_path, args, message):
    res = subprocess.run([bin_path("tools/remsim-loadgen"), *args], capture_output=True,
                         text=True, timeout=10)
    assert res.returncode == 2
    assert message in res.stderr
    assert res.stdout == ""


def test_help_shows_an_example(bin_path):
    res = subprocess.run([bin_path("tools/remsim-loadgen"), "--help"], capture_output=True,
                         text=True, timeout=10)
    assert res.returncode == 0
    assert "--slots-per-client 10" in res.stdout and "Exit status" in res.stdout
