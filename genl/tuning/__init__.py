"""One-shot tuning on a long video with learned clip identifiers (paper Sec. 4, Fig. 4)."""
from .settings import TuneSettings

__all__ = ["TuneSettings"]
