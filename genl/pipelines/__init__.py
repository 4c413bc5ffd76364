"""Long-video pipelines, one file per paradigm, each a thin composition of the engine's pieces."""
from .edit import LongVideoEditPipeline
from .text2video import LongAnimateDiffPipeline
from .tuning_free import LongTuningFreePipeline

__all__ = ["LongAnimateDiffPipeline", "LongTuningFreePipeline", "LongVideoEditPipeline"]
