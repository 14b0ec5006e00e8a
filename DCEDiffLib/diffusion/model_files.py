"""Model files that are safe to load: weights in safetensors, a JSON model card, a SHA-256 tying them together.

Nothing is unpickled and no code from a model file runs. Loading refuses, with a message naming the file: a
missing file, a pickled checkpoint, a truncated or altered weights file, a card of another format, version or
architecture, unknown card fields, modalities other than DCE-diff's, weights that do not fit the card, NaN/Inf.

``optional_inputs`` (optional field): the inputs the model was trained to do without (modality dropout,
``augment.drop_pd``), a subset of ``modalities.OPTIONAL_INPUTS`` among its conditions; without the field every
condition is required. :func:`missing_inputs_allowed` is what the pipeline asks.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Optional, Tuple

import torch

from DCEDiffLib.atomic import atomic_path, write_text_atomic
from DCEDiffLib.diffusion.absolute_adc import check_card_field, reads_absolute_adc
from DCEDiffLib.diffusion.error_map import error_models_of_card
from DCEDiffLib.diffusion.residual import PARAMETERIZATIONS
from DCEDiffLib.errors import ModelFileError
from DCEDiffLib.file_digest import file_digest
from DCEDiffLib.modalities import (DESCRIPTIONS, INPUT_MODALITIES, OPTIONAL_INPUTS, TARGET_MODALITIES,
                                   missing_inputs_allowed)  # noqa: F401  (re-exported: the card's rule)

FORMAT_NAME = "dcediff-model"
FORMAT_VERSION = 1
ARCHITECTURE_NAME = "palette-guided-unet"
REQUIRED_FIELDS = {"format", "format_version", "architecture", "objective", "schedules", "conditions", "targets",
                   "normalization", "weights_sha256"}
OPTIONAL_FIELDS = {"channel_meaning", "working_grid", "training", "metrics", "created_by", "description",
                   "parameterization", "mean_network", "residual_scale", "input_statistics", "data_domain",
                   "sampling", "optional_inputs", "error_model", "context_slices", "voxel_corrector",
                   "absolute_adc", "t1pre_excess_added_back"}
OBJECTIVES = ("diffusion", "regression", "residual")
PICKLE_MAGIC = (b"\x80", b"PK\x03\x04")  # pickle protocol ≥2, zip (torch.save)


def looks_pickled(head: bytes) -> bool:
    """Whether a file's first 9 bytes are those of a pickle or a torch.save zip rather than a safetensors file.

    A safetensors file starts with its JSON header's length (8 bytes, little-endian) and then "{": that length's
    low byte is 0x80 for one header in 256, which must not pass for pickle's opcode PROTO 0x80."""
    if len(head) >= 9 and head[8:9] == b"{":
        return False
    return head.startswith(PICKLE_MAGIC)


@dataclasses.dataclass
class LoadedModel:
    """A network in eval mode with its card and the weights path."""

    network: torch.nn.Module
    card: dict
    path: Path
    corrector: Optional[object] = None  # voxel_corrector.VoxelCorrector when the card names one
    learned_error_map: Optional[object] = None  # learned_error_map.LearnedErrorMap when the card's error_model has one


def model_paths(path: os.PathLike) -> Tuple[Path, Path]:
    """(weights, card) paths from the .safetensors, the .json or the common stem."""
    path = Path(path)
    # only the model suffix comes off: with_suffix would also drop the ".5" of "model_v1.5" (another model)
    name = path.name[:-len(path.suffix)] if path.suffix in (".safetensors", ".json") else path.name
    return path.with_name(name + ".safetensors"), path.with_name(name + ".json")


def refuse_folder(given: Path) -> None:
    """:class:`ModelFileError` when a model argument is a folder (e.g. ``Resources/Models``), naming the models in
    it; nothing when it is not a folder."""
    if given.is_dir():
        found = sorted(p.name for p in given.glob("*.safetensors") if p.with_suffix(".json").is_file())
        raise ModelFileError(f"model {given} is a folder, not a file; expected a .safetensors model file with its "
                             ".json card beside it" + (f" (in this folder: {', '.join(found[:4])})" if found else ""))


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file."""
    return file_digest(path, "sha256")


def save_model(network: torch.nn.Module, card: dict, path: os.PathLike) -> Tuple[Path, Path]:
    """Write weights and card atomically; the card gets the weights' SHA-256. Returns (weights, card) paths."""
    from safetensors.torch import save_file

    weights_path, card_path = model_paths(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in network.state_dict().items()}
    with atomic_path(weights_path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": FORMAT_NAME})
        digest = sha256_of(tmp)
    card = dict(card, weights_sha256=digest)
    check_card(card, card_path)
    write_text_atomic(card_path, json.dumps(card, indent=2))
    return weights_path, card_path


def check_card(card: dict, where: Path) -> None:
    """Refuse a card that is not a DCEDiff model card of this version and architecture."""
    if not isinstance(card, dict):
        raise ModelFileError(f"model card {where}: expected a JSON object")
    if card.get("format") != FORMAT_NAME:
        raise ModelFileError(f"model card {where}: format {card.get('format')!r}; expected {FORMAT_NAME!r}")
    if card.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(f"model card {where}: format_version {card.get('format_version')!r}; this DCEDiff "
                             f"reads version {FORMAT_VERSION}")
    missing = REQUIRED_FIELDS - set(card)
    if missing:
        raise ModelFileError(f"model card {where}: missing field(s) {sorted(missing)}")
    unknown = set(card) - REQUIRED_FIELDS - OPTIONAL_FIELDS
    if unknown:
        raise ModelFileError(f"model card {where}: unknown field(s) {sorted(unknown)}; refusing a card this "
                             "version does not understand")
    arch = card["architecture"]
    if not isinstance(arch, dict) or arch.get("name") != ARCHITECTURE_NAME or not isinstance(arch.get("config"), dict):
        raise ModelFileError(f"model card {where}: architecture {arch.get('name') if isinstance(arch, dict) else arch!r}"
                             f"; expected {ARCHITECTURE_NAME!r} with a network config")
    if card["objective"] not in OBJECTIVES:
        raise ModelFileError(f"model card {where}: objective {card['objective']!r}; expected one of "
                             f"{', '.join(OBJECTIVES)}")
    if card.get("parameterization", "image") not in PARAMETERIZATIONS:
        raise ModelFileError(f"model card {where}: parameterization {card['parameterization']!r}; expected one of "
                             f"{', '.join(PARAMETERIZATIONS)}")
    conditions = card["conditions"]
    if (not isinstance(conditions, list) or not conditions or len(set(conditions)) != len(conditions)
            or any(m not in INPUT_MODALITIES for m in conditions)
            or conditions != sorted(conditions, key=INPUT_MODALITIES.index)):
        raise ModelFileError(f"model card {where}: conditions {conditions!r}; expected a subset of "
                             f"{list(INPUT_MODALITIES)} in that order")
    _check_normalization(card, where)
    for field, kind, words in (("input_statistics", dict, "an object (scripts/add_input_statistics.py)"),
                               ("data_domain", dict, "an object with 'kind' and 'description'"),
                               ("sampling", dict, "an object"), ("t1pre_excess_added_back", bool, "true or false")):
        if field in card and not isinstance(card[field], kind):  # read late (after registration) and by truth
            raise ModelFileError(f"model card {where}: {field} {card[field]!r}; expected {words}")
    if card["targets"] != list(TARGET_MODALITIES):
        raise ModelFileError(f"model card {where}: targets {card['targets']!r}; expected {list(TARGET_MODALITIES)}")
    _check_optional_inputs(card, where)
    try:  # the expected-error tables (diffusion/error_map.py), checked here so a bad card fails at load time
        error_models_of_card(card, card["targets"])
    except ModelFileError as error:
        raise ModelFileError(f"{where}: {error}") from None
    config = arch["config"]
    context = card.get("context_slices", 0)
    if "context_slices" in card and card["objective"] != "regression":
        raise ModelFileError(f"model card {where}: context_slices belongs to a regression card (a residual card keeps "
                             f"its mean network's in mean_network); this card's objective is {card['objective']!r}")
    expected_in = (len(conditions) * (2 * _checked_context(context, where, "") + 1) + len(TARGET_MODALITIES)
                   + _checked_absolute_adc(card, card.get("absolute_adc", False), card["objective"], where, ""))
    if card["objective"] == "residual":
        _check_residual_fields(card, where)
        expected_in += len(TARGET_MODALITIES)  # the mean is a condition of the residual network
    if config.get("in_channels") != expected_in or config.get("out_channels") != len(TARGET_MODALITIES):
        raise ModelFileError(f"model card {where}: network has {config.get('in_channels')} inputs/"
                             f"{config.get('out_channels')} outputs; {len(conditions)} conditions need "
                             f"{expected_in}/{len(TARGET_MODALITIES)}")


def _check_normalization(card: dict, where: Path) -> None:
    """The card's ``normalization`` is an object, and its ``target_range_factor`` the one this DCEDiff maps the
    synthesis back to intensities with (:data:`DCEDiffLib.target_scale.RANGE_FACTOR`; pipeline.synthesize_case):
    another factor would give every output a wrong intensity scale without a word."""
    from DCEDiffLib.target_scale import RANGE_FACTOR

    norm = card["normalization"]
    if not isinstance(norm, dict):
        raise ModelFileError(f"model card {where}: normalization {norm!r}; expected an object (method, percentiles, "
                             "target_range_factor)")
    factor = norm.get("target_range_factor", RANGE_FACTOR)
    if not _is_number(factor) or float(factor) != RANGE_FACTOR:
        raise ModelFileError(f"model card {where}: normalization.target_range_factor {factor!r}; expected "
                             f"{RANGE_FACTOR:g}, the factor this DCEDiff maps the synthesis back to intensities with")


def _check_optional_inputs(card: dict, where: Path) -> None:
    if "optional_inputs" not in card:
        return
    value = card["optional_inputs"]
    if (not isinstance(value, list) or len(set(map(str, value))) != len(value)
            or any(not isinstance(m, str) or m not in OPTIONAL_INPUTS or m not in card["conditions"] for m in value)):
        raise ModelFileError(f"model card {where}: optional_inputs {value!r}; expected a list of the inputs the model "
                             f"was trained to do without (augment.drop_pd): a subset of {list(OPTIONAL_INPUTS)} "
                             f"among its conditions {card['conditions']}")


def missing_input_refusal(name: str, modality: str) -> str:
    """Why model ``name`` cannot run without ``modality``, and what would work (the error's wording)."""
    return (f"missing input {DESCRIPTIONS[modality]} ({modality}): the model {name} needs it (its card does not list "
            f"{modality!r} in optional_inputs: it was not trained to do without it). Give the {modality.upper()} "
            f"series, or use a model trained with modality dropout (augment.drop_{modality} > 0), whose card lists "
            f"optional_inputs [{modality!r}]")


def load_card(path: os.PathLike) -> dict:
    """The checked card of a model (path: the .safetensors, the .json or the stem), without reading the weights:
    for decisions before the slow work (which inputs a study must have)."""
    card_path = model_paths(path)[1]
    card = _read_card(card_path)
    check_card(card, card_path)
    return card


def _check_residual_fields(card: dict, where: Path) -> None:
    mean = card.get("mean_network")
    if not isinstance(mean, dict) or not isinstance(mean.get("config"), dict):
        raise ModelFileError(f"model card {where}: a residual model needs 'mean_network' with a network config")
    context = _checked_context(mean.get("context_slices", 0), where, "mean_network.")
    expected = (len(card["conditions"]) * (2 * context + 1) + len(TARGET_MODALITIES)
                + _checked_absolute_adc(card, mean.get("absolute_adc", False), "regression", where, "mean_network."))
    if mean["config"].get("in_channels") != expected or mean["config"].get("out_channels") != len(TARGET_MODALITIES):
        raise ModelFileError(f"model card {where}: mean network has {mean['config'].get('in_channels')} inputs/"
                             f"{mean['config'].get('out_channels')} outputs; expected {expected}/"
                             f"{len(TARGET_MODALITIES)}")
    if mean.get("parameterization", "image") not in PARAMETERIZATIONS:
        raise ModelFileError(f"model card {where}: mean network parameterization {mean.get('parameterization')!r}")
    sampling = card.get("sampling", {})
    temperature = sampling.get("residual_temperature", 1.0) if isinstance(sampling, dict) else None
    start = sampling.get("residual_start", 0.5) if isinstance(sampling, dict) else None
    if not _is_number(temperature) or not 0 <= float(temperature) <= 1:
        raise ModelFileError(f"model card {where}: sampling.residual_temperature {temperature!r}; expected 0..1")
    if start is not None and (not _is_number(start) or not 0 < float(start) < 1):
        raise ModelFileError(f"model card {where}: sampling.residual_start {start!r}; expected a noise level in "
                             "(0, 1) or null")
    steps = sampling.get("residual_steps", 1) if isinstance(sampling, dict) else None
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= 1000:
        raise ModelFileError(f"model card {where}: sampling.residual_steps {steps!r}; expected a whole number of "
                             "sampler steps, 1 to 1000")
    flip = sampling.get("mean_flip_average", False) if isinstance(sampling, dict) else None
    if not isinstance(flip, bool):
        raise ModelFileError(f"model card {where}: sampling.mean_flip_average {flip!r}; expected true or false")
    scale = card.get("residual_scale")
    if not _is_number(scale) or not 0 < float(scale) < 10:
        raise ModelFileError(f"model card {where}: residual_scale {scale!r}; expected a number in (0, 10)")


def _is_number(value) -> bool:
    """A JSON number: ``true``/``false`` are not (Python counts a bool as an int: ``true`` would read as 1)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _checked_context(value, where: Path, prefix: str) -> int:
    from DCEDiffLib.diffusion.slice_context import check_context_slices

    try:
        return check_context_slices(value)
    except ValueError as exc:
        raise ModelFileError(f"model card {where}: {prefix}{exc}") from None


def _checked_absolute_adc(card: dict, value, objective: str, where: Path, prefix: str) -> int:
    """The extra input channels of an ``absolute_adc`` field (0 or 1; diffusion/absolute_adc.py)."""
    try:
        extra = check_card_field(value, objective)
    except ValueError as exc:
        raise ModelFileError(f"model card {where}: {prefix}{exc}") from None
    if extra and "adc" not in card["conditions"]:
        raise ModelFileError(f"model card {where}: {prefix}absolute_adc needs the ADC among the conditions "
                             f"{card['conditions']}")
    return extra


def mean_context_slices(card: dict) -> int:
    """How many neighbouring slices on each side the card's regression network reads (0: a 2D network): a
    regression card's ``context_slices``, a residual card's ``mean_network.context_slices``, 0 for diffusion."""
    if card.get("objective") == "residual":
        return int(card.get("mean_network", {}).get("context_slices", 0))
    return int(card.get("context_slices", 0)) if card.get("objective") == "regression" else 0


def build_from_card(card: dict) -> torch.nn.Module:
    """The (untrained) network a checked card describes: a U-Net, or a mean + residual pair."""
    from DCEDiffLib.diffusion.presets import build_network

    if card["objective"] == "residual":
        from DCEDiffLib.diffusion.residual import ResidualDiffusionModel

        build_network(card["mean_network"]["config"])  # validates the config's keys
        build_network(card["architecture"]["config"])
        model = ResidualDiffusionModel(card["mean_network"]["config"], card["architecture"]["config"],
                                       card["conditions"], card["normalization"].get("target_range_factor", 3.0),
                                       card["residual_scale"], card["mean_network"].get("parameterization", "image"))
        model.temperature = float(card.get("sampling", {}).get("residual_temperature", 1.0))
        model.mean_flip_average = bool(card.get("sampling", {}).get("mean_flip_average", False))
        model.mean_context_slices = mean_context_slices(card)
        model.mean_absolute_adc = reads_absolute_adc(card)
        return model
    return build_network(card["architecture"]["config"])


def _read_card(card_path: Path) -> dict:
    if not card_path.is_file():
        what = "is a folder, not a file" if card_path.is_dir() else "is missing"
        raise ModelFileError(f"model card {card_path} {what}; a model is a .safetensors file plus its .json card")
    try:
        return json.loads(card_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"model card {card_path} is not valid JSON ({exc})") from None


def load_model(path: os.PathLike, device: str = "cpu") -> LoadedModel:
    """Load and check a model (path: the .safetensors, the .json or the stem); returns it in eval mode."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    weights_path, card_path = model_paths(path)
    if not weights_path.is_file():
        given = Path(path)
        refuse_folder(given)
        if given.is_file() and given.suffix not in (".safetensors", ".json"):
            raise ModelFileError(f"model {given}: expected a .safetensors model file with its .json card beside it "
                                 f"(DCEDiff loads no other format; a '{given.suffix}' file is not one)")
        what = "is a folder, not a file" if weights_path.is_dir() else "are missing"
        raise ModelFileError(f"model weights {weights_path} {what}; expected a .safetensors file with its .json "
                             "card beside it")
    with open(weights_path, "rb") as handle:
        head = handle.read(9)
    if looks_pickled(head):
        raise ModelFileError(f"model weights {weights_path}: this looks like a pickled PyTorch checkpoint; DCEDiff "
                             "only loads safetensors + JSON model cards (nothing is unpickled)")
    card = _read_card(card_path)
    check_card(card, card_path)
    digest = sha256_of(weights_path)
    if digest != card["weights_sha256"]:
        raise ModelFileError(f"model weights {weights_path}: SHA-256 {digest[:16]}… does not match the card's "
                             f"{str(card['weights_sha256'])[:16]}…; the file was altered or belongs to another card")
    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        if "Cannot allocate memory" in str(exc):  # out of memory (mmap): not the file's fault
            raise ModelFileError(f"model weights {weights_path}: not enough memory to load them ({exc})") from None
        raise ModelFileError(f"model weights {weights_path} are corrupt or truncated ({exc})") from None
    try:
        network = build_from_card(card)
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"model card {card_path}: network config cannot be built ({exc})") from None
    expected = network.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise ModelFileError(f"model weights {weights_path} do not fit the card's architecture: "
                             f"{len(missing)} missing tensors (e.g. {missing[:2]}), {len(unexpected)} unexpected "
                             f"(e.g. {unexpected[:2]})")
    for name, tensor in tensors.items():
        if tensor.shape != expected[name].shape:
            raise ModelFileError(f"model weights {weights_path}: tensor {name} has shape {tuple(tensor.shape)}, "
                                 f"the card's architecture needs {tuple(expected[name].shape)}")
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise ModelFileError(f"model weights {weights_path}: tensor {name} contains NaN or Inf values")
    network.load_state_dict(tensors)
    network.eval()
    from DCEDiffLib.diffusion.learned_error_map import load_learned_error_map
    from DCEDiffLib.diffusion.voxel_corrector import load_corrector

    return LoadedModel(network.to(device), card, weights_path, load_corrector(card, card_path),
                       load_learned_error_map(card, card_path))
