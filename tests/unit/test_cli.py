import pytest

from modelops.cli import build_parser


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
