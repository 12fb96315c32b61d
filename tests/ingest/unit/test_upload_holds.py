"""The in-process registry through which a newcomer asks a streaming PATCH to let go."""

from __future__ import annotations

import asyncio

from sonobridge.ingest.entrypoints.upload_holds import UploadHolds


def test_a_holder_asked_to_release_commits_and_the_asker_waits_for_it() -> None:
    async def scenario() -> list[str]:
        holds, steps = UploadHolds(), []

        async def holder() -> None:
            with holds.holding("u1") as hold:
                await hold.release.wait()
                await asyncio.sleep(0.01)  # commits what it received
                steps.append("committed")

        task = asyncio.create_task(holder())
        await asyncio.sleep(0)
        assert holds.held("u1") and not holds.held("u2")
        assert await holds.ask_release("u1", timeout=1.0)
        steps.append("asker goes on")
        await task
        assert not holds.held("u1")
        return steps

    assert asyncio.run(scenario()) == ["committed", "asker goes on"]


def test_asking_with_no_holder_returns_at_once_and_a_stuck_one_times_out() -> None:
    async def scenario() -> tuple[bool, bool]:
        holds = UploadHolds()
        nobody = await holds.ask_release("u1", timeout=0.01)
        with holds.holding("u1"):
            stuck = await holds.ask_release("u1", timeout=0.01)
        return nobody, stuck

    assert asyncio.run(scenario()) == (True, False)
