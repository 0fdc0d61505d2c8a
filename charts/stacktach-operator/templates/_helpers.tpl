{{/* The chart name, truncated to a DNS label. */}}
{{- define "stacktach-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The full name of the release's objects. */}}
{{- define "stacktach-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* chart-version, for the helm.sh/chart label. */}}
{{- define "stacktach-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "stacktach-operator.labels" -}}
helm.sh/chart: {{ include "stacktach-operator.chart" . }}
{{ include "stacktach-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: stacktach
{{- end }}

{{/* Labels that select the operator's pods. */}}
{{- define "stacktach-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "stacktach-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/* The ServiceAccount the operator runs as. */}}
{{- define "stacktach-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "stacktach-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image reference; the tag defaults to the appVersion. */}}
{{- define "stacktach-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
The leader Lease's name: leaderElection.leaseName, else the full name.
*/}}
{{- define "stacktach-operator.leaseName" -}}
{{- .Values.leaderElection.leaseName | default (include "stacktach-operator.fullname" .) }}
{{- end }}

{{/*
The namespaces whose regions are reconciled: watchNamespaces, plus watchNamespace (the
older one-namespace value) when set; empty: every namespace.
*/}}
{{- define "stacktach-operator.watchNamespaces" -}}
{{- $list := list -}}
{{- range .Values.watchNamespaces }}{{- $list = append $list . -}}{{- end -}}
{{- if .Values.watchNamespace }}{{- $list = append $list .Values.watchNamespace -}}{{- end -}}
{{- $list | uniq | join "," -}}
{{- end }}
