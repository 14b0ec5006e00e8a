"""What the tree-fitting scripts share (``fit_voxel_corrector.py``, ``fit_learned_error_map.py``): fit one
scikit-learn ``HistGradientBoostingRegressor``, flatten it into a ``voxel_corrector.TreeEnsemble`` checked against
scikit-learn, and write a card copy with its tree file beside it (the weights copied unchanged); and read the
per-voxel samples file of ``fit_voxel_corrector.py --samples-file`` (also read by ``error_rankability.py``). Not a
command."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np


def samples_with_corrector(samples) -> bool:
    """Whether samples (a loaded file or a dict of joined arrays) hold the card's output with its voxel corrector;
    files written before the flag existed hold the output without one."""
    return bool(samples["with_corrector"]) if "with_corrector" in getattr(samples, "files", samples) else False


def read_samples(paths):
    """(samples, patient names, patient index per row) of one samples file or of several joined (a path or a list
    of paths), checked: the voxel corrector's feature count, as many region voxels for every patient, no patient
    twice, and every file of the same output (with or without the card's voxel corrector); SystemExit otherwise.
    One file comes back as numpy loaded it; several as a dict of the joined arrays."""
    from DCEDiffLib.diffusion import voxel_corrector as vc

    paths = [Path(p) for p in (paths if isinstance(paths, (list, tuple)) else [paths])]
    loaded = [np.load(p) for p in paths]
    listed = ", ".join(map(str, paths))
    for path, one in zip(paths, loaded):
        features, count = one["features"], len(one["names"])
        if features.shape[1] != len(vc.feature_names()) or features.shape[0] % count:
            raise SystemExit(f"{path}: expected {len(vc.feature_names())} features and an equal number of voxels per "
                             "patient")
    if len(loaded) == 1:
        samples = loaded[0]
    else:
        flags = {samples_with_corrector(one) for one in loaded}
        if len(flags) > 1:
            raise SystemExit(f"{listed}: some files hold the output with the voxel corrector, "
                             "some without; join samples of one output only")
        per_patient = {one["features"].shape[0] // len(one["names"]) for one in loaded}
        if len(per_patient) > 1:
            raise SystemExit(f"{listed}: the files have different region sizes per patient")
        keys = set(loaded[0].files) - {"with_corrector"}
        if any(set(one.files) - {"with_corrector"} != keys for one in loaded):
            raise SystemExit(f"{listed}: the files hold different arrays (other targets?)")
        samples = {k: np.concatenate([one[k] for one in loaded]) for k in keys}
        samples["with_corrector"] = np.array(flags.pop())
    names = [str(n) for n in samples["names"]]
    if len(set(names)) != len(names):
        raise SystemExit(f"{listed}: a patient appears twice")
    return samples, names, np.repeat(np.arange(len(names)), samples["features"].shape[0] // len(names))


def kept_patients(names, prefixes) -> list:
    """Indices of the patients whose names start with one of ``prefixes`` (all of them for None)."""
    return [i for i, n in enumerate(names) if prefixes is None or any(str(n).startswith(p) for p in prefixes)]


def fit_flattened(x: np.ndarray, y: np.ndarray, name: str, iterations: int, seed: int,
                  sample_weight: Optional[np.ndarray] = None, **learner):
    """Trees fitted on (x, y) (squared error, no early stopping), flattened; SystemExit when the flattened trees do
    not predict as scikit-learn does on a subsample (``name`` says which in the message)."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    from DCEDiffLib.diffusion import voxel_corrector as vc

    if sample_weight is not None and np.all(sample_weight == sample_weight.flat[0]):
        # Equal weights are no weights, and scikit-learn bins weighted data with a weighted percentile per bin
        # edge, ~10× slower than its unweighted binning (16 s per target on one case).
        sample_weight = None
    regressor = HistGradientBoostingRegressor(max_iter=iterations, early_stopping=False, random_state=seed, **learner)
    regressor.fit(x, y, sample_weight=sample_weight)
    ensemble = vc.ensemble_from_sklearn(regressor)
    check = x[:: max(1, len(x) // 5000)]
    gap = float(np.abs(ensemble.predict(check) - regressor.predict(check)).max())
    if gap > 1e-6:
        raise SystemExit(f"flattened trees of {name} disagree with scikit-learn by {gap}")
    return ensemble


def write_trees_beside_card_copy(model: str, out: Path, suffix: str, ensembles: Dict[str, object]) -> Tuple[dict, Path,
                                                                                                          Path]:
    """Write ``OUT<suffix>`` (the ensembles per target, safetensors) and copy the weights of ``model`` to OUT's;
    returns (the card of ``model`` as a dict, to be given its entry, OUT's card path, the tree file)."""
    from safetensors.numpy import save_file

    from DCEDiffLib.atomic import atomic_path
    from DCEDiffLib.diffusion.model_files import model_paths

    weights_path, card_path = model_paths(model)
    out_weights, out_card = model_paths(out)
    out_card.parent.mkdir(parents=True, exist_ok=True)
    trees_file = out_card.with_name(out_card.stem + suffix)
    tensors = {}
    for target, ensemble in ensembles.items():
        tensors.update(ensemble.tensors(target))
    with atomic_path(trees_file) as tmp:
        save_file(tensors, str(tmp))
    if weights_path.resolve() != out_weights.resolve():
        with atomic_path(out_weights) as tmp:
            shutil.copyfile(weights_path, tmp)
    return json.loads(card_path.read_text(encoding="utf-8")), out_card, trees_file
