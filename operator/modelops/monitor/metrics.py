"""The monitor's metrics, rendered from its state at each scrape (a source that is forgotten
stops being exported; nothing is exported for a window below its minimum of samples)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from modelops.monitor.engine import Monitor

SOURCE_LABELS = ["namespace", "deployment", "version", "track"]


class MonitorCollector(Collector):
    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor

    def collect(self) -> Iterator[Metric]:
        monitor = self.monitor
        feature_labels = [*SOURCE_LABELS, "feature"]
        psi = GaugeMetricFamily(
            "modelops_drift_psi",
            "Population stability index of a numeric feature against the version's reference",
            labels=feature_labels,
        )
        ks = GaugeMetricFamily(
            "modelops_drift_ks",
            "Kolmogorov-Smirnov statistic of a numeric feature against the reference sample",
            labels=feature_labels,
        )
        pvalue = GaugeMetricFamily(
            "modelops_drift_chi2_pvalue",
            "Chi-squared p-value of a categorical feature against the reference frequencies",
            labels=feature_labels,
        )
        share = GaugeMetricFamily(
            "modelops_drifted_features_share",
            "Share of the features whose drift crosses its threshold",
            labels=SOURCE_LABELS,
        )
        samples = GaugeMetricFamily(
            "modelops_monitor_window_samples",
            "Rows in the drift window of a version",
            labels=SOURCE_LABELS,
        )
        quality = GaugeMetricFamily(
            "modelops_model_quality",
            "Live quality from feedback: accuracy (classifiers), mae and rmse (regressors)",
            labels=[*SOURCE_LABELS, "metric"],
        )
        feedback = GaugeMetricFamily(
            "modelops_feedback_share",
            "Share of the logged predictions that received ground truth",
            labels=SOURCE_LABELS,
        )
        for source in monitor.sources():
            labels = [source.namespace, source.deployment, source.version, source.track]
            samples.add_metric(labels, monitor.windows.count(source))
            report = monitor.drift(source)
            if report is not None:
                share.add_metric(labels, report.drifted_share)
                for feature in report.features:
                    if feature.psi is not None:
                        psi.add_metric([*labels, feature.name], feature.psi)
                    if feature.ks is not None:
                        ks.add_metric([*labels, feature.name], feature.ks)
                    if feature.pvalue is not None:
                        pvalue.add_metric([*labels, feature.name], feature.pvalue)
            for metric, value in monitor.quality_of(source).items():
                quality.add_metric([*labels, metric], value)
            labelled_share = monitor.quality.feedback_share(source)
            if labelled_share is not None:
                feedback.add_metric(labels, labelled_share)
        dropped = CounterMetricFamily(
            "modelops_monitor_dropped",
            "Events and feedback the monitor refused or could not use, by reason",
            labels=["reason"],
        )
        for reason, count in sorted(monitor.dropped.items()):
            dropped.add_metric([reason], count)
        received = CounterMetricFamily(
            "modelops_monitor_received",
            "Logged requests, responses and feedback the monitor used",
            labels=["kind"],
        )
        for kind, count in sorted(monitor.received.items()):
            received.add_metric([kind], count)
        yield from (psi, ks, pvalue, share, samples, quality, feedback, dropped, received)
