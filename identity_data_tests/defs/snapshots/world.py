"""A small deployment with history, shared by the snapshot and erasure tests.

`build_world` generates a three-day sample, materializes the first day (production and one
campaign) through `make demo`'s flow and makes snapshot `s1`; `World.copy` gives each test its
own data home and Dagster instance, so tests never see each other's changes.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest

from identity_data import snapshots
from identity_data.demo import Demo, Tally
from identity_data.sample import generate
from identity_data.settings import ENV, HOME, ensure_local_key
from identity_data_tests.conftest import SAMPLE_END

FIRST_SNAPSHOT = "s1"
# The world holds the first day; tests add the later ones as new data.
DAYS = [(SAMPLE_END - timedelta(days=n)).isoformat() for n in (2, 1, 0)]


@dataclass(frozen=True)
class World:
    home: Path
    dagster_home: Path

    @contextlib.contextmanager
    def open(self) -> Iterator[dg.DagsterInstance]:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv(ENV, "local")
            mp.setenv(HOME, str(self.home))
            mp.setenv("DAGSTER_HOME", str(self.dagster_home))
            mp.delenv("IDENTITY_DATA_PSEUDONYM_KEY", raising=False)
            with dg.instance_for_test(temp_dir=str(self.dagster_home)) as instance:
                # `create` and the CLIs use the current instance, as they do under DAGSTER_HOME.
                mp.setattr(dg.DagsterInstance, "get", staticmethod(lambda: instance))
                yield instance

    def copy(self, to: Path) -> World:
        shutil.copytree(self.home, to / "data")
        shutil.copytree(self.dagster_home, to / "dagster_home")
        return World(to / "data", to / "dagster_home")


def materialize_days(instance: dg.DagsterInstance, days: list[str]) -> Tally:
    tally = Tally()
    demo = Demo(instance, tally)
    demo.start(days, open_datasets=False)
    demo.settle()
    assert tally.failed_runs == [], tally.failed_runs
    return tally


def build_world(root: Path) -> World:
    world = World(root / "data", root / "dagster_home")
    generate(
        world.home,
        seed=3,
        days=len(DAYS),
        captures_per_day=20,
        end_date=SAMPLE_END,
        campaigns=1,
    )
    ensure_local_key(world.home)
    world.dagster_home.mkdir()
    with world.open() as instance:
        materialize_days(instance, DAYS[:1])
        assert snapshots.create(FIRST_SNAPSHOT)
    return world
