"""The snapshot and erasure tests' deployments with history, built once per session: each test
takes its own copy (`World.copy`), so sharing them costs no isolation."""

import pytest

from identity_data_tests.defs.snapshots.world import DAYS, World, build_world, materialize_days


@pytest.fixture(scope="session")
def snapshot_world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """The first day materialized and snapshot s1 made."""
    return build_world(tmp_path_factory.mktemp("snapshot-world"))


@pytest.fixture(scope="session")
def grown_world(snapshot_world: World, tmp_path_factory: pytest.TempPathFactory) -> World:
    """`snapshot_world` with every day materialized after s1 was made: +20% subjects and more."""
    world = snapshot_world.copy(tmp_path_factory.mktemp("grown-world"))
    with world.open() as instance:
        materialize_days(instance, DAYS)
    return world
