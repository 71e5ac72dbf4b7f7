{{- define "modelops.name" -}}modelops{{- end -}}

{{- define "modelops.fullname" -}}
{{- if contains "modelops" .Release.Name -}}{{ .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else -}}{{ printf "%s-modelops" .Release.Name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "modelops.labels" -}}
app.kubernetes.io/name: modelops
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "modelops.selector" -}}
app.kubernetes.io/name: modelops
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Every operator pod, of every shard: what the metrics Service and NetworkPolicy select. */}}
{{- define "modelops.operatorPods" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* The pods of one shard's Deployment: the default shard keeps the release's selector (a
selector cannot change on upgrade); named shards' pods are apart from it. */}}
{{- define "modelops.shardSelector" -}}
{{- if .shard -}}
app.kubernetes.io/name: modelops-shard
app.kubernetes.io/instance: {{ .root.Release.Name }}
modelops.io/operator-shard: {{ .shard }}
{{- else -}}
{{ include "modelops.selector" .root }}
{{- end -}}
{{- end -}}

{{/* The operator's permissions: only what it uses. */}}
{{- define "modelops.rules" -}}
- apiGroups: [modelops.io]
  resources: [modeldeployments]
  verbs: [get, list, watch]                  # only its status is written
- apiGroups: [modelops.io]
  resources: [modeldeployments/status]
  verbs: [get, patch]
- apiGroups: [serving.kserve.io]
  resources: [inferenceservices]
  verbs: [get, list, watch, create, patch]   # server-side apply; deletion is the GC's
- apiGroups: [gateway.networking.k8s.io]
  resources: [httproutes]
  verbs: [get, list, watch, create, patch]   # spec.serving.httpRoute (watched: restored when deleted)
- apiGroups: [""]
  resources: [services]
  verbs: [get, create, patch]                # a logged canary's Service on KServe's agent
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create, patch]   # retraining Jobs (patch: the shard label on a handover)
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]                               # the registry and Prometheus Secrets deployments name
- apiGroups: [""]
  resources: [pods]
  verbs: [list]                              # what a version past its progressDeadline reports
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list]                              # a canary gets traffic only with ready endpoints
- apiGroups: [""]
  resources: [events]
  verbs: [create]                            # Events about deployments (never updated)
{{- end -}}

{{/* Alerting rules, shared by the PrometheusRule and by the chart's promtool tests. */}}
{{- define "modelops.alerts" -}}
- name: modelops
  rules:
    - alert: ModelDeploymentRolledBack
      expr: sum by (namespace, deployment) (increase(modelops_rollbacks_total[10m])) > 0
      labels: {severity: warning}
      annotations:
        summary: "{{ "{{ $labels.namespace }}/{{ $labels.deployment }}" }} rolled back a version"
        description: "modelops rolled back a canary or a promoted version in the last 10 minutes; kubectl describe modeldeployment shows why."
    - alert: ModelDeploymentAnalysisStuck
      expr: sum by (namespace, deployment) (rate(modelops_analysis_measurements_total{verdict=~"Inconclusive|Error"}[5m])) > 0 unless sum by (namespace, deployment) (rate(modelops_analysis_measurements_total{verdict=~"Pass|Fail"}[5m])) > 0
      for: {{ .Values.prometheusRule.analysisStuckFor }}
      labels: {severity: warning}
      annotations:
        summary: "{{ "{{ $labels.namespace }}/{{ $labels.deployment }}" }} cannot judge its canary"
        description: "Every analysis measurement has been Inconclusive or Error for {{ .Values.prometheusRule.analysisStuckFor }}: the rollout is paused (no data, or Prometheus unreachable)."
    - alert: ModelDeploymentRetrainingFailed
      expr: sum by (namespace, deployment) (increase(modelops_retraining_total{result=~"failed|no_candidate"}[30m])) > 0
      labels: {severity: warning}
      annotations:
        summary: "{{ "{{ $labels.namespace }}/{{ $labels.deployment }}" }} retraining produced no candidate"
        description: "A retraining Job failed or registered no acceptable candidate in the last 30 minutes."
    - alert: ModelRegistryUnreachable
      expr: sum(rate(modelops_registry_errors_total[5m])) > 0
      for: {{ .Values.prometheusRule.registryUnreachableFor }}
      labels: {severity: critical}
      annotations:
        summary: "modelops cannot reach an MLflow registry"
        description: "Registry lookups or writes have been failing for {{ .Values.prometheusRule.registryUnreachableFor }}; new versions are not noticed."
{{- end -}}

{{- define "modelops.monitorLabels" -}}
{{ include "modelops.labels" . }}
app.kubernetes.io/component: monitor
{{- end -}}

{{- define "modelops.monitorSelector" -}}
app.kubernetes.io/name: modelops-monitor
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The monitor's in-cluster URL, where the operator points monitored predictors' loggers. */}}
{{- define "modelops.monitorUrl" -}}
http://{{ include "modelops.fullname" . }}-monitor.{{ .Release.Namespace }}.svc/
{{- end -}}
