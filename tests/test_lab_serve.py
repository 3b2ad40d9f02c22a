"""`pushinstall lab serve`: the shipped lab inventory served on loopback and driven as if its
hosts were Windows machines, over real sockets (pypsrp, pywinrm, asyncssh clients against the
lab's WS-Man and SSH endpoints). Nothing is mocked: the only thing missing is Windows itself,
which the lab host model stands in for."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest
import warm
import yaml

from pushinstall.errors import InputError
from pushinstall.inventory import load_inventory
from pushinstall.lab.connect import open_transport
from pushinstall.lab.serve import PORTS_PER_HOST, LabServer, format_table, lab_hosts
from pushinstall.remote import ops

ROOT = Path(__file__).resolve().parents[1]
LAB_INVENTORY = ROOT / "inventories" / "lab.yml"
PLAYBOOK = ROOT / "playbooks" / "asr-mobility.yml"
LIMIT = ["--limit", "lab-web01,lab-app03"]
SECRETS = [(ROOT / "inventories" / "lab-secrets" / name).read_text().strip()
           for name in ("password.txt", "passphrase.txt")]


def _cli(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return warm.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def _wait_for(path: Path, process: warm.Popen, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} not written in {seconds} s"
        time.sleep(0.1)


def test_served_lab_inventory_converges_over_psrp_and_stops_on_a_signal(tmp_path: Path) -> None:
    env = {**os.environ, "PUSHINSTALL_STATE_DIR": str(tmp_path / "state")}
    env.pop("PUSHINSTALL_LAB_WIRE", None)
    written = tmp_path / "served" / "lab-served.yml"
    server = warm.Popen(
        ["lab", "serve", "-i", str(LAB_INVENTORY),
         "--write-inventory", str(written)],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(written, server)
        text = written.read_text()
        for secret in SECRETS:
            assert secret not in text
        hosts = load_inventory([str(written)]).hosts
        assert len(hosts) == 7
        web01 = hosts["lab-web01"]
        assert (web01.connection.transport, web01.connection.address, web01.connection.auth,
                web01.connection.tls) == ("psrp", "127.0.0.1", "ntlm", False)
        assert web01.groups == ["lab_ams"] and web01.vars["site"] == "ams"
        assert "lab" not in hosts["lab-app02"].vars
        assert web01.connection.password is not None
        assert web01.connection.password.reveal() == SECRETS[0]
        assert web01.vars["asr_passphrase"].reveal() == SECRETS[1]
        for secret_file in (written.parent / "lab-served.d" / "secrets").iterdir():
            assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600

        # two of the seven served hosts: the rest would prove the same, slower
        run = _cli("run", "-i", str(written), str(PLAYBOOK), *LIMIT, env=env)
        assert run.returncode == 0, run.stdout + run.stderr
        assert "2 changed" in run.stdout
        check = _cli("check", "-i", str(written), str(PLAYBOOK), *LIMIT, env=env)
        assert check.returncode == 0, check.stdout + check.stderr
        assert "2 compliant" in check.stdout
    finally:
        server.send_signal(signal.SIGINT)
        started = time.monotonic()
        out, err = server.communicate(timeout=15)
    assert server.returncode == 0, err
    assert time.monotonic() - started < 5
    assert "lab-app03" in out and "https://127.0.0.1:" in out and "stopped" in err
    for secret in SECRETS:
        assert secret not in out + err

    # The served hosts were the run's own lab hosts: the in-process lab sees their new state.
    again = _cli("check", "-i", str(LAB_INVENTORY), str(PLAYBOOK), *LIMIT, env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "2 compliant" in again.stdout


def _inventory(tmp_path: Path, hosts: dict[str, dict[str, object]]) -> Path:
    (tmp_path / "pw.txt").write_text("S3cret-pw!\n")
    document = {"all": {
        "vars": {"transport": "lab", "username": "labuser", "password": {"file": "pw.txt"},
                 "token": {"file": "pw.txt"}},
        "hosts": hosts}}
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(document))
    return path


def _os_fact(host_name: str, written: Path, state: Path) -> str:
    host = load_inventory([str(written)]).hosts[host_name]
    transport = open_transport(host, state)
    try:
        answer = transport.call(ops.request("facts", queries=[{"id": "os", "kind": "os"}]))
    finally:
        transport.close()
    return str(ops.result_of(answer)["os"]["hostname"])


@pytest.mark.parametrize("tls", [False, True])
def test_each_host_is_written_with_its_lab_wire_and_answers_on_it(tmp_path: Path,
                                                                  tls: bool) -> None:
    path = _inventory(tmp_path, {"h-psrp": None, "h-winrm": {"lab_wire": "winrm"},
                                 "h-ssh": {"lab_wire": "ssh"}})
    inventory = load_inventory([str(path)])
    state = tmp_path / "state"
    written = tmp_path / "out" / "served.yml"
    with LabServer(lab_hosts(inventory), tmp_path / "out" / "served.d",
                   state_dir=state) as server:
        server.write_inventory(written, inventory, tls=tls)
        hosts = load_inventory([str(written)]).hosts
        assert [hosts[n].connection.transport for n in ("h-psrp", "h-winrm", "h-ssh")] == \
            ["psrp", "winrm", "ssh"]
        assert hosts["h-psrp"].connection.tls is tls
        if tls:
            assert hosts["h-winrm"].connection.cert_validation == str(server.ca_file.resolve())
        for name in hosts:
            assert _os_fact(name, written, state).lower() == name.lower()
            assert server.counters(name)["requests"] > 0
        assert "S3cret-pw!" not in written.read_text()
        assert hosts["h-ssh"].vars["token"].reveal() == "S3cret-pw!"
        assert "h-winrm" in format_table(server.served)


def _free_base(count: int) -> int:
    """A base port with `count` consecutive free ports (checked by binding them)."""
    for base in range(42000, 60000, 97):
        sockets: list[socket.socket] = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise AssertionError("no free port range")


def test_base_port_lays_hosts_out_three_ports_each_and_a_taken_port_is_an_input_error(
        tmp_path: Path) -> None:
    path = _inventory(tmp_path, {"a": None, "b": None})
    hosts = lab_hosts(load_inventory([str(path)]))
    base = _free_base(2 * PORTS_PER_HOST)
    with LabServer(hosts, tmp_path / "one", state_dir=tmp_path / "state",
                   base_port=base) as server:
        assert [(s.http_port, s.https_port, s.ssh_port) for s in server.served] == \
            [(base, base + 1, base + 2), (base + 3, base + 4, base + 5)]
        with pytest.raises(InputError, match="base-port"):
            LabServer(hosts, tmp_path / "two", state_dir=tmp_path / "state2",
                      base_port=base + 3).start()
    with pytest.raises(InputError, match="no room"):
        LabServer(hosts, tmp_path / "three", base_port=65534).start()


def test_an_inventory_without_lab_hosts_exits_5(tmp_path: Path) -> None:
    path = tmp_path / "real.yml"
    path.write_text("all:\n  hosts:\n    srv01:\n      transport: psrp\n")
    result = _cli("lab", "serve", "-i", str(path), env=dict(os.environ), timeout=60)
    assert result.returncode == 5
    assert "no lab hosts" in result.stderr


def test_a_bad_lab_var_is_located_as_run_would_say_it(tmp_path: Path) -> None:
    path = tmp_path / "lab.yml"
    path.write_text("all:\n  vars:\n    transport: lab\n    lab: {latency_ms: 50.5}\n"
                    "  hosts:\n    s001:\n")
    result = _cli("lab", "serve", "-i", str(path), env=dict(os.environ), timeout=60)
    assert result.returncode == 5
    assert result.stderr == (f"{path}:4:11: lab var 'latency_ms' is '50.5' for host 's001' "
                             "(an integer)\n"), result.stderr


def test_write_inventory_onto_a_device_or_fifo_is_refused_and_leaves_it(tmp_path: Path) -> None:
    """Run as root, the one-rename write would have put the inventory in place of /dev/null
    itself (and its stop removed it): a FIFO stands in for the device here."""
    lab = tmp_path / "lab.yml"
    lab.write_text("all:\n  vars:\n    transport: lab\n  hosts:\n    s001:\n")
    fifo = tmp_path / "inventory.fifo"
    os.mkfifo(fifo)
    result = _cli("lab", "serve", "-i", str(lab), "--write-inventory", str(fifo),
                  env=dict(os.environ), timeout=60)
    assert result.returncode == 5, result.stderr
    assert result.stderr.startswith("<command line>:1:")
    assert "is not a regular file (a path for a new inventory file)" in result.stderr
    assert stat.S_ISFIFO(fifo.stat().st_mode) and not (tmp_path / "inventory.d").exists()
