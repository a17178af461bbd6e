"""Seeded sample sources for identity_data: `python -m identity_data.sample --out data`.

Writes the layout of ARCHITECTURE.md under the data root: the capture service's SQLite DB and
bucket, campaign drop folders, the LFW-subset open dataset, Label Studio exports and
ground_truth/ (labels, faces, annotators, near_duplicates, broken_blobs, injected_label_errors).
The same seed and arguments give the same bytes in every file, the SQLite file included.

Faces are real but few: 102 identities shipped with scikit-image and matplotlib (faces.py);
names, documents, backgrounds, attacks and labels are synthetic. Distinct captures are kept more
than 10 pHash bits apart (rendering.py); injected near-duplicates are within 8.

Scale: `--images-sample N` (generate(images_sample=N)) draws only the first N production blobs;
the remaining DB rows point at a drawn blob of the same capture type and inherit its truth, so
metadata reaches millions of rows (~200k rows/min) while the bucket stays small. Such rows are
byte-identical copies, are not listed as near-duplicates and are not sent to annotators.
"""

from identity_data.sample.capture_db_writer import write_capture_db
from identity_data.sample.generate import SampleSummary, generate

__all__ = ["SampleSummary", "generate", "write_capture_db"]
