"""Job system: specs (data), SQLite history, events, GPU workers and the `Studio` facade the UI uses."""
from .spec import CANCELLED, DONE, FAILED, INTERRUPTED, QUEUED, RUNNING, Job, JobSpec
from .store import JobStore
from .studio import Studio

__all__ = ["Studio", "JobStore", "JobSpec", "Job", "QUEUED", "RUNNING", "DONE", "FAILED", "CANCELLED",
           "INTERRUPTED"]
