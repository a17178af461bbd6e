"""Storage backends behind the lake (blobs) and the warehouse (tables)."""
