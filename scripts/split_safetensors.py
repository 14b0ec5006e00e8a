"""Split a safetensors file into parts under a size limit, or join the parts back, bit for bit.

Why: the lent GPU machine returns files of at most 16 MiB each, and a model file of the shipped size is 19.5 MB.
The parts keep the file's metadata; joining checks that every tensor is there once.
Usage: python scripts/split_safetensors.py split FILE OUT_PREFIX [--max-mb 15]   (writes OUT_PREFIX.partN.safetensors)
       python scripts/split_safetensors.py join OUT_FILE PART [PART ...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import save_file


def split(path: Path, prefix: str, max_bytes: int) -> list:
    """Write ``prefix.partN.safetensors`` files of at most about ``max_bytes`` of tensor data each."""
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata() or {}
        tensors = {name: f.get_tensor(name) for name in f.keys()}
    parts, current, size = [], {}, 0
    for name in sorted(tensors):
        nbytes = tensors[name].numel() * tensors[name].element_size()
        if current and size + nbytes > max_bytes:
            parts.append(current)
            current, size = {}, 0
        current[name] = tensors[name]
        size += nbytes
    parts.append(current)
    written = []
    for index, part in enumerate(parts):
        out = Path(f"{prefix}.part{index}.safetensors")
        save_file(part, str(out), metadata={**metadata, "part": f"{index + 1}/{len(parts)}"})
        written.append(out)
    return written


def join(out: Path, parts: list) -> None:
    """Write the tensors of ``parts`` into ``out`` with the first part's metadata (less the part number)."""
    tensors, metadata, expected = {}, None, None
    for part in parts:
        with safe_open(str(part), framework="pt") as f:
            meta = dict(f.metadata() or {})
            count = int(meta.pop("part").split("/")[1])
            if expected is None:
                expected, metadata = count, meta
            for name in f.keys():
                if name in tensors:
                    raise SystemExit(f"{part}: tensor {name} is in two parts")
                tensors[name] = f.get_tensor(name)
    if expected != len(parts):
        raise SystemExit(f"the parts say there are {expected} of them; {len(parts)} were given")
    save_file(tensors, str(out), metadata=metadata)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("split")
    s.add_argument("file", type=Path)
    s.add_argument("prefix")
    s.add_argument("--max-mb", type=float, default=15.0)
    j = sub.add_parser("join")
    j.add_argument("out", type=Path)
    j.add_argument("parts", type=Path, nargs="+")
    args = parser.parse_args(argv)
    if args.command == "split":
        for out in split(args.file, args.prefix, int(args.max_mb * 1e6)):
            print(out)
    else:
        join(args.out, args.parts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
