"""A registry module with no components that installs `tests.viewer.stand_in_lineage` as
``lakery.core.lineage`` (when the real one is missing) in the process that imports it."""

from tests.viewer.stand_in_lineage import install

__all__: list[str] = []

install()
