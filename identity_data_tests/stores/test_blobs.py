"""LocalBlobStore's fingerprint: a file's version from its stat, trusted once its ctime settled."""

import time

import pytest

from identity_data.stores.blobs import FINGERPRINT_SETTLE_NS, LocalBlobStore

SETTLE_S = FINGERPRINT_SETTLE_NS / 1e9 + 0.1


def test_fingerprint_is_trusted_once_settled_and_moves_with_a_rewrite(tmp_path) -> None:
    store = LocalBlobStore(tmp_path)
    store.put_if_absent("src/a.jpg", b"one")
    # Just written: a rewrite in the same timestamp tick could leave the stat unchanged.
    assert store.fingerprint("src/a.jpg") is None
    time.sleep(SETTLE_S)
    settled = store.fingerprint("src/a.jpg")
    assert settled is not None and len(settled) == 64 and int(settled, 16) >= 0
    assert store.fingerprint("src/a.jpg") == settled
    # The digest names no path: it may be kept in the lake.
    assert "a.jpg" not in settled

    (tmp_path / "src" / "a.jpg").write_bytes(b"two")
    assert store.fingerprint("src/a.jpg") is None
    time.sleep(SETTLE_S)
    rewritten = store.fingerprint("src/a.jpg")
    assert rewritten is not None and rewritten != settled


def test_fingerprint_of_a_missing_file_raises(tmp_path) -> None:
    with pytest.raises(FileNotFoundError):
        LocalBlobStore(tmp_path).fingerprint("nothing.jpg")
