"""Window-parallel co-denoising on 2 and 3 gloo processes reproduces one process; failures end every rank."""
import os
import time

import pytest
import torch

import dist_jobs
from genl.codenoise import make_windows
from genl.distributed import RankFailed, assign_windows, launch, parallel_co_denoise
from genl.sampling import Cancelled

COLLECTIVE_TIMEOUT = 30.0  # a rank stuck in a collective would fail the test by this, not hang it


@pytest.fixture(autouse=True)
def one_thread():
    """The reference runs in this process beside the ranks: one thread each, or a small CI box thrashes."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_assign_windows_balances_frames_deterministically():
    windows = make_windows(128, 16, 4)  # the canonical job: 29 windows
    for world in (1, 2, 3, 4, 8):
        share = assign_windows(windows, world)
        assert sorted(i for s in share for i in s) == list(range(29))
        sizes = [len(s) for s in share]
        assert max(sizes) - min(sizes) <= 1
        assert share == assign_windows(windows, world)
    assert [len(s) for s in assign_windows(windows, 4)] == [8, 7, 7, 7]
    # unequal windows: frame counts, not window counts, are balanced
    uneven = [(0, 8), (0, 2), (2, 4), (4, 6), (6, 8)]
    assert assign_windows(uneven, 2) == [[0], [1, 2, 3, 4]]
    assert assign_windows(make_windows(8, 4, 4), 3)[2] == []  # more ranks than windows: some idle
    with pytest.raises(ValueError):
        assign_windows(windows, 0)


def test_without_a_group_it_is_co_denoise():
    lat, windows, weights, denoise, _ = dist_jobs.problem()
    with torch.no_grad():
        a = parallel_co_denoise(lat, 500, windows, weights, denoise)
        b = dist_jobs.evaluations(None)["per_window"]
    assert torch.equal(a, b)


def _pids_gone(pids, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        alive = []
        for pid in pids:
            try:
                os.kill(pid, 0)
                alive.append(pid)
            except ProcessLookupError:
                pass
        if not alive:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("world", [2, 3])
def test_ranks_reproduce_one_process(world):
    ref = dict(dist_jobs.evaluations(None), ddim=dist_jobs.ddim_loop(None)[0])
    cancel_rank = 1 if world == 2 else None
    results = launch(dist_jobs.reproduce, world, cancel_rank=cancel_rank, threads=1, timeout_s=COLLECTIVE_TIMEOUT,
                     job_timeout_s=120)
    for key, expected in ref.items():
        for rank, res in enumerate(results):
            torch.testing.assert_close(res[key], expected, rtol=1e-5, atol=1e-5, msg=f"{key} on rank {rank}")
            assert torch.equal(res[key], results[0][key]), f"{key}: rank {rank} differs from rank 0 bitwise"
    assert not torch.equal(ref["ddim"], dist_jobs.problem()[0])  # the loop did change the latents
    assert _pids_gone([r["pid"] for r in results])
    if cancel_rank is not None:
        # one rank's cancel stopped every rank at the same call, and the group was still usable after
        assert [r["cancelled_at"] for r in results] == [True] * world
        for res in results:
            torch.testing.assert_close(res["after_cancel"], ref["batched"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("how", ["raise", "exit"])
def test_a_failing_rank_ends_the_job_on_every_rank(tmp_path, how):
    with pytest.raises(RankFailed) as info:
        launch(dist_jobs.fail, 2, str(tmp_path), how, threads=1, timeout_s=COLLECTIVE_TIMEOUT, job_timeout_s=120,
               grace_s=3.0)
    message = str(info.value)
    if how == "raise":
        assert "GPU rank 1 of 2 failed" in message and "RuntimeError: boom on rank 1" in message
    else:
        assert "stopped unexpectedly" in message
    ended = time.time()
    pid_files = list(tmp_path.glob("rank*.pid"))
    assert len(pid_files) == 2 and _pids_gone([int(p.read_text()) for p in pid_files])
    # ended by the failure, not by a collective timing out (counted from when both ranks were running)
    assert ended - max(p.stat().st_mtime for p in pid_files) < COLLECTIVE_TIMEOUT


def test_launch_rejects_bad_sizes():
    with pytest.raises(ValueError):
        launch(dist_jobs.reproduce, 0)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="GPUs were asked for"):
            launch(dist_jobs.reproduce, 2, device_type="cuda")


def test_cancel_reaches_the_caller_as_cancelled():
    """A Cancelled raised on every rank comes out of launch as the engine's Cancelled (the worker's case)."""
    with pytest.raises(Cancelled):
        launch(dist_jobs.cancel_everywhere, 2, threads=1, timeout_s=COLLECTIVE_TIMEOUT, job_timeout_s=60)
