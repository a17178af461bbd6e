"""Label consensus benchmark: project Dawid-Skene vs crowd-kit vs majority vote.

    .venv/bin/python -m benchmarks.consensus                  # 1M simulated annotations
    .venv/bin/python -m benchmarks.consensus --parse-mb 200   # also: streaming parse vs json.load
    .venv/bin/python -m benchmarks.consensus --sample data/   # accuracy on the sample's exports

Each method runs in its own subprocess so its peak RSS (VmHWM) is its own; rss_before is the
peak after simulating the input, so peak - before is what the method itself needed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

from identity_data.defs.labels.consensus import dawid_skene, majority_vote
from identity_data.defs.labels.parse import parse_flat_csv, parse_label_studio, pool_latest
from identity_data.sample.crowd import simulate_crowd, write_label_studio_export

METHODS = ("mv", "ds", "crowdkit")


def _peak_mib() -> float:
    """This process's peak RSS. Not ru_maxrss: Linux carries it over from the forking parent."""
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) / 1024


def _crowdkit(annotations: pl.DataFrame) -> pl.DataFrame:
    from crowdkit.aggregation import DawidSkene

    data = annotations.select(task="capture_id", worker="annotator", label="label").to_pandas()
    labels = DawidSkene(n_iter=100, tol=1e-5).fit_predict(data)
    return pl.DataFrame({"capture_id": labels.index.astype(str), "label": labels.astype(str)})


def _predict(method: str, annotations: pl.DataFrame) -> pl.DataFrame:
    """(capture_id, task, label) predicted by `method` for a single-task frame."""
    task = annotations["task"][0]
    if method == "mv":
        return majority_vote(annotations).select("capture_id", "task", label="mv_label")
    if method == "ds":
        return dawid_skene(annotations)[0].select("capture_id", "task", "label")
    return _crowdkit(annotations).with_columns(task=pl.lit(task))


def _worker(method: str, n_items: int, out: Path) -> None:
    annotations = simulate_crowd(n_items, seed=2026).annotations
    before = _peak_mib()
    start = time.perf_counter()
    predicted = _predict(method, annotations)
    seconds = time.perf_counter() - start
    predicted.write_parquet(out)
    print(json.dumps({"seconds": seconds, "rss_before": before, "rss_peak": _peak_mib()}))


def _run_worker(method: str, n_items: int, tmp: Path) -> tuple[dict, pl.DataFrame]:
    out = tmp / f"{method}.parquet"
    cmd = [sys.executable, "-m", "benchmarks.consensus", "--worker", method]
    cmd += ["--items", str(n_items), "--out", str(out)]
    stats = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    return stats, pl.read_parquet(out)


def simulated(n_items: int) -> None:
    crowd = simulate_crowd(n_items, seed=2026)
    truth = crowd.truth.rename({"label": "truth"})
    print(
        f"simulated: {crowd.annotations.height:,} annotations, {n_items:,} captures, "
        f"{crowd.confusion.shape[0]} annotators, {crowd.confusion.shape[1]} classes, one task"
    )
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for method in METHODS:
            stats, predicted = _run_worker(method, n_items, Path(tmp))
            results[method] = (stats, predicted.join(truth, on=["capture_id", "task"]))
    print(
        f"{'method':<14}{'seconds':>10}{'accuracy':>10}{'rss_before_MiB':>16}{'rss_peak_MiB':>14}"
    )
    names = {"mv": "majority vote", "ds": "project DS", "crowdkit": "crowd-kit DS"}
    for method, (stats, joined) in results.items():
        accuracy = (joined["label"] == joined["truth"]).mean()
        print(
            f"{names[method]:<14}{stats['seconds']:>10.2f}{accuracy:>10.4f}"
            f"{stats['rss_before']:>16.0f}{stats['rss_peak']:>14.0f}"
        )
    ours, theirs = results["ds"][1], results["crowdkit"][1]
    both = ours.join(theirs.select("capture_id", ck="label"), on="capture_id")
    print(f"project DS vs crowd-kit DS label agreement: {(both['label'] == both['ck']).mean():.4f}")
    speedup = results["crowdkit"][0]["seconds"] / results["ds"][0]["seconds"]
    print(f"speed-up project DS over crowd-kit DS: {speedup:.1f}x")


_PARSE_SCRIPT = """
import json, sys, time
from benchmarks.consensus import _peak_mib
start, cpu = time.perf_counter(), time.process_time()
if sys.argv[1] == "json.load":
    with open(sys.argv[2], "rb") as fh:
        rows = sum(len(t["annotations"]) for t in json.load(fh))
else:
    from identity_data.defs.labels import bounds
    from identity_data.defs.labels.parse import parse_label_studio
    if sys.argv[1] == "unguarded":
        # What the byte-level limits cost: the same parse with the guard switched off.
        bounds.JsonGuard.check = lambda self, chunk: None
    a, q = parse_label_studio(sys.argv[2], "bench", "bench.json")
    rows = a.height + q.height
print(json.dumps([rows, time.perf_counter() - start, time.process_time() - cpu, _peak_mib()]))
"""


def parse_memory(megabytes: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.json"
        write_label_studio_export(path, megabytes * 1024 * 1024)
        size = path.stat().st_size / 2**20
        print(f"Label Studio export: {size:.0f} MiB")
        print(f"{'reader':<22}{'rows':>10}{'seconds':>10}{'cpu_s':>8}{'peak_rss_MiB':>14}")
        for reader in ("parse_label_studio", "unguarded", "json.load"):
            cmd = [sys.executable, "-c", _PARSE_SCRIPT, reader, str(path)]
            done = subprocess.run(cmd, capture_output=True, text=True, check=True)
            rows, seconds, cpu, peak = json.loads(done.stdout)
            print(f"{reader:<22}{rows:>10,}{seconds:>10.1f}{cpu:>8.1f}{peak:>14.0f}")


def sample(root: Path) -> None:
    exports = sorted((root / "lake" / "label-exports").glob("*"))
    frames, quarantined = [], 0
    for path in exports:
        parser = {".json": parse_label_studio, ".csv": parse_flat_csv}.get(path.suffix)
        if parser is None:
            continue
        annotations, quarantine = parser(path, path.stem, path.name)
        frames.append(annotations)
        quarantined += quarantine.height
    if not frames:
        print(f"no label exports under {root / 'lake' / 'label-exports'}")
        return
    pooled = pool_latest(pl.concat(frames))
    truth = pl.read_csv(root / "ground_truth" / "labels.csv", infer_schema=False)
    truth = truth.select("capture_id", "task", truth="label")
    print(
        f"{len(frames)} exports, {pooled.height:,} pooled annotations, {quarantined:,} quarantined"
    )
    print(f"{'task':<18}{'captures':>10}{'MV':>8}{'DS':>8}{'crowd-kit':>11}")
    for (task,), part in pooled.partition_by("task", as_dict=True).items():
        scores = []
        for method in METHODS:
            joined = _predict(method, part).join(truth, on=["capture_id", "task"])
            scores.append((joined["label"] == joined["truth"]).mean())
        captures = part["capture_id"].n_unique()
        print(
            f"{task:<18}{captures:>10,}"
            + "".join(f"{s:>8.4f}" for s in scores[:2])
            + f"{scores[2]:>11.4f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=300_000, help="simulated captures")
    parser.add_argument("--sample", type=Path, help="data root with label exports and truth")
    parser.add_argument("--parse-mb", type=int, help="also measure parsing an export this big")
    parser.add_argument("--worker", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args.worker, args.items, args.out)
    elif args.sample:
        sample(args.sample)
    else:
        simulated(args.items)
        if args.parse_mb:
            parse_memory(args.parse_mb)


if __name__ == "__main__":
    main()
