#!/usr/bin/env python3
"""Lists the slowest tests from a HEARTH_TEST_TIMES file (test name, seconds its servers ran).

Usage: python3 scripts/slowest-tests.py target/test-times.tsv [--top N]
"""
import argparse
import collections
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", help="the file HEARTH_TEST_TIMES named")
    parser.add_argument("--top", type=int, default=15, help="how many to list (default 15)")
    args = parser.parse_args()
    totals: dict[str, float] = collections.defaultdict(float)
    try:
        with open(args.file, encoding="utf-8") as f:
            for line in f:
                name, _, secs = line.rstrip("\n").rpartition("\t")
                if name:
                    totals[name] += float(secs)
    except FileNotFoundError:
        print(f"no test times in {args.file}", file=sys.stderr)
        return 0
    total = sum(totals.values())
    print(f"server time of {len(totals)} tests: {total:.0f} s; the slowest:")
    for name, secs in sorted(totals.items(), key=lambda kv: -kv[1])[: args.top]:
        print(f"  {secs:7.1f} s  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
