"""Near-duplicate captures across the whole lake from 64-bit perceptual hashes.

Each capture carries up to three pHashes (whole image, 3% and 6% inset crops, HASH_COLUMNS);
two captures are near-duplicates if any of their hashes are within the threshold.

Search (multi-index hashing): identical hashes are grouped first, so exact duplicates cost no
comparison. The 64 bits are cut into b = max(4, ceil((t + 1) / 2)) bands; two hashes within t
bits differ by at most 1 bit in at least one band (pigeonhole), so each band is joined with
itself and with its one-bit flips, and every candidate is verified by XOR + popcount. Expected
work O(b * (64 / b + 1) * U^2 / 2^(64 / b)) candidate pairs for U distinct hashes: t = 8 gives
5 bands of 12-13 bits, about U^2 / 230 candidates (4e9 for 1M captures x 3 hashes, where an
all-pairs scan would be 4.5e12). The probe side is joined in chunks to bound memory.

Clusters are the connected components of the pair graph (scipy); cluster_id is the smallest
capture_id in the cluster, which is also the one representative.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

# Measured on 150 scenes (LFW faces on flipped crops of 19 packaged photos) plus one copy each
# made with the sample generator's transforms (test_dedup.py), pairwise after closure:
#   threshold                  4     6     8     10    12    14
#   phash only   precision     1.00  1.00  1.00  0.97  0.97  0.97
#                recall        0.69  0.71  0.77  0.81  0.90  0.93
#   + inset crops precision    1.00  1.00  0.97  0.97  0.97  0.68
#                recall        0.83  0.89  0.95  0.99  1.00  1.00
# Recompress and resize stay within 2 bits; a 1-8% recrop moves the whole-image pHash by 10
# bits (median) to 20, but one of the inset crops stays close. pHash distances here come out
# even, so 8 and 9 behave alike.
# On the generated sample (`make demo`, then `python -m benchmarks.sample_quality`), whose
# selfies reuse ~100 faces and whose ID photos share one card template, distinct captures come
# closer: threshold 4-5 gives precision 0.97 / recall 1.00, 6-7 gives 0.88 / 1.00 and 8 gives
# 0.47 / 1.00. The default follows the sample; re-crops beyond ~3% per side then need 8.
DEFAULT_THRESHOLD = 5
# Bump when the clustering rule changes; the threshold is part of it.
DEDUP_CODE_VERSION = f"phash3-hamming-{DEFAULT_THRESHOLD}-v1"
_JOIN_ROWS = 4_000_000

# pHash of the whole image, then of the image with 3% and 6% cut from every side: a copy
# re-cropped by 1-8% per side is much closer to one of the inset crops than to the whole image.
HASH_COLUMNS = ("phash", "phash_crop3", "phash_crop6")
PAIR_SCHEMA = pl.Schema(
    {"capture_id_a": pl.String, "capture_id_b": pl.String, "distance": pl.Int64}
)


def hash_to_int(hex_hash: pl.Expr) -> pl.Expr:
    """16 hex characters -> UInt64."""
    return hex_hash.str.to_integer(base=16, dtype=pl.UInt64, strict=True)


def bands(threshold: int) -> list[tuple[int, int]]:
    """(shift, width) of the bands: enough that some band is within 1 bit for distance <= t."""
    n = max(4, math.ceil((threshold + 1) / 2))
    widths = [64 // n + (k < 64 % n) for k in range(n)]
    shifts = [sum(widths[:k]) for k in range(n)]
    return list(zip(shifts, widths, strict=True))


def _mih_pairs(hashes: np.ndarray, threshold: int) -> tuple[np.ndarray, np.ndarray]:
    index = np.arange(len(hashes), dtype=np.int64)
    layout = bands(threshold)
    found = []
    for shift, width in layout:
        key = ((hashes >> np.uint64(shift)) & np.uint64((1 << width) - 1)).astype(np.uint32)
        keyed = pl.DataFrame({"i": index, "h": hashes, "key": key})
        # With fewer bands than t + 1, an exact band match alone is not guaranteed.
        masks = [0] + ([1 << b for b in range(width)] if threshold >= len(layout) else [])
        # Each probe row meets ~len / 2^width rows: size chunks to ~_JOIN_ROWS joined rows.
        chunk = max(1024, _JOIN_ROWS * (1 << width) // max(len(hashes), 1))
        for mask in masks:
            for start in range(0, len(hashes), chunk):
                probe = keyed.slice(start, chunk).with_columns(
                    key=pl.col("key") ^ pl.lit(mask, dtype=pl.UInt32)
                )
                pairs = (
                    probe.join(keyed, on="key", suffix="_r")
                    .filter(pl.col("i") < pl.col("i_r"))
                    .filter((pl.col("h") ^ pl.col("h_r")).bitwise_count_ones() <= threshold)
                    .select("i", "i_r")
                )
                if pairs.height:
                    found.append(pairs)
    if not found:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    pairs = pl.concat(found).unique()
    return pairs["i"].to_numpy(), pairs["i_r"].to_numpy()


def hash_pairs(hashes: np.ndarray, threshold: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index pairs (i < j) of distinct uint64 hashes within `threshold` bits, with distances."""
    if threshold < 0:
        raise ValueError(f"threshold must be >= 0, got {threshold}")
    i, j = _mih_pairs(hashes, threshold)
    order = np.lexsort((j, i))
    i, j = i[order], j[order]
    return i, j, np.bitwise_count(hashes[i] ^ hashes[j]).astype(np.int64)


def _entries(captures: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(index: k, capture_id), (members: k, u), (distinct: u, h) over every hash column present."""
    index = captures.select("capture_id").sort("capture_id").with_row_index("k")
    if index["capture_id"].n_unique() != index.height:
        raise ValueError("capture_id must be unique in near-duplicate input")
    columns = [c for c in HASH_COLUMNS if c in captures.columns]
    if "phash" not in columns:
        raise ValueError(f"near-duplicate input needs a 'phash' column, got {captures.columns}")
    hashed = (
        captures.unpivot(index="capture_id", on=columns, value_name="hex")
        .filter(pl.col("hex").is_not_null())
        .join(index, on="capture_id")
        .select("k", h=hash_to_int(pl.col("hex")))
        .unique()
    )
    distinct = hashed.select(pl.col("h").unique().sort()).with_row_index("u")
    members = hashed.join(distinct, on="h").select("k", "u")
    return index, members, distinct


def _capture_pairs(
    members: pl.DataFrame, i: np.ndarray, j: np.ndarray, d: np.ndarray, *, with_shared: bool
) -> pl.DataFrame:
    """(k_a < k_b, distance = min over their hashes) for the hash pairs (i, j, d).

    `with_shared` adds the distance-0 pairs of captures sharing a hash; that is quadratic in the
    size of a group of identical hashes, so clustering handles those groups separately.
    """
    hash_pairs_ = pl.DataFrame(
        {"u_a": i.astype(np.uint32), "u_b": j.astype(np.uint32), "distance": d},
        schema={"u_a": pl.UInt32, "u_b": pl.UInt32, "distance": pl.Int64},
    )
    if with_shared:
        shared = members.select(u_a="u", u_b="u", distance=pl.lit(0, pl.Int64)).unique()
        hash_pairs_ = pl.concat([hash_pairs_, shared])
    left = members.rename({"k": "k_a", "u": "u_a"})
    right = members.rename({"k": "k_b", "u": "u_b"})
    return (
        hash_pairs_.join(left, on="u_a")
        .join(right, on="u_b")
        # A capture's own crops hash close to its full image: not a duplicate of anything.
        .filter(pl.col("k_a") != pl.col("k_b"))
        .select(
            a=pl.min_horizontal("k_a", "k_b"),
            b=pl.max_horizontal("k_a", "k_b"),
            distance="distance",
        )
        .group_by("a", "b")
        .agg(pl.col("distance").min())
    )


def near_duplicate_pairs(
    captures: pl.DataFrame, threshold: int = DEFAULT_THRESHOLD
) -> pl.DataFrame:
    """Every unordered pair of captures (a < b) with some pair of hashes within `threshold`."""
    index, members, distinct = _entries(captures)
    i, j, d = hash_pairs(distinct["h"].to_numpy(), threshold)
    names = index.select(k="k", name="capture_id")
    return (
        _capture_pairs(members, i, j, d, with_shared=True)
        .join(names.rename({"k": "a", "name": "capture_id_a"}), on="a")
        .join(names.rename({"k": "b", "name": "capture_id_b"}), on="b")
        .select("capture_id_a", "capture_id_b", "distance")
        .sort("capture_id_a", "capture_id_b")
        .cast(PAIR_SCHEMA)
    )


def _components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Component label per node 0..n-1 of the undirected graph with edges (a[k], b[k])."""
    # Imported here: scipy.sparse is ~0.3 s of import, and every process that loads the
    # definitions (each run, the daemon, the code server) would pay it for this one asset.
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def near_duplicates(captures: pl.DataFrame, threshold: int = DEFAULT_THRESHOLD) -> pl.DataFrame:
    """One row per input capture: capture_id, cluster_id, is_representative, nearest_distance.

    Uses `phash` and, when present, the inset-crop hashes of HASH_COLUMNS. Captures without any
    hash (undecodable) are their own cluster with a null nearest_distance.
    """
    index, members, distinct = _entries(captures)
    i, j, d = hash_pairs(distinct["h"].to_numpy(), threshold)

    # Identical hashes: a star from each hash's first capture, linear in the group size.
    first = members.group_by("u").agg(first_k=pl.col("k").min(), n=pl.col("k").n_unique())
    star = members.join(first, on="u")
    between = _capture_pairs(members, i, j, d, with_shared=False)
    labels = _components(
        index.height,
        np.concatenate([star["k"].to_numpy(), between["a"].to_numpy()]),
        np.concatenate([star["first_k"].to_numpy(), between["b"].to_numpy()]),
    )
    nearest = (
        pl.concat(
            [
                star.filter(pl.col("n") > 1).select("k", distance=pl.lit(0, pl.Int64)),
                between.select(k="a", distance="distance"),
                between.select(k="b", distance="distance"),
            ]
        )
        .group_by("k")
        .agg(nearest_distance=pl.col("distance").min())
    )
    return (
        index.with_columns(label=pl.Series(labels, dtype=pl.Int64))
        .join(nearest, on="k", how="left")
        .with_columns(cluster_id=pl.col("capture_id").min().over("label"))
        .select(
            "capture_id",
            "cluster_id",
            is_representative=pl.col("capture_id") == pl.col("cluster_id"),
            nearest_distance="nearest_distance",
        )
        .sort("capture_id")
    )


def _closure(a: list[str], b: list[str]) -> set[tuple[str, str]]:
    """All unordered pairs that end up in one connected component of the edges (a, b)."""
    names = sorted(set(a) | set(b))
    pos = {n: k for k, n in enumerate(names)}
    labels = _components(len(names), np.array([pos[x] for x in a]), np.array([pos[x] for x in b]))
    groups: dict[int, list[str]] = {}
    for name, label in zip(names, labels, strict=True):
        groups.setdefault(int(label), []).append(name)
    return {(x, y) for g in groups.values() for k, x in enumerate(g) for y in g[k + 1 :]}


def evaluate(pairs_found: pl.DataFrame, truth: pl.DataFrame) -> tuple[float, float]:
    """Pairwise (precision, recall) of found pairs against truth (capture_id, duplicate_of).

    Both sides are closed transitively first: two copies of one original are duplicates of
    each other too.
    """
    found = _closure(pairs_found["capture_id_a"].to_list(), pairs_found["capture_id_b"].to_list())
    true = _closure(truth["capture_id"].to_list(), truth["duplicate_of"].to_list())
    hit = len(found & true)
    precision = hit / len(found) if found else 1.0
    recall = hit / len(true) if true else 1.0
    return precision, recall
