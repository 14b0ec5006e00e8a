"""Evaluation: does a synthesis add what the acquired DCE adds over T1-pre?

- ``metrics``: PSNR, SSIM, MAE on the paper's [0, 1] scale (acquired volume's percentiles), masks, JSON encoding;
- ``enhancement``: enhancement maps (target − T1-pre on the target's scale) and their agreement;
- ``lesions``: lesion conspicuity (CNR against a ring of gland, rank against the gland median);
- ``baselines``: the identity and mean-enhancement baselines, scored like a model;
- ``case_evaluation``: every metric of one case (``evaluate_case``);
- ``tables``: mean ± std over cases; metrics.json / .csv / .md;
- ``fid``: FID/KID on FID-Inception features, offline;
- ``report_figure``: the report PNG.

scipy, scikit-image, matplotlib and torch are imported inside the functions that need them.
See ``docs/evaluation.md`` for the definitions.
"""

from DCEDiffLib.evaluation.baselines import MeanEnhancementBaseline, identity_baseline  # noqa: F401
from DCEDiffLib.evaluation.case_evaluation import evaluate_case  # noqa: F401
from DCEDiffLib.evaluation.tables import aggregate, write_metrics  # noqa: F401
