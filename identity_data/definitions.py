"""Dagster entry point: every definition lives under identity_data/defs/."""

import functools
from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    return _load()


# Once per process: a CLI or launched run rebuilds its code location's definitions five or six
# times (the command, the run, the plan, each step), and each build walks the defs folder again,
# about 1 CPU-s apiece. Code changes are picked up by a new process (a reload starts one).
@functools.cache
def _load() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)


def materializable(
    definitions: dg.Definitions,
) -> list[dg.AssetsDefinition | dg.AssetSpec | dg.SourceAsset]:
    """The definitions' assets as dg.materialize takes them, for entry points that run in this
    process (the demo, an erasure request, a snapshot)."""
    assets: list[dg.AssetsDefinition | dg.AssetSpec | dg.SourceAsset] = []
    for asset in definitions.assets or []:
        if not isinstance(asset, dg.AssetsDefinition | dg.AssetSpec | dg.SourceAsset):
            raise TypeError(f"{type(asset).__name__} cannot be materialized in process")
        assets.append(asset)
    return assets
