"""identity_data: the training-data ETL for identity-verification models."""

import os

# gcsfs probes a storage-control API for zonal/HNS buckets on first use unless this is off before
# gcsfs is imported; neither a plain bucket nor an emulator needs it (each call then hangs 60 s).
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
