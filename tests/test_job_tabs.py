"""The four job tabs share one skeleton, and each tab's estimate watches every input its settings use."""
from __future__ import annotations

import pytest

gr = pytest.importorskip("gradio")


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    from genl.jobs import Studio

    s = Studio(tmp_path_factory.mktemp("studio"), devices=["cpu"], threads=True, start=False)
    yield s
    s.store.close()  # never started: building tabs needs no worker


@pytest.mark.parametrize("tab,api_name", [("tab_text", "generate"), ("tab_edit", "edit"),
                                          ("tab_masks", "edit_anything"), ("tab_pose", "edge_control")])
def test_estimate_watches_every_input_of_the_job(studio, tab, api_name):
    import importlib

    demo = importlib.import_module(f"ui.{tab}").create_demo(studio)
    config = demo.get_config_file()
    blocks = {c["id"]: c for c in config["components"]}
    estimate = next(i for i, c in blocks.items() if "genl-estimate" in (c["props"].get("elem_classes") or []))
    run = next(d for d in config["dependencies"] if d.get("api_name") == api_name)
    watched = {t[0] for d in config["dependencies"] if estimate in d["outputs"] for t in d["targets"]
               if t[1] == "change"}
    inputs = set(run["inputs"])
    assert inputs and inputs <= watched, sorted(blocks[i]["props"].get("label") for i in inputs - watched)
    labels = {blocks[i]["props"].get("label") for i in watched}
    assert {"Model", "Width", "Height", "Guidance"} <= labels  # the Edit tab's estimate used to miss these
