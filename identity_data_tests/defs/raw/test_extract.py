import io
import time
from datetime import UTC, datetime

import polars as pl
import pytest
import sqlalchemy as sa
from PIL import Image
from polars.testing import assert_frame_equal

from identity_data import capture_db
from identity_data.defs.raw import extract
from identity_data.defs.raw.extract import RECORD_SCHEMA, ManifestError, ingest, manifest_records
from identity_data.defs.raw.schemas import CaptureManifest, RawQuarantine
from identity_data.privacy import pseudonymise
from identity_data.safety import UnsafePathError
from identity_data.stores.blobs import LocalBlobStore
from identity_data_tests.stores.test_blobs import SETTLE_S

KEY = b"k" * 32


def jpeg(color: int = 128, size: tuple[int, int] = (64, 48)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (color, 90, 30)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture
def stores(tmp_path):
    return LocalBlobStore(tmp_path / "src"), LocalBlobStore(tmp_path / "lake")


def records(rows: list[dict]) -> pl.DataFrame:
    base = {
        "record": None,
        "capture_id": None,
        "subject_ref": "alice@example.com",
        "capture_type": "selfie",
        "device": "phone",
        "captured_at": datetime(2026, 11, 28, 10, tzinfo=UTC),
        "blob_key": None,
        "source_label": None,
    }
    return pl.DataFrame([base | r for r in rows], schema=RECORD_SCHEMA)


def test_ingest_accounts_for_every_record(stores):
    src, lake = stores
    blobs = {
        "a.jpg": jpeg(10),
        "b.jpg": jpeg(200),
        "trunc.jpg": jpeg(50)[:300],
        "zero.jpg": b"",
        "text.jpg": b"not an image",
    }
    for name, data in blobs.items():
        src.put_if_absent(name, data)
    recs = records(
        [
            {"record": "r1", "capture_id": "c1", "blob_key": "a.jpg"},
            {"record": "r2", "capture_id": "c2", "blob_key": "b.jpg"},
            {"record": "r3", "capture_id": "c3", "blob_key": "trunc.jpg"},
            {"record": "r4", "capture_id": "c4", "blob_key": "zero.jpg"},
            {"record": "r5", "capture_id": "c5", "blob_key": "text.jpg"},
            {"record": "r6", "capture_id": "c6", "blob_key": "missing.jpg"},
            {"record": "r7", "capture_id": "c1", "blob_key": "b.jpg"},
            {"record": "r8", "capture_id": "c8", "blob_key": "a.jpg", "capture_type": "passport"},
            {"record": "r9", "capture_id": None, "blob_key": "a.jpg"},
        ]
    )
    manifest, bad = ingest(recs, src.read, lake, KEY, "production", "2026-11-28")
    CaptureManifest.validate(manifest)
    RawQuarantine.validate(bad)
    assert manifest.height + bad.height == recs.height
    assert sorted(manifest["capture_id"]) == ["c1", "c2"]
    reasons = dict(zip(bad["record"], bad["field"] + ":" + bad["reason"], strict=True))
    assert reasons["r3"].startswith("blob:")
    assert reasons["r4"] == "blob:zero bytes"
    assert reasons["r5"].startswith("blob:not one of JPEG")
    assert reasons["r6"] == "blob:blob not found"
    assert reasons["r7"] == "capture_id:duplicate capture_id in this partition"
    assert reasons["r8"].startswith("capture_type:not one of")
    assert reasons["r9"] == "capture_id:missing"
    status = dict(zip(bad["record"], bad["decode_status"], strict=True))
    assert (status["r4"], status["r5"], status["r6"]) == ("empty", "not_image", "missing")
    assert status["r3"] in ("truncated", "corrupt")
    assert status["r7"] is None and status["r8"] is None


def test_ingest_content_addresses_and_pseudonymises(stores):
    src, lake = stores
    src.put_if_absent("a.jpg", jpeg(10))
    recs = records([{"record": "r1", "capture_id": "c1", "blob_key": "a.jpg"}])
    first, _ = ingest(recs, src.read, lake, KEY, "production", "2026-11-28")
    again, _ = ingest(recs, src.read, lake, KEY, "production", "2026-11-28")
    assert_frame_equal(first, again)
    row = first.row(0, named=True)
    assert row["blob_key"] == f"raw/captures/{row['sha256'][:2]}/{row['sha256']}.jpg"
    assert lake.read(row["blob_key"]) == src.read("a.jpg")
    expected = pseudonymise(KEY, pl.Series(["alice@example.com"]))[0]
    assert row["subject_pseudonym"] == expected
    assert "alice" not in first.write_csv()


def test_manifest_records_names_bad_rows(stores, tmp_path):
    src, _ = stores
    src.put_if_absent(
        "drop/c1/manifest.csv",
        b"capture_id,subject_ref,capture_type,device,captured_at,file\n"
        b"x1,s1,selfie,cam,2026-11-28T10:00:00Z,a.jpg\n"
        b"x2,s2,selfie,cam,yesterday,b.jpg\n",
    )
    recs = manifest_records(src, "drop/c1")
    assert recs["record"].to_list() == [
        "drop/c1/manifest.csv:line 2",
        "drop/c1/manifest.csv:line 3",
    ]
    _, bad = ingest(recs, src.read, src, KEY, "campaign", "c1")
    by_record = {r["record"]: r for r in bad.iter_rows(named=True)}
    assert by_record["drop/c1/manifest.csv:line 3"]["field"] == "captured_at"
    assert by_record["drop/c1/manifest.csv:line 3"]["reason"] == "not an ISO 8601 timestamp"


def test_manifest_without_required_column_fails_naming_it(stores):
    src, _ = stores
    src.put_if_absent("drop/c2/manifest.csv", b"capture_id,file\nx,a.jpg\n")
    with pytest.raises(ValueError, match=r"drop/c2/manifest.csv: manifest lacks columns"):
        manifest_records(src, "drop/c2")


class CountingLake(LocalBlobStore):
    """The real local store, counting create attempts of raw-zone blobs."""

    puts = 0

    def put_if_absent(self, key: str, data: bytes) -> bool:
        CountingLake.puts += key.startswith("raw/")
        return super().put_if_absent(key, data)


def test_blobs_are_read_once_and_decoded_once_per_content(tmp_path, monkeypatch):
    src, lake = LocalBlobStore(tmp_path / "src"), CountingLake(tmp_path / "lake")
    src.put_if_absent("a.jpg", jpeg(10))
    src.put_if_absent("b.jpg", jpeg(200))
    reads, decodes = [], []
    real_decode = extract.decode
    monkeypatch.setattr(extract, "decode", lambda data: decodes.append(1) or real_decode(data))

    def read(key: str) -> bytes:
        reads.append(key)
        return src.read(key)

    recs = records(
        [
            {"record": f"r{i}", "capture_id": f"c{i}", "blob_key": "ab"[i % 2] + ".jpg"}
            for i in range(50)
        ]
    )
    first, _ = ingest(recs, read, lake, KEY, "production", "2026-11-28")
    assert sorted(reads) == ["a.jpg", "b.jpg"] and len(decodes) == 2 and CountingLake.puts == 2
    reads.clear(), decodes.clear()
    CountingLake.puts = 0
    again, _ = ingest(recs, read, lake, KEY, "production", "2026-11-28")
    # Re-run: each source blob read once to hash it, nothing decoded, nothing copied again.
    assert len(reads) == 2 and decodes == [] and CountingLake.puts == 0
    assert_frame_equal(first, again)

    # A blob changed at the same source key is a new content: decoded and stored.
    (tmp_path / "src" / "b.jpg").write_bytes(jpeg(90))
    changed, _ = ingest(recs, read, lake, KEY, "production", "2026-11-28")
    assert len(decodes) == 1 and CountingLake.puts == 1
    assert changed["sha256"].n_unique() == 2
    assert set(changed["sha256"]) != set(first["sha256"])


def test_decode_cache_gives_the_same_manifest_as_decoding(tmp_path):
    src = LocalBlobStore(tmp_path / "src")
    for name, data in {"a.jpg": jpeg(10), "t.jpg": jpeg(50)[:300], "x.jpg": b"no"}.items():
        src.put_if_absent(name, data)
    recs = records(
        [
            {"record": f"r{i}", "capture_id": f"c{i}", "blob_key": k}
            for i, k in enumerate(["a.jpg", "t.jpg", "x.jpg", "a.jpg"])
        ]
    )
    cold = ingest(recs, src.read, LocalBlobStore(tmp_path / "cold"), KEY, "production", "d")
    warm_lake = LocalBlobStore(tmp_path / "warm")
    ingest(recs, src.read, warm_lake, KEY, "production", "d")
    warm = ingest(recs, src.read, warm_lake, KEY, "production", "d")
    strip = pl.col("blob_uri").str.replace(r"^.*/raw/", "raw/")
    for c, w in zip(cold, warm, strict=True):
        assert_frame_equal(c.with_columns(strip), w.with_columns(strip))


# Every way a manifest's `file` (or a database's blob path) could name a file outside its folder.
TRAVERSALS = {
    "../../outside/secret.jpg": "path_parent_reference",
    "sub/../../secret.jpg": "path_parent_reference",
    # Joined to the folder, an absolute name leaves an empty component: refused all the same.
    "/etc/passwd": "path_bad_component",
    "C:secret.jpg": "path_bad_component",
    "a.jpg\x00.png": "path_control_character",
    "..\\..\\secret.jpg": "path_backslash",
    "\uff0e\uff0e\uff0fsecret.jpg": "path_non_ascii",  # fullwidth ../
    "\u2025/secret.jpg": "path_non_ascii",  # two-dot leader
    "a\u2215..\u2215secret.jpg": "path_non_ascii",  # division slash
    ".hidden.jpg": "path_bad_component",
    "a//b.jpg": "path_bad_component",
}


def test_paths_from_input_never_leave_the_folder(tmp_path, stores):
    src, lake = stores
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(jpeg(7))
    src.put_if_absent("drop/c1/ok.jpg", jpeg(9))
    # A symlink that passes the grammar but resolves out of the store: refused when read.
    (src.root / "drop/c1/link.jpg").symlink_to(outside / "secret.jpg")
    rows = [
        {"record": f"r{n}", "capture_id": f"c{n}", "blob_key": f"drop/c1/{name}"}
        for n, name in enumerate([*TRAVERSALS, "link.jpg", "ok.jpg"])
    ]
    manifest, bad = ingest(records(rows), src.read, lake, KEY, "campaign", "c1")
    assert manifest["capture_id"].to_list() == [f"c{len(TRAVERSALS) + 1}"]
    reasons = dict(zip(bad["record"], bad["reason"], strict=True))
    for n, expected in enumerate(TRAVERSALS.values()):
        assert reasons[f"r{n}"] == expected, rows[n]
    assert reasons[f"r{len(TRAVERSALS)}"] == "path resolves outside its store"
    assert bad.filter(pl.col("reason").str.starts_with("path_"))["decode_status"].is_null().all()
    # Nothing from outside reached the raw zone.
    stored = [p.read_bytes() for p in (lake.root / "raw").rglob("*") if p.is_file()]
    assert stored == [jpeg(9)]


def test_store_refuses_keys_outside_its_root(tmp_path):
    store = LocalBlobStore(tmp_path / "lake")
    (tmp_path / "secret.txt").write_text("secret")
    for key in ["../secret.txt", "/etc/passwd", "a\x00b", "\uff0e\uff0e/secret.txt"]:
        for call in (store.read, store.open, store.exists, store.uri):
            with pytest.raises(UnsafePathError):
                call(key)
        with pytest.raises(UnsafePathError):
            store.put_if_absent(key, b"x")
    assert not (tmp_path / "x").exists()


HEADER = b"capture_id,subject_ref,capture_type,device,captured_at,file\n"


def test_unreadable_manifest_fails_without_quoting_it(stores):
    src, _ = stores
    probe = b"probe.person@example.org"
    src.put_if_absent("drop/c3/manifest.csv", b'capture_id,"' + probe + b",file\nx,a\n")
    src.put_if_absent("drop/c4/manifest.csv", b"capture_id,file\n\xff\xfe" + probe + b",a\n")
    for folder, where in (("drop/c3", "line 1"), ("drop/c4", "line 2")):
        with pytest.raises(ManifestError, match=rf"^{folder}/manifest.csv: {where}: ") as err:
            manifest_records(src, folder)
        assert probe.decode() not in str(err.value)
        # No chained cause or context carries the third-party message either.
        assert err.value.__cause__ is None
        assert err.value.__context__ is None or err.value.__suppress_context__


def test_an_open_quote_is_quarantined_on_its_own_line(stores):
    """polars merged every line up to the next quote into one record: the lines between
    vanished, and the merged one could even pass as a capture. Every physical line is a record."""
    src, lake = stores
    probe = "probe.person@example.org"
    for i in range(1, 6):
        src.put_if_absent(f"drop/c5/{i}.jpg", jpeg(10 * i))
    lines = [
        "x1,s1,selfie,cam,2026-11-28T10:00:00Z,1.jpg",
        f'x2,s2,selfie,"cam {probe},2026-11-28T10:00:00Z,2.jpg',
        "x3,s3,selfie,cam,2026-11-28T10:00:00Z,3.jpg",
        # Where polars' merged record ended: a stray quote inside a field is text.
        'x4,s4",selfie,cam,2026-11-28T10:00:00Z,4.jpg',
        f'x5,s5,selfie,cam,"2026-11-28T10:00:00Z"{probe},5.jpg',
        "x6,s6,selfie,cam,2026-11-28T10:00:00Z",
        "x7,s7,selfie,cam,2026-11-28T10:00:00Z,5.jpg",
    ]
    src.put_if_absent("drop/c5/manifest.csv", HEADER + "\n".join(lines).encode() + b"\n")
    recs = manifest_records(src, "drop/c5")
    assert recs.height == len(lines)
    manifest, bad = ingest(recs, src.read, lake, KEY, "campaign", "c5")
    assert manifest.height + bad.height == len(lines)
    assert manifest["capture_id"].to_list() == ["x1", "x3", "x4", "x7"]
    assert bad.select("record", "capture_id", "field", "reason").rows() == [
        (
            "drop/c5/manifest.csv:line 3",
            None,
            "device",
            "unterminated quote: a field cannot span lines",
        ),
        ("drop/c5/manifest.csv:line 6", None, "captured_at", "text after a closing quote"),
        ("drop/c5/manifest.csv:line 7", None, "row", "5 fields where the header has 6"),
    ]
    assert probe not in recs.write_csv() + bad.write_csv()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("device", "probe.person@example.org"),
        ("device", "Jane Doe"),
        ("device", "x" * 65),
        ("device", "phone\u200b"),
        ("source_label", "probe.person@example.org"),
        ("source_label", "Jane Doe"),
        ("source_label", "face\n"),
    ],
)
def test_free_text_columns_outside_their_grammar_are_quarantined(stores, field, value):
    """Free text typed into a device or a dataset's label could be a name or an e-mail address;
    those columns hold tokens, and a row with anything else is kept out naming the field."""
    src, lake = stores
    src.put_if_absent("a.jpg", jpeg(10))
    rows = [
        {"record": "r1", "capture_id": "c1", "blob_key": "a.jpg", "source_label": "face"},
        {"record": "r2", "capture_id": "c2", "blob_key": "a.jpg", field: value},
        {"record": "r3", "capture_id": "c3", "blob_key": "a.jpg", "device": None},
    ]
    manifest, bad = ingest(records(rows), src.read, lake, KEY, "open_dataset", "d")
    assert manifest["capture_id"].to_list() == ["c1", "c3"]
    assert bad.select("record", "capture_id", "field", "reason").rows() == [
        ("r2", "c2", field, "not a token of A-Z a-z 0-9 . _ : - (1-64 characters)")
    ]
    assert value.strip() not in bad.write_csv()


def test_a_db_row_with_a_free_text_capture_id_is_named_by_position(tmp_path, stores):
    src, lake = stores
    src.put_if_absent("b/a.jpg", jpeg(10))
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    capture_db.metadata.create_all(engine)
    at = datetime(2026, 11, 28, 10, tzinfo=UTC)
    with engine.begin() as con:
        con.execute(
            capture_db.subjects.insert(),
            [
                dict(
                    subject_id="s",
                    customer_ref="c",
                    full_name="n",
                    document_number="d",
                    created_at=at,
                )
            ],
        )
        con.execute(
            capture_db.sessions.insert(),
            [dict(session_id="x", subject_id="s", device="phone", started_at=at)],
        )
        con.execute(
            capture_db.captures.insert(),
            [
                dict(
                    capture_id=cid,
                    session_id="x",
                    subject_ref="alice@example.com",
                    capture_type="selfie",
                    device="phone",
                    captured_at=at,
                    blob_path="b/a.jpg",
                )
                for cid in ("cap-1", "Jane Doe <jane.doe@example.org>")
            ],
        )
    (recs,) = extract.production_records(engine, at.date())
    manifest, quarantine = ingest(recs, src.read, lake, KEY, "production", "2026-11-28")
    assert manifest["capture_id"].to_list() == ["cap-1"]
    # Ordered by capture_id, the free-text id is the day's first row.
    assert quarantine.select("record", "capture_id", "field").rows() == [
        ("captures:2026-11-28 row 1", None, "capture_id")
    ]
    assert "jane" not in quarantine.write_csv().lower()


def test_duplicates_with_one_record_name_are_each_accounted_for(stores):
    # A database record is named after its capture id, so two rows with one id share a name.
    src, lake = stores
    src.put_if_absent("a.jpg", jpeg(10))
    same = {"record": "captures:c1", "capture_id": "c1", "blob_key": "a.jpg"}
    manifest, bad = ingest(records([same, same]), src.read, lake, KEY, "production", "d")
    assert (manifest.height, bad.height) == (1, 1)
    assert bad["reason"].to_list() == ["duplicate capture_id in this partition"]


def test_a_duplicate_across_a_batch_boundary_is_quarantined(stores):
    src, lake = stores
    src.put_if_absent("a.jpg", jpeg(10))
    batch = records([{"record": "captures:c7", "capture_id": "c7", "blob_key": "a.jpg"}])
    first, _ = ingest(batch, src.read, lake, KEY, "production", "d")
    manifest, bad = ingest(batch, src.read, lake, KEY, "production", "d", preceding_id="c7")
    assert (first.height, manifest.height, bad.height) == (1, 0, 1)
    assert bad["reason"].to_list() == ["duplicate capture_id in this partition"]
    other, _ = ingest(batch, src.read, lake, KEY, "production", "d", preceding_id="c6")
    assert other.height == 1


def test_batches_sharing_blobs_read_each_blob_once(stores):
    src, lake = stores
    src.put_if_absent("a.jpg", jpeg(10))
    src.put_if_absent("b.jpg", jpeg(200))
    reads: list[str] = []

    def read(key: str) -> bytes:
        reads.append(key)
        return src.read(key)

    stored = extract.StoredBlobs(read, lake, limit=10)
    batches = [
        records([{"record": f"r{i}{j}", "capture_id": f"c{i}{j}", "blob_key": k}])
        for i in range(3)
        for j, k in enumerate(["a.jpg", "b.jpg"])
    ]
    outs = [ingest(b, read, lake, KEY, "production", "d", stored=stored)[0] for b in batches]
    assert sorted(reads) == ["a.jpg", "b.jpg"]
    assert outs[0]["sha256"].to_list() == outs[2]["sha256"].to_list()
    # Past its limit it forgets the oldest keys and reads them again, with the same result.
    small = extract.StoredBlobs(read, lake, limit=1)
    assert_frame_equal(small.rows(["a.jpg", "b.jpg"]), small.rows(["a.jpg", "b.jpg"]))
    assert sorted(reads) == ["a.jpg", "a.jpg", "a.jpg", "b.jpg", "b.jpg"]


def test_unchanged_source_blobs_are_not_read_again(tmp_path, monkeypatch):
    src, lake = LocalBlobStore(tmp_path / "src"), CountingLake(tmp_path / "lake")
    src.put_if_absent("a.jpg", jpeg(10))
    src.put_if_absent("b.jpg", jpeg(200))
    src.put_if_absent("z.jpg", b"")
    reads, decodes = [], []
    real_decode = extract.decode
    # Counted for non-empty blobs only: an empty one is "decoded" to its status without a read.
    monkeypatch.setattr(
        extract, "decode", lambda data: (data and decodes.append(1)) or real_decode(data)
    )

    def read(key: str) -> bytes:
        reads.append(key)
        return src.read(key)

    def run() -> pl.DataFrame:
        reads.clear(), decodes.clear()
        CountingLake.puts = 0
        return ingest(recs, read, lake, KEY, "production", "d", fingerprint=src.fingerprint)[0]

    recs = records(
        [
            {"record": f"r{i}", "capture_id": f"c{i}", "blob_key": f"{'abz'[i % 3]}.jpg"}
            for i in range(30)
        ]
        + [{"record": "r-gone", "capture_id": "gone", "blob_key": "missing.jpg"}]
    )
    # Just written: their stat is not trusted yet, so the next run reads them again too.
    run()
    assert sorted(reads) == ["a.jpg", "b.jpg", "missing.jpg", "z.jpg"]
    run()
    assert sorted(reads) == ["a.jpg", "b.jpg", "missing.jpg", "z.jpg"]
    time.sleep(SETTLE_S)
    first = run()
    assert sorted(reads) == ["a.jpg", "b.jpg", "missing.jpg", "z.jpg"] and decodes == []
    # Settled and recorded: only a missing blob, which has no fingerprint, is tried again.
    again = run()
    assert reads == ["missing.jpg"]
    assert decodes == [] and CountingLake.puts == 0
    assert_frame_equal(first, again)

    # Rewritten in place with new bytes: read again at once (its ctime is fresh), and again
    # once settled (its new stat was not trusted when first read), then no more.
    (tmp_path / "src" / "b.jpg").write_bytes(jpeg(90))
    changed = run()
    assert "b.jpg" in reads and "a.jpg" not in reads and len(decodes) == 1
    assert set(changed["sha256"]) != set(first["sha256"])
    time.sleep(SETTLE_S)
    assert_frame_equal(run(), changed)
    assert "b.jpg" in reads and decodes == []
    assert_frame_equal(run(), changed)
    assert "b.jpg" not in reads and "a.jpg" not in reads

    # A raw-zone copy deleted (erasure) is no longer known content: read and stored again.
    (tmp_path / "lake" / changed.filter(pl.col("capture_id") == "c0")["blob_key"][0]).unlink()
    assert_frame_equal(run(), changed)
    assert "a.jpg" in reads and "b.jpg" not in reads and CountingLake.puts == 1
