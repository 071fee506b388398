{{/*
Names. Kubernetes names are cut to 63 characters (DNS label) without a trailing dash.
*/}}
{{- define "mlstack.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "mlstack.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Name of one component's objects: (dict "ctx" $ "component" "inference"). */}}
{{- define "mlstack.componentName" -}}
{{- $full := include "mlstack.fullname" .ctx | trunc (int (sub 62 (len .component))) | trimSuffix "-" -}}
{{- printf "%s-%s" $full .component -}}
{{- end -}}

{{- define "mlstack.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Labels: the full standard set on metadata, (dict "ctx" $ "component" "inference").
*/}}
{{- define "mlstack.labels" -}}
helm.sh/chart: {{ include "mlstack.chart" .ctx }}
{{ include "mlstack.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: mlstack
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
Selector labels: name and instance, plus the component because the release runs several
workloads whose selectors must not overlap. Selectors are immutable: nothing else goes here.
*/}}
{{- define "mlstack.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mlstack.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- if .component }}
app.kubernetes.io/component: {{ .component }}
{{- end }}
{{- end -}}

{{/*
Image reference: (dict "ctx" $ "image" .Values.image.inference). The tag defaults to the chart's
appVersion; a digest is appended when set.
*/}}
{{- define "mlstack.image" -}}
{{- $registry := .ctx.Values.image.registry -}}
{{- $repository := .image.repository -}}
{{- if $registry -}}
{{- $repository = printf "%s/%s" (trimSuffix "/" $registry) $repository -}}
{{- end -}}
{{- $tag := default .ctx.Chart.AppVersion .image.tag | toString -}}
{{- if .image.digest -}}
{{- printf "%s:%s@%s" $repository $tag .image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repository $tag -}}
{{- end -}}
{{- end -}}

{{/* imagePullSecrets, on a new line at the given indent, or nothing: (dict "ctx" $ "indent" 6). */}}
{{- define "mlstack.imagePullSecrets" -}}
{{- with .ctx.Values.imagePullSecrets }}
{{ printf "imagePullSecrets:\n%s" (toYaml . | indent 2) | indent $.indent }}
{{- end }}
{{- end -}}

{{/* Names shared between components. */}}
{{- define "mlstack.mlflow.fullname" -}}
{{- include "mlstack.componentName" (dict "ctx" . "component" "mlflow") -}}
{{- end -}}

{{- define "mlstack.inference.fullname" -}}
{{- include "mlstack.componentName" (dict "ctx" . "component" "inference") -}}
{{- end -}}

{{- define "mlstack.inference.apiKeySecret" -}}
{{- default (printf "%s-api-key" (include "mlstack.inference.fullname" . | trunc 55 | trimSuffix "-")) .Values.inference.auth.existingSecret -}}
{{- end -}}

{{- define "mlstack.control.fullname" -}}
{{- include "mlstack.componentName" (dict "ctx" . "component" "control") -}}
{{- end -}}

{{- define "mlstack.webhooks.secret" -}}
{{- default (printf "%s-webhook" (include "mlstack.fullname" . | trunc 55 | trimSuffix "-")) .Values.webhooks.existingSecret -}}
{{- end -}}

{{/* Where MLflow delivers alias events: the control plane's receiver, which relays them to
every inference pod, else the inference Service (one pod; the others poll). */}}
{{- define "mlstack.webhooks.url" -}}
{{- if .Values.control.enabled -}}
{{- printf "%s/v1/webhooks/mlflow" (include "mlstack.control.url" .) -}}
{{- else -}}
{{- printf "http://%s.%s.svc:%d/v1/webhooks/mlflow" (include "mlstack.inference.fullname" .) .Release.Namespace (int .Values.inference.port) -}}
{{- end -}}
{{- end -}}

{{- define "mlstack.inference.traffic" -}}
{{- printf "%s-traffic" (include "mlstack.inference.fullname" . | trunc 55 | trimSuffix "-") -}}
{{- end -}}

{{- define "mlstack.control.apiKeySecret" -}}
{{- default (printf "%s-api-key" (include "mlstack.control.fullname" . | trunc 55 | trimSuffix "-")) .Values.control.auth.existingSecret -}}
{{- end -}}

{{/* The ConfigMap publishing the training Job template (`mlstack train`, POST /v1/training-jobs). */}}
{{- define "mlstack.control.trainingTemplate" -}}
{{- include "mlstack.componentName" (dict "ctx" . "component" "training-job") -}}
{{- end -}}

{{/* The control plane's base URL inside the cluster. */}}
{{- define "mlstack.control.url" -}}
{{- printf "http://%s.%s.svc:%d" (include "mlstack.control.fullname" .) .Release.Namespace (int .Values.control.port) -}}
{{- end -}}

{{/* Whether the control plane keeps its SQLite prediction log on a PVC. */}}
{{- define "mlstack.control.usesVolume" -}}
{{- if and (eq .Values.control.database.type "sqlite") .Values.control.persistence.enabled -}}
true
{{- end -}}
{{- end -}}

{{/* Whether the inference pods ship prediction records to the release's control plane. */}}
{{- define "mlstack.control.predictionLog" -}}
{{- if and .Values.control.enabled .Values.control.predictionLog.enabled .Values.inference.enabled -}}
true
{{- end -}}
{{- end -}}

{{/* MLflow's URI as the release's clients see it. */}}
{{- define "mlstack.trackingUri" -}}
{{- if .Values.mlflow.enabled -}}
{{- printf "http://%s.%s.svc:%d" (include "mlstack.mlflow.fullname" .) .Release.Namespace (int .Values.mlflow.port) -}}
{{- else -}}
{{- .Values.mlflow.externalTrackingUri -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding MLflow's admin and client passwords (mlflow.auth). */}}
{{- define "mlstack.mlflow.authSecret" -}}
{{- default (printf "%s-auth" (include "mlstack.mlflow.fullname" . | trunc 58 | trimSuffix "-")) .Values.mlflow.auth.existingSecret -}}
{{- end -}}

{{/*
The ServiceAccount name of a component: (dict "ctx" $ "component" "training" "values" $values).
serviceAccount.name, else the component's full name when created, else `default`.
*/}}
{{- define "mlstack.serviceAccountName" -}}
{{- $sa := .values.serviceAccount -}}
{{- if $sa.create -}}
{{- default (include "mlstack.componentName" (dict "ctx" .ctx "component" .component)) $sa.name -}}
{{- else -}}
{{- default "default" $sa.name -}}
{{- end -}}
{{- end -}}

{{/* Whether the MLflow server keeps anything on the PVC (SQLite database or artifacts). */}}
{{- define "mlstack.mlflow.usesVolume" -}}
{{- if or (eq .Values.mlflow.backendStore.type "sqlite") (not .Values.mlflow.artifacts.destination) -}}
true
{{- end -}}
{{- end -}}

{{/*
Whether to render Prometheus Operator objects: the API is served, or forced by a value.
*/}}
{{- define "mlstack.monitoring.crds" -}}
{{- if and .Values.monitoring.enabled (or .Values.monitoring.forceCRDs (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1")) -}}
true
{{- end -}}
{{- end -}}
