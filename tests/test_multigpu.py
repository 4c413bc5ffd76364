"""Several GPUs on one job, on the CPU with gloo: the CLI's `--gpus 2` reproduces one process, a failing
rank ends the job with a clear message and no process left, and the studio's GPU policy decides dispatch."""
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

import dist_jobs
from genl.distributed import RankFailed
from genl.jobs.gpu_pool import GpuPool
from genl.jobs.parallel import run_on_devices

TINY = ["generate", "--model", "demo", "--device", "cpu", "--prompt", "0-7: a red circle | 8-15: a blue square",
        "--frames", "16", "--width", "64", "--height", "64", "--steps", "2", "-M", "8", "-S", "4", "--seed", "3"]


def _cli(*extra):
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "genl", *TINY, *extra], capture_output=True, text=True, env=env,
                          timeout=600)


def _frames(folder: Path) -> np.ndarray:
    return np.stack([np.asarray(Image.open(p), dtype=np.int16) for p in sorted((folder / "frames").glob("*.png"))])


def test_cli_two_ranks_give_the_frames_of_one_process(tmp_path):
    one = _cli("--out", str(tmp_path / "one"))
    assert one.returncode == 0, one.stderr
    two = _cli("--gpus", "2", "--out", str(tmp_path / "two"))
    assert two.returncode == 0, two.stderr
    assert "wrote" in two.stdout and (tmp_path / "two" / "video.mp4").is_file()
    a, b = _frames(tmp_path / "one"), _frames(tmp_path / "two")
    assert a.shape == b.shape == (16, 64, 64, 3)
    assert np.abs(a - b).max() <= 2  # fp tolerance of a differently ordered sum, after 8-bit rounding
    assert a.std() > 5  # a real picture, not a blank one that would match anything


def test_cli_asks_for_more_gpus_than_visible_in_one_line(tmp_path):
    bad = subprocess.run([sys.executable, "-m", "genl", *TINY[:3], "--device", "cuda", *TINY[5:], "--gpus", "64",
                          "--out", str(tmp_path / "x")], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [bad.stderr.strip()] and "--gpus 64" in bad.stderr
    assert not (tmp_path / "x" / "video.mp4").exists()


def test_a_failing_rank_ends_the_job_clearly_and_leaves_no_process(tmp_path):
    events = []
    start = time.monotonic()
    with pytest.raises(RankFailed, match=r"GPU rank 1 of 2 failed, so the job stopped on every rank: "
                                         r"RuntimeError: boom on rank 1"):
        run_on_devices("dist_jobs:flaky_job", SimpleNamespace(device="auto"), tmp_path, devices=["cpu", "cpu"], progress=events.append)
    assert time.monotonic() - start < 120
    pids = [int(p.read_text()) for p in tmp_path.glob("rank*.pid")]
    assert len(pids) == 2
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert [e["step"] for e in events] == [1]  # rank 0 reported the first step; the second one failed


def test_worker_reports_the_failing_rank_in_one_line(tmp_path):
    from genl.jobs.spec import JobSpec
    from genl.jobs.worker import run_one
    from genl.settings import GenerateSettings

    spec = JobSpec.from_settings(GenerateSettings(prompt="a", model="demo", num_frames=16, width=64, height=64))
    emitted = []
    job = __import__("functools").partial(run_on_devices, "dist_jobs:flaky_job", devices=["cpu", "cpu"])
    run_one(job, spec, tmp_path / "out", worker=0, device="cpu", models=None, emit=emitted.append,
            is_cancelled=lambda: False, preview={"decoder": lambda x0: None}, work_dir=tmp_path)
    final = emitted[-1]
    assert final["type"] == "failed"
    assert final["message"] == "GPU rank 1 of 2 failed, so the job stopped on every rank: RuntimeError: boom on rank 1"


def test_studio_dispatch_follows_the_gpu_policy():
    """The studio's dispatch step (pure): ready workers only, previews take one GPU, FIFO without overtaking."""
    gpus = ["cuda:0", "cuda:1", "cuda:2"]
    pool = GpuPool(list(gpus), policy="all-on-one")
    assert pool.dispatch(["long"], ready=["cuda:0", "cuda:1"]) == []  # cuda:2's worker is still loading
    assert pool.dispatch(["preview", "long"], ready=gpus, single={"preview"}) == [("preview", ("cuda:0",))]
    assert pool.dispatch(["long"], ready=gpus) == []  # waits for cuda:0
    pool.release("preview")
    assert pool.dispatch(["long", "next"], ready=gpus) == [("long", tuple(gpus))]
    assert pool.describe("long") == "GPUs 0, 1, 2"
    pool.release("long")
    pool.set_policy("one-per-job")
    assert pool.dispatch(["a", "b"], ready=gpus) == [("a", ("cuda:0",)), ("b", ("cuda:1",))]


def test_studio_gives_a_job_every_gpu_and_frees_them_when_it_ends(tmp_path):
    """Studio dispatch under all-on-one, workers not started: the lead worker gets the job with every GPU,
    the Settings info shows who holds them, and a cancel (any ending) frees them for the next job."""
    import queue

    from conftest_app import SYNTHETIC_JOB, generate_settings
    from genl.jobs import Studio
    from genl.jobs import events as ev
    from genl.jobs.worker import _Flag

    s = Studio(tmp_path, devices=["cuda:0", "cuda:1"], job_fn=SYNTHETIC_JOB, start=False, gpu_policy="all-on-one")
    try:
        for w in s.workers:
            w.ready, w.jobs, w.cancel_flag = True, queue.Queue(), _Flag()
        first, second = s.submit(generate_settings()), s.submit(generate_settings(seed=1))
        lead, other = s.workers
        assert lead.jobs.get_nowait()[3] == ["cuda:0", "cuda:1"] and other.jobs.empty()
        assert s.gpus(first.id) == "GPUs 0, 1" and s.position(second.id) == 1  # waits for both GPUs
        info = s.info()
        assert info["gpu_policy"] == "all-on-one" and info["holding"] == {first.id: "GPUs 0, 1"}
        lead._forward(ev.started(first.id, 0, "cuda:0"))
        assert "GPUs 0, 1" in s.get(first.id).message
        lead._forward(ev.failed(first.id, "GPU rank 1 of 2 failed, so the job stopped on every rank: boom"))
        assert s.gpus(first.id) == "" and lead.jobs.get_nowait()[3] == ["cuda:0", "cuda:1"]
        s.set_gpu_policy("one-per-job")
        third = s.submit(generate_settings(seed=2))
        assert s.position(third.id) == 1  # the second job still holds both GPUs
        lead._forward(ev.cancelled(second.id, "Cancelled while running."))
        assert s.gpus(third.id) == "GPU 0" and lead.jobs.get_nowait()[3] == []
    finally:
        s.close(grace=0.1)
