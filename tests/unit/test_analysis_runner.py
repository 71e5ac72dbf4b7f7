"""The analysis runner asks each metric at most once per interval, even when the status that
records a round was never written (a failed write, a conflict)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from modelops.adapters.kubernetes import Connection, KubernetesApi
from modelops.controller.analysis import AnalysisRunner
from modelops.core.rollout.rounds import analysis_round
from tests.unit.rollout_driver import rolling


def test_a_round_is_not_repeated_within_its_interval() -> None:
    driver = rolling()
    planned = analysis_round(driver.deployment, driver.observed, driver.now)
    assert planned is not None and planned.subject == "canary" and planned.version == "8"
    now = [1000.0]

    async def scenario() -> list[bool]:
        api = KubernetesApi(Connection(server="http://127.0.0.1:9"))
        # No Prometheus is configured: the round still counts, its verdicts are Error.
        runner = AnalysisRunner(api, default_url=None, clock=lambda: now[0])
        key = ("risk", "fraud")
        answers = [runner.allowed(key, driver.deployment, planned)]
        measurements = await runner.run(key, driver.deployment, planned)
        assert [m.verdict for m in measurements] == ["Error"]
        assert "--prometheus-url" in measurements[0].message
        now[0] += 29
        answers.append(runner.allowed(key, driver.deployment, planned))
        now[0] += 1
        answers.append(runner.allowed(key, driver.deployment, planned))
        await runner.close()
        await api.close()
        return answers

    assert asyncio.run(scenario()) == [True, False, True]


def test_a_new_version_is_analysed_at_once_and_old_versions_leave_nothing_behind() -> None:
    driver = rolling()
    planned = analysis_round(driver.deployment, driver.observed, driver.now)
    assert planned is not None
    now = [1000.0]

    async def scenario() -> tuple[list[bool], int]:
        api = KubernetesApi(Connection(server="http://127.0.0.1:9"))
        runner = AnalysisRunner(api, default_url=None, clock=lambda: now[0])
        key = ("risk", "fraud")
        answers = []
        for version in range(8, 58):  # fifty versions, each rolled out within the interval
            this = replace(planned, version=str(version))
            answers.append(runner.allowed(key, driver.deployment, this))
            await runner.run(key, driver.deployment, this)
            now[0] += 1
        kept = len(runner._last_round)
        runner.forget(key)
        assert not runner._last_round
        await runner.close()
        await api.close()
        return answers, kept

    answers, kept = asyncio.run(scenario())
    assert answers == [True] * 50  # another version's round does not wait for the interval
    assert kept == 1  # one entry for the deployment's canary, not one per version
