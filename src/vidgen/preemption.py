"""Signals that end training early, handled from process start to exit (docs/slurm.md section 5).

    SIGUSR1  SLURM's warning before the time limit (`--signal=SIGUSR1@90`) or a site's preemption
             notice: stop and save at the next optimizer step, requeue the job, exit 0.
    SIGTERM  scancel, preemption, Kubernetes: the same without the requeue; summary `interrupted`,
             exit 143 and the command that resumes the run.

`install()` sets the handlers at process start (`vidgen train` before importing torch); they only
record the signal, except SIGTERM during start-up, which aborts at once (nothing to save yet).
`vidgen.slurm_requeue.StopOnSignal` acts at a step all ranks agree on; `finish()` closes the exit
path: summary status, W&B flushed, then the requeue as the last act. No torch import here.
"""

from __future__ import annotations

import atexit
import shlex
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

EXIT_INTERRUPTED = 128 + signal.SIGTERM  # 143: what a shell reports for a process ended by SIGTERM
HANDLED = (signal.SIGUSR1, signal.SIGTERM)
HPC_GLOB = "hpc_ckpt_*.ckpt"  # Lightning's requeue saves, which earlier vidgen versions also wrote


class Interrupted(BaseException):
    """A signal before the first step: leave at once, saving nothing (BaseException: no `except
    Exception` swallows it; a stop through the training loop would save a checkpoint at its end)."""


@dataclass
class ProcessState:
    received: int = 0  # 0, SIGUSR1 or SIGTERM (SIGTERM wins: it is the more urgent)
    phase: str = "off"  # off (handlers not installed) | startup | training | finished
    outcome: str | None = None  # requeued | interrupted, once training stopped on a signal
    step: int | None = None  # the optimizer step training stopped at
    run_dir: Path | None = None  # set by vidgen.train once the run folder exists
    agreed: bool = False  # the stop was agreed by all ranks (StopOnSignal), so all ranks exit together


STATE = ProcessState()


def _handler(signum: int, frame) -> None:
    if STATE.received != signal.SIGTERM:
        STATE.received = signum
    if signum == signal.SIGTERM and STATE.phase == "startup":
        raise Interrupted()


def install() -> None:
    """At process start, in the main thread: before it, Python's default action kills the process.
    A second call in start-up (`vidgen train` -> vidgen.train.main) keeps a signal already received."""
    if STATE.phase != "startup":
        _reset(phase="startup")
    if threading.current_thread() is threading.main_thread():
        for sig in HANDLED:
            signal.signal(sig, _handler)
        atexit.unregister(ignore_late_signals)  # one entry, however often install() runs
        atexit.register(ignore_late_signals)


def _reset(**fields) -> None:
    vars(STATE).update(vars(ProcessState(**fields)))  # in place: other modules hold STATE


def begin_run(run_dir: Path) -> None:
    """vidgen.train, once the run folder exists. A second training in the same process starts clean."""
    if STATE.phase == "finished":
        _reset()
    STATE.run_dir = Path(run_dir)


def signal_code(received: int) -> int:
    """What the ranks all-reduce (max): 0 nothing, 1 SIGUSR1, 2 SIGTERM."""
    return {signal.SIGUSR1: 1, signal.SIGTERM: 2}.get(received, 0)


def handler():
    """The handler `install()` sets (StopOnSignal puts it back after Lightning replaced it)."""
    return _handler


# ----------------------------------------------------------------------------- the exit path
def finish(argv: list[str], is_global_zero: bool) -> int:
    """The end of the process, after training returned or start-up was interrupted: status, W&B
    flushed, the requeue last; returns the exit code.

    0 when training completed or the job was requeued (every rank exits 0: `srun
    --kill-on-bad-exit` would kill the others), EXIT_INTERRUPTED (143) after a SIGTERM, with the
    command to rerun. A signal after training finished changes nothing: the run is complete.
    """
    outcome = STATE.outcome
    if outcome is None and STATE.received == signal.SIGTERM and STATE.phase != "finished":
        outcome = "interrupted"
    run_dir = STATE.run_dir
    if outcome is not None and run_dir is not None and is_global_zero:
        _record_status(run_dir, outcome)
    finish_wandb(exit_code=0 if outcome in (None, "requeued") else EXIT_INTERRUPTED)
    if outcome is not None:
        signal.signal(
            signal.SIGTERM, signal.SIG_IGN
        )  # the requeue / the job's end SIGTERMs us: we exit anyway
        if STATE.agreed:
            _barrier()  # every rank is done before one exits (srun --kill-on-bad-exit) or requeues
    if outcome == "requeued":
        if is_global_zero:
            from vidgen import slurm_requeue

            slurm_requeue.requeue_job(STATE.step)
        return 0
    if outcome == "interrupted":
        if is_global_zero:
            print(_rerun_message(run_dir, argv), file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    return 0


def ignore_late_signals() -> None:
    """At exit (atexit, after wandb's own teardown): a signal while the interpreter shuts down, when
    Python has put the default actions back, must not turn a finished run into a killed one."""
    for sig in HANDLED:
        signal.signal(sig, signal.SIG_IGN)


def _barrier() -> None:
    """All ranks meet once more (they agreed on the stop, so all of them are here)."""
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        try:
            dist.barrier()
        except Exception as err:  # noqa: BLE001 - a rank that died already: exit anyway
            print(f"warning: ranks did not meet before exit ({type(err).__name__}: {err})", file=sys.stderr)


def _record_status(run_dir: Path, status: str) -> None:
    import json

    from vidgen.runs import SUMMARY_FILE, _atomic_write_text, read_summary

    summary = read_summary(run_dir)
    if not summary:
        return  # stopped before the run folder had a summary: nothing to correct
    summary["status"] = status
    if STATE.step is not None:
        summary["global_step"] = STATE.step
    summary["stop_signal"] = "SIGTERM" if STATE.received == signal.SIGTERM else "SIGUSR1"
    summary.pop("error", None)
    _atomic_write_text(Path(run_dir) / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")


def finish_wandb(exit_code: int = 0, teardown: bool = True) -> None:
    """Flush and close this process's W&B run, then stop wandb's service process, on every exit path.

    Before a requeue this must come first: the requeue SIGTERMs every process of the job, wandb's
    included, and what it had not written is lost. A service already gone (SIGTERM reached it
    first) is reported, not raised: the run's status is on disk already.
    """
    wandb = sys.modules.get("wandb")
    if wandb is None:
        return
    try:
        if getattr(wandb, "run", None) is not None:
            wandb.finish(exit_code=exit_code)
        if teardown:
            wandb.teardown()
    except Exception as err:  # noqa: BLE001 - the service may have died with the job's SIGTERM
        print(f"warning: W&B could not be flushed ({type(err).__name__}: {err})", file=sys.stderr, flush=True)


def _rerun_message(run_dir: Path | None, argv: list[str]) -> str:
    from vidgen.runs import last_checkpoint

    step = f" at step {STATE.step}" if STATE.step is not None else ""
    step = " during start-up" if STATE.phase == "startup" else step
    if run_dir is None:
        return f"interrupted by SIGTERM{step}; rerun: vidgen train {shlex.join(argv)}"
    kept = [a for a in argv if a.lstrip("+").split("=", 1)[0] not in ("run.dir", "run.name", "run.root")]
    ckpt = last_checkpoint(run_dir)
    start = f"resumes from {ckpt}" if ckpt else "starts again from step 0 (no checkpoint yet)"
    return (
        f"interrupted by SIGTERM{step}; the run {start}. Rerun:\n"
        f"  vidgen train {shlex.join([*kept, f'run.dir={run_dir}'])}"
    )
