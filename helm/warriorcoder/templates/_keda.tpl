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
      {{- with $k.authenticationRef }}
      authenticationRef:
        {{- toYaml . | nindent 8 }}
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
        {{- range $key, $value := $k.extraMetadata }}
        {{ $key }}: {{ $value | toString | quote }}
        {{- end }}
{{- end }}
{{- end }}
