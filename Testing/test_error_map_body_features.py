"""scripts/error_map_body_features.py: the candidate quantities and their Spearman with |error| per region."""

import numpy as np

from script_module import load_script


def test_the_enhancement_size_ranks_an_error_that_grows_with_it_and_the_t1pre_does_not():
    script = load_script("error_map_body_features")
    rng = np.random.default_rng(0)
    t1pre = rng.uniform(50, 150, (2, 12, 12))
    enhancement = rng.uniform(0, 100, (2, 12, 12))
    synthetic = t1pre + enhancement
    error = 0.1 * enhancement                         # an error proportional to the enhancement drawn
    body = np.ones_like(t1pre, dtype=bool)
    maps = script.candidate_maps(synthetic, t1pre, np.full_like(t1pre, 3.0) + rng.normal(0, 1e-3, t1pre.shape), body)
    assert set(maps) >= {"expected-error map", "edge feature (the map's own)", "|synthetic - T1-pre|",
                         "local std of synthetic"}
    assert all(m.shape == t1pre.shape for m in maps.values())
    half = np.zeros_like(body)
    half[0] = True
    found = script.region_spearman(maps, error, {"body": body, "prostate": half})
    assert found["|synthetic - T1-pre|"]["body"] > 0.99 and found["|synthetic - T1-pre|"]["prostate"] > 0.99
    assert abs(found["T1-pre"]["body"]) < 0.2           # independent of the error here
