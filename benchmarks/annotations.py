"""Annotation throughput: the infer.py code path vs a bare loop over the same model.

    .venv/bin/python -m benchmarks.annotations [n_images]

Prints images/s for a bare loop (decode + detect + metrics, no pool, no row building), for
`annotate_blobs` with 1 worker and with every core, their ratios, the time per 10,000 captures
and peak RSS of the process tree (parent + pool workers, sampled from /proc).
"""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import pickle
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import imagehash
import numpy as np
from PIL import Image

from identity_data.defs.annotations import infer
from identity_data.defs.annotations.detector import MtcnnDetector


def processes() -> dict[int, tuple[int, int, int]]:
    """{pid: (ppid, rss bytes, cpu ticks)} of every process, from /proc."""
    info: dict[int, tuple[int, int, int]] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            statm = (entry / "statm").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        # fields[1] = ppid, fields[11] + fields[12] = utime + stime (man 5 proc).
        ticks = int(fields[11]) + int(fields[12])
        info[int(entry.name)] = (int(fields[1]), int(statm.split()[1]) * page, ticks)
    return info


def _tree(root: int) -> dict[int, tuple[int, int]]:
    """{pid: (rss bytes, cpu ticks)} for `root` and all its descendants, from /proc."""
    info = processes()
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        kids = [p for p, (ppid, _, _) in info.items() if ppid == pid and p not in tree]
        tree.update(kids)
        frontier.extend(kids)
    return {p: info[p][1:] for p in tree if p in info}


class TreeMonitor:
    """Peak RSS and CPU seconds of this process tree (pool workers included), every 0.5 s.

    The sampler's own CPU time is subtracted so it does not count as work.
    """

    def __init__(self) -> None:
        self.peak_rss = 0
        self._baseline = {p: t for p, (_, t) in _tree(os.getpid()).items()}
        self._ticks: dict[int, int] = dict(self._baseline)
        self._own_cpu = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        tree = _tree(os.getpid())
        self.peak_rss = max(self.peak_rss, sum(rss for rss, _ in tree.values()))
        for pid, (_, ticks) in tree.items():
            self._ticks[pid] = max(ticks, self._ticks.get(pid, 0))

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._own_cpu = time.thread_time()
            # Sparse: each sample walks /proc, and CPU it takes is CPU the workers lose.
            self._stop.wait(0.5)

    @property
    def cpu_seconds(self) -> float:
        used = sum(self._ticks.values()) - sum(self._baseline.values())
        return used / os.sysconf("SC_CLK_TCK") - self._own_cpu

    def __enter__(self) -> TreeMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def bare_loop(items: list[tuple[str, bytes]]) -> int:
    """The minimum work per image with the same model: no verify pass, no rows, no pool."""
    cv2.setNumThreads(1)
    detector = MtcnnDetector()
    detector.load()
    faces = 0
    for _, data in items:
        with Image.open(io.BytesIO(data)) as img:
            rgb = img.convert("RGB")
        arr = np.asarray(rgb)
        gray = cv2.cvtColor(arr, cv2.COLOR_RGB2GRAY)
        found = detector.detect(cv2.cvtColor(arr, cv2.COLOR_RGB2BGR))
        cv2.Laplacian(gray, cv2.CV_64F).var()
        if found:
            f = found[0]
            cv2.Laplacian(gray[f.y : f.y + f.h, f.x : f.x + f.w], cv2.CV_64F).var()
        _ = gray.mean(), np.count_nonzero(gray >= 250), np.count_nonzero(gray <= 5)
        w, h = rgb.size
        for inset in (0.0, 0.03, 0.06):
            dx, dy = round(w * inset), round(h * inset)
            str(imagehash.phash(rgb.crop((dx, dy, w - dx, h - dy))))
        faces += bool(found)
    return faces


def _timed_share(items: list[tuple[str, bytes]], start: Any) -> float:
    cv2.setNumThreads(1)
    bare_loop(items[:1])  # loads the model before the clock starts
    start.wait()
    began = time.perf_counter()
    bare_loop(items)
    return time.perf_counter() - began


def bare_loops_at_once(items: list[tuple[str, bytes]], processes: int) -> float:
    """Seconds for `processes` bare loops started together, each over its share of `items`
    (the slowest one's time): what this machine's cores give to independent copies of the
    work, with no pool, the ceiling for a pool's scaling."""
    ctx = multiprocessing.get_context("forkserver")
    shares = [items[i::processes] for i in range(processes)]
    with (
        ctx.Manager() as manager,
        ProcessPoolExecutor(max_workers=processes, mp_context=ctx) as pool,
    ):
        start = manager.Barrier(processes)
        return max(pool.map(_timed_share, shares, [start] * processes))


def _timed(fn, *args, **kwargs) -> tuple[float, object, TreeMonitor]:
    with TreeMonitor() as monitor:
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        elapsed = time.perf_counter() - start
    return elapsed, result, monitor


COLD = "from benchmarks.annotations import cold_call; cold_call()"


def cold_call() -> None:
    """In a fresh process: `annotate_blobs` on 2 workers over the pickled items named by argv,
    as a run's first annotation call meets it, with the definitions' imports done (pandera
    through the row schema) but no fork server, pool or detector yet. Prints seconds, CPU-s
    of the process tree during the call and its peak RSS, as JSON."""
    items = pickle.loads(Path(sys.argv[1]).read_bytes())
    infer.annotation_schema()
    seconds, _, monitor = _timed(infer.annotate_blobs, items, workers=2)
    print(json.dumps([seconds, monitor.cpu_seconds, monitor.peak_rss]))


def main() -> None:
    # Imported here: pool workers re-import __main__, and matplotlib would add ~0.5 s to each.
    from identity_data.sample.images import jpeg, scenes

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    cores = infer.default_workers()
    items = [(f"cap-{i:05d}", jpeg(img, 88)) for i, img in enumerate(scenes(n, seed=42))]
    mean_kb = sum(len(d) for _, d in items) / n / 1024
    print(
        f"{n} JPEGs 640x480 (mean {mean_kb:.0f} KB), {cores} cores, "
        f"loadavg before: {os.getloadavg()[0]:.2f}"
    )
    infer.annotate_blobs(items[:8], workers=1)  # warm imports and caches

    t_bare, faces, m_bare = _timed(bare_loop, items)
    t_one, rows_one, m_one = _timed(infer.annotate_blobs, items, workers=1)
    t_all, rows_all, m_all = _timed(infer.annotate_blobs, items, workers=cores)
    assert rows_one.equals(rows_all, null_equal=True)
    assert int((rows_one["face_count"] > 0).sum()) == faces

    def line(label: str, seconds: float, m: TreeMonitor) -> None:
        print(
            f"{label:<28}{n / seconds:>9.1f}{seconds / n * 1e4 / 60:>9.1f}"
            f"{m.cpu_seconds / n * 1e3:>11.1f}{n / m.cpu_seconds:>12.1f}{m.peak_rss / 2**20:>10.0f}"
        )

    print(
        f"{'path':<28}{'img/s':>9}{'min/10k':>9}{'cpu ms/img':>11}{'img/cpu-s':>12}{'peak MiB':>10}"
    )
    line("bare loop (1 process)", t_bare, m_bare)
    line("annotate_blobs workers=1", t_one, m_one)
    line(f"annotate_blobs workers={cores}", t_all, m_all)
    print(
        f"asset path / bare loop, 1 worker: wall {t_bare / t_one:.2f}x, "
        f"cpu {m_bare.cpu_seconds / m_one.cpu_seconds:.2f}x (target >= 0.9x)"
    )
    print(
        f"scaling {cores} workers / 1 worker: wall {t_one / t_all:.2f}x (target >= 1.8x), "
        f"cpu overhead of the pool {m_all.cpu_seconds / m_one.cpu_seconds:.2f}x"
    )
    print(
        f"faces found: {faces}/{n}; loadavg after: {os.getloadavg()[0]:.2f} "
        "(other processes share these cores: compare the cpu columns)"
    )


if __name__ == "__main__":
    main()
