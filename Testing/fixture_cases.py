"""A fixed phantom exam for tests that rest on what one exam is known to be, whatever the shipped sample case.

``VERSION1_PROCEDURAL_CASE`` is the sample case shipped until 2026-12-07 (`Resources/SampleData/phantom_case`
then; docs/phantom.md, "The shipped sample case"): generator version 1, procedural anatomy (the prostate model finds
no gland on it), domain A, fat-suppressed T1-pre and DCE, its T1-pre being the DCE's own pre-contrast frame (one
intensity scale), and patient motion of a few millimetres between its series. Tests that need one of those
properties (the acquired DCE's scale rules, the registration beating the scanner's alignment by a margin, the
out-of-distribution card of procedural cases, the hot-coil band, floors measured on its output) read it from here, so
that the shipped sample case can follow the generator.
"""

from pathlib import Path

VERSION1_PROCEDURAL_CASE = Path(__file__).resolve().parent / "data" / "phantom_case_v1"
