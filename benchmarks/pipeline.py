"""The pipeline against bare scripts doing the same work, side by side, in one run.

    .venv/bin/python -m benchmarks.pipeline [--sizes 10000,100000,1000000]
        [--images 300,1000,2000] [--backfill-days 30] [--distinct 3000] [--repeat 3]
        [--work DIR] [--huge N]

Every figure is a whole process (or process tree) started from scratch, as a CLI run or the
daemon's run launcher starts it: CPU-seconds of the tree (getrusage of reaped children; this
process is their subreaper, so descendants that outlive the run, such as the annotation pool's
fork server and its workers, are reaped here and counted), wall time and peak RSS summed over
the tree (sampled from /proc every 0.2 s). Rows:

- the raw steps' run over an empty day vs Dagster's floor, a run of one asset that does nothing
  (benchmarks/one_asset.py) by the same CLI: what any Dagster run costs before the project's
  code runs, which the bare script never pays;
- raw extraction of one day of N captures over ~210 distinct blobs (`dagster asset materialize`
  of raw/prod_*) vs benchmarks/bare_extract.py (one query, HMAC, each distinct blob once,
  one parquet file, one DuckDB load); also less the raw steps' run over an empty day, the
  per-run cost that the rows come on top of;
- the whole production chain (raw, annotations, warehouse) over an empty day vs one import of
  the definitions;
- a backfill of D days as one run (single-run policy) vs D runs of one day;
- the chain's first run over a day vs a re-run with nothing changed (also both less the
  empty day's chain: what a re-run still does beyond the fixed cost of a run), over the
  smallest size's day (its ~210 distinct blobs) and, with `--distinct N`, over a day of N
  captures each with its own image, as in production, where annotation is most of the work;
- with `--huge N`, raw extraction of a day of N rows (e.g. 10M) against the project at the
  largest size: CPU should grow with the rows, peak memory should not;
- annotation images/s on 1 and 2 workers (cold: a fresh process's first call, which starts
  the fork server, the workers and their detectors; warm: a pool kept across calls) vs the bare
  detector loop (benchmarks/annotations.py), for each `--images` count, next to two bare loops
  started together over half the images each: what the two cores give independent copies of
  the work, the most a pool can reach on this machine.

Days with many rows are made from one generated sample (`python -m identity_data.sample
--images-sample`) by copying that day's rows in SQLite under new capture ids: the generator
plans row by row in Python, ~1 ms a row, which would dominate a 1M-row set-up.
Other processes share the cores (load average printed): compare CPU-seconds and ratios. This
machine's speed also drifts by tens of percent within minutes, so every measurement but the
backfills and `--huge` is taken `--repeat` times and the one with the least CPU (the least
disturbed) is shown; the annotation rounds interleave bare loop, 1 and 2 workers.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import pickle
import resource
import shlex
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
BIN = Path(sys.executable).parent
DAY = date(2026, 11, 28)
RAW = ["raw/prod_captures", "raw/prod_quarantine"]
CHAIN = [
    *RAW,
    "annotations/prod_annotations",
    "warehouse/prod_captures",
    "warehouse/prod_annotations",
]
SAMPLE_DAYS = 30
IMPORT = "from identity_data.definitions import defs; defs()"


@dataclass(frozen=True)
class Measure:
    cpu: float
    wall: float
    peak_mib: float

    def __add__(self, other: Measure) -> Measure:
        return Measure(
            self.cpu + other.cpu, self.wall + other.wall, max(self.peak_mib, other.peak_mib)
        )

    def above(self, base: Measure) -> Measure:
        """The work beyond `base` (a run's fixed cost): CPU and wall minus base's, same peak."""
        return Measure(
            max(self.cpu - base.cpu, 0.0), max(self.wall - base.wall, 0.0), self.peak_mib
        )


@dataclass(frozen=True)
class Row:
    work: str
    project: Measure
    reference_label: str
    reference: Measure
    target: str

    @property
    def ratio(self) -> float:
        return self.project.cpu / self.reference.cpu if self.reference.cpu else float("nan")


def _tree_rss(root: int) -> int:
    from benchmarks.annotations import _tree

    return sum(rss for rss, _ in _tree(root).values())


# prctl(2) option: orphaned descendants are re-parented to this process instead of init.
PR_SET_CHILD_SUBREAPER = 36
# How long descendants may outlive the measured process before the measure fails.
ORPHAN_GRACE_S = 60.0


def _become_subreaper() -> None:
    """Make this process the reaper of its orphaned descendants. getrusage(RUSAGE_CHILDREN)
    counts only descendants reaped up the tree: the annotation pool's fork server is never
    waited for by the run process (it exits on its own once its parent has), so it and the
    workers it had not yet reaped would be reaped by init, and their CPU lost."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def _children() -> set[int]:
    """Pids whose parent is this process (zombies included), from /proc."""
    from benchmarks.annotations import processes

    me = os.getpid()
    return {pid for pid, (ppid, _, _) in processes().items() if ppid == me}


def _reap_orphans(log: Path, own: set[int]) -> None:
    """Wait for every descendant re-parented to this process, so its CPU is counted; `own`
    are this process's children from before the run (a multiprocessing resource tracker of
    its own, say), which live on and are not waited for."""
    deadline = time.monotonic() + ORPHAN_GRACE_S
    while orphans := _children() - own:
        for pid in orphans:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
        if time.monotonic() > deadline:
            raise SystemExit(f"descendants still running {ORPHAN_GRACE_S:.0f} s after {log}")
        time.sleep(0.05)


def measure(cmd: list[str], env: dict[str, str], log: Path) -> Measure:
    _become_subreaper()
    own = _children()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        peak = 0
        while proc.poll() is None:
            peak = max(peak, _tree_rss(proc.pid))
            time.sleep(0.2)
    wall = time.perf_counter() - start
    _reap_orphans(log, own)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        tail = log.read_text()[-3000:]
        raise SystemExit(f"{' '.join(cmd[:4])} failed ({proc.returncode}); log {log}:\n{tail}")
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return Measure(cpu, wall, peak / 2**20)


class Bench:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.home = work / "data"
        self.dagster_home = work / "dagster_home"
        self.logs = work / "logs"
        self.runs = 0
        self.env = {
            **os.environ,
            "IDENTITY_DATA_ENV": "local",
            "IDENTITY_DATA_HOME": str(self.home),
            "DAGSTER_HOME": str(self.dagster_home),
        }
        self.env.pop("IDENTITY_DATA_PSEUDONYM_KEY", None)

    def prepare(self, days: int, per_day: int = 100, blobs: int | None = 210) -> None:
        """Generate the sample once: `per_day` captures a day over `blobs` distinct production
        blobs, or each capture its own image with `blobs=None`."""
        marker = self.work / f"sample-{days}x{per_day}-{blobs or 'distinct'}.done"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.dagster_home.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "dagster.yaml", self.dagster_home / "dagster.yaml")
        if marker.exists():
            return
        from identity_data.sample import generate
        from identity_data.settings import ensure_local_key

        over = f"over {blobs} blobs" if blobs else "each its own image"
        print(f"generating a sample ({days} days, {per_day} captures a day {over}) ...")
        generate(self.home, 7, days, per_day, DAY, campaigns=0, images_sample=blobs)
        ensure_local_key(self.home)
        marker.touch()

    def reset(self) -> None:
        """Forget every output (lake tables, raw zone, content caches, warehouse)."""
        for sub in ("lake/raw", "lake/tables", "lake/cache"):
            shutil.rmtree(self.home / sub, ignore_errors=True)
        (self.home / "warehouse.duckdb").unlink(missing_ok=True)

    def scale(self, day: date, rows: int) -> int:
        """Make `day` hold `rows` captures: its generated rows plus copies under new ids."""
        lo, hi = f"{day} 00:00:00", f"{day + timedelta(days=1)} 00:00:00"
        with sqlite3.connect(self.home / "capture_db.sqlite") as con:
            con.execute("DELETE FROM captures WHERE instr(capture_id, '~') > 0")
            base = con.execute(
                "SELECT count(*) FROM captures WHERE captured_at >= ? AND captured_at < ?",
                (lo, hi),
            ).fetchone()[0]
            need = max(0, rows - base)
            con.execute(
                "INSERT INTO captures WITH RECURSIVE k(i) AS "
                "(SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < ?) "
                "SELECT c.capture_id || '~' || k.i, c.session_id, c.subject_ref, c.capture_type, "
                "c.device, c.captured_at, c.blob_path FROM k, captures c "
                "WHERE c.captured_at >= ? AND c.captured_at < ? LIMIT ?",
                (need // max(base, 1) + 1, lo, hi, need),
            )
        return base + need

    def run(
        self, name: str, keys: list[str], *partition: str, module: str = "identity_data.definitions"
    ) -> Measure:
        self.runs += 1
        cmd = [str(BIN / "dagster"), "asset", "materialize", "-m", module]
        return measure(
            [*cmd, "--select", ",".join(keys), *partition],
            self.env,
            self.logs / f"{self.runs:03d}-{name}.log",
        )

    def floor(self) -> Measure:
        """A run of benchmarks/one_asset.py's asset: what any Dagster run costs."""
        return self.run("floor", ["one"], module="benchmarks.one_asset")

    def day(self, name: str, keys: list[str], day: date) -> Measure:
        return self.run(name, keys, "--partition", str(day))

    def fresh(self, name: str, keys: list[str]) -> Measure:
        """A first run over DAY: every output forgotten before."""
        self.reset()
        return self.day(name, keys, DAY)

    def bare(self, day: date) -> Measure:
        out = self.work / "bare"
        shutil.rmtree(out, ignore_errors=True)
        cmd = [sys.executable, "-m", "benchmarks.bare_extract", str(self.home), str(day), str(out)]
        return measure(cmd, self.env, self.logs / "bare.log")

    def import_once(self) -> Measure:
        return measure([sys.executable, "-c", IMPORT], self.env, self.logs / "import.log")


def best(repeat: int, measure: Callable[[], Measure]) -> Measure:
    """The repetition that took the least CPU: other tenants of the machine only ever add."""
    return min((measure() for _ in range(repeat)), key=lambda m: m.cpu)


def cold_first_call(items: Path, log: Path) -> Measure:
    """A fresh process's first 2-worker call (benchmarks.annotations.cold_call): the fork
    server, the workers and their detectors all start inside it, as in a run."""
    from benchmarks.annotations import COLD

    with log.open("w") as err:
        out = subprocess.run(
            [sys.executable, "-c", COLD, str(items)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            check=True,
        )
    seconds, cpu, peak = json.loads(out.stdout.splitlines()[-1])
    return Measure(cpu, seconds, peak / 2**20)


def annotation_rows(n: int, repeat: int, work: Path) -> list[Row]:
    """Images/s of the annotation code on 1 and 2 workers vs the bare loop: the fastest of
    `repeat` interleaved rounds, so a slow spell of the machine hits all alike. Warm figures
    come from this process, with its pool kept across rounds; cold ones from fresh processes."""
    from benchmarks.annotations import _timed, bare_loop, bare_loops_at_once
    from identity_data.defs.annotations import infer
    from identity_data.sample.images import jpeg, scenes

    items = [(f"cap-{i:05d}", jpeg(img, 88)) for i, img in enumerate(scenes(n, seed=42))]
    pickled = work / f"images-{n}.pickle"
    pickled.write_bytes(pickle.dumps(items))
    infer.annotate_blobs(items[:8], workers=1)  # imports and caches, as in a running process

    def m(t: float, mon) -> Measure:
        return Measure(mon.cpu_seconds, t, mon.peak_rss / 2**20)

    rounds = [
        (
            _timed(bare_loop, items),
            _timed(infer.annotate_blobs, items, workers=1),
            _timed(infer.annotate_blobs, items, workers=2),
            _timed(bare_loops_at_once, items, 2),
            cold_first_call(pickled, work / "logs" / f"cold-{n}.log"),
        )
        for _ in range(repeat)
    ]
    t_bare, _, m_bare = min((r[0] for r in rounds), key=lambda t: t[0])
    t_one, _, m_one = min((r[1] for r in rounds), key=lambda t: t[0])
    t_warm, _, m_warm = min((r[2] for r in rounds), key=lambda t: t[0])
    # The loops' own clock, from a common start once both have loaded the model.
    t_two, m_two = min(((r[3][1], r[3][2]) for r in rounds), key=lambda t: t[0])
    cold = min((r[4] for r in rounds), key=lambda c: c.wall)

    bare = m(t_bare, m_bare)
    label = f"bare loop, {n / t_bare:.1f} img/s"

    def row(work: str, measured: Measure, target: str) -> Row:
        speed = f"{n / measured.wall:.1f} img/s = {t_bare / measured.wall:.2f}x bare"
        return Row(f"{work}: {speed}", measured, label, bare, target)

    return [
        row(f"annotate {n:,} images, 1 worker", m(t_one, m_one), "img/s >= 0.9x bare"),
        row("  2 workers, cold: a fresh process's first call", cold, "img/s >= 1.8x bare"),
        row("  2 workers, warm pool", m(t_warm, m_warm), "img/s >= 1.8x bare"),
        row("  2 bare loops at once, half each (the cores' ceiling)", m(t_two, m_two), "-"),
    ]


def table(rows: list[Row], load: tuple[float, float]) -> str:
    head = (
        "| work | project CPU-s | wall s | peak MiB | reference | CPU-s | wall s | peak MiB "
        "| CPU ratio | wall ratio | target |\n|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = [
        f"| {r.work} | {r.project.cpu:.1f} | {r.project.wall:.1f} | {r.project.peak_mib:.0f} "
        f"| {r.reference_label} | {r.reference.cpu:.1f} | {r.reference.wall:.1f} "
        f"| {r.reference.peak_mib:.0f} | {r.ratio:.2f} "
        f"| {r.project.wall / r.reference.wall:.2f} | {r.target} |"
        for r in rows
    ]
    note = (
        f"\nLoad average (1 min) before: {load[0]:.2f}, after: {load[1]:.2f}, on "
        f"{len(os.sched_getaffinity(0))} cores.\n"
    )
    return head + "\n".join(lines) + "\n" + note


def chart(rows: list[Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 0.55 * len(rows) + 1.5))
    ys = range(len(rows))
    ax.barh([y + 0.2 for y in ys], [r.project.cpu for r in rows], 0.4, label="project")
    ax.barh([y - 0.2 for y in ys], [r.reference.cpu for r in rows], 0.4, label="reference")
    ax.set_yticks(list(ys), [r.work for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("CPU-seconds (log scale)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.pipeline", description=__doc__)
    p.add_argument("--sizes", default="10000,100000,1000000", help="rows per day, comma-separated")
    p.add_argument(
        "--images",
        default="300,1000,2000",
        help="images per annotation measurement, comma-separated (small partitions)",
    )
    p.add_argument("--backfill-days", type=int, default=30)
    p.add_argument(
        "--distinct",
        type=int,
        default=3000,
        help="also a first run and a re-run over a day of this many captures, each its own "
        "image (0: none)",
    )
    p.add_argument(
        "--huge",
        type=int,
        default=0,
        help="also extract one day of this many rows (e.g. 10000000), project only, against "
        "the project at the largest --sizes: memory must stay bounded by the batch size",
    )
    p.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs of each cheap measurement; the table shows the one with the least CPU",
    )
    p.add_argument("--work", type=Path, default=Path("/tmp/identity_data_bench"))
    p.add_argument("--out", default="pipeline", help="name of the table and chart files")
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    load_before = os.getloadavg()[0]
    print(f"load average before: {load_before:.2f}")

    bench = Bench(args.work)
    bench.prepare(max(args.backfill_days, SAMPLE_DAYS))
    rows: list[Row] = []

    r = args.repeat
    imported = best(r, bench.import_once)
    bench.reset()
    empty = best(r, lambda: bench.day("empty-day", CHAIN, DAY + timedelta(days=1)))
    rows.append(
        Row(
            "production chain, empty day", empty, "one import of the definitions", imported, "<= 2x"
        )
    )

    if args.backfill_days > 1:
        days = [DAY - timedelta(days=i) for i in reversed(range(args.backfill_days))]
        bench.reset()
        single = bench.run("backfill", CHAIN, "--partition-range", f"{days[0]}...{days[-1]}")
        bench.reset()
        many = Measure(0.0, 0.0, 0.0)
        for d in days:
            many = many + bench.day(f"day-{d}", CHAIN, d)
        rows.append(
            Row(
                f"{len(days)}-day backfill, one run",
                single,
                f"{len(days)} runs of one day",
                many,
                "single run cheaper",
            )
        )

    # The raw steps alone over an empty day: the per-run cost a bigger day's rows come on top of.
    bench.reset()
    empty_raw = best(r, lambda: bench.day("raw-empty-day", RAW, DAY + timedelta(days=1)))
    rows.append(
        Row(
            "raw extraction, empty day",
            empty_raw,
            "Dagster's floor: a one-asset project, same CLI",
            best(r, bench.floor),
            "-",
        )
    )

    for i, size in enumerate(sorted(sizes)):
        n = bench.scale(DAY, size)
        print(f"day {DAY}: {n} rows")
        bare = best(r, lambda: bench.bare(DAY))
        raw = best(r, functools.partial(bench.fresh, f"raw-{size}", RAW))
        rows.append(Row(f"raw extraction, {n:,} rows", raw, "bare script", bare, "<= 2x"))
        rows.append(
            Row(
                "  the same, above an empty day's raw run",
                raw.above(empty_raw),
                "bare script, whole",
                bare,
                "-",
            )
        )
        if i == 0:
            first = best(r, functools.partial(bench.fresh, f"chain-first-{size}", CHAIN))
            again = best(r, functools.partial(bench.day, f"chain-again-{size}", CHAIN, DAY))
            rows.append(
                Row(
                    f"re-run of the chain, {n:,} rows, nothing changed",
                    again,
                    "first run",
                    first,
                    "<= 0.1x",
                )
            )
            # The same two runs less the empty day's chain: the work a re-run still does.
            rows.append(
                Row(
                    "  the same, above the empty-day chain",
                    again.above(empty),
                    "first run, above the empty-day chain",
                    first.above(empty),
                    "-",
                )
            )
    if args.distinct:
        # Every capture its own image, as in a real day: the first run annotates them all, and
        # the re-run finds every one in the cache.
        own = Bench(args.work / f"distinct-{args.distinct}")
        own.prepare(1, args.distinct, None)
        first = best(r, functools.partial(own.fresh, "distinct-first", CHAIN))
        again = best(r, lambda: own.day("distinct-again", CHAIN, DAY))
        rows.append(
            Row(
                f"re-run of the chain, {args.distinct:,} captures each its own image",
                again,
                "first run",
                first,
                "<= 0.1x",
            )
        )
    if args.huge:
        n = bench.scale(DAY, args.huge)
        print(f"day {DAY}: {n} rows")
        bench.reset()
        huge = bench.day(f"raw-{args.huge}", RAW, DAY)
        rows.append(
            Row(
                f"raw extraction, {n:,} rows",
                huge,
                f"project, {sorted(sizes)[-1]:,} rows" if sizes else "-",
                raw if sizes else Measure(0.0, 0.0, 0.0),
                "peak bounded",
            )
        )
    bench.scale(DAY, 0)

    for n in (int(s) for s in args.images.split(",") if s):
        rows += annotation_rows(n, r, args.work)

    text = table(rows, (load_before, os.getloadavg()[0]))
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.out}.md").write_text(
        "# benchmarks.pipeline\n\n`python -m benchmarks.pipeline "
        # Quoted, so the recorded command can be pasted back (an empty --sizes included).
        + shlex.join(argv if argv is not None else sys.argv[1:])
        + "`\n\n"
        + text
    )
    chart(rows, RESULTS / f"{args.out}.png")
    print(f"wrote {RESULTS / args.out}.md and .png")


if __name__ == "__main__":
    main()
