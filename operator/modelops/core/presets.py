"""Built-in analysis queries (pure): PromQL templates for the metrics model servers and
gateways export, per version.

Every preset answers whenever the version received requests in the window, and only then:
- a counter that has not appeared yet counts as 0 (MLServer creates its success counter at the
  first success, so a version that fails every request has none; a healthy version has no 5xx
  series at all);
- no requests in the window is 0/0, NaN or no series: Inconclusive, never a verdict;
- a latency of a version that answered no request successfully is +Inf, so a `max` fails it: a
  version that only fails must never pass on being fast at failing.
"""

from __future__ import annotations

from collections.abc import Mapping

WINDOW = "{{ window }}"

_MLSERVER = (
    'namespace="{{ namespace }}", deployment="{{ deployment }}", model_version="{{ version }}"'
)
# MLServer's REST metrics label the route template; only inference requests count (the model
# readiness probe and metadata calls would otherwise pass for traffic).
_MLSERVER_INFER = _MLSERVER + ', path=~".*/infer"'
_ISTIO = 'destination_service_namespace="{{ namespace }}", destination_service_name="{{ service }}"'
_KNATIVE = 'namespace="{{ namespace }}", revision_name="{{ revision }}"'
_KSERVE = _MLSERVER
# The modelops monitor's gauges, per version (over its own sliding window, not the query's).
_MONITOR = 'namespace="{{ namespace }}", deployment="{{ deployment }}", version="{{ version }}"'


def rate(series: str) -> str:
    return f"sum(rate({series}[{WINDOW}]))"


def zero_if_absent(expression: str) -> str:
    """The expression, or 0 when it has no series (a counter not created yet)."""
    return f"({expression} or vector(0))"


def failed_share(failed: str, total: str) -> str:
    """failed / total: NaN without requests, a value (0 included) otherwise."""
    return f"{zero_if_absent(rate(failed))} / {zero_if_absent(rate(total))}"


def failed_share_of_two(failed: str, succeeded: str) -> str:
    """failed / (succeeded + failed), for servers that count the two apart."""
    return (
        f"{zero_if_absent(rate(failed))} / "
        f"({zero_if_absent(rate(succeeded))} + {zero_if_absent(rate(failed))})"
    )


def unless_only_failures(latency: str, succeeded: str, failed: str) -> str:
    """`latency` while some request succeeded in the window; +Inf when requests came and all
    failed; no series when none came."""
    return f"(({latency}) and on() ({rate(succeeded)} > 0)) or on() (({rate(failed)} > 0) * +Inf)"


def quantile(q: str, buckets: str, scale: str = "") -> str:
    return f"histogram_quantile({q}, sum by (le) (rate({buckets}[{WINDOW}]))){scale}"


def mean(sums: str, counts: str) -> str:
    return f"{rate(sums)} / {rate(counts)}"


_MLSERVER_OK = f'rest_server_requests_total{{{_MLSERVER_INFER}, status_code=~"2.."}}'
_MLSERVER_NOT_OK = f'rest_server_requests_total{{{_MLSERVER_INFER}, status_code!~"2.."}}'
_MLSERVER_SUCCESS = f"model_infer_request_success_total{{{_MLSERVER}}}"
_MLSERVER_FAILURE = f"model_infer_request_failure_total{{{_MLSERVER}}}"
_MLSERVER_BUCKETS = f"rest_server_request_duration_seconds_bucket{{{_MLSERVER_INFER}}}"
_KNATIVE_OK = f'revision_app_request_count{{{_KNATIVE}, response_code_class="2xx"}}'
_KNATIVE_NOT_OK = f'revision_app_request_count{{{_KNATIVE}, response_code_class!="2xx"}}'
_KNATIVE_BUCKETS = f"revision_app_request_latencies_bucket{{{_KNATIVE}}}"
_ISTIO_OK = f'istio_requests_total{{{_ISTIO}, response_code=~"2.."}}'
_ISTIO_NOT_OK = f'istio_requests_total{{{_ISTIO}, response_code!~"2.."}}'


def _mlserver_latency(q: str) -> str:
    return unless_only_failures(quantile(q, _MLSERVER_BUCKETS), _MLSERVER_OK, _MLSERVER_NOT_OK)


def _knative_latency(q: str) -> str:
    # queue-proxy reports milliseconds.
    return unless_only_failures(
        quantile(q, _KNATIVE_BUCKETS, " / 1000"), _KNATIVE_OK, _KNATIVE_NOT_OK
    )


def _istio_latency(q: str) -> str:
    return unless_only_failures(
        quantile(q, f"istio_request_duration_milliseconds_bucket{{{_ISTIO}}}", " / 1000"),
        _ISTIO_OK,
        _ISTIO_NOT_OK,
    )


PRESETS: Mapping[str, str] = {
    # MLServer: model_infer_request_{success,failure}_total and the model_infer_request_duration
    # summary (count and sum, failures included) per model; rest_server_* from its REST
    # middleware, per route and status code. Our relabelling adds namespace, deployment and
    # model_version from the pod's labels.
    "mlserver-error-rate": failed_share_of_two(_MLSERVER_FAILURE, _MLSERVER_SUCCESS),
    "mlserver-http-error-rate": failed_share(
        f'rest_server_requests_total{{{_MLSERVER_INFER}, status_code=~"5.."}}',
        f"rest_server_requests_total{{{_MLSERVER_INFER}}}",
    ),
    "mlserver-latency-mean": unless_only_failures(
        mean(
            f"model_infer_request_duration_sum{{{_MLSERVER}}}",
            f"model_infer_request_duration_count{{{_MLSERVER}}}",
        ),
        _MLSERVER_SUCCESS,
        _MLSERVER_FAILURE,
    ),
    "mlserver-latency-p95": _mlserver_latency("0.95"),
    "mlserver-latency-p99": _mlserver_latency("0.99"),
    # Knative's queue-proxy, per revision.
    "knative-error-rate": failed_share(
        f'revision_app_request_count{{{_KNATIVE}, response_code_class="5xx"}}',
        f"revision_app_request_count{{{_KNATIVE}}}",
    ),
    "knative-latency-p95": _knative_latency("0.95"),
    "knative-latency-p99": _knative_latency("0.99"),
    # The KServe Python model server's request_predict_seconds histogram (it has no failure
    # counter, so a version that only fails shows no latency: pair it with an error rate).
    "kserve-latency-p95": quantile("0.95", f"request_predict_seconds_bucket{{{_KSERVE}}}"),
    "kserve-latency-p99": quantile("0.99", f"request_predict_seconds_bucket{{{_KSERVE}}}"),
    # Istio's standard request metrics, per predictor Service (milliseconds): Istio's gateways
    # and sidecars and several Gateway API implementations export them (so does the local
    # cluster's router).
    "istio-error-rate": failed_share(
        f'istio_requests_total{{{_ISTIO}, response_code=~"5.."}}',
        f"istio_requests_total{{{_ISTIO}}}",
    ),
    "istio-latency-p95": _istio_latency("0.95"),
    "istio-latency-p99": _istio_latency("0.99"),
    # The modelops monitor (`modelops monitor`): drift of the version's logged traffic against
    # its reference profile, and live quality from feedback. No series until the monitor's
    # window holds enough rows (or labels): Inconclusive, as with no requests.
    "monitor-drifted-features-share": f"max(modelops_drifted_features_share{{{_MONITOR}}})",
    "monitor-drift-psi-max": f"max(modelops_drift_psi{{{_MONITOR}}})",
    "monitor-accuracy": f'max(modelops_model_quality{{{_MONITOR}, metric="accuracy"}})',
    "monitor-mae": f'max(modelops_model_quality{{{_MONITOR}, metric="mae"}})',
    "monitor-rmse": f'max(modelops_model_quality{{{_MONITOR}, metric="rmse"}})',
}
