"""One phantom case generated once per test process, handed to each caller as its own copy.

Seventeen test files write ``generate_case(3)`` as a DICOM study or read it (about 4 s a generation on an idle 2-core
machine). A pytest-xdist worker runs many test files in one process, so the case is generated once per worker and
every caller gets a deep copy: a test that changes its case cannot change what the next test reads.
"""

import copy
from functools import lru_cache

from DCEDiffLib.phantom.generator import PhantomCase, generate_case


@lru_cache(maxsize=None)
def _generated(seed: int) -> PhantomCase:
    return generate_case(seed)


def generated_case(seed: int) -> PhantomCase:
    """``generate_case(seed)`` (domain A, ``case_000``, its defaults), generated on the first call in this process
    and deep-copied on every call (images, series, labels and params the caller's own)."""
    return copy.deepcopy(_generated(seed))
