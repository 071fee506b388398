{{/* Environment entries of MLflow's server and of its clients. */}}

{{/*
The MLflow account of one client, as environment entries (nothing with auth off): the variables
MLflow's own client reads, which the service and the round read too. (dict "ctx" $ "role" "training")
*/}}
{{- define "mlstack.mlflow.clientEnv" -}}
{{- $auth := .ctx.Values.mlflow.auth -}}
{{- if $auth.enabled }}
- name: MLFLOW_TRACKING_USERNAME
  value: {{ index $auth.accounts .role | quote }}
- name: MLFLOW_TRACKING_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "mlstack.mlflow.authSecret" .ctx }}
      key: {{ printf "%s-password" .role }}
{{- end }}
{{- end -}}

{{/* The database URI of the MLflow server, as environment entries. */}}
{{- define "mlstack.mlflow.backendEnv" -}}
- name: MLFLOW_BACKEND_STORE_URI
{{- if eq .Values.mlflow.backendStore.type "external" }}
  valueFrom:
    secretKeyRef:
      name: {{ .Values.mlflow.backendStore.existingSecret }}
      key: {{ .Values.mlflow.backendStore.uriKey }}
{{- else }}
  value: sqlite:////mlflow/mlflow.db
{{- end }}
{{- end -}}
