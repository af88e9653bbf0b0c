"""Summarise a py-spy raw (collapsed stacks) profile: the top functions by own and total time.

    python -m bench.profile_top /tmp/prof-100.txt [--top 25]
"""

from __future__ import annotations

import argparse
import collections
import sys


def load(path: str) -> list[tuple[list[str], int]]:
    stacks = []
    with open(path) as file:
        for line in file:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if stack:
                stacks.append((stack.split(";"), int(count)))
    return stacks


def short(frame: str) -> str:
    # "function (path/to/module.py:123)" -> "function (module.py)"
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit("/", 1)[-1].split(":")[0]
    return f"{name} ({where})" if where else name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("path")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    stacks = load(args.path)
    total = sum(count for _, count in stacks) or 1
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    for frames, count in stacks:
        names = [short(frame) for frame in frames]
        own[names[-1]] += count
        for name in set(names):
            inclusive[name] += count
    print(f"{total} samples")
    print(f"\n{'own %':>6}  function")
    for name, count in own.most_common(args.top):
        print(f"{100 * count / total:6.1f}  {name}")
    print(f"\n{'total %':>7}  function")
    for name, count in inclusive.most_common(args.top):
        print(f"{100 * count / total:7.1f}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
