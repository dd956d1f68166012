"""The model files a workflow folder declares in models.json: name, folder, size, sha256 and where each comes from."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpuorch.aws.s3 import parse_s3_uri
from gpuorch.model_files import ModelFiles
from gpuorch.workflows.errors import WorkflowDefinitionError
from gpuorch.workflows.spec import SpecReader

if TYPE_CHECKING:
    from gpuorch.workflows.workflow import Workflow

__all__ = ["MODELS_FILE", "DeclaredModel", "ModelFile", "comfyui_folders", "describe", "model_files", "parse_models",
           "source_problem", "total_bytes"]

MODELS_FILE = "models.json"
_SHA256 = re.compile(r"[0-9a-f]{64}")
_HTTPS = re.compile(r"https://[^/\s]+/\S+")
# A sub-folder of ComfyUI's models/ folder, as its folder_paths names them (loras, upscale_models, ...).
_COMFYUI_FOLDER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class DeclaredModel:
    """One model file a workflow loads, as its folder's models.json declares it.

    ``role`` is what graph.json names as ``{{models.<role>}}``, any lower_case name the folder chooses. ``name`` is
    the file's name as ComfyUI lists it in ``folder`` (a sub-folder of its models/ folder), unless a setting renames
    the role's file (gpuorch.model_files): then the same bytes (``bytes``, ``sha256``) are fetched under that name.
    """

    role: str
    name: str
    folder: str
    bytes: int
    sha256: str
    source: str


@dataclass(frozen=True)
class ModelFile:
    """A file the GPU instance needs under ComfyUI's models/ folder: where, what it holds, where it comes from."""

    folder: str
    name: str  # as ComfyUI lists it: the role's setting
    bytes: int
    sha256: str
    source: str
    source_name: str  # the declared name, under which a mirror keeps it (GPUORCH_MODELS_MIRROR)
    workflows: tuple[str, ...]

    @property
    def path(self) -> str:
        """The file's path under the models/ folder, e.g. ``loras/x.safetensors``."""
        return f"{self.folder}/{self.name}"


def parse_models(data: Any, path: Path, loaded_roles: Iterable[str]) -> tuple[DeclaredModel, ...]:
    """The declarations of one models.json; WorkflowDefinitionError names the file, the entry and the field.

    ``loaded_roles`` are the roles graph.json loads through ``{{models.<role>}}``: each must be declared.
    """
    if not isinstance(data, dict):
        raise WorkflowDefinitionError(path, 'expected an object {"models": [...]}')
    try:
        top = SpecReader(data, "top level")
        entries = top.take("models", "a non-empty list")
        top.finish()
        declared = tuple(_parse_entry(entry, f"models[{i}]") for i, entry in enumerate(entries))
    except ValueError as exc:
        raise WorkflowDefinitionError(path, str(exc)) from None
    roles = [model.role for model in declared]
    for role in roles:
        if roles.count(role) > 1:
            raise WorkflowDefinitionError(path, f"role {role!r} is declared twice")
    undeclared = sorted(set(loaded_roles) - set(roles))
    if undeclared:
        raise WorkflowDefinitionError(
            path, f"graph.json loads {', '.join(f'{{{{models.{r}}}}}' for r in undeclared)}: declare each here")
    return declared


def _parse_entry(data: Any, where: str) -> DeclaredModel:
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected an object")
    spec = SpecReader(data, where)
    role = spec.take("role", "a parameter name (lower_case)")
    spec.where = f"{where} ({role})"
    name = spec.take("name", "a non-empty string")
    if "/" in name or "\\" in name or name in {".", ".."} or name != name.strip():
        raise spec.problem(f"'name' must be a file name, without folders or surrounding spaces, not {name!r}")
    folder = spec.take("folder", "a non-empty string")
    if not _COMFYUI_FOLDER.fullmatch(folder) or folder in {".", ".."}:
        raise spec.problem(f"'folder' must be one sub-folder of ComfyUI's models/ (loras, vae, upscale_models ...), "
                           f"not {folder!r}")
    size = spec.take("bytes", "a positive integer")
    sha256 = spec.take("sha256", "a non-empty string")
    if not _SHA256.fullmatch(sha256):
        raise spec.problem(f"'sha256' must be 64 lower-case hexadecimal digits, not {sha256!r}")
    source = spec.take("source", "a non-empty string")
    problem = source_problem(source)
    if problem:
        raise spec.problem(f"'source' {problem}")
    spec.finish()
    return DeclaredModel(role, name, folder, size, sha256, source)


def source_problem(source: str) -> str | None:
    """Why ``source`` cannot be fetched (None when it can): an s3://bucket/key URI or an https:// URL."""
    if source.startswith("s3://"):
        try:
            parse_s3_uri(source)
        except ValueError as exc:
            return f"{source!r}: {exc}"
        return None
    if _HTTPS.fullmatch(source):
        return None
    return f"must be an s3://bucket/key URI or an https:// URL, not {source!r}"


def model_files(workflows: Iterable[Workflow], names: ModelFiles) -> tuple[ModelFile, ...]:
    """Every file the workflows need, once each, under the name its role's setting gives it.

    Two workflows may declare the same file; if they declare different contents for it, neither could be sure
    of what it loads: WorkflowDefinitionError names both.
    """
    found: dict[tuple[str, str], ModelFile] = {}
    declared_by: dict[tuple[str, str], Path | str] = {}
    for workflow in workflows:
        for model in workflow.models:
            file = ModelFile(model.folder, names.file(model.role, model.name), model.bytes, model.sha256, model.source,
                             model.name, (workflow.name,))
            key = (file.folder, file.name)
            known = found.get(key)
            if known is None:
                found[key] = file
                declared_by[key] = workflow.name
            elif (known.bytes, known.sha256) != (file.bytes, file.sha256):
                where = workflow.folder / MODELS_FILE if workflow.folder else workflow.name
                raise WorkflowDefinitionError(
                    where, f"declares {file.path} as {file.bytes} bytes, sha256 {file.sha256}; "
                           f"{declared_by[key]} declares {known.bytes} bytes, sha256 {known.sha256}")
            else:
                found[key] = dataclasses.replace(known, workflows=known.workflows + (workflow.name,))
    return tuple(found.values())


def comfyui_folders(workflows: Iterable[Workflow], names: ModelFiles) -> dict[str, list[str]]:
    """ComfyUI models/ sub-folder -> the files the workflows load from it, as a ComfyUI holding them lists them (what
    the local stack's emulator is given)."""
    folders: dict[str, list[str]] = {}
    for file in model_files(workflows, names):
        folders.setdefault(file.folder, []).append(file.name)
    return folders


def total_bytes(files: Iterable[ModelFile]) -> int:
    return sum(file.bytes for file in files)


def describe(files: Iterable[ModelFile]) -> Mapping[str, Any]:
    """The files as JSON-ready data (`gpuorch models list --json`, and the cost model's load time)."""
    files = list(files)
    return {
        "bytes": total_bytes(files),
        "files": [{"path": f.path, "bytes": f.bytes, "sha256": f.sha256, "source": f.source,
                   "workflows": list(f.workflows)} for f in files],
    }
