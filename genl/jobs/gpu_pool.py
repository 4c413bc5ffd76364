"""Which GPUs each job holds: the worker pool's policy, as pure bookkeeping (no processes, no torch).

one-per-job: every GPU runs its own job (many short jobs at once). all-on-one: a job takes every GPU and
spreads its windows over them (genl/distributed.py), for long jobs. The queue stays first in, first out:
a job waiting for GPUs is never overtaken, so a job that needs every GPU cannot starve behind short ones.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Collection, Optional, Sequence

POLICIES = {
    "one-per-job": "One GPU per job: several jobs run at once (best for many short jobs).",
    "all-on-one": "All GPUs on one job: each job's windows are spread over every GPU (best for long jobs).",
}


@dataclass
class GpuPool:
    devices: list[str]
    policy: str = "one-per-job"
    held: dict[str, tuple[str, ...]] = field(default_factory=dict)  # job id -> its devices

    def __post_init__(self):
        if not self.devices:
            raise ValueError("The worker pool needs at least one device.")
        if len(set(self.devices)) != len(self.devices):
            raise ValueError(f"A device is listed twice: {', '.join(self.devices)}.")
        self.set_policy(self.policy)

    def set_policy(self, policy: str) -> None:
        """Change the policy; jobs already running keep their GPUs, the next ones follow the new policy."""
        if policy not in POLICIES:
            raise ValueError(f"Unknown GPU policy '{policy}'. Choose one of: {', '.join(POLICIES)}.")
        self.policy = policy

    def wants(self) -> int:
        """How many GPUs the next job takes under the current policy."""
        gpus = [d for d in self.devices if d.startswith("cuda")]
        return len(gpus) if self.policy == "all-on-one" and len(gpus) > 1 else 1

    def free(self, ready: Optional[Collection[str]] = None) -> list[str]:
        """Devices no job holds (and, given `ready`, whose worker is up)."""
        busy = {d for devs in self.held.values() for d in devs}
        return [d for d in self.devices if d not in busy and (ready is None or d in ready)]

    def acquire(self, job_id: str, ready: Optional[Collection[str]] = None,
                single: bool = False) -> Optional[tuple[str, ...]]:
        """The devices `job_id` now holds (lowest free first), or None when not enough are free yet.
        `single`: one device whatever the policy (light jobs such as mask previews)."""
        if job_id in self.held:
            raise ValueError(f"Job {job_id} already holds {', '.join(self.held[job_id])}.")
        free = self.free(ready)
        count = 1 if single else self.wants()
        if len(free) < count:
            return None
        self.held[job_id] = tuple(free[:count])
        return self.held[job_id]

    def release(self, job_id: str) -> tuple[str, ...]:
        """Give back every device of a job that ended (finished, failed, cancelled or crashed)."""
        return self.held.pop(job_id, ())

    def dispatch(self, queue: Sequence[str], ready: Optional[Collection[str]] = None,
                 single: Collection[str] = ()) -> list[tuple[str, tuple[str, ...]]]:
        """Start queued jobs in order while GPUs allow; stops at the first job that must wait (FIFO).
        `ready`: devices whose worker can take a job now; `single`: job ids that take one device."""
        started = []
        for job_id in queue:
            devices = self.acquire(job_id, ready, single=job_id in single)
            if devices is None:
                break
            started.append((job_id, devices))
        return started

    def describe(self, job_id: str) -> str:
        """What the queue shows for a job, e.g. 'GPUs 0, 1' or 'GPU 2' or 'CPU'."""
        devices = self.held.get(job_id, ())
        if not devices:
            return ""
        if all(d.startswith("cuda") for d in devices):
            ids = [d.partition(":")[2] or "0" for d in devices]
            return f"GPU{'s' if len(ids) > 1 else ''} {', '.join(ids)}"
        return ", ".join(d.upper() if d == "cpu" else d for d in devices)
