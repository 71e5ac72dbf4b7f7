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

{{/* The operator's permissions: only what it uses. */}}
{{- define "modelops.rules" -}}
- apiGroups: [modelops.io]
  resources: [modeldeployments]
  verbs: [get, list, watch, patch]           # watch; kopf's finalizer and bookkeeping annotations
- apiGroups: [modelops.io]
  resources: [modeldeployments/status]
  verbs: [get, patch]
- apiGroups: [serving.kserve.io]
  resources: [inferenceservices]
  verbs: [get, list, watch, create, patch]   # server-side apply; deletion is the GC's
- apiGroups: [gateway.networking.k8s.io]
  resources: [httproutes]
  verbs: [get, create, patch]                # spec.serving.httpRoute
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create]          # retraining Jobs
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]                               # the registry and Prometheus Secrets deployments name
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- end -}}
