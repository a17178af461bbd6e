"""CLI: generate the sample data root. Progress goes to stderr, the summary to stdout."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from identity_data.sample.generate import default_workers, generate


def _parser() -> argparse.ArgumentParser:
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    p = argparse.ArgumentParser(prog="python -m identity_data.sample", description=__doc__)
    p.add_argument("--out", type=Path, default=Path("data"), help="data root (default: data)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--days", type=int, default=3, help="capture days ending at --end-date")
    p.add_argument("--captures-per-day", type=int, default=200)
    p.add_argument(
        "--end-date",
        type=date.fromisoformat,
        default=yesterday,
        help="last capture day, YYYY-MM-DD (default: yesterday UTC)",
    )
    p.add_argument("--campaigns", type=int, default=2)
    p.add_argument(
        "--no-images", action="store_true", help="metadata only: no blobs and no label exports"
    )
    p.add_argument(
        "--images-sample",
        type=int,
        default=None,
        metavar="N",
        help="draw only N production blobs; further DB rows reuse them (load tests)",
    )
    p.add_argument("--workers", type=int, default=default_workers())
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    started = time.perf_counter()
    summary = generate(
        args.out,
        args.seed,
        args.days,
        args.captures_per_day,
        args.end_date,
        campaigns=args.campaigns,
        images=not args.no_images,
        images_sample=args.images_sample,
        workers=args.workers,
        progress=lambda msg: print(msg, file=sys.stderr, flush=True),
    )
    for name, value in asdict(summary).items():
        print(f"{name}: {value}")
    print(f"generated in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
