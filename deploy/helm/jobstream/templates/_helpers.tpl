{{/* Names and labels. */}}
{{- define "jobstream.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "jobstream.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "sse-bridge"). */}}
{{- define "jobstream.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "jobstream.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* The Triton host a GPU worker of `group` talks to. */}}
{{- define "jobstream.tritonHost" -}}
{{- if .root.Values.triton.externalHost -}}
{{ .root.Values.triton.externalHost }}
{{- else -}}
{{ include "jobstream.fullname" .root }}-triton-{{ .group }}
{{- end -}}
{{- end -}}

{{/* The models the GPU workers serve, comma-separated: SubmitJob refuses a pipeline that needs another. */}}
{{- define "jobstream.models" -}}
{{- $models := list -}}
{{- range .Values.gpuWorkers }}{{ $models = append $models .model }}{{ end -}}
{{ join "," $models }}
{{- end -}}

{{/*
Refusals at render time: a Secret the processes need and no name for it; a secret given inline as a setting;
the stream-token Secret or a known development value of a secret visible at install time (lookup finds nothing
under `helm template`).
*/}}
{{- define "jobstream.checks" -}}
{{- $secrets := .Values.secrets -}}
{{- if not $secrets.streamToken.name -}}
{{- fail "secrets.streamToken.name: name the Secret that holds the stream-token signing secret (it is never taken inline)" -}}
{{- end -}}
{{- if not $secrets.apiKeys.name -}}
{{- fail "secrets.apiKeys.name: name the Secret that holds the API keys file" -}}
{{- end -}}
{{- if not $secrets.objectStore.name -}}
{{- fail "secrets.objectStore.name: name the Secret that holds the object store's secret key" -}}
{{- end -}}
{{- if and .Values.provisioning.enabled .Values.provisioning.createObjectStoreUser (not $secrets.objectStoreRoot.name) -}}
{{- fail "secrets.objectStoreRoot.name: provisioning creates the services' MinIO user with MinIO's root user: name its Secret (or set provisioning.createObjectStoreUser=false)" -}}
{{- end -}}
{{- if and (hasPrefix "SASL" .Values.kafka.securityProtocol) (not $secrets.kafkaSasl.name) -}}
{{- fail "secrets.kafkaSasl.name: kafka.securityProtocol is SASL_*: name the Secret that holds the SASL password" -}}
{{- end -}}
{{- if and .Values.triton.ssl (not .Values.triton.externalHost) (not $secrets.tritonTls.name) -}}
{{- fail "secrets.tritonTls.name: triton.ssl with the chart's own Triton: name the kubernetes.io/tls Secret it serves gRPC with" -}}
{{- end -}}
{{- range $name := list "STREAM_TOKEN_SECRET" "MINIO_SECRET_KEY" "MINIO_ROOT_PASSWORD" "MINIO_ROOT_USER" "KAFKA_SASL_PASSWORD" -}}
{{- if hasKey $.Values.settings $name -}}
{{- fail (printf "settings.%s: a secret is never a value; name its Secret under secrets." $name) -}}
{{- end -}}
{{- end -}}
{{- $development := list "jobstream-dev-secret" "jobstream-dev-app-secret" "jobstream-dev-stream-token-secret" "minioadmin" -}}
{{- range $ref := list $secrets.streamToken $secrets.objectStore -}}
{{- $found := lookup "v1" "Secret" $.Release.Namespace $ref.name -}}
{{- if and $found $found.data (hasKey $found.data $ref.key) -}}
{{- $value := index $found.data $ref.key | b64dec | trim -}}
{{- if or (has $value $development) (lt (len $value) 16) -}}
{{- fail (printf "Secret %s key %s holds a development or short value: make a real one (openssl rand -base64 32)" $ref.name $ref.key) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The environment every jobstream process shares (the ConfigMap, the SDK's Temporal Secret, the secrets). */}}
{{- define "jobstream.env" -}}
envFrom:
  - configMapRef:
      name: {{ include "jobstream.fullname" . }}-settings
  {{- if .Values.temporal.sdkEnvSecret }}
  - secretRef:
      name: {{ .Values.temporal.sdkEnvSecret }}
  {{- end }}
env:
  - name: JOBSTREAM_INSTANCE
    valueFrom:
      fieldRef: {fieldPath: metadata.name}
  - name: JOBSTREAM_STREAM_TOKEN_SECRET
    valueFrom:
      secretKeyRef: {name: {{ .Values.secrets.streamToken.name }}, key: {{ .Values.secrets.streamToken.key }}}
  - name: JOBSTREAM_MINIO_SECRET_KEY
    valueFrom:
      secretKeyRef: {name: {{ .Values.secrets.objectStore.name }}, key: {{ .Values.secrets.objectStore.key }}}
  {{- if .Values.secrets.kafkaSasl.name }}
  - name: JOBSTREAM_KAFKA_SASL_PASSWORD
    valueFrom:
      secretKeyRef: {name: {{ .Values.secrets.kafkaSasl.name }}, key: {{ .Values.secrets.kafkaSasl.key }}}
  {{- end }}
{{- end -}}

{{/* Volumes every jobstream process mounts: its state (readiness files) and the secrets' files. */}}
{{- define "jobstream.volumes" -}}
- name: state
  emptyDir: {}
- name: tmp
  emptyDir: {}
- name: api-keys
  secret:
    secretName: {{ .Values.secrets.apiKeys.name }}
    items: [{key: {{ .Values.secrets.apiKeys.key }}, path: api-keys.json}]
{{- range $volume, $ref := dict "tls" .Values.secrets.tls "client-ca" .Values.secrets.clientCa "kafka-ca" .Values.secrets.kafkaCa "object-store-ca" .Values.secrets.objectStoreCa "triton-ca" .Values.secrets.tritonCa }}
{{- if $ref.name }}
- name: {{ $volume }}
  secret:
    secretName: {{ $ref.name }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "jobstream.volumeMounts" -}}
- {name: state, mountPath: /run/jobstream}
- {name: tmp, mountPath: /tmp}
- {name: api-keys, mountPath: /etc/jobstream/keys, readOnly: true}
{{- range $volume, $ref := dict "tls" .Values.secrets.tls "client-ca" .Values.secrets.clientCa "kafka-ca" .Values.secrets.kafkaCa "object-store-ca" .Values.secrets.objectStoreCa "triton-ca" .Values.secrets.tritonCa }}
{{- if $ref.name }}
- {name: {{ $volume }}, mountPath: /etc/jobstream/{{ $volume }}, readOnly: true}
{{- end }}
{{- end }}
{{- end -}}

{{/* The pod-level parts every jobstream pod shares: (dict "root" $ "serviceAccount" "" "token" false). */}}
{{- define "jobstream.podSpec" -}}
{{- $root := .root -}}
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets: {{ toYaml . | nindent 2 }}
{{- end }}
serviceAccountName: {{ .serviceAccount | default (include "jobstream.fullname" $root) }}
automountServiceAccountToken: {{ .token | default false }}
securityContext: {{ toYaml $root.Values.podSecurityContext | nindent 2 }}
{{- end -}}

{{/* A probe of a jobstream process: (dict "tls" bool "grpcPort" n "httpPort" n "exec" list). */}}
{{- define "jobstream.probe" -}}
{{- if .exec }}
exec:
  command: {{ toJson .exec }}
timeoutSeconds: 5
periodSeconds: 10
{{- else if .grpcPort }}
grpc: {port: {{ .grpcPort }}}
timeoutSeconds: 3
periodSeconds: 5
{{- else }}
httpGet: {path: /healthz, port: {{ .httpPort }}, scheme: {{ ternary "HTTPS" "HTTP" .tls }}}
timeoutSeconds: 3
periodSeconds: 5
{{- end }}
{{- end -}}

{{/* Readiness, liveness and startup probes from one probe. */}}
{{- define "jobstream.probes" -}}
readinessProbe: {{- include "jobstream.probe" . | trim | nindent 2 }}
livenessProbe: {{- include "jobstream.probe" . | trim | nindent 2 }}
  failureThreshold: 6
startupProbe: {{- include "jobstream.probe" . | trim | nindent 2 }}
  failureThreshold: 60
{{- end -}}

{{/* A PodDisruptionBudget and, where enabled, a HorizontalPodAutoscaler:
(dict "root" $ "name" n "component" c "values" v "kind" "Deployment"). */}}
{{- define "jobstream.availability" -}}
{{- $selector := dict "root" .root "component" .component }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ .name }}
  labels: {{- include "jobstream.labels" .root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
spec:
  minAvailable: {{ .values.pdb.minAvailable }}
  selector:
    matchLabels: {{- include "jobstream.selector" $selector | nindent 6 }}
{{- if and .values.hpa .values.hpa.enabled }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ .name }}
  labels: {{- include "jobstream.labels" .root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: {{ .kind }}, name: {{ .name }}}
  minReplicas: {{ .values.hpa.minReplicas }}
  maxReplicas: {{ .values.hpa.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target: {type: Utilization, averageUtilization: {{ .values.hpa.targetCPUUtilizationPercentage }}}
{{- end }}
{{- end -}}
