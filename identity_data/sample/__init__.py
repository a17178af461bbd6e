"""Seeded sample sources for identity_data: `python -m identity_data.sample --out data`.

Faces are real but few: ~102 identities shipped with scikit-image and matplotlib (see faces.py);
everything else (people's names, documents, backgrounds, attacks, labels) is synthetic.
"""

from identity_data.sample.capture_db_writer import write_capture_db
from identity_data.sample.generate import SampleSummary, generate

__all__ = ["SampleSummary", "generate", "write_capture_db"]
