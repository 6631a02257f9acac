"""The experiment assistant: rules of thumb applied to the data and to runs, for every interface.

``suggest``: training settings suggested from a dataset's counts (the real train/validation split),
each with its reason, questions the data cannot answer, and warnings. Knows nothing of HTTP or
databases: the CLI (``visiontrain suggest``), the API and the studio call the same function.
"""

from visiontrain.assistant.suggest import (
    DataCounts,
    SplitCounts,
    Suggestion,
    count_split,
    counts_from_spec,
    estimated_counts,
    suggest_settings,
)

__all__ = ["DataCounts", "SplitCounts", "Suggestion", "count_split", "counts_from_spec", "estimated_counts", "suggest_settings"]
