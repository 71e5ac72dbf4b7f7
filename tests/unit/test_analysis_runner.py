"""The analysis runner asks each metric at most once per interval, even when the status that
records a round was never written (a failed write, a conflict)."""

from __future__ import annotations

import asyncio

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
