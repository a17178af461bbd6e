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
