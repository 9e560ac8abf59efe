{{/*
KEDA ScaledObject of a consuming service (autoscaling.mode: keda): the replica count follows the
lag of the service's consumer group on its input topic (KEDA's Kafka scaler), the signal that a
stage waiting on model servers is behind; CPU says little about such a stage. KEDA creates and
owns the HorizontalPodAutoscaler itself, so the chart renders no HPA of its own in this mode.
*/}}

{{/* The topic each consuming service reads (warriorcoder/services/*.py). */}}
{{- define "warriorcoder.inputTopic" -}}
{{- $topics := dict "responder" "challenges" "judge" "responses" "rater" "judgments" "exporter" "battles" -}}
{{- index $topics . | default "" -}}
{{- end }}

{{/* The consuming services, those that can scale on lag. */}}
{{- define "warriorcoder.lagScalable" -}}responder judge rater exporter{{- end }}

{{/* KEDA's name of the services' SASL mechanism (global.kafka.sasl.mechanism). */}}
{{- define "warriorcoder.kedaSasl" -}}
{{- index (dict "PLAIN" "plaintext" "SCRAM-SHA-256" "scram_sha256" "SCRAM-SHA-512" "scram_sha512") . -}}
{{- end }}

{{/*
Non-empty when the chart makes the KEDA TriggerAuthentication: some stage scales with KEDA
without an authenticationRef of its own, and the broker needs credentials or certificates the
services get from Secrets (SASL, or a CA / client certificate Secret). KEDA then reads the same
Secrets the services read, so the scaler and the services always present the same identity.
*/}}
{{- define "warriorcoder.kedaAuthNeeded" -}}
{{- $root := . }}
{{- $k := $root.Values.global.kafka }}
{{- if or (hasPrefix "SASL_" $k.securityProtocol) (and (hasSuffix "SSL" $k.securityProtocol) (or $k.tls.caSecret $k.tls.clientSecret)) }}
{{- range $c := splitList " " (include "warriorcoder.lagScalable" $root) }}
{{- $svc := index $root.Values $c }}
{{- if and $svc.enabled $svc.autoscaling.enabled (eq (default "cpu" $svc.autoscaling.mode) "keda") (not $svc.autoscaling.keda.authenticationRef) }}{{ $c }} {{ end }}
{{- end }}
{{- end }}
{{- end }}

{{- define "warriorcoder.kedaAuthName" -}}
{{- printf "%s-kafka" (include "warriorcoder.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The TriggerAuthentication (keda-trigger-authentication.yaml renders it when needed). */}}
{{- define "warriorcoder.kedaTriggerAuthentication" -}}
{{- $k := .Values.global.kafka }}
{{- $sasl := hasPrefix "SASL_" $k.securityProtocol }}
{{- $tls := hasSuffix "SSL" $k.securityProtocol }}
apiVersion: keda.sh/v1alpha1
kind: TriggerAuthentication
metadata:
  name: {{ include "warriorcoder.kedaAuthName" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "warriorcoder.labels" . | nindent 4 }}
spec:
  {{- if $sasl }}
  # The user name is a plain variable of the scaled Deployment's container; KEDA reads it there.
  env:
    - parameter: username
      name: WARRIORCODER_KAFKA_SASL_USERNAME
  {{- end }}
  secretTargetRef:
    {{- if $sasl }}
    - parameter: password
      name: {{ $k.sasl.existingSecret }}
      key: {{ $k.sasl.passwordKey }}
    {{- end }}
    {{- if and $tls $k.tls.caSecret }}
    - parameter: ca
      name: {{ $k.tls.caSecret }}
      key: {{ $k.tls.caKey }}
    {{- end }}
    {{- if and $tls $k.tls.clientSecret }}
    - parameter: cert
      name: {{ $k.tls.clientSecret }}
      key: {{ $k.tls.certKey }}
    - parameter: key
      name: {{ $k.tls.clientSecret }}
      key: {{ $k.tls.keyKey }}
    {{- end }}
{{- end }}

{{/* (dict "root" $ "component" "judge") */}}
{{- define "warriorcoder.scaledObject" -}}
{{- $root := .root }}
{{- $g := $root.Values.global }}
{{- $svc := index $root.Values .component }}
{{- $as := $svc.autoscaling }}
{{- if and $svc.enabled $as.enabled (eq (default "cpu" $as.mode) "keda") }}
{{- $topic := include "warriorcoder.inputTopic" .component }}
{{- if not $topic }}
{{- fail (printf "%s.autoscaling.mode: keda scales on consumer lag, and the %s consumes no topic; use mode cpu" .component .component) }}
{{- end }}
{{- if gt (int $as.minReplicas) (int $as.maxReplicas) }}
{{- fail (printf "%s.autoscaling: minReplicas (%d) is above maxReplicas (%d)" .component (int $as.minReplicas) (int $as.maxReplicas)) }}
{{- end }}
{{- $k := $as.keda }}
{{- $chartAuth := include "warriorcoder.kedaAuthNeeded" $root }}
{{- if and (not $k.authenticationRef) (ne $g.kafka.securityProtocol "PLAINTEXT") }}
{{- range $key := list "tls" "sasl" }}
{{- if hasKey $k.extraMetadata $key }}
{{- fail (printf "%s.autoscaling.keda.extraMetadata.%s: the chart sets it from global.kafka.securityProtocol; set it only with an authenticationRef of your own" $.component $key) }}
{{- end }}
{{- end }}
{{- end }}
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: {{ include "warriorcoder.componentName" . }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "warriorcoder.componentLabels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "warriorcoder.componentName" . }}
  minReplicaCount: {{ $as.minReplicas }}
  maxReplicaCount: {{ $as.maxReplicas }}
  pollingInterval: {{ $k.pollingInterval }}
  cooldownPeriod: {{ $k.cooldownPeriod }}
  {{- with $as.behavior }}
  advanced:
    horizontalPodAutoscalerConfig:
      behavior:
        {{- toYaml . | nindent 8 }}
  {{- end }}
  triggers:
    - type: kafka
      {{- if $k.authenticationRef }}
      authenticationRef:
        {{- toYaml $k.authenticationRef | nindent 8 }}
      {{- else if $chartAuth }}
      authenticationRef:
        name: {{ include "warriorcoder.kedaAuthName" $root }}
      {{- end }}
      # Every value of a trigger's metadata is a string (the CRD says so).
      metadata:
        bootstrapServers: {{ $g.kafka.bootstrapServers | quote }}
        consumerGroup: {{ printf "%s.%s" $g.kafka.groupPrefix .component | quote }}
        topic: {{ printf "%s%s" $g.kafka.topicPrefix $topic | quote }}
        lagThreshold: {{ $k.lagThreshold | toString | quote }}
        activationLagThreshold: {{ $k.activationLagThreshold | toString | quote }}
        # The services start a new group at the earliest offset; KEDA counts lag the same way.
        offsetResetPolicy: earliest
        # Replicas beyond the topic's partitions would sit idle (global.kafka.partitions).
        allowIdleConsumers: "false"
        {{- /* With an authenticationRef of the user's, tls and sasl are that one's business. */}}
        {{- if not $k.authenticationRef }}
        {{- if hasSuffix "SSL" $g.kafka.securityProtocol }}
        tls: enable
        {{- end }}
        {{- if hasPrefix "SASL_" $g.kafka.securityProtocol }}
        sasl: {{ include "warriorcoder.kedaSasl" $g.kafka.sasl.mechanism }}
        {{- end }}
        {{- end }}
        {{- range $key, $value := $k.extraMetadata }}
        {{ $key }}: {{ $value | toString | quote }}
        {{- end }}
{{- end }}
{{- end }}
