{{/* The training pod and Job bodies, shared by job.yaml and cronjob.yaml and published to the
control plane as the training Job template. */}}

{{/*
What the training container runs: `round` (the built-in `python -m training`) or `custom`
(training.command). The control plane reads it from the `mlstack.io/training-entrypoint`
annotation of the Job and of its pods.
*/}}
{{- define "mlstack.training.entrypoint" -}}
{{- ternary "custom" "round" (not (empty .Values.training.command)) -}}
{{- end -}}

{{/* The training Job's annotations: (dict "ctx" $). */}}
{{- define "mlstack.training.jobAnnotations" -}}
mlstack.io/training-entrypoint: {{ include "mlstack.training.entrypoint" .ctx }}
{{- end -}}

{{/*
Training image: training.image when its repository is set (a full reference: image.registry is
not prefixed, the image is the user's), else the training image (image.training). validate.yaml requires a tag.
*/}}
{{- define "mlstack.training.image" -}}
{{- $image := .Values.training.image -}}
{{- if $image.repository -}}
{{- $reference := printf "%s:%s" $image.repository (toString $image.tag) -}}
{{- if $image.digest -}}
{{- $reference = printf "%s@%s" $reference $image.digest -}}
{{- end -}}
{{- $reference -}}
{{- else -}}
{{- include "mlstack.image" (dict "ctx" . "image" .Values.image.training) -}}
{{- end -}}
{{- end -}}

{{/* The version of the code the training container runs (MLSTACK_CODE_VERSION): its image's tag. */}}
{{- define "mlstack.training.codeVersion" -}}
{{- if .Values.training.image.repository -}}
{{- .Values.training.image.tag | toString -}}
{{- else -}}
{{- default .Chart.AppVersion .Values.image.training.tag | toString -}}
{{- end -}}
{{- end -}}

{{/*
Training pod template, shared by the Job and the CronJob: (dict "ctx" $). Its labels leave out
the chart version so that a chart upgrade alone does not change the Job's spec (see job.yaml).
*/}}
{{- define "mlstack.training.podTemplate" -}}
{{- $ctx := .ctx -}}
{{- $values := $ctx.Values.training -}}
metadata:
  labels:
    {{- include "mlstack.selectorLabels" (dict "ctx" $ctx "component" "training") | nindent 4 }}
    app.kubernetes.io/version: {{ $ctx.Chart.AppVersion | quote }}
  annotations:
    {{- include "mlstack.training.jobAnnotations" (dict "ctx" $ctx) | nindent 4 }}
    {{- with $values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  restartPolicy: Never
  serviceAccountName: {{ include "mlstack.serviceAccountName" (dict "ctx" $ctx "component" "training" "values" $values) }}
  automountServiceAccountToken: false
  enableServiceLinks: false
  {{- include "mlstack.imagePullSecrets" (dict "ctx" $ctx "indent" 2) }}
  securityContext:
    {{- toYaml $ctx.Values.podSecurityContext | nindent 4 }}
  containers:
    - name: training
      image: {{ include "mlstack.training.image" $ctx | quote }}
      imagePullPolicy: {{ default $ctx.Values.image.pullPolicy $values.image.pullPolicy }}
      {{- if $values.command }}
      command:
        {{- toYaml $values.command | nindent 8 }}
      {{- with $values.args }}
      args:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- else }}
      command: ["python", "-m", "training"]
      # A flag, not MLSTACK_CANDIDATES: pydantic-settings reads list settings from the
      # environment as JSON only.
      args:
        - --candidates={{ join "," $values.candidates }}
        {{- with $values.extraArgs }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- end }}
      # The round (or training.publish in the user's code) writes its result as JSON here; the
      # control plane reads it from the pod's terminated state. A crash leaves the log's tail.
      terminationMessagePath: /dev/termination-log
      terminationMessagePolicy: FallbackToLogsOnError
      # The same environment for the built-in round and a custom command.
      env:
        - name: MLFLOW_TRACKING_URI
          value: {{ include "mlstack.trackingUri" $ctx | quote }}
        {{- include "mlstack.mlflow.clientEnv" (dict "ctx" $ctx "role" "training") | nindent 8 }}
        - name: MLSTACK_MODEL_NAME
          value: {{ $ctx.Values.model.name | quote }}
        - name: MLSTACK_DATASET
          value: {{ $values.dataset | quote }}
        {{- if $values.csv }}
        - name: MLSTACK_CSV
          value: {{ $values.csv | quote }}
        {{- end }}
        {{- if $values.data.existingClaim }}
        - name: MLSTACK_DATA
          value: {{ printf "/data/%s" (trimPrefix "/" $values.data.path) | quote }}
        {{- else if $values.data.source }}
        - name: MLSTACK_DATA
          value: {{ $values.data.source | quote }}
        {{- end }}
        {{- $s3 := include "mlstack.training.s3" $ctx | fromYaml }}
        {{- with $s3.endpointUrl }}
        - name: MLFLOW_S3_ENDPOINT_URL
          value: {{ . | quote }}
        {{- end }}
        {{- if not (kindIs "invalid" $values.nJobs) }}
        - name: MLSTACK_N_JOBS
          value: {{ $values.nJobs | quote }}
        {{- end }}
        - name: MLSTACK_TIME_BUDGET_SECONDS
          value: {{ $values.timeBudgetSeconds | quote }}
        {{- if gt (int $values.parallelism) 1 }}
        # A round spread over an Indexed Job: Kubernetes sets JOB_COMPLETION_INDEX, and the
        # Job's uid is the id all its pods share.
        - name: MLSTACK_SHARDS
          value: {{ $values.parallelism | quote }}
        - name: MLSTACK_ROUND_ID
          valueFrom:
            fieldRef:
              fieldPath: metadata.labels['batch.kubernetes.io/controller-uid']
        {{- end }}
        {{- if $values.target }}
        - name: MLSTACK_TARGET
          value: {{ $values.target | quote }}
        {{- end }}
        - name: MLSTACK_EXPERIMENT
          value: {{ $values.experiment | quote }}
        - name: MLSTACK_METRIC
          value: {{ $values.metric | quote }}
        - name: MLSTACK_MARGIN
          value: {{ $values.margin | quote }}
        - name: MLSTACK_MIN_SCORE
          value: {{ $values.minScore | quote }}
        - name: MLSTACK_FORCE
          value: {{ $values.force | quote }}
        - name: MLSTACK_MLFLOW_TIMEOUT_SECONDS
          value: {{ $values.mlflowTimeoutSeconds | quote }}
        - name: MLSTACK_CODE_VERSION
          value: {{ include "mlstack.training.codeVersion" $ctx | quote }}
        - name: MLSTACK_RESULT_FILE
          value: /dev/termination-log
        {{- with $values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with $s3.existingSecret }}
      envFrom:
        - secretRef:
            name: {{ . }}
      {{- end }}
      resources:
        {{- toYaml $values.resources | nindent 8 }}
      securityContext:
        {{- toYaml $ctx.Values.containerSecurityContext | nindent 8 }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
        {{- if $values.data.existingClaim }}
        - name: data
          mountPath: /data
          readOnly: true
        {{- end }}
        {{- with $values.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    - name: tmp
      emptyDir: {}
    {{- if $values.data.existingClaim }}
    - name: data
      persistentVolumeClaim:
        claimName: {{ $values.data.existingClaim }}
        readOnly: true
    {{- end }}
    {{- with $values.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}

{{/* The S3 settings of the round's s3:// data (YAML: endpointUrl, existingSecret): its own,
else those of MLflow's artifacts; empty unless the data is on S3. */}}
{{- define "mlstack.training.s3" -}}
{{- $data := .Values.training.data -}}
{{- if hasPrefix "s3://" $data.source -}}
endpointUrl: {{ coalesce $data.s3.endpointUrl .Values.mlflow.artifacts.s3.endpointUrl | quote }}
existingSecret: {{ coalesce $data.s3.existingSecret .Values.mlflow.artifacts.s3.existingSecret | quote }}
{{- end -}}
{{- end -}}

{{/* Training Job spec, shared by the Job and the CronJob: (dict "ctx" $). */}}
{{- define "mlstack.training.jobSpec" -}}
{{- $values := .ctx.Values.training -}}
backoffLimit: {{ $values.backoffLimit }}
activeDeadlineSeconds: {{ $values.activeDeadlineSeconds }}
{{- if gt (int $values.parallelism) 1 }}
# One pod per share of the round, all at once; pod 0 gathers the shares and registers the best.
completionMode: Indexed
completions: {{ $values.parallelism }}
parallelism: {{ $values.parallelism }}
{{- end }}
{{- if not (kindIs "invalid" $values.ttlSecondsAfterFinished) }}
ttlSecondsAfterFinished: {{ $values.ttlSecondsAfterFinished }}
{{- end }}
template:
  {{- include "mlstack.training.podTemplate" . | nindent 2 }}
{{- end -}}
