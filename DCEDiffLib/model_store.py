"""An imported model's own copy in a model folder, so that it outlives the file the user picked.

The Slicer module's *Import model…* runs this (``python -m DCEDiffLib.model_store WEIGHTS STORE_ROOT``, in the
engine's process: torch never runs in Slicer's own). The model is checked with the engine's loader
(:func:`DCEDiffLib.diffusion.model_files.load_model`: safetensors and its JSON card, nothing unpickled, the SHA-256s
of the weights and of the files the card names), then the weights, the card and those files are copied into
``STORE_ROOT/<name>-<first 16 hex digits of the weights' SHA-256>/`` under their own names (the card names its
files relative to its folder). The folder is written beside its final place and renamed into it, so a cancelled or
refused import leaves no half-written entry. An entry already holding this model is reused; the user's files are
only read. The module's STORE_ROOT is a per-user folder beside Slicer's settings, not Slicer's cache folder (whose
*Clear cache* deletes it whole): DCEDiff/DCEDiffSlicerLib/model_import.py.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path, PurePosixPath
from typing import Dict, List

from DCEDiffLib.errors import ModelFileError

SHA_PREFIX = 16  # hex digits of the weights' SHA-256 in the folder name: two models never share a folder
COMMAND = "import"  # how the error line names this command (``dcediff import: error: ...``, as the CLI's lines)


def sidecar_files(card: dict, card_path: Path) -> List[str]:
    """The files beside the card that the engine loads for this model, as the card names them (relative to the
    card's folder): the voxel corrector's (``voxel_corrector.file``) and the learned expected-error map's
    (``error_model.learned.file``). A name that leaves the card's folder is refused: a copy could not hold it."""
    entries = [card.get("voxel_corrector"), (card.get("error_model") or {}).get("learned")]
    names = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
            continue
        name = entry["file"]
        parts = PurePosixPath(name.replace("\\", "/")).parts
        if not parts or PurePosixPath(name).is_absolute() or ".." in parts or re.match(r"^[A-Za-z]:", name):
            raise ModelFileError(f"model card {card_path}: file {name!r} is not inside the card's folder; expected a "
                                 "file name relative to the card (e.g. '<model>.error_trees.safetensors')")
        names.append(name)
    return names


def entry_name(weights: Path, digest: str) -> str:
    """The folder of a model's copy: its name (``model_registry.model_name``, characters other than letters, digits,
    ``.``, ``_``, ``-`` made ``_``) and the first :data:`SHA_PREFIX` hex digits of its weights' SHA-256."""
    from DCEDiffLib.model_registry import model_name

    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", model_name(weights)).strip("._") or "model"
    return f"{safe}-{digest[:SHA_PREFIX]}"


def _same_copy(folder: Path, files: Dict[str, Path], card_bytes: bytes, digests: Dict[str, str]) -> bool:
    """Whether ``folder`` holds every file of the model, the card byte for byte and the others by SHA-256."""
    from DCEDiffLib.diffusion.model_files import sha256_of

    try:
        for name in files:
            copy = folder / name
            if not copy.is_file():
                return False
            if name in digests:
                if sha256_of(copy) != digests[name]:
                    return False
            elif copy.read_bytes() != card_bytes:
                return False
    except OSError:
        return False
    return True


def store_model(weights, store_root) -> dict:
    """Check the model at ``weights`` (its .safetensors, .json or stem) with the engine's loader and copy it into
    ``store_root`` (created when missing); returns ``{"path", "name", "sha256", "reused"}``: the copied weights, the
    model's name, its weights' SHA-256, and whether an identical copy was used. Raises :class:`ModelFileError`
    (naming the file and what was expected) for a model the engine would refuse; nothing is then left in
    ``store_root``."""
    from DCEDiffLib.atomic import atomic_directory
    from DCEDiffLib.diffusion.model_files import load_model, model_paths, sha256_of
    from DCEDiffLib.errors import InputError
    from DCEDiffLib.model_registry import model_name

    weights_path, card_path = model_paths(weights)
    loaded = load_model(weights_path)  # every check the engine makes before a run; refuses with the reason
    card = loaded.card
    digest = str(card["weights_sha256"])
    card_bytes = card_path.read_bytes()
    try:
        same_card = json.loads(card_bytes.decode("utf-8")) == card
    except ValueError:  # UnicodeDecodeError too
        same_card = False
    if not same_card:
        raise ModelFileError(f"model card {card_path} changed while it was being imported; import it again")
    files = {weights_path.name: weights_path, card_path.name: card_path}
    digests = {weights_path.name: digest}
    for name in sidecar_files(card, card_path):
        files[name] = card_path.parent / name
        digests[name] = sha256_of(files[name])  # load_model checked it against the card's
    final = Path(store_root) / entry_name(weights_path, digest)
    result = {"path": str(final / weights_path.name), "name": model_name(weights_path), "sha256": digest}
    if _same_copy(final, files, card_bytes, digests):
        return dict(result, reused=True)
    try:
        # records: the card marks a folder as a stored model, so only a damaged copy of one is replaced whole
        with atomic_directory(final, overwrite=True, records=(card_path.name,)) as partial:
            for name, source in files.items():
                (partial / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, partial / name)  # contents only: a read-only original stays the user's
            if not _same_copy(partial, files, card_bytes, digests):  # a file changed between the check and the copy
                raise ModelFileError(f"model {weights_path} changed while it was being imported; import it again")
    except InputError as exc:  # the model folder cannot be written, or is taken by something else
        raise ModelFileError(f"cannot keep a copy of model {weights_path} in {final}: {exc}") from None
    except OSError as exc:
        raise ModelFileError(f"cannot keep a copy of model {weights_path} in {final} "
                             f"({exc.strerror or exc}); expected a writable model folder") from None
    return dict(result, reused=False)


def main(argv=None) -> int:
    """``python -m DCEDiffLib.model_store WEIGHTS STORE_ROOT``: the stored model as one JSON line on stdout (exit
    0), or ``dcediff import: error: <why>`` (exit 2)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if len(argv) != 2:
        print(f"dcediff {COMMAND}: error: expected two arguments, WEIGHTS (.safetensors) and STORE_ROOT (a folder)")
        return 2
    try:
        print(json.dumps(store_model(argv[0], argv[1])))
    except ModelFileError as exc:
        print(f"dcediff {COMMAND}: error: {exc}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
