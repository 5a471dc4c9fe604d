"""The garbage-collector pause of bulk saves and loads restores the collector's state."""

from __future__ import annotations

import gc

from lakery.core.gcpause import gc_paused


def test_pauses_and_resumes() -> None:
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer block still holds it
    assert gc.isenabled()


def test_leaves_a_disabled_collector_disabled() -> None:
    gc.disable()
    try:
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_resumes_after_an_error() -> None:
    try:
        with gc_paused():
            raise ValueError("boom")
    except ValueError:
        pass
    assert gc.isenabled()


async def test_resumed_after_save_and_load(new_session, registry) -> None:  # type: ignore[no-untyped-def]
    from lakery import load_one
    from lakery import save_one
    from lakery.builtin import StorableValue

    async with new_session() as session:
        record = await save_one(StorableValue(1), session=session, registry=registry)
        assert gc.isenabled()
        await load_one(record, StorableValue, session=session, registry=registry)
    assert gc.isenabled()
