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
