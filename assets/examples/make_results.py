"""Make the results the tabs' examples show (ui/examples.py): `python assets/examples/make_results.py [name ...]`.

Each example's form values go through its tab's own settings builder (what pressing the run button does) and
one job with the bundled demo model; the mp4 and the settings it was made with (paths relative to the repo)
land in assets/examples/results/. Deterministic for a given machine: fixed seeds, CPU fp32 by default.
"""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))

from genl.api import run_job  # noqa: E402
from genl.models import ModelManager  # noqa: E402
from ui.examples import EXAMPLES, RESULTS, Example  # noqa: E402


def example_settings(example: Example):
    """The settings the tab submits for this example: its `make` on its form values plus the timeline text."""
    import importlib

    from ui.common import form_values

    tab = importlib.import_module(f"ui.tab_{example.tab}")
    make = getattr(tab, "make", None)
    if make is None:  # the text tab submits forms.generate_settings as is
        from genl.forms import generate_settings as make
    return make(form_values(example.form_values()))


def portable(data):
    """Settings JSON with this checkout's absolute paths made relative to the repo root."""
    text = json.dumps(data, sort_keys=True, default=str)
    return json.loads(text.replace(str(ROOT) + "/", ""))


def make_result(example: Example, models: ModelManager) -> Path:
    settings = example_settings(example)
    settings.device = "cpu"
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        out = run_job(settings, Path(tmp) / "job", models=models, fallback_to_demo=False, save_frames=False)
        RESULTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out["video"], example.result)
        used = json.loads(Path(out["settings"]).read_text())
    used.pop("notices", None)
    example.settings_file.write_text(json.dumps(portable(used), indent=1, sort_keys=True) + "\n")
    print(f"{example.result.name}: {example.result.stat().st_size / 1024:.0f} KB in {time.time() - t0:.0f} s",
          flush=True)
    return example.result


def main(names: list[str]) -> None:
    models = ModelManager()
    for example in EXAMPLES:
        if not names or example.name in names:
            make_result(example, models)


if __name__ == "__main__":
    main(sys.argv[1:])
