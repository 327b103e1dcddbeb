"""Real SLURM clusters on loopback for the tests (Debian's slurm-wlm + munge): one node, or two.

`LocalSlurm.start()` installs the packages when `sbatch` is missing (apt-get, root only, once per
machine), writes a minimal slurm.conf under a state folder in /tmp, and starts munged, slurmctld
and one slurmd per node; `stop()` kills exactly the daemons it started.

`LocalSlurm(nodes=1)` is one node named after this machine. `LocalSlurm(nodes=2)` is two nodes,
`vidgen-n1` and `vidgen-n2`, each its own `slurmd -N NAME` with its own NodeHostname (loopback
aliases 127.0.10.1 / .2 added to /etc/hosts when missing: SLURM refuses a duplicated
NodeHostname), Port, spool folder and log, on its own ClusterName and ports, so it never disturbs
a cluster already running on the machine. A 2-node job then runs its tasks under two slurmd, with
SLURM_NODEID 0/1 and the first node as the rendezvous host, as on a real multi-node allocation.
Nothing is written to /etc/slurm: commands find the config through `SLURM_CONF` (see `env()`),
and jobs inherit it, so Lightning's `scontrol requeue` inside a job reaches the same cluster.

The node advertises more CPUs than the machine has (`SlurmdParameters=config_overrides`) so the
8×A100 defaults of slurm/train.sh (`--cpus-per-task`) fit; tests override only GPUs and tasks.

Run `python tests/slurm_cluster.py [--two-nodes]` to start one by hand (prints the `export SLURM_CONF=...`
line and waits for Ctrl-C), e.g. to follow docs/slurm.md without a real cluster.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

PACKAGES = ("slurm-wlm", "munge")
DAEMON_TIMEOUT_S = 60


class SlurmUnavailable(RuntimeError):
    """The cluster cannot be provided on this machine (the reason is the message)."""


SLURM_CONF = """\
# Minimal cluster on loopback for the vidgen tests (tests/slurm_cluster.py).
ClusterName={cluster}
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# a requeued job waits cred_expire seconds before it may start again (default 120)
AuthInfo=cred_expire=10
CryptoType=crypto/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
GresTypes=gpu
JobRequeue=1
# job ids differ between test clusters: Lightning derives MASTER_PORT from the job id
FirstJobId={first_job}
ReturnToService=2
SlurmdParameters=config_overrides
StateSaveLocation={state}/ctld
SlurmdSpoolDir={state}/slurmd-%n
SlurmctldPidFile={state}/slurmctld.pid
SlurmdPidFile={state}/slurmd-%n.pid
SlurmctldLogFile={state}/slurmctld.log
SlurmdLogFile={state}/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
KillWait=30
MinJobAge=600
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=60
{node_lines}
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
"""
NODE_LINE = (
    "NodeName={name} NodeHostname={hostname} NodeAddr={addr} Port={port} CPUs=64 Boards=1 SocketsPerBoard=1 "
    "CoresPerSocket=64 ThreadsPerCore=1 RealMemory=4000 State=UNKNOWN"
)
# The two-node cluster's nodes: name -> loopback address (an /etc/hosts alias of the same name).
TWO_NODES = {"vidgen-n1": "127.0.10.1", "vidgen-n2": "127.0.10.2"}
HOSTS_FILE = Path("/etc/hosts")


def ensure_host_aliases(nodes: dict[str, str], hosts: Path = HOSTS_FILE) -> None:
    """Add `ADDR NAME` lines for the test nodes to /etc/hosts where the name does not resolve yet."""
    missing = []
    for name, addr in nodes.items():
        try:
            if socket.gethostbyname(name) == addr:
                continue
        except OSError:
            pass
        missing.append(f"{addr} {name}")
    if missing:
        with hosts.open("a") as f:
            f.write("# vidgen tests/slurm_cluster.py: two slurmd on loopback\n" + "\n".join(missing) + "\n")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_installed() -> None:
    """apt-get install slurm-wlm munge when sbatch is missing; SlurmUnavailable when impossible."""
    if shutil.which("sbatch") and shutil.which("slurmctld") and shutil.which("munged"):
        return
    if os.name != "posix" or os.geteuid() != 0:
        raise SlurmUnavailable(
            "SLURM is not installed and installing it needs root (apt-get install slurm-wlm munge)"
        )
    if not shutil.which("apt-get"):
        raise SlurmUnavailable(
            "SLURM is not installed and apt-get is not available to install slurm-wlm + munge"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *PACKAGES]):
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if res.returncode != 0:
            raise SlurmUnavailable(f"{' '.join(cmd)} failed: {res.stderr.strip()[-500:]}")


class LocalSlurm:
    def __init__(self, state_dir: str | Path | None = None, nodes: int = 1):
        if nodes not in (1, 2):
            raise ValueError(f"nodes={nodes}: the test clusters have 1 or 2 nodes")
        self.host = socket.gethostname().split(".")[0]
        self.nodes = {self.host: "127.0.0.1"} if nodes == 1 else dict(TWO_NODES)
        self.cluster = "vidgentest" if nodes == 1 else "vidgentest2n"
        self.state = Path(state_dir or f"/tmp/vidgen-slurm{'' if nodes == 1 else '2n'}-{os.getpid()}")
        self.conf = self.state / "slurm.conf"
        self._procs: list[int] = []  # pids of the daemons this object started

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """An environment for SLURM commands (and the jobs they submit) on this cluster."""
        env = dict(os.environ if base is None else base)
        env["SLURM_CONF"] = str(self.conf)
        for key in [
            k for k in env if k.startswith(("SLURM_", "SBATCH_", "SRUN_", "SALLOC_")) and k != "SLURM_CONF"
        ]:
            del env[key]
        return env

    def run(self, *cmd: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
        kwargs.setdefault("env", self.env())
        res = subprocess.run(list(cmd), capture_output=True, text=True, **kwargs)
        if check and res.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({res.returncode}): {res.stdout}{res.stderr}")
        return res

    # ----------------------------------------------------------------------------- daemons
    def _start_munge(self) -> None:
        if subprocess.run(["munge", "-n"], capture_output=True).returncode == 0:
            return  # a munged is already running (e.g. the machine's own)
        sock_dir = Path("/run/munge")
        sock_dir.mkdir(parents=True, exist_ok=True)
        shutil.chown(sock_dir, "munge", "munge")
        if not Path("/etc/munge/munge.key").is_file():
            subprocess.run(["mungekey", "--create"], check=True, capture_output=True)
            shutil.chown("/etc/munge/munge.key", "munge", "munge")
        # munged daemonizes; record the pid it writes
        subprocess.run(["runuser", "-u", "munge", "--", "munged"], check=True, capture_output=True)
        self._wait(lambda: subprocess.run(["munge", "-n"], capture_output=True).returncode == 0, "munged")
        pid_file = Path("/run/munge/munged.pid")
        if pid_file.is_file():
            self._procs.append(int(pid_file.read_text().strip()))

    def start(self) -> LocalSlurm:
        ensure_installed()
        if os.geteuid() != 0:
            raise SlurmUnavailable("starting slurmctld/slurmd/munged for the test cluster needs root")
        (self.state / "ctld").mkdir(parents=True, exist_ok=True)
        for name in self.nodes:
            (self.state / f"slurmd-{name}").mkdir(parents=True, exist_ok=True)
        if len(self.nodes) > 1:
            ensure_host_aliases(self.nodes)
        hostnames = {name: (name if len(self.nodes) > 1 else self.host) for name in self.nodes}
        node_lines = "\n".join(
            NODE_LINE.format(name=name, hostname=hostnames[name], addr=addr, port=_free_port())
            for name, addr in self.nodes.items()
        )
        self.conf.write_text(
            SLURM_CONF.format(
                cluster=self.cluster,
                host=self.host,
                state=self.state,
                ctld_port=_free_port(),
                slurmd_port=_free_port(),
                first_job=1000 + os.getpid() % 4000 * 2 + (len(self.nodes) - 1) * 10000,
                node_lines=node_lines,
            )
        )
        self._start_munge()
        env = self.env()
        ctld = subprocess.Popen(
            ["slurmctld", "-D", "-i", "-f", str(self.conf)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._procs.append(ctld.pid)
        self._wait(lambda: self.run("scontrol", "ping", check=False).stdout.count("UP") > 0, "slurmctld")
        for name in self.nodes:
            slurmd = subprocess.Popen(
                ["slurmd", "-D", "-f", str(self.conf), "-N", name],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            self._procs.append(slurmd.pid)

        def nodes_up() -> bool:
            states = self.run("sinfo", "-h", "-N", "-o", "%t", check=False).stdout.split()
            return len(states) == len(self.nodes) and all(s in ("idle", "mix", "alloc") for s in states)

        self._wait(nodes_up, f"{len(self.nodes)} slurmd (nodes idle)")
        return self

    def _wait(self, ok, what: str) -> None:
        deadline = time.time() + DAEMON_TIMEOUT_S
        while time.time() < deadline:
            if ok():
                return
            time.sleep(0.3)
        log = ""
        for name in ("slurmctld.log", *(f"slurmd-{n}.log" for n in self.nodes)):
            path = self.state / name
            if path.is_file():
                log += f"\n--- {name}\n" + "\n".join(path.read_text().splitlines()[-15:])
        self.stop()
        raise SlurmUnavailable(f"{what} did not come up within {DAEMON_TIMEOUT_S}s{log}")

    def stop(self) -> None:
        for pid in reversed(self._procs):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            for _ in range(50):
                try:
                    os.kill(pid, 0)
                    if os.waitpid(pid, os.WNOHANG) != (0, 0):
                        break
                except ChildProcessError:
                    pass
                except ProcessLookupError:
                    break
                time.sleep(0.1)
        self._procs.clear()

    # ----------------------------------------------------------------------------- jobs
    def sbatch(self, *args: str, env: dict[str, str] | None = None, cwd: str | Path | None = None) -> str:
        """Submit; return the job id."""
        res = self.run("sbatch", "--parsable", *args, env=self.env(env), cwd=cwd)
        return res.stdout.strip().split(";")[0]

    def job_field(self, job: str, field: str) -> str | None:
        res = self.run("scontrol", "show", "job", "-o", job, check=False)
        for token in res.stdout.split():
            key, _, value = token.partition("=")
            if key == field:
                return value
        return None

    def state_of(self, job: str) -> str | None:
        return self.job_field(job, "JobState")

    def wait(
        self, job: str, timeout: float = 180, states=("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT")
    ) -> str:
        deadline = time.time() + timeout
        state = None
        while time.time() < deadline:
            state = self.state_of(job)
            if state in states:
                return state
            time.sleep(0.5)
        raise TimeoutError(f"job {job} still {state} after {timeout}s")


def slurm_fixture(nodes: int = 1):
    """A session-scoped pytest fixture: the running LocalSlurm, or a skip naming why not."""
    import pytest

    @pytest.fixture(scope="session")
    def slurm():
        try:
            cluster = LocalSlurm(nodes=nodes).start()
        except SlurmUnavailable as err:
            pytest.skip(f"no local SLURM cluster: {err}")
        try:
            yield cluster
        finally:
            cluster.run("scancel", "--user=root", check=False)  # SLURM_CONF: only this cluster's jobs
            deadline = time.time() + 30  # let slurmd end the job steps before it stops
            while time.time() < deadline and cluster.run("squeue", "-h", check=False).stdout.strip():
                time.sleep(0.5)
            cluster.stop()
            shutil.rmtree(cluster.state, ignore_errors=True)

    return slurm


if __name__ == "__main__":
    import sys

    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    cluster = LocalSlurm(nodes=2 if "--two-nodes" in sys.argv[1:] else 1).start()
    print(
        f"export SLURM_CONF={cluster.conf}   # then: sinfo, sbatch ...   (Ctrl-C stops the cluster)",
        flush=True,
    )
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()
