"""`gpuorch models list|sync|check`: the model files the workflow folders declare, on the GPU instance."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from gpuorch.settings import Settings
from gpuorch.workflows.errors import WorkflowDefinitionError
from gpuorch.workflows.models import ModelFile, describe, model_files


def _declared(settings: Settings) -> tuple[list, tuple[ModelFile, ...]]:
    """The workflows and the files they declare; exit 1 naming the folder when a declaration is malformed."""
    from gpuorch.workflows import load_workflows

    try:
        workflows = list(load_workflows(settings.workflows_dir))
        return workflows, model_files(workflows, settings.models)
    except WorkflowDefinitionError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


def _models_dir(settings: Settings) -> Path:
    if not settings.models_dir:
        raise click.UsageError("GPUORCH_MODELS_DIR is empty: set it to ComfyUI's models folder (/opt/ComfyUI/models)")
    return Path(settings.models_dir)


@click.group()
def models() -> None:
    """The model files the workflow folders declare (models.json), on the GPU instance."""


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="The declarations, each workflow's bytes, and the store.")
@click.pass_obj
def models_list(settings: Settings, as_json: bool) -> None:
    """Each declared file (path under models/, bytes, source) and the bytes each workflow loads."""
    workflows, files = _declared(settings)
    document = {
        "store": settings.models_store,
        "workflows": {w.name: describe(f for f in files if w.name in f.workflows) for w in workflows},
        **describe(files),
    }
    if as_json:
        click.echo(json.dumps(document, indent=2))
        return
    for file in files:
        click.echo(f"{file.path:60} {file.bytes:>14} {file.source}")
    for name, part in document["workflows"].items():
        click.echo(f"{name}: {len(part['files'])} file(s), {part['bytes']} bytes")
    click.echo(f"{len(files)} file(s), {document['bytes']} bytes, kept on the {settings.models_store}")


@models.command("sync")
@click.pass_obj
def models_sync(settings: Settings) -> None:
    """Bring every declared file to GPUORCH_MODELS_DIR, verified, before the GPU worker starts.

    A file verified before and unchanged since is kept without rehashing; one of the right size is hashed once;
    any other is fetched with parallel ranged GETs (from GPUORCH_MODELS_MIRROR when set, else its declared
    source), checked against its sha256, then moved into place. With GPUORCH_MODELS_STORE=instance-store the bytes
    go to the instance store and GPUORCH_MODELS_DIR holds links to them. Exit status: 0 when every file is in
    place, 1 when any is not (each named), 2 for settings that cannot work.
    """
    from gpuorch.modelsync.sync import model_sync

    _models_dir(settings)
    _workflows, files = _declared(settings)
    outcomes = model_sync(settings).run(files)
    for outcome in outcomes:
        click.echo(str(outcome))
    fetched = sum(o.fetched_bytes for o in outcomes)
    seconds = sum(o.seconds for o in outcomes)
    failed = [o for o in outcomes if not o.ok]
    click.echo(f"{len(outcomes) - len(failed)} of {len(outcomes)} file(s) in place; {fetched} bytes fetched in "
               f"{seconds:.1f} s" + (f" ({fetched / seconds / 1e6:.0f} MB/s)" if fetched and seconds else ""))
    sys.exit(1 if failed else 0)


@models.command("check")
@click.pass_obj
def models_check(settings: Settings) -> None:
    """The GPU worker's check at start: every declared file present in GPUORCH_MODELS_DIR, of its declared size.
    Exit status: 0 when all are, 1 naming each one that is not."""
    from gpuorch.modelsync.check import file_problems

    models_dir = _models_dir(settings)
    _workflows, files = _declared(settings)
    problems = file_problems(files, models_dir)
    for problem in problems:
        click.echo(f"FAIL {problem}")
    if not problems:
        click.echo(f"All {len(files)} model file(s) are in {models_dir}.")
    sys.exit(1 if problems else 0)
