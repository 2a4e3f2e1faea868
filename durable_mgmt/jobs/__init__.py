"""Counts, bulk jobs and exports over everything a filter query matches (issue 13).

Used through ``InstanceManager.count``, ``.bulk``, ``.export``, ``.jobs``,
``.job`` and ``.cancel_job``; jobs are checkpointed in the task hub's
storage account (``{Hub}MgmtJobs``), see ``runner``.
"""

from .models import (BulkAction, BulkRequest, CountRequest, CountResult, ExportRequest, GroupBy, InstanceOutcome,
                     JobInfo, JobState, Outcome, QueryPlan)

__all__ = ["BulkAction", "BulkRequest", "CountRequest", "CountResult", "GroupBy", "InstanceOutcome", "JobInfo",
           "JobState", "Outcome", "QueryPlan", "ExportRequest"]


def __getattr__(name: str):
    # runner imports the task hub layer; load it only when asked for.
    if name == "BulkJob":
        from .runner import BulkJob

        return BulkJob
    raise AttributeError(name)
