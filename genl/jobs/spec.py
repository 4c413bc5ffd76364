"""A job is data: an id, a kind and the exact settings, JSON both ways (ComfyUI's "prompt" idea).

Nothing here runs anything; the worker turns a spec back into a settings object and calls the engine.
"""
from __future__ import annotations

import json
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
INTERRUPTED = "interrupted"  # the server stopped while it ran; one click re-runs it
STATUSES = (QUEUED, RUNNING, DONE, FAILED, CANCELLED, INTERRUPTED)
FINAL = (DONE, FAILED, CANCELLED, INTERRUPTED)


def new_job_id() -> str:
    """Time-sortable and unguessable: folders list in submission order, and a result URL (which holds the id)
    cannot be found by counting (64 random bits)."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(8)


@dataclass
class JobSpec:
    """What to run. `settings` is `GenerateSettings/EditSettings.to_dict()` (it carries 'kind')."""

    settings: dict
    id: str = field(default_factory=new_job_id)

    @property
    def kind(self) -> str:
        return str(self.settings.get("kind", ""))

    @classmethod
    def from_settings(cls, settings, models=None) -> "JobSpec":
        """From a settings object (validated here, so bad input never reaches the queue) or a dict.

        `models` is the server's `genl.validation.ModelPolicy` (None: any model, as on the command line)."""
        from genl.validation import check_settings

        if isinstance(settings, dict):
            from genl.settings import settings_from_dict

            settings = settings_from_dict(settings)
        check_settings(settings, models)
        # JSON round trip: the stored spec is exactly what a re-run will see (tuples become lists, ...).
        # allow_nan=False: a NaN that slipped past validation fails here, never as invalid JSON on disk.
        return cls(settings=json.loads(json.dumps(settings.to_dict(), allow_nan=False)))

    def to_settings(self):
        from genl.settings import settings_from_dict

        return settings_from_dict(self.settings)

    def to_json(self) -> str:
        return json.dumps({"id": self.id, "settings": self.settings}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "JobSpec":
        data = json.loads(text)
        return cls(settings=data["settings"], id=data["id"])


@dataclass
class Job:
    """A row of the job history: the spec plus what happened to it."""

    id: str
    kind: str
    spec: JobSpec
    status: str = QUEUED
    created: float = 0.0
    started: Optional[float] = None
    finished: Optional[float] = None
    progress: float = 0.0  # 0..1 over all stages
    message: str = ""
    outputs: dict = field(default_factory=dict)  # video, settings, thumbnail, preview
    position: int = 0  # 1-based place in the queue while queued, else 0
    owner: str = ""  # the logged-in user who submitted it ('' without auth)
    shared: bool = False  # visible to every user, not only its owner

    @property
    def final(self) -> bool:
        return self.status in FINAL

    @property
    def prompt(self) -> str:
        return str(self.spec.settings.get("prompt", ""))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["spec"] = {"id": self.spec.id, "settings": self.spec.settings}
        return d
