import subprocess
import sys

import pytest

from modelops.cli import build_parser, hide_kubernetes_clients, main, operator_config
from modelops.controller.config import DEFAULT_KUBE_API_BURST, DEFAULT_KUBE_API_QPS


def test_defaults_watch_every_namespace_with_text_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MODELOPS_NAMESPACES", "MODELOPS_LOG_FORMAT", "MODELOPS_METRICS_PORT"):
        monkeypatch.delenv(name, raising=False)
    args = build_parser().parse_args(["run"])
    assert args.namespaces == []
    assert args.log_format == "text"
    assert args.metrics_port == 8081


def test_namespaces_and_log_format_come_from_flags_or_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MODELOPS_NAMESPACES", "risk, payments")
    monkeypatch.setenv("MODELOPS_LOG_FORMAT", "json")
    args = build_parser().parse_args(["run", "-n", "extra"])
    assert args.namespaces == ["risk", "payments", "extra"]
    assert args.log_format == "json"


def test_an_unknown_log_format_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--log-format", "xml"])
    assert "invalid choice: 'xml'" in capsys.readouterr().err


def test_status_describes_versions_traffic_verdicts_and_rejections() -> None:
    from modelops.commands import describe
    from tests.unit.rollout_driver import failing, rolling

    driver = rolling()
    driver.tick(30, failing())
    text = describe(driver.body)
    assert "risk/fraud: Progressing" in text
    assert "canary: version 8 step 1, 10% asked, 10% effective" in text
    assert "Fail         error-rate = 0.3 > max 0.05" in text
    driver.tick(30, failing())
    assert "rejected: version 8:" in describe(driver.body)


def test_manual_controls_take_a_name_and_namespace() -> None:
    args = build_parser().parse_args(["retry", "iris", "-n", "models", "--version", "8"])
    assert (args.command, args.name, args.namespace, args.version) == (
        "retry",
        "iris",
        "models",
        "8",
    )


def test_retrain_takes_a_reason_and_status_a_watch() -> None:
    args = build_parser().parse_args(["retrain", "fraud", "-n", "risk", "--reason", "new labels"])
    assert (args.command, args.name, args.namespace, args.reason) == (
        "retrain", "fraud", "risk", "new labels")  # fmt: skip
    assert build_parser().parse_args(["status", "fraud", "--watch"]).watch is True
    assert build_parser().parse_args(["status", "fraud"]).watch is False


def test_the_api_rate_limit_comes_from_flags_or_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("MODELOPS_KUBE_API_QPS", "MODELOPS_KUBE_API_BURST"):
        monkeypatch.delenv(name, raising=False)
    config = operator_config(build_parser().parse_args(["run"]))
    assert (config.kube_api_qps, config.kube_api_burst) == (
        DEFAULT_KUBE_API_QPS,
        DEFAULT_KUBE_API_BURST,
    )
    assert config.kube_api_qps == 0  # off unless asked for, as in controller-runtime
    monkeypatch.setenv("MODELOPS_KUBE_API_QPS", "50")
    config = operator_config(build_parser().parse_args(["run", "--kube-api-burst", "7"]))
    assert (config.kube_api_qps, config.kube_api_burst) == (50.0, 7)


@pytest.mark.parametrize(
    "argv",
    [["run", "--kube-api-qps", "-1"], ["run", "--kube-api-qps", "5", "--kube-api-burst", "0"]],
)
def test_a_bad_rate_limit_stops_the_operator_naming_the_flags(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MODELOPS_KUBE_API_BURST", raising=False)
    assert main(argv) == 2
    assert "--kube-api-qps must be 0 (no limit) or more" in capsys.readouterr().err


ELECTION_VARIABLES = (
    "MODELOPS_LEADER_ELECT", "MODELOPS_LEADER_ELECTION_NAMESPACE", "POD_NAMESPACE",
    "MODELOPS_LEADER_ELECT_LEASE_DURATION", "MODELOPS_LEADER_ELECT_RENEW_DEADLINE",
    "MODELOPS_LEADER_ELECT_RETRY_PERIOD",
)  # fmt: skip


def test_leader_election_is_off_by_default_and_on_from_flags_or_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ELECTION_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert operator_config(build_parser().parse_args(["run"])).leader_election is None
    monkeypatch.setenv("MODELOPS_LEADER_ELECT", "true")
    monkeypatch.setenv("POD_NAMESPACE", "modelops")
    monkeypatch.setenv("MODELOPS_LEADER_ELECT_LEASE_DURATION", "30")
    election = operator_config(
        build_parser().parse_args(["run", "--leader-elect-renew-deadline", "20"])
    ).leader_election
    assert election is not None
    assert election.namespace == "modelops"
    assert (election.timing.lease_duration, election.timing.renew_deadline) == (30, 20)
    assert election.timing.retry_period == 2
    other = operator_config(build_parser().parse_args(["run"])).leader_election
    assert other is not None and other.identity != election.identity, "one identity per process"


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--leader-elect-lease-duration", "10"], "--leader-elect-lease-duration"),
        (["--leader-elect-retry-period", "10"], "renew deadline must be longer"),
        (["--leader-election-namespace", ""], "--leader-election-namespace: not running in a pod"),
    ],
)
def test_bad_leader_election_stops_the_operator_naming_the_flag(
    argv: list[str],
    named: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ELECTION_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("POD_NAMESPACE", "modelops")
    assert main(["run", "--leader-elect", *argv]) == 2
    assert named in capsys.readouterr().err


def test_the_operator_process_hides_kubernetes_clients_from_kopf() -> None:
    # In a fresh interpreter, as `modelops run` starts: kopf must load without importing the
    # `kubernetes` package that the dev extra installs (~20 MiB the operator never uses).
    probe = (
        "import sys\n"
        "from modelops.cli import hide_kubernetes_clients\n"
        "import importlib.util\n"
        "assert importlib.util.find_spec('kubernetes') is not None, 'installed for the tests'\n"
        "hide_kubernetes_clients()\n"
        "import modelops.handlers.registration\n"
        "print(sys.modules.get('kubernetes') is None, 'kopf' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.split() == ["True", "True"]


def test_hiding_the_clients_leaves_a_process_that_already_imported_kopf_alone() -> None:
    import kopf  # noqa: F401  (as an in-process test has)

    before = sys.modules.get("kubernetes")
    hide_kubernetes_clients()
    assert sys.modules.get("kubernetes") is before
