"""Command-line values that start with a minus sign, such as a centre ``-12.5,30,4``.

argparse takes a token that starts with ``-`` for an option unless the whole token looks like one negative number,
so ``--center -12.5,30,4`` fails with "expected one argument" (Python 3.9-3.13) for every centre whose first
coordinate is negative. :func:`join_negative_values` rewrites such a pair as ``--center=-12.5,30,4`` before parsing.
"""

from __future__ import annotations

import re
from typing import List, Optional, Sequence

COORDINATE_OPTIONS = ("--center",)
_NEGATIVE_NUMBER_START = re.compile(r"^-(\d|\.\d)")


def join_negative_values(argv: Optional[Sequence[str]], options: Sequence[str] = COORDINATE_OPTIONS
                         ) -> Optional[List[str]]:
    """``argv`` with each ``OPTION VALUE`` of ``options`` whose value starts with a negative number joined into
    ``OPTION=VALUE``; everything else unchanged (``None`` stays ``None``: argparse then reads ``sys.argv``)."""
    if argv is None:
        return None
    tokens = list(argv)
    joined: List[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        # argparse also takes an unambiguous abbreviation ("--cent"); "--" ends the options
        if token == "--":
            joined.extend(tokens[i:])
            break
        option = next((o for o in options if len(token) > 3 and o.startswith(token)), None)
        if option and i + 1 < len(tokens) and _NEGATIVE_NUMBER_START.match(tokens[i + 1]):
            joined.append(f"{token}={tokens[i + 1]}")
            i += 2
            continue
        joined.append(token)
        i += 1
    return joined
