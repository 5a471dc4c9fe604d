"""Lineage: derived_from= on save, find_lineage up and down, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import time
import uuid

import pytest
from sqlalchemy import func
from sqlalchemy import insert
from sqlalchemy import select

import lakery.core.save as save_module
from lakery import ConfigurationError
from lakery import LineageEdge
from lakery import LineageRecord
from lakery import ManifestRecord
from lakery import NotFoundError
from lakery import Registry
from lakery import StorableTypeError
from lakery import find_lineage
from lakery import new_saver
from lakery import save_one
from lakery.builtin import StorableValue
from lakery.core.records import utc_now


async def save(new_session, registry: Registry, name: str, derived_from=None) -> ManifestRecord:  # type: ignore[no-untyped-def]
    async with new_session() as session:
        return await save_one(
            StorableValue(name),
            session=session,
            registry=registry,
            tags={"name": name},
            derived_from=derived_from,
        )


async def lineage(new_session, root, **options):  # type: ignore[no-untyped-def]
    async with new_session() as session:
        return await find_lineage(session, root.id if hasattr(root, "id") else root, **options)


async def count(new_session, model) -> int:  # type: ignore[no-untyped-def]
    async with new_session() as session:
        return (await session.execute(select(func.count()).select_from(model))).scalar_one()


def names(found) -> set[str]:  # type: ignore[no-untyped-def]
    return {m.tags["name"] for m in found.manifests.values()}


async def test_chain_up_down_and_depth(new_session, registry: Registry) -> None:
    a = await save(new_session, registry, "a")
    b = await save(new_session, registry, "b", [a])
    c = await save(new_session, registry, "c", [b.id])
    d = await save(new_session, registry, "d", {"input": c})

    both = await lineage(new_session, b)
    assert both.root == b.id and names(both) == {"a", "b", "c", "d"}
    assert both.missing == frozenset()
    assert LineageEdge(a.id, b.id, "") in both.edges
    assert LineageEdge(c.id, d.id, "input") in both.edges
    assert len(both.edges) == 3

    assert names(await lineage(new_session, d, down=False)) == {"a", "b", "c", "d"}
    assert names(await lineage(new_session, d, down=False, depth=1)) == {"c", "d"}
    assert names(await lineage(new_session, d, down=False, depth=2)) == {"b", "c", "d"}
    assert names(await lineage(new_session, a, up=False, depth=2)) == {"a", "b", "c"}
    assert names(await lineage(new_session, a, up=False, depth=None)) == {"a", "b", "c", "d"}
    assert names(await lineage(new_session, a, up=False, down=False)) == {"a"}
    assert names(await lineage(new_session, c, up=False)) == {"c", "d"}
    assert names(await lineage(new_session, c, down=False)) == {"a", "b", "c"}
    assert (await lineage(new_session, a, down=False)).edges == []


async def test_diamond_labels_and_several_parents_per_label(
    new_session, registry: Registry
) -> None:
    root = await save(new_session, registry, "root")
    left = await save(new_session, registry, "left", [root])
    right = await save(new_session, registry, "right", [root])
    other = await save(new_session, registry, "other")
    join = await save(
        new_session, registry, "join", {"sides": [left, right.id], "extra": other, "": [root]}
    )
    up = await lineage(new_session, join, down=False)
    assert names(up) == {"root", "left", "right", "other", "join"}
    assert {(e.parent_id, e.label) for e in up.edges if e.child_id == join.id} == {
        (left.id, "sides"),
        (right.id, "sides"),
        (other.id, "extra"),
        (root.id, ""),
    }
    assert len(up.edges) == 6  # root -> left, root -> right, and the four into join
    assert up.edges == sorted(up.edges, key=lambda e: (e.parent_id, e.child_id, e.label))
    down = await lineage(new_session, root, up=False)
    assert names(down) == {"root", "left", "right", "join"}  # "other" is a co-parent only
    assert sum(1 for e in down.edges if e.child_id == join.id) == 3


async def test_same_parent_twice_and_saver_batch(new_session, registry: Registry) -> None:
    parent = await save(new_session, registry, "parent")
    async with new_session() as session:
        async with new_saver(session=session, registry=registry) as saver:
            one = saver.save_soon(StorableValue(1), derived_from=[parent, parent.id])
            two = saver.save_soon(StorableValue(2), derived_from={"x": parent, "y": [parent]})
            saver.save_soon(StorableValue(3))
    assert await count(new_session, LineageRecord) == 3
    found = await lineage(new_session, parent, up=False)
    assert set(found.manifests) == {parent.id, one.get().id, two.get().id}
    assert {e.label for e in found.edges} == {"", "x", "y"}


async def test_missing_parent_refuses_the_whole_save(new_session, registry: Registry) -> None:
    parent = await save(new_session, registry, "parent")
    ghost = uuid.uuid4()
    async with new_session() as session:
        with pytest.raises(NotFoundError, match=str(ghost)) as caught:
            async with new_saver(session=session, registry=registry) as saver:
                saver.save_soon(StorableValue("fine"), derived_from=[parent])
                saver.save_soon(StorableValue("bad"), derived_from={"in": ghost})
    assert "nothing was saved" in str(caught.value)
    assert str(parent.id) not in str(caught.value)
    assert await count(new_session, ManifestRecord) == 1
    assert await count(new_session, LineageRecord) == 0


@pytest.mark.parametrize(
    ("derived_from", "error", "message"),
    [
        ("abc", StorableTypeError, "must be a sequence of parents"),
        (uuid.UUID(int=1), StorableTypeError, r"derived_from=\[record, ...\]"),
        (["0f0f0f0f-0000-0000-0000-000000000000"], StorableTypeError, r"uuid.UUID\(text\)"),
        ([42], StorableTypeError, "ManifestRecord or a uuid.UUID"),
        ({1: [uuid.UUID(int=1)]}, StorableTypeError, "labels must be str"),
        ({"x": "abc"}, StorableTypeError, "label 'x' must be a sequence"),
        ({"a\x00b": [uuid.UUID(int=1)]}, ConfigurationError, "plain text"),
        ({"\ud800": [uuid.UUID(int=1)]}, ConfigurationError, "plain text"),
        ([ManifestRecord()], StorableTypeError, "has no id yet"),
        (42, StorableTypeError, "must be a sequence"),
    ],
)
async def test_invalid_derived_from_is_refused_before_saving(
    new_session, registry: Registry, derived_from, error, message
) -> None:  # type: ignore[no-untyped-def]
    async with new_session() as session:
        with pytest.raises(error, match=message):
            async with new_saver(session=session, registry=registry) as saver:
                saver.save_soon(StorableValue(1), derived_from=derived_from)
    assert await count(new_session, ManifestRecord) == 0


async def test_self_derivation_is_refused(new_session, registry: Registry, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    parent = await save(new_session, registry, "parent")
    # The only way a new manifest could name itself: its new id equals the parent's.
    ids = lambda n: [parent.id, *(uuid.uuid4() for _ in range(n - 1))]  # noqa: E731
    monkeypatch.setattr(save_module, "_new_ids", ids)
    with pytest.raises(ConfigurationError, match="cannot be derived from itself"):
        await save(new_session, registry, "self", [parent])
    assert await count(new_session, ManifestRecord) == 1
    assert await count(new_session, LineageRecord) == 0


async def test_unknown_root_and_bad_depth(new_session, registry: Registry) -> None:
    with pytest.raises(NotFoundError, match="no lakery manifest"):
        await lineage(new_session, uuid.uuid4())
    a = await save(new_session, registry, "a")
    for depth in (0, -1, True, 1.5):
        with pytest.raises(ConfigurationError, match="depth must be a positive int"):
            await lineage(new_session, a, depth=depth)
    assert (await lineage(new_session, str(a.id))).root == a.id


async def insert_edges(new_session, rows) -> None:  # type: ignore[no-untyped-def]
    async with new_session() as session:
        await session.execute(insert(LineageRecord.__table__), rows)
        await session.commit()


async def test_a_cycle_inserted_by_hand_terminates(new_session, registry: Registry) -> None:
    a = await save(new_session, registry, "a")
    b = await save(new_session, registry, "b", [a])
    c = await save(new_session, registry, "c", [b])
    await insert_edges(new_session, [{"child_id": a.id, "parent_id": c.id, "label": "loop"}])
    for depth in (None, 2, 50):
        found = await lineage(new_session, b, depth=depth)
        assert set(found.manifests) == {a.id, b.id, c.id}
        assert len(found.edges) == 3


async def test_edges_of_a_deleted_child_go_with_it(new_session, registry: Registry) -> None:
    parent = await save(new_session, registry, "parent")
    child = await save(new_session, registry, "child", [parent])
    from lakery.maintenance import delete_manifests

    async with new_session() as session:
        await delete_manifests(session, ids=[child.id])
    assert await count(new_session, LineageRecord) == 0
    assert (await lineage(new_session, parent)).edges == []


async def manifest_rows(new_session, count_: int) -> list[uuid.UUID]:  # type: ignore[no-untyped-def]
    ids = [uuid.UUID(bytes=os.urandom(16), version=4) for _ in range(count_)]
    now = utc_now()
    rows = [
        {"id": i, "created_at": now, "class_id": uuid.UUID(int=7), "unpacker_name": "x", "tags": {}}
        for i in ids
    ]
    async with new_session() as session:
        await session.execute(insert(ManifestRecord.__table__), rows)
        await session.commit()
    return ids


async def test_ten_thousand_node_graph(new_session) -> None:  # type: ignore[no-untyped-def]
    """A binary tree of 10,000 manifests: the whole of it down from the root, a branch up."""
    ids = await manifest_rows(new_session, 10_000)
    edges = [
        {"child_id": ids[i], "parent_id": ids[(i - 1) // 2], "label": "half"}
        for i in range(1, len(ids))
    ]
    await insert_edges(new_session, edges)
    started = time.perf_counter()
    down = await lineage(new_session, ids[0], up=False, depth=None)
    elapsed = time.perf_counter() - started
    assert len(down.manifests) == 10_000 and len(down.edges) == 9_999
    assert elapsed < 20, elapsed
    three = await lineage(new_session, ids[0], up=False)
    assert len(three.manifests) == 1 + 2 + 4 + 8
    leaf = await lineage(new_session, ids[-1], down=False, depth=None)
    assert len(leaf.manifests) == 14  # 9,999 is at depth 13 of the tree
    assert leaf.missing == frozenset()
