"""Window-parallel co-denoising: the windows F_i of one long video spread over processes, one per GPU.

Every rank holds the whole latent video v and steps the scheduler itself. At each co-denoising evaluation a
rank denoises only its share of the windows and adds W_i F_i^T(out_i) into a local sum; one
all_reduce(SUM) turns that into the whole video's sum on every rank. The denominator sum_i W_i needs no
communication: every rank knows all windows and weights. All ranks then divide the same reduced tensor, so
the fused output, and with it every scheduler step, is bitwise the same on every rank: no latents are ever
sent between ranks and a pipeline needs no rank logic (`co_denoise_for` hands it a drop-in co_denoise).

Once per model call the ranks also agree, on a small CPU "control" group, whether any of them was cancelled
or raised, so a cancel or an error on one rank ends every rank at the same call, with the first error's
message, instead of leaving the others blocked in a collective. `launch` runs a function on N spawned
processes and makes sure none outlives the job; `torchrun` works as well (`DistributedContext.from_env`).
"""
from __future__ import annotations

import functools
import json
import os
import socket
import tempfile
import traceback
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch
import torch.distributed as dist

from .progress import Cancelled  # the engine's cancel: the worker already reports it as "cancelled"
from .codenoise import (
    Denoise,
    DenoiseBatch,
    Window,
    add_window_outputs,
    check_windows,
    co_denoise,
    fuse,
    model_calls,
    weight_sum,
)

OK, CANCELLED, FAILED = 0, 1, 2
DEFAULT_TIMEOUT_S = 600.0  # a collective that waits longer than this means a rank is gone or stuck


class RankDone(Exception):
    """Raised on ranks other than 0 once the last denoising step is fused: decoding and writing the video
    are rank 0's alone, so the others leave the pipeline there (`launch` counts it as success, result None)."""


class RankFailed(RuntimeError):
    """Raised on the other ranks (and by `launch`) when one rank raised: names the rank and its error."""


def assign_windows(windows: Sequence[Window], world_size: int) -> list[list[int]]:
    """Window indices per rank, balanced by frame count, the same on every rank (no randomness).

    Longest windows first, each to the least-loaded rank (lowest rank on ties); each rank's list is kept in
    window order. With equal-length windows this is a round robin, e.g. 29 windows on 4 ranks -> 8, 7, 7, 7.
    """
    if world_size < 1:
        raise ValueError(f"The number of GPUs must be at least 1 (got {world_size}).")
    load = [0] * world_size
    share: list[list[int]] = [[] for _ in range(world_size)]
    for i in sorted(range(len(windows)), key=lambda i: (-(windows[i][1] - windows[i][0]), i)):
        rank = min(range(world_size), key=lambda r: (load[r], r))
        share[rank].append(i)
        load[rank] += windows[i][1] - windows[i][0]
    return [sorted(s) for s in share]


def free_port() -> int:
    """A TCP port free on this host right now, for the rendezvous of spawned ranks."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class DistributedContext:
    """This process's place in a multi-process job: rank, world size, its device and the process groups.

    `group` carries the tensors (NCCL on GPUs, gloo on CPUs); `control` is a gloo group for the per-call
    cancel/error agreement, so those small checks never wait on the GPU stream.
    """

    rank: int
    world_size: int
    device: torch.device
    backend: str
    timeout_s: float = DEFAULT_TIMEOUT_S
    group: Optional[object] = None
    control: Optional[object] = None
    local_cancel: Optional[Callable[[], bool]] = None
    cancelled: bool = False
    solo: bool = False  # rank 0 after the last collective: a local cancel can no longer split the group
    _owns_group: bool = field(default=False, repr=False)

    @classmethod
    def setup(cls, rank: int, world_size: int, *, init_method: str, device_type: str = "cpu",
              local_rank: Optional[int] = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> "DistributedContext":
        """Join the process group (one process per GPU on CUDA, gloo processes on CPU)."""
        local_rank = rank if local_rank is None else local_rank
        if device_type == "cuda":
            if local_rank >= torch.cuda.device_count():
                raise ValueError(f"{world_size} GPUs were asked for but only {torch.cuda.device_count()} "
                                 "are visible.")
            device, backend = torch.device("cuda", local_rank), "nccl"
            torch.cuda.set_device(device)
        else:
            device, backend = torch.device("cpu"), "gloo"
        timeout = timedelta(seconds=timeout_s)
        extra = {"device_id": device} if backend == "nccl" else {}
        dist.init_process_group(backend, init_method=init_method, rank=rank, world_size=world_size,
                                timeout=timeout, **extra)
        control = dist.new_group(backend="gloo", timeout=timeout) if backend != "gloo" else dist.group.WORLD
        ctx = cls(rank, world_size, device, backend, timeout_s, dist.group.WORLD, control, _owns_group=True)
        return _set_current(ctx)

    @classmethod
    def from_env(cls, device_type: Optional[str] = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> "DistributedContext":
        """Under torchrun (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT set)."""
        missing = [k for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
        if missing:
            raise ValueError(f"Not started by torchrun: {', '.join(missing)} not set.")
        device_type = device_type or ("cuda" if torch.cuda.is_available() else "cpu")
        return cls.setup(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), init_method="env://",
                         device_type=device_type, local_rank=int(os.environ.get("LOCAL_RANK", 0)),
                         timeout_s=timeout_s)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def watch_cancel(self, is_cancelled: Optional[Callable[[], bool]]) -> None:
        """This rank's own cancel check (e.g. the worker's flag); any rank may have one."""
        self.local_cancel, self.cancelled, self.solo = is_cancelled, False, False

    def is_cancelled(self) -> bool:
        """The cancel state all ranks agreed on at the last model call: the same answer on every rank, so
        it is safe to pass as a pipeline's `is_cancelled` (a rank-local check there could stop one rank only).
        Once rank 0 is alone (decoding, writing) its own cancel check counts directly."""
        if self.solo and self.local_cancel is not None and self.local_cancel():
            self.cancelled = True
        return self.cancelled

    def end_collectives(self) -> None:
        """After the last denoising step: rank 0 goes on alone, every other rank stops (RankDone)."""
        if not self.is_main:
            raise RankDone(f"rank {self.rank}: denoising done; rank 0 decodes and writes")
        self.solo = True

    def agree(self, status: int, error: Optional[BaseException] = None) -> None:
        """Collective: every rank learns the worst status of any rank and raises the same way.

        The rank whose error it was re-raises its own exception (keeping its type, e.g. ValueError or
        out-of-memory); the others raise RankFailed naming it.
        """
        if self.local_cancel is not None and status == OK and self.local_cancel():
            status = CANCELLED
        flag = torch.tensor([status], dtype=torch.int32)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self.control)
        worst = int(flag.item())
        if worst == CANCELLED:
            self.cancelled = True
            raise Cancelled("The job was cancelled.")
        if worst == FAILED:
            messages: list = [None] * self.world_size
            mine = f"{type(error).__name__}: {error}" if error is not None else None
            dist.all_gather_object(messages, mine, group=self.control)
            if error is not None:
                raise error
            rank = next(r for r, m in enumerate(messages) if m is not None)
            raise RankFailed(f"GPU rank {rank} of {self.world_size} failed, so the job stopped on every rank: "
                             f"{messages[rank]}")

    def close(self, abort: bool = False) -> None:
        """Leave the process group; `abort` on the error path so pending NCCL work cannot hang the exit."""
        global _CURRENT
        if self._owns_group and dist.is_initialized():
            try:
                if abort and self.backend == "nccl":
                    dist.distributed_c10d._abort_process_group()
                else:
                    dist.destroy_process_group()
            except Exception:  # noqa: BLE001 - leaving must not mask the job's own error
                pass
        self._owns_group = False
        if _CURRENT is self:
            _CURRENT = None


_CURRENT: Optional[DistributedContext] = None


def _set_current(ctx: DistributedContext) -> DistributedContext:
    global _CURRENT
    _CURRENT = ctx
    return ctx


def current() -> Optional[DistributedContext]:
    """The context this process set up (a process is in at most one job's group, like torch's own WORLD)."""
    return _CURRENT


def parallel_co_denoise(
    latents: torch.Tensor,
    t,
    windows: Sequence[Window],
    weights: Sequence[torch.Tensor],
    denoise: Optional[Denoise] = None,
    *,
    denoise_batch: Optional[DenoiseBatch] = None,
    windows_per_call: int = 1,
    frame_dim: int = 2,
    group: Optional[DistributedContext] = None,
) -> torch.Tensor:
    """`co_denoise` with the windows spread over the ranks of `group` (default: this process's context).

    Same contract and result as co_denoise (to floating-point tolerance: the sum's order differs); every
    rank must call it with the same latents, t, windows and weights, and gets the same fused output back.
    """
    ctx = group if group is not None else _CURRENT
    if ctx is None or ctx.world_size == 1:
        return co_denoise(latents, t, windows, weights, denoise, denoise_batch=denoise_batch,
                          windows_per_call=windows_per_call, frame_dim=frame_dim)
    if denoise is None and denoise_batch is None:
        raise TypeError("parallel_co_denoise needs a denoise or a denoise_batch callable.")
    x = latents.movedim(frame_dim, 2) if frame_dim != 2 else latents
    num_frames = x.shape[2]
    frame_idx = check_windows(windows, weights, num_frames, x.device)
    acc_dtype = torch.promote_types(x.dtype, torch.float32)
    acc = torch.zeros(x.shape, dtype=acc_dtype, device=x.device)

    lengths = [len(f) for f in frame_idx]
    calls = [model_calls(share, lengths, windows_per_call, denoise_batch)
             for share in assign_windows(windows, ctx.world_size)]
    mine = calls[ctx.rank]
    # every rank takes part in the same number of agreements, even one with fewer (or no) calls
    for k in range(max(len(c) for c in calls)):
        status, error = OK, None
        if k < len(mine) and not (ctx.local_cancel is not None and ctx.local_cancel()):
            try:
                add_window_outputs(acc, x, t, frame_idx, weights, mine[k], denoise, denoise_batch, frame_dim)
            except Exception as exc:  # noqa: BLE001 - reported to every rank by agree()
                status, error = FAILED, exc
        ctx.agree(status, error)

    dist.all_reduce(acc, op=dist.ReduceOp.SUM, group=ctx.group)
    wsum = weight_sum(frame_idx, weights, num_frames, acc_dtype, x.device)
    return fuse(acc, wsum, latents.dtype, frame_dim)


def co_denoise_for(ctx: Optional[DistributedContext]) -> Callable[..., torch.Tensor]:
    """The co_denoise a pipeline should call: the plain one alone, the window-parallel one in a group.

    Both have co_denoise's exact signature, so the sampling loop calls whichever the plan holds.
    """
    if ctx is None or ctx.world_size == 1:
        return co_denoise
    return functools.partial(parallel_co_denoise, group=ctx)


# ---- spawning ranks -------------------------------------------------------------------------------------
def _run_rank(rank: int, fn, args, kwargs, world_size: int, init_method: str, device_type: str, timeout_s: float,
              threads: Optional[int], out_dir: str) -> None:
    """Body of one spawned rank: join the group, run fn(ctx, ...), save its result or its error, leave."""
    if threads:
        torch.set_num_threads(threads)
    out = Path(out_dir)
    ctx = None
    try:
        ctx = DistributedContext.setup(rank, world_size, init_method=init_method, device_type=device_type,
                                       timeout_s=timeout_s)
        try:
            result = fn(ctx, *args, **kwargs)
        except RankDone:
            result = None
        torch.save(result, out / f"rank{rank}.pt")
    except BaseException as exc:
        report = {"type": type(exc).__name__, "message": str(exc), "peer": isinstance(exc, RankFailed),
                  "cancelled": isinstance(exc, Cancelled), "value_error": isinstance(exc, ValueError),
                  "traceback": traceback.format_exc()}
        (out / f"rank{rank}.error.json").write_text(json.dumps(report))
        if ctx is not None:
            ctx.close(abort=True)
        raise
    ctx.close()


def _raise_first_error(out: Path, world_size: int, exc) -> None:
    """Turn the ranks' error reports into one exception: the rank that caused it, not the ones it stopped.

    `exc` is torch's report of the first rank to exit badly; with no report of its own, that rank died
    outright (killed, out of host memory, os._exit), and the others' collective errors are only echoes.
    """
    reports = []
    for rank in range(world_size):
        path = out / f"rank{rank}.error.json"
        if path.is_file():
            reports.append((rank, json.loads(path.read_text())))
    first = getattr(exc, "error_index", None)
    if not reports or (first is not None and first not in dict(reports)):
        code = getattr(exc, "exit_code", None)
        how = f"exit code {code}" if code is not None else str(exc).strip().splitlines()[0]
        raise RankFailed(f"GPU rank {first if first is not None else '?'} of {world_size} stopped unexpectedly "
                         f"({how}); it may have run out of memory. Every rank of the job was stopped.") from None
    causes = [(rank, r) for rank, r in reports if not r["peer"] and not r["cancelled"]]
    if not causes and any(r["cancelled"] for _, r in reports):
        raise Cancelled("The job was cancelled.")
    rank, report = (causes or reports)[0]
    if report["value_error"]:
        raise ValueError(report["message"])
    raise RankFailed(f"GPU rank {rank} of {world_size} failed, so the job stopped on every rank: "
                     f"{report['type']}: {report['message']}\n{report['traceback']}")


def launch(fn: Callable, world_size: int, *args, device_type: str = "cpu", timeout_s: float = DEFAULT_TIMEOUT_S,
           job_timeout_s: Optional[float] = None, threads: Optional[int] = None, grace_s: float = 5.0,
           start_method: str = "spawn", **kwargs) -> list:
    """Run fn(ctx, *args, **kwargs) on `world_size` new processes; returns each rank's return value.

    fn must be importable (a module-level function). If any rank raises, the others are ended too (they
    fail at the next per-call agreement or collective; those still alive after `grace_s` are terminated,
    then killed) and the first cause is raised here: ValueError as is, a cancel as Cancelled, anything
    else as RankFailed naming the rank. No process outlives this call, whatever happens.
    """
    import torch.multiprocessing as tmp
    from torch.multiprocessing.spawn import ProcessException

    if world_size < 1:
        raise ValueError(f"The number of GPUs must be at least 1 (got {world_size}).")
    if device_type == "cuda" and world_size > torch.cuda.device_count():
        raise ValueError(f"{world_size} GPUs were asked for but only {torch.cuda.device_count()} are visible.")
    with tempfile.TemporaryDirectory(prefix="genl-ranks-") as tmpdir:
        out = Path(tmpdir)
        init_method = f"tcp://127.0.0.1:{free_port()}"
        context = tmp.start_processes(
            _run_rank, args=(fn, args, kwargs, world_size, init_method, device_type, timeout_s, threads, tmpdir),
            nprocs=world_size, join=False, start_method=start_method)
        try:
            deadline = None if job_timeout_s is None else _now() + job_timeout_s
            while not context.join(timeout=1.0, grace_period=grace_s):
                if deadline is not None and _now() > deadline:
                    raise RankFailed(f"The job did not finish within {job_timeout_s:.0f} s; every rank was stopped.")
        except ProcessException as exc:
            _raise_first_error(out, world_size, exc)
        finally:
            for process in context.processes:
                if process.is_alive():
                    process.terminate()
                    process.join(grace_s)
                if process.is_alive():
                    process.kill()
                    process.join()
        return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(world_size)]


def _now() -> float:
    import time

    return time.monotonic()
