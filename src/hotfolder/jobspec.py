"""What a worker runs for a claimed job: the folder's settings, refined by a manifest."""

from __future__ import annotations

from pathlib import Path

from hotfolder.config import FolderSettings
from hotfolder.journal import JobRecord
from hotfolder.manifest import Manifest, plan
from hotfolder.models import ConversionSpec, JobSpec


def job_spec(record: JobRecord, folder: FolderSettings) -> JobSpec:
    """What the worker runs for ``record``: the folder's settings, refined by a manifest."""
    conversions = [ConversionSpec(workflow=record.workflow, profile=record.profile)]
    options: dict[str, object] = dict(folder.options)
    documents: dict[str, dict[str, object]] = {}
    if record.manifest:
        planned = plan(Manifest.model_validate_json(record.manifest), folder)
        conversions, options, documents = planned.conversions, planned.options, planned.documents
    return JobSpec(
        job_id=record.job_id,
        job_name=record.name,
        conversions=conversions,
        options=options,
        document_options=documents,
        # A manifest job's first input is the manifest itself: kept, not converted.
        inputs=[str(path) for path in record.work_inputs[1 if record.manifest else 0 :]],
        work_dir=str(Path(record.work_dir) / "work"),
    )
