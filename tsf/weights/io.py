"""Reading weight files safely, and writing ours.

Pickled files (``.pyth``, ``.pth``, ``.pt``, ``.bin``) are only ever opened with
``torch.load(..., weights_only=True)``: torch's restricted unpickler, which builds tensors,
containers and plain Python values and refuses every other global. A pickle that would call
anything else (``os.system`` in a crafted ``__reduce__``) is refused before that call runs.
Safetensors files hold no code at all.

A folder may carry ``digests.json``, the SHA-256 of each of its other files when it was
written (training checkpoints do): reading such a folder first checks every file against
it, so bit rot that leaves a file readable is an error naming the file, never weights used
silently. Writers say "no space left on device while writing PATH" when the disk is full.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import json
import os
import pickle
import pickletools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor

STATE_DICT_NAME = "<state dict>"  # how an in-memory source is named in messages
FORMAT_MARKER = "tsf.TimeSformer"  # in our config.json ("format") and safetensors metadata ("tsf_format")
MAX_LISTED = 5  # offending keys named in one message

# A folder's weight files, in the order they are looked for (Hugging Face's names).
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")


DIGEST_FILE = "digests.json"  # {"sha256": {file name: hex digest}} of a folder's other files


class CheckpointError(ValueError):
    """A source that cannot be loaded. The message names the file (or ``<state dict>``) and
    the first few offending keys with their shapes."""


class NoSpaceError(OSError):
    """The disk filled up while writing ``filename``: ``errno.ENOSPC``, with a message that names it."""

    def __init__(self, path: str | os.PathLike, note: str = "") -> None:
        super().__init__(errno.ENOSPC, f"no space left on device while writing {path}{note}", str(path))

    def __str__(self) -> str:
        return self.strerror


def _is_disk_full(err: BaseException) -> bool:
    """ENOSPC as Python raises it, or as safetensors' Rust writer words it."""
    if isinstance(err, OSError) and err.errno == errno.ENOSPC:
        return True
    return isinstance(err, SafetensorError) and ("os error 28" in str(err) or "No space left" in str(err))


@contextlib.contextmanager
def writing(path: str | os.PathLike):
    """Turn a full disk while writing ``path`` into a :class:`NoSpaceError` that names it."""
    try:
        yield
    except NoSpaceError:
        raise
    except Exception as err:
        if _is_disk_full(err):
            raise NoSpaceError(path) from err
        raise


def file_digest(path: str | os.PathLike) -> str:
    """The SHA-256 of a file, in hex."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def weights_fingerprint(source: str | os.PathLike) -> str:
    """What a set of weights is, wherever it lies: ``sha256:`` and a digest of the file's bytes (of
    a folder's files and their names), or ``source`` itself where nothing lies there yet. Cached by
    path, size and modification time (a study asks for it once per run)."""
    path = Path(source)
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(f for f in path.rglob("*") if f.is_file())
    else:
        return str(source)
    return "sha256:" + _fingerprint(tuple((str(f.resolve()), str(f.relative_to(path)) if f != path else "",
                                           f.stat().st_size, f.stat().st_mtime_ns) for f in files))


@functools.lru_cache(maxsize=256)
def _fingerprint(files: tuple[tuple[str, str, int, int], ...]) -> str:
    h = hashlib.sha256()
    for file, name, _, _ in files:
        h.update(f"{name}\0{file_digest(file)}\0".encode())
    return h.hexdigest()[:16]


def write_digests(folder: str | os.PathLike) -> dict[str, str]:
    """Record the SHA-256 of every file of ``folder`` in its ``digests.json``; returns them."""
    folder = Path(folder)
    digests = {p.name: file_digest(p) for p in sorted(folder.iterdir()) if p.is_file() and p.name != DIGEST_FILE}
    write_json({"sha256": digests}, folder / DIGEST_FILE)
    return digests


def verify_digests(folder: str | os.PathLike) -> bool:
    """Check ``folder``'s files against its ``digests.json``: ``False`` if it has none, ``True`` if
    all match, else a :class:`CheckpointError` naming the folder and the first file that differs."""
    folder = Path(folder)
    path = folder / DIGEST_FILE
    if not path.is_file():
        return False
    try:
        recorded = json.loads(path.read_text())["sha256"]
        if not isinstance(recorded, dict):
            raise TypeError(f"expected an object of digests, got {type(recorded).__name__}")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as err:
        raise CheckpointError(f"{path}: unreadable digests ({err}); the folder cannot be verified") from None
    for name, digest in recorded.items():
        if not (folder / name).is_file():
            raise CheckpointError(f"{folder}: {name} is missing (the folder's {DIGEST_FILE} lists it)")
        if file_digest(folder / name) != digest:
            raise CheckpointError(f"{folder}: {name} does not match the SHA-256 recorded when it was written "
                                  "(damaged on disk since)")
    return True


@dataclass(frozen=True)
class RawCheckpoint:
    """What a source holds, before any key is renamed.

    ``obj`` is the top-level mapping (a state dict, or a container such as the authors'
    ``{epoch, model_state, optimizer_state, cfg}``); ``config`` is a folder's
    ``config.json`` (Hugging Face's or ours), or the ``config`` of an in-memory model;
    ``metadata`` is a safetensors header's metadata.
    """

    obj: Mapping[str, Any]
    name: str
    config: dict[str, Any] | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    in_memory: bool = False  # tensors belong to the caller: never alias them


def describe_keys(state: Mapping[str, Any], keys: Iterable[str], limit: int = MAX_LISTED) -> str:
    """``'a (1, 197, 768), b (768,)'``: the first ``limit`` keys with their shapes, and a count of the rest."""
    keys = list(keys)
    parts = []
    for k in keys[:limit]:
        v = state.get(k)
        parts.append(f"{k} {tuple(v.shape)}" if isinstance(v, Tensor) else f"{k} ({type(v).__name__})")
    if len(keys) > limit:
        parts.append(f"... and {len(keys) - limit} more")
    return ", ".join(parts)


def read_source(source: Any) -> RawCheckpoint:
    """Read a file, a folder, an in-memory state dict or an in-memory model (ours or a
    Hugging Face ``PreTrainedModel``, whose ``config`` is read like a ``config.json``)."""
    if isinstance(source, Mapping):
        return RawCheckpoint(source, STATE_DICT_NAME, in_memory=True)
    if isinstance(source, torch.nn.Module):
        return _read_module(source)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source).expanduser()
        if path.is_dir():
            return _read_folder(path)
        if not path.exists():
            raise FileNotFoundError(f"no such checkpoint file or folder: {path}")
        obj, metadata = read_weight_file(path)
        return RawCheckpoint(obj, str(path), metadata=metadata)
    raise TypeError(f"expected a path, a folder, a state dict or a model, got {type(source).__name__}")


def _read_module(module: torch.nn.Module) -> RawCheckpoint:
    name = f"<{type(module).__name__}>"
    config = getattr(module, "config", None)
    if hasattr(config, "to_dict"):  # a Hugging Face PreTrainedConfig, or our TimeSformerConfig
        config = config.to_dict()
        if "model_type" not in config:  # ours: shape it like our config.json
            config = {"format": FORMAT_MARKER, "config": config}
    return RawCheckpoint(module.state_dict(), name, config if isinstance(config, dict) else None, in_memory=True)


def _read_folder(path: Path) -> RawCheckpoint:
    verify_digests(path)
    config = None
    if (path / "config.json").is_file():
        try:
            config = json.loads((path / "config.json").read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise CheckpointError(f"{path / 'config.json'}: not valid JSON ({err})") from None
        if not isinstance(config, dict):
            raise CheckpointError(f"{path / 'config.json'}: expected a JSON object, got {type(config).__name__}")
    found = next((path / f for f in WEIGHT_FILES if (path / f).is_file()), None)
    if found is None:
        held = sorted(p.name for p in path.iterdir())[:10]
        raise CheckpointError(f"{path}: a checkpoint folder needs one of {', '.join(WEIGHT_FILES)}; "
                              f"it holds {held or 'nothing'}")
    if found.name.endswith(".index.json"):
        obj, metadata = _read_shards(found)
    else:
        obj, metadata = read_weight_file(found)
    return RawCheckpoint(obj, str(found), config, metadata)


def _read_shards(index: Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    """A sharded Hugging Face checkpoint: the index's ``weight_map`` names the shard of every key."""
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{index}: not a shard index with a 'weight_map' ({err!r})") from None
    state: dict[str, Tensor] = {}
    metadata: dict[str, str] = {}
    for shard in sorted(set(weight_map.values())):
        obj, meta = read_weight_file(index.parent / shard)
        state.update(obj)
        metadata.update(meta)
    return state, metadata


def read_weight_file(path: Path) -> tuple[Mapping[str, Any], dict[str, str]]:
    """One file: safetensors by its suffix, anything else through torch's weights-only unpickler."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    if path.suffix == ".json":
        raise CheckpointError(f"{path}: a JSON file holds no weights; pass the folder that holds it")
    obj, metadata = (_load_safetensors(path) if path.suffix == ".safetensors" else (_torch_load(path), {}))
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: holds a {type(obj).__name__}, not a state dict or a checkpoint dict")
    return obj, metadata


def _load_safetensors(path: Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = dict(f.metadata() or {})
            return {k: f.get_tensor(k) for k in f.keys()}, metadata
    except Exception as err:  # safetensors raises its own SafetensorError (and OSError for I/O)
        raise CheckpointError(f"{path}: not a readable safetensors file (truncated or not a checkpoint): "
                              f"{err}") from None


_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")
_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format since 1.6


def _is_pickle_or_zip(path: Path) -> bool:
    """A zip archive, or a byte stream that parses as a pickle up to its STOP (parsed, never run)."""
    with open(path, "rb") as handle:
        if handle.read(4) == _ZIP_MAGIC:
            return True
        handle.seek(0)
        try:
            for _ in pickletools.genops(handle):
                pass
        except Exception:  # an unknown opcode, a bad argument, or no STOP before the end
            return False
    return True


def _torch_load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        message = str(err)
        if not _is_pickle_or_zip(path):
            raise CheckpointError(f"{path}: not a checkpoint (not a pickle or zip archive)") from None
        if "Weights only load failed" in message:
            culprits = sorted(set(_GLOBAL.findall(message)))
            what = f" (it calls {', '.join(culprits)})" if culprits else ""
            raise CheckpointError(
                f"{path}: refused: unpickling this file would execute code{what}. tsf only loads "
                "checkpoints that torch.load(..., weights_only=True) accepts (tensors, containers and "
                "plain values); re-save the weights from a trusted environment as safetensors or as a "
                "plain state dict") from None
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or not a checkpoint): {message}") from None
    except Exception as err:  # truncated zip (RuntimeError), text (IndexError), empty file (EOFError), ...
        if not _is_pickle_or_zip(path):
            raise CheckpointError(f"{path}: not a checkpoint (not a pickle or zip archive)") from None
        detail = str(err).split("\n")[0] or type(err).__name__
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or not a checkpoint): {detail}") from None


def write_safetensors(state: Mapping[str, Tensor], path: Path, metadata: dict[str, str]) -> None:
    """Write a safetensors file atomically (a temporary file renamed into place)."""
    tmp = path.with_name(path.name + ".tmp")
    with writing(path):
        save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, str(tmp), metadata=metadata)
    os.replace(tmp, path)


def write_json(data: dict[str, Any], path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with writing(path):
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
