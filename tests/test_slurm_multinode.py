"""slurm/train.sh across two nodes: a real two-node SLURM cluster on loopback (tests/slurm_cluster.py).

Two slurmd (`vidgen-n1`, `vidgen-n2`, each with its own NodeHostname, Port, spool and log) on a
cluster of their own (ClusterName vidgentest2n, own ports), so it never meets the one-node cluster
of tests/test_slurm.py. `--nodes=2 --ntasks-per-node=1` puts one rank under each slurmd: SLURM_NODEID
0/1, trainer.num_nodes=2 derived by train.sh, the first node the rendezvous host. Slow: each job
starts two torch processes on a shared machine.
"""

from __future__ import annotations

import pytest

from slurm_cluster import slurm_fixture
from test_slurm import (
    LONG,
    STEPS,
    assert_clean_requeue,
    job_log,
    losses,
    submit,
    wait_for_requeue,
    wait_for_rows,
    wandb_steps,
)
from vidgen.runs import read_summary

slurm = slurm_fixture(nodes=2)
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]
TWO_NODES = ("--gpus-per-node=0", "--nodes=2", "--ntasks-per-node=1")
ONE_NODE = ("--gpus-per-node=0", "--nodes=1", "--ntasks-per-node=2")


@pytest.fixture(scope="module")
def two_node_run(slurm, tmp_path_factory):
    job, run = submit(slurm, tmp_path_factory.mktemp("two_nodes"), *LONG, alloc=TWO_NODES)
    assert slurm.wait(job, timeout=900) == "COMPLETED", job_log(slurm, job)
    return job, run


def test_two_nodes_by_one_task_equal_one_node_by_two_tasks_loss_for_loss(slurm, two_node_run, tmp_path):
    job, run = two_node_run
    log = job_log(slurm, job)
    assert "2 node(s) x 1 task(s)" in log and slurm.job_field(job, "NodeList") == "vidgen-n[1-2]"
    summary = read_summary(run)
    assert summary["num_nodes"] == 2 and summary["world_size"] == 2 and summary["status"] == "completed"
    one_job, one_run = submit(slurm, tmp_path, *LONG, alloc=ONE_NODE)
    assert slurm.wait(one_job, timeout=900) == "COMPLETED", job_log(slurm, one_job)
    assert read_summary(one_run)["num_nodes"] == 1
    assert losses(run) == losses(one_run)  # bit-identical: same ranks, same data shards, same reductions
    assert len(losses(run)) == STEPS


def test_two_node_preemption_resumes_exactly(slurm, two_node_run, tmp_path):
    job, run = submit(slurm, tmp_path, *LONG, alloc=TWO_NODES)
    wait_for_rows(run, 6, slurm, job)
    slurm.run("scancel", "--signal=USR1", job)  # every task on both nodes
    wait_for_requeue(slurm, job, restarts=1)
    stopped = read_summary(run)
    assert stopped["status"] == "requeued" and stopped["num_nodes"] == 2
    assert slurm.wait(job, timeout=900) == "COMPLETED", job_log(slurm, job)
    assert_clean_requeue(slurm, job)
    assert losses(run) == losses(two_node_run[1])
    assert wandb_steps(run) == list(range(1, STEPS + 1))
    assert read_summary(run)["restarts"] == 1
