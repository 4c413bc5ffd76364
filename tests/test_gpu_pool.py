"""The worker pool's GPU policy: who holds which GPUs, FIFO without starvation, release on any ending."""
import pytest

from genl.jobs.gpu_pool import GpuPool

GPUS = ["cuda:0", "cuda:1", "cuda:2", "cuda:3"]


def test_one_per_job_runs_a_job_per_gpu_in_order():
    pool = GpuPool(list(GPUS))
    assert pool.dispatch(["a", "b", "c", "d", "e"]) == [("a", ("cuda:0",)), ("b", ("cuda:1",)),
                                                         ("c", ("cuda:2",)), ("d", ("cuda:3",))]
    assert pool.describe("c") == "GPU 2" and pool.free() == []
    assert pool.release("b") == ("cuda:1",)
    assert pool.dispatch(["e"]) == [("e", ("cuda:1",))]


def test_all_on_one_waits_for_every_gpu_and_is_not_overtaken():
    pool = GpuPool(list(GPUS), policy="one-per-job")
    pool.dispatch(["short"])
    pool.set_policy("all-on-one")  # running jobs keep their GPU
    assert pool.wants() == 4
    assert pool.dispatch(["long", "next"]) == []  # "long" waits for cuda:0, "next" may not jump ahead
    pool.release("short")
    assert pool.dispatch(["long", "next"]) == [("long", tuple(GPUS))]
    assert pool.describe("long") == "GPUs 0, 1, 2, 3"
    pool.release("long")
    assert pool.free() == GPUS and pool.describe("long") == ""


def test_cpu_and_single_gpu_pools_take_one_device():
    assert GpuPool(["cpu"], policy="all-on-one").wants() == 1
    pool = GpuPool(["cuda:0"], policy="all-on-one")
    assert pool.dispatch(["a", "b"]) == [("a", ("cuda:0",))] and pool.describe("a") == "GPU 0"
    assert GpuPool(["cpu"]).dispatch(["a"]) == [("a", ("cpu",))]


def test_bad_pools_and_double_acquire_are_plain_errors():
    with pytest.raises(ValueError, match="Unknown GPU policy"):
        GpuPool(list(GPUS), policy="fastest")
    with pytest.raises(ValueError, match="listed twice"):
        GpuPool(["cuda:0", "cuda:0"])
    with pytest.raises(ValueError):
        GpuPool([])
    pool = GpuPool(list(GPUS))
    pool.acquire("a")
    with pytest.raises(ValueError, match="already holds"):
        pool.acquire("a")
    assert pool.release("never-ran") == ()
