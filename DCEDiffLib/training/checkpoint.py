"""Training checkpoints without pickle: tensors in safetensors, everything else in JSON, written atomically.

A checkpoint holds the network, the EMA shadow, the Adam state and the step; with step-indexed batches and
per-step seeds (see ``batches``), resuming from it reproduces an uninterrupted run exactly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Optional

import torch

from DCEDiffLib.atomic import atomic_path, write_text_atomic
from DCEDiffLib.errors import InputError
from DCEDiffLib.training.ema import EMA


def save_checkpoint(path_stem: Path, step: int, network: torch.nn.Module, ema: EMA,
                    optimizer: torch.optim.Optimizer, extra: dict,
                    companions: Optional[Dict[str, torch.nn.Module]] = None) -> None:
    """Write ``<stem>.safetensors`` and ``<stem>.json`` (tensors first, JSON last: the JSON marks completeness).
    The JSON is also stored inside the safetensors file's metadata: a crash between the two writes (SIGKILL, the
    OOM killer, power loss) left new tensors beside the previous step's JSON, and the run resumed with step-40
    weights as step 20; the one file is written atomically, so it always describes its own tensors.
    ``companions``: modules trained beside the network but not part of the model (an auxiliary head), by name."""
    from safetensors.torch import save_file

    tensors = {f"model/{k}": v.detach().cpu().contiguous() for k, v in network.state_dict().items()}
    for name, module in (companions or {}).items():
        tensors.update({f"companion/{name}/{k}": v.detach().cpu().contiguous()
                        for k, v in module.state_dict().items()})
    tensors.update({f"ema/{k}": v.detach().cpu().contiguous() for k, v in ema.shadow.items()})
    opt_state = optimizer.state_dict()
    for index, state in opt_state["state"].items():
        for key, value in state.items():
            tensors[f"opt/{index}/{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in opt_state["param_groups"]]
    meta = {"step": step, "ema_updates": ema.updates, "param_groups": groups, **extra}
    path_stem = Path(path_stem)
    text = json.dumps(meta, indent=1)
    with atomic_path(path_stem.with_suffix(".safetensors")) as tmp:
        save_file(tensors, str(tmp), metadata={EMBEDDED_META: text})
    write_text_atomic(path_stem.with_suffix(".json"), text)


EMBEDDED_META = "dcediff_checkpoint"  # the safetensors metadata key that holds the checkpoint's JSON


def _embedded_meta(tensor_path: Path) -> Optional[dict]:
    """The checkpoint JSON stored in the tensors file (None for a checkpoint written before it was)."""
    from safetensors import safe_open

    with safe_open(str(tensor_path), framework="pt") as handle:
        text = (handle.metadata() or {}).get(EMBEDDED_META)
    return None if text is None else json.loads(text)


def embedded_meta_or_none(tensor_path: Path) -> Optional[dict]:
    """The checkpoint JSON stored in ``tensor_path``, or None when the file is absent, unreadable or holds none
    (load_checkpoint says why, when it is asked to resume)."""
    if not Path(tensor_path).is_file():
        return None
    try:
        return _embedded_meta(Path(tensor_path))
    except Exception:  # noqa: BLE001  a corrupt file is load_checkpoint's to report
        return None


def load_checkpoint(path_stem: Path, network: torch.nn.Module, ema: EMA,
                    optimizer: torch.optim.Optimizer,
                    companions: Optional[Dict[str, torch.nn.Module]] = None) -> Optional[dict]:
    """Restore a checkpoint into the given objects; returns its JSON metadata, or None if there is none. Each of
    ``companions`` must have been saved with the checkpoint."""
    from safetensors.torch import load_file

    path_stem = Path(path_stem)
    meta_path, tensor_path = path_stem.with_suffix(".json"), path_stem.with_suffix(".safetensors")
    if not meta_path.is_file() and not tensor_path.is_file():
        return None
    if not tensor_path.is_file():  # half a checkpoint must not be silently replaced by a run from step 0
        raise InputError(f"checkpoint {meta_path} has no tensors file beside it ({tensor_path.name} is missing): "
                         f"the run cannot resume; restore {tensor_path}, or delete {meta_path} (or pass --fresh) to "
                         "start over")
    try:
        tensors = load_file(str(tensor_path))
        embedded = _embedded_meta(tensor_path)
    except Exception as exc:  # a corrupt checkpoint must not be silently ignored
        raise InputError(f"checkpoint {tensor_path} cannot be read ({exc}); delete it to start over") from exc
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else None
    except (OSError, ValueError) as exc:
        if embedded is None:
            raise InputError(f"checkpoint {meta_path} cannot be read ({exc}); delete it and {tensor_path.name} to "
                             "start over") from exc
        meta = None
    if meta is None and embedded is None:
        raise InputError(f"checkpoint {tensor_path} has no {meta_path.name} beside it and none stored inside (a "
                         f"checkpoint of an older version): the run cannot resume; delete {tensor_path} (or pass "
                         "--fresh) to start over")
    if embedded is not None and embedded != meta:  # the JSON beside it is stale or missing (a crash between writes)
        meta = embedded
        write_text_atomic(meta_path, json.dumps(meta, indent=1))
    try:
        network.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model/")})
    except RuntimeError as exc:  # another network (preset, inputs) than this run builds
        first = str(exc).strip().splitlines()
        raise InputError(f"checkpoint {tensor_path} holds another network than this run builds (another preset or "
                         f"other inputs: {first[1].strip() if len(first) > 1 else first[0]}); resume with the run's "
                         "own configuration, or use --fresh or a new --out") from None
    saved_names = sorted({k.split("/")[1] for k in tensors if k.startswith("companion/")})
    unexpected = [name for name in saved_names if name not in (companions or {})]
    if unexpected:
        raise InputError(f"checkpoint {tensor_path} also trains {unexpected}, which this run does not (it was started "
                         "with another configuration): delete the checkpoint or use that configuration")
    for name, module in (companions or {}).items():
        prefix = f"companion/{name}/"
        saved = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        if not saved:
            raise InputError(f"checkpoint {tensor_path} has no {name!r} weights; this run trains one (it was "
                             "started with another configuration): delete the checkpoint or use that configuration")
        module.load_state_dict(saved)
    for name in ema.shadow:
        ema.shadow[name].copy_(tensors[f"ema/{name}"])
    ema.updates = int(meta["ema_updates"])
    state = {}
    for key, value in tensors.items():
        if key.startswith("opt/"):
            _, index, field = key.split("/", 2)
            state.setdefault(int(index), {})[field] = value
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in meta["param_groups"]]
    optimizer.load_state_dict({"state": state, "param_groups": groups})
    return meta
