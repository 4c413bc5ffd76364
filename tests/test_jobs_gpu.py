"""The job system on a real GPU: a CUDA worker process, previews from CUDA tensors, cancel frees GPU memory,
an out-of-memory job fails with a clear message and the worker serves the next job. Skipped without CUDA."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

GPU_JOB = "test_jobs_gpu:gpu_job"
HOG = 4 * 2**30  # bytes a job holds on the GPU while it runs


def gpu_job(settings, out_dir, *, progress=None, is_cancelled=None, models=None) -> dict:
    """Engine-shaped job that really uses the GPU: 'oom' asks for far more memory than any card has;
    'slow' makes steps take 50 ms."""
    from genl.api import Cancelled

    dev = torch.device(settings.device)
    hog = torch.empty(HOG, dtype=torch.uint8, device=dev)  # noqa: F841 - held for the job's lifetime
    if "oom" in settings.prompt:
        torch.empty(2**44, dtype=torch.uint8, device=dev)
    x = torch.randn(1, 4, settings.num_frames, settings.height // 8, settings.width // 8, device=dev)
    for step in range(1, settings.steps + 1):
        if is_cancelled():
            raise Cancelled("cancelled")
        x = 0.9 * x + 0.1 * torch.randn_like(x)
        torch.cuda.synchronize(dev)
        if "slow" in settings.prompt:
            time.sleep(0.05)
        progress({"stage": "denoise", "step": step, "total": settings.steps, "x0": x})
    out = Path(out_dir)
    (out / "video.mp4").write_bytes(b"not decoded in this test")
    (out / "settings.json").write_text(json.dumps(settings.to_dict()))
    return {"video": str(out / "video.mp4"), "settings": str(out / "settings.json")}


def free_bytes() -> int:
    torch.cuda.synchronize()
    return torch.cuda.mem_get_info()[0]


def test_gpu_worker(tmp_path):
    from conftest_app import generate_settings
    from genl.jobs import CANCELLED, DONE, FAILED, Studio

    studio = Studio(tmp_path, job_fn=GPU_JOB, preview_interval=0.0)  # devices: one worker per GPU
    try:
        assert studio.devices[0].startswith("cuda") and studio.wait_ready(120)
        first = studio.wait(studio.submit(generate_settings(width=256, height=256, steps=5)).id, 120)
        assert first.status == DONE, first.message
        assert Path(first.outputs["preview"]).is_file()  # preview made from a CUDA x0
        baseline = free_bytes()  # the worker's CUDA context exists now

        slow = studio.submit(generate_settings("slow", width=256, height=256, steps=400))
        for batch in studio.watch(slow.id, poll=0.1):
            if any(e["type"] == "progress" and e["step"] >= 3 for e in batch):
                break
        during = free_bytes()
        assert baseline - during >= HOG * 0.9, (baseline, during)
        t0 = time.monotonic()
        studio.cancel(slow.id)
        assert studio.wait(slow.id, 30).status == CANCELLED
        cancel_seconds = time.monotonic() - t0
        time.sleep(0.5)
        after = free_bytes()
        assert baseline - after < 2**30, (baseline, after)  # the job's memory went back to the card

        oom = studio.wait(studio.submit(generate_settings("oom")).id, 60)
        assert oom.status == FAILED and "ran out of memory" in oom.message, oom.message
        again = studio.wait(studio.submit(generate_settings()).id, 60)
        assert again.status == DONE, again.message
        print(f"GPU worker: cancel took {cancel_seconds:.2f} s; free GiB baseline {baseline / 2**30:.1f}, "
              f"during {during / 2**30:.1f}, after cancel {after / 2**30:.1f}")
    finally:
        studio.close()


if __name__ == "__main__":  # for machines without pytest
    import sys
    import tempfile

    sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent)]
    test_gpu_worker(Path(tempfile.mkdtemp()))
    print("ok")
