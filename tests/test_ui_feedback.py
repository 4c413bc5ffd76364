"""What the tab tells people through a job (gradio_client, the real app): its queue place and id at once,
the seed it ran with beside the result, and the rates this machine measured for the next estimate."""
from __future__ import annotations

import json

import pytest

from test_app import status_of, text_job, wait_job

pytest.importorskip("gradio_client")


def test_submit_says_queued_with_id_then_the_used_seed(server, client):
    job = client.submit(**text_job(server, randomize=True, seed=-1), api_name="/generate")
    updates = list(job)
    job_id, first = updates[0][0], updates[0][1]
    assert status_of(first) == "queued"
    assert "Queued, " in first and f"job {job_id}" in first  # at once, before the job starts
    final = updates[-1][1]
    assert status_of(final) == "done"
    used = wait_job(client, job_id)[4]["seed"]  # the settings JSON that ran
    assert used >= 0 and f"Seed used: {used}." in final
    # the finished job refined this machine's rates, kept in the private folder
    rates = json.loads((server.studio.private / "calibration.json").read_text())["rates"]
    key = next(k for k in rates if k.startswith("cpu|") and "animatediff" in k)
    assert rates[key]["jobs"] >= 1 and rates[key]["denoise"] > 0
    est = server.studio.estimate(server.studio.get(job_id).spec.to_settings())
    assert est["calibrated"] and est["seconds"] > 0
