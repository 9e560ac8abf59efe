{{/*
Everything the chart renders more than once lives here: names and labels, the arena config with
its generated roster, the merged settings of a model server, and the Deployment, Service, HPA,
ServiceMonitor, PodDisruptionBudget and NetworkPolicy of a service. The per-service templates
(challenger.yaml ... exporter.yaml) only include these with the service's name.
*/}}

{{/* The five services, and those of them that call the model servers. */}}
{{- define "warriorcoder.serviceNames" -}}challenger responder judge rater exporter{{- end }}
{{- define "warriorcoder.modelCallers" -}}challenger responder judge{{- end }}

{{- define "warriorcoder.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "warriorcoder.fullname" -}}
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

{{/* Name of one component's resources: (dict "root" $ "component" "judge") */}}
{{- define "warriorcoder.componentName" -}}
{{- printf "%s-%s" (include "warriorcoder.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "warriorcoder.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "warriorcoder.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: warriorcoder
{{- end }}

{{/* Selector labels of a component: (dict "root" $ "component" "judge") */}}
{{- define "warriorcoder.selectorLabels" -}}
app.kubernetes.io/name: {{ include "warriorcoder.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "warriorcoder.componentLabels" -}}
{{ include "warriorcoder.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "warriorcoder.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "warriorcoder.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "warriorcoder.image" -}}
{{- $image := .Values.global.image }}
{{- if $image.digest }}
{{- printf "%s@%s" $image.repository $image.digest }}
{{- else }}
{{- printf "%s:%s" $image.repository (default .Chart.AppVersion $image.tag) }}
{{- end }}
{{- end }}

{{- define "warriorcoder.mongodbSecretName" -}}
{{- if .Values.global.mongodb.uri }}
{{- printf "%s-mongodb" (include "warriorcoder.fullname" .) }}
{{- else if .Values.global.mongodb.existingSecret }}
{{- .Values.global.mongodb.existingSecret }}
{{- else }}
{{- fail "global.mongodb: set existingSecret (a Secret holding the MongoDB URI) or uri" }}
{{- end }}
{{- end }}

{{- define "warriorcoder.mongodbSecretKey" -}}
{{- if .Values.global.mongodb.uri }}uri{{ else }}{{ .Values.global.mongodb.existingSecretKey }}{{ end }}
{{- end }}

{{/* ---------------------------------------------------------------- model servers -------- */}}

{{/*
The settings of one model server: modelServerDefaults overridden by the entry, maps merged one
level deep except chatTemplate, nodeSelector and affinity, which the entry replaces. Writes into
.out (a dict) so that numbers keep their types: (dict "root" $ "server" $entry "out" (dict))
*/}}
{{- define "warriorcoder.mergeModelServer" -}}
{{- range $key, $value := deepCopy .root.Values.modelServerDefaults }}
{{- $_ := set $.out $key $value }}
{{- end }}
{{- range $key, $value := .server }}
{{- $current := index $.out $key }}
{{- if and (kindIs "map" $value) (kindIs "map" $current) (not (has $key (list "chatTemplate" "nodeSelector" "affinity"))) }}
{{- range $k, $v := $value }}
{{- $_ := set $current $k $v }}
{{- end }}
{{- else }}
{{- $_ := set $.out $key $value }}
{{- end }}
{{- end }}
{{- if not (hasKey .out "enabled") }}
{{- $_ := set .out "enabled" true }}
{{- end }}
{{- end }}

{{/* Kubernetes name of a model server's resources: (dict "root" $ "id" "qwen2.5-coder-7b") */}}
{{- define "warriorcoder.modelServerName" -}}
{{- $id := regexReplaceAll "[^a-z0-9-]+" (lower .id) "-" | trimAll "-" }}
{{- printf "%s-vllm-%s" (include "warriorcoder.fullname" .root) $id | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Environment variable that carries an expert's API key: (dict "id" "qwen2.5-coder-7b") */}}
{{- define "warriorcoder.apiKeyEnv" -}}
{{- printf "EXPERT_API_KEY_%s" (regexReplaceAll "[^A-Z0-9]+" (upper .id) "_" | trimAll "_") }}
{{- end }}

{{/*
The roster, as a YAML list: one `openai` expert per enabled model server (and per variant), with
the endpoint of that server's Service, then global.extraRoster.
*/}}
{{- define "warriorcoder.roster" -}}
{{- $root := . }}
{{- $roster := list }}
{{- $names := dict }}
{{- range $i, $entry := .Values.modelServers }}
{{- $ms := dict }}
{{- $_ := include "warriorcoder.mergeModelServer" (dict "root" $root "server" $entry "out" $ms) }}
{{- if $ms.enabled }}
{{- $name := include "warriorcoder.modelServerName" (dict "root" $root "id" $ms.id) }}
{{- if hasKey $names $name }}
{{- fail (printf "modelServers[%d]: id %q gives the resource name %s, already used by id %q; choose ids that differ in letters or digits" $i $ms.id $name (get $names $name)) }}
{{- end }}
{{- $_ := set $names $name $ms.id }}
{{- $base := dict "backend" "openai" "model" (default $ms.model $ms.servedModelName) "endpoint" (printf "http://%s.%s.svc:%d/v1" $name $root.Release.Namespace (int $ms.port)) "chat_template" $ms.chatTemplate }}
{{- if $ms.apiKeySecret.name }}
{{- $_ := set $base "api_key_env" (include "warriorcoder.apiKeyEnv" (dict "id" $ms.id)) }}
{{- end }}
{{- range $fields := prepend (default (list) $ms.variants) (dict "id" $ms.id) }}
{{- $expert := deepCopy $base }}
{{- range $k, $v := (default (dict) $ms.expert) }}{{ $_ := set $expert $k (deepCopy $v) }}{{ end }}
{{- range $k, $v := $fields }}{{ $_ := set $expert $k (deepCopy $v) }}{{ end }}
{{- $roster = append $roster $expert }}
{{- end }}
{{- end }}
{{- end }}
{{- $roster = concat $roster .Values.global.extraRoster }}
{{- $ids := dict }}
{{- range $expert := $roster }}
{{- if hasKey $ids (toString $expert.id) }}
{{- fail (printf "roster: expert id %q appears twice (modelServers[].id, their variants and global.extraRoster share one namespace of ids)" $expert.id) }}
{{- end }}
{{- $_ := set $ids (toString $expert.id) true }}
{{- end }}
{{- if lt (len $roster) 3 }}
{{- fail (printf "roster: %d expert(s) from modelServers, their variants and global.extraRoster; at least 3 are needed so that every battle has an uninvolved judge" (len $roster)) }}
{{- end }}
{{- toYaml $roster }}
{{- end }}

{{/* The arena YAML: global.arena plus the generated roster. */}}
{{- define "warriorcoder.arenaConfig" -}}
{{- if hasKey .Values.global.arena "roster" }}
{{- fail "global.arena.roster: the roster is generated from modelServers (and global.extraRoster); remove it" }}
{{- end }}
{{- $arena := deepCopy .Values.global.arena }}
{{- $_ := set $arena "roster" (fromYamlArray (include "warriorcoder.roster" .)) }}
{{- toYaml $arena }}
{{- end }}

{{/* The ConfigMap with the arena YAML and global.arenaFiles (its hash rolls the pods). */}}
{{- define "warriorcoder.arenaConfigMap" -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "warriorcoder.componentName" (dict "root" . "component" "arena") }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "warriorcoder.componentLabels" (dict "root" . "component" "arena") | nindent 4 }}
data:
  arena.yaml: |
    {{- include "warriorcoder.arenaConfig" . | nindent 4 }}
  {{- range $file, $content := .Values.global.arenaFiles }}
  {{- if eq $file "arena.yaml" }}
  {{- fail "global.arenaFiles: arena.yaml is the generated arena config; choose another name" }}
  {{- end }}
  {{ $file }}: {{ $content | quote }}
  {{- end }}
{{- end }}

{{/* ---------------------------------------------------------------- services ------------- */}}

{{- define "warriorcoder.isModelCaller" -}}
{{- if has .component (splitList " " (include "warriorcoder.modelCallers" .root)) }}true{{ end }}
{{- end }}

{{/* Deployment of a service: (dict "root" $ "component" "judge") */}}
{{- define "warriorcoder.deployment" -}}
{{- $root := .root }}
{{- $name := .component }}
{{- $svc := index $root.Values $name }}
{{- $g := $root.Values.global }}
{{- if $svc.enabled }}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "warriorcoder.componentName" . }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "warriorcoder.componentLabels" . | nindent 4 }}
spec:
  {{- if not $svc.autoscaling.enabled }}
  replicas: {{ $svc.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "warriorcoder.selectorLabels" . | nindent 6 }}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 1
      maxUnavailable: 0
  template:
    metadata:
      labels:
        {{- include "warriorcoder.componentLabels" . | nindent 8 }}
        warriorcoder/role: service
        {{- with $g.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
        {{- with $svc.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        # Rolls the pods when the arena config changes.
        checksum/arena-config: {{ include "warriorcoder.arenaConfigMap" $root | sha256sum }}
        {{- with $g.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
        {{- with $svc.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "warriorcoder.serviceAccountName" $root }}
      automountServiceAccountToken: false
      {{- with $g.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $g.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      {{- with $svc.runtimeClassName }}
      runtimeClassName: {{ . }}
      {{- end }}
      securityContext:
        {{- /* A service may replace the global contexts (the judge, for the jail sandbox). */}}
        {{- toYaml ($svc.podSecurityContext | default $g.podSecurityContext) | nindent 8 }}
      terminationGracePeriodSeconds: {{ add (int $g.shutdownGraceSeconds) 15 }}
      containers:
        - name: {{ $name }}
          image: {{ include "warriorcoder.image" $root }}
          imagePullPolicy: {{ $g.image.pullPolicy }}
          args: [serve, {{ $name }}]
          ports:
            - name: grpc
              containerPort: {{ $g.grpcPort }}
              protocol: TCP
            - name: metrics
              containerPort: {{ $g.metricsPort }}
              protocol: TCP
            {{- if $g.grpc.tls.enabled }}
            - name: grpc-health
              containerPort: {{ $g.grpc.healthPort }}
              protocol: TCP
            {{- end }}
            {{- if and (eq $name "rater") $svc.viewer.enabled }}
            - name: viewer
              containerPort: {{ $svc.viewer.port }}
              protocol: TCP
            {{- end }}
          env:
            - name: WARRIORCODER_ARENA_CONFIG
              value: /etc/warriorcoder/arena.yaml
            - name: WARRIORCODER_KAFKA_BOOTSTRAP_SERVERS
              value: {{ $g.kafka.bootstrapServers | quote }}
            - name: WARRIORCODER_KAFKA_TOPIC_PREFIX
              value: {{ $g.kafka.topicPrefix | quote }}
            - name: WARRIORCODER_KAFKA_GROUP_PREFIX
              value: {{ $g.kafka.groupPrefix | quote }}
            - name: WARRIORCODER_KAFKA_PARTITIONS
              value: {{ $g.kafka.partitions | quote }}
            - name: WARRIORCODER_KAFKA_REPLICATION_FACTOR
              value: {{ $g.kafka.replicationFactor | quote }}
            - name: WARRIORCODER_MONGO_URI
              valueFrom:
                secretKeyRef:
                  name: {{ include "warriorcoder.mongodbSecretName" $root }}
                  key: {{ include "warriorcoder.mongodbSecretKey" $root }}
            - name: WARRIORCODER_MONGO_DATABASE
              value: {{ $g.mongodb.database | quote }}
            - name: WARRIORCODER_GRPC_PORT
              value: {{ $g.grpcPort | quote }}
            - name: WARRIORCODER_METRICS_PORT
              value: {{ $g.metricsPort | quote }}
            - name: WARRIORCODER_LOG_LEVEL
              value: {{ $g.logLevel | quote }}
            - name: WARRIORCODER_SHUTDOWN_GRACE_S
              value: {{ $g.shutdownGraceSeconds | quote }}
            {{- if and (eq $name "rater") $svc.viewer.enabled }}
            # The battle viewer (docs/viewer.md) on its own port, reached through its Service.
            - name: WARRIORCODER_VIEWER_PORT
              value: {{ $svc.viewer.port | quote }}
            - name: WARRIORCODER_VIEWER_HOST
              value: "0.0.0.0"
            {{- end }}
            {{- if eq $name "exporter" }}
            # WriteExport writes only under this folder: the exports volume.
            - name: WARRIORCODER_EXPORT_ROOT
              value: {{ $svc.exports.mountPath | quote }}
            {{- end }}
            {{- include "warriorcoder.securityEnv" $root | nindent 12 }}
            {{- if include "warriorcoder.isModelCaller" . }}
            {{- range $entry := $root.Values.modelServers }}
            {{- $ms := dict }}
            {{- $_ := include "warriorcoder.mergeModelServer" (dict "root" $root "server" $entry "out" $ms) }}
            {{- if and $ms.enabled $ms.apiKeySecret.name }}
            - name: {{ include "warriorcoder.apiKeyEnv" (dict "id" $ms.id) }}
              valueFrom:
                secretKeyRef:
                  name: {{ $ms.apiKeySecret.name }}
                  key: {{ $ms.apiKeySecret.key }}
            {{- end }}
            {{- end }}
            {{- end }}
            {{- with $g.env }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
            {{- with $svc.env }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          {{- if or $g.envFrom $svc.envFrom }}
          envFrom:
            {{- with $g.envFrom }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
            {{- with $svc.envFrom }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          {{- end }}
          # Native gRPC probes ask the standard health service (overall status ""), which turns
          # NOT_SERVING on SIGTERM. gRPC opens once Kafka and MongoDB are reachable. With TLS
          # they ask the plaintext health-only port (kubelet's gRPC probes speak no TLS).
          startupProbe:
            grpc:
              port: {{ include "warriorcoder.healthCheckPort" $root }}
            periodSeconds: 5
            failureThreshold: 60
          readinessProbe:
            grpc:
              port: {{ include "warriorcoder.healthCheckPort" $root }}
            periodSeconds: 10
            timeoutSeconds: 5
            failureThreshold: 3
          livenessProbe:
            grpc:
              port: {{ include "warriorcoder.healthCheckPort" $root }}
            periodSeconds: 20
            timeoutSeconds: 5
            failureThreshold: 3
          resources:
            {{- toYaml $svc.resources | nindent 12 }}
          securityContext:
            {{- toYaml ($svc.securityContext | default $g.securityContext) | nindent 12 }}
          volumeMounts:
            - name: arena-config
              mountPath: /etc/warriorcoder
              readOnly: true
            - name: tmp
              mountPath: /tmp
            - name: cache
              mountPath: /home/warriorcoder/.cache
            {{- include "warriorcoder.securityVolumeMounts" $root | nindent 12 }}
            {{- if eq $name "exporter" }}
            - name: exports
              mountPath: {{ $svc.exports.mountPath }}
            {{- end }}
      volumes:
        - name: arena-config
          configMap:
            name: {{ include "warriorcoder.componentName" (dict "root" $root "component" "arena") }}
        - name: tmp
          emptyDir:
            sizeLimit: {{ $g.tmpSizeLimit }}
        - name: cache
          emptyDir:
            sizeLimit: {{ $g.cacheSizeLimit }}
        {{- include "warriorcoder.securityVolumes" $root | nindent 8 }}
        {{- if eq $name "exporter" }}
        - name: exports
          {{- if $svc.exports.persistence.enabled }}
          persistentVolumeClaim:
            claimName: {{ default (include "warriorcoder.componentName" (dict "root" $root "component" "exports")) $svc.exports.persistence.existingClaim }}
          {{- else }}
          emptyDir: {}
          {{- end }}
        {{- end }}
      {{- with $svc.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $svc.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $svc.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $svc.topologySpreadConstraints }}
      topologySpreadConstraints:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end }}
{{- end }}

{{/* Service of a service's gRPC API and metrics: (dict "root" $ "component" "judge") */}}
{{- define "warriorcoder.service" -}}
{{- $root := .root }}
{{- $svc := index $root.Values .component }}
{{- if $svc.enabled }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ include "warriorcoder.componentName" . }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "warriorcoder.componentLabels" . | nindent 4 }}
spec:
  type: {{ $svc.serviceType }}
  selector:
    {{- include "warriorcoder.selectorLabels" . | nindent 4 }}
  ports:
    - name: grpc
      port: {{ $root.Values.global.grpcPort }}
      targetPort: grpc
      protocol: TCP
      appProtocol: grpc
    - name: metrics
      port: {{ $root.Values.global.metricsPort }}
      targetPort: metrics
      protocol: TCP
      appProtocol: http
    {{- if $root.Values.global.grpc.tls.enabled }}
    - name: grpc-health
      port: {{ $root.Values.global.grpc.healthPort }}
      targetPort: grpc-health
      protocol: TCP
      appProtocol: grpc
    {{- end }}
{{- end }}
{{- end }}

{{/* HorizontalPodAutoscaler (autoscaling/v2): (dict "root" $ "component" "judge") */}}
{{- define "warriorcoder.hpa" -}}
{{- $root := .root }}
{{- $svc := index $root.Values .component }}
{{- $as := $svc.autoscaling }}
{{- /* mode keda: KEDA's ScaledObject makes the HPA (_keda.tpl) */}}
{{- if and $svc.enabled $as.enabled (ne (default "cpu" $as.mode) "keda") }}
{{- if and (not $as.targetCPUUtilizationPercentage) (not $as.targetMemoryUtilizationPercentage) (not $as.metrics) }}
{{- fail (printf "%s.autoscaling: enabled without a metric; set targetCPUUtilizationPercentage, targetMemoryUtilizationPercentage or metrics" .component) }}
{{- end }}
{{- if gt (int $as.minReplicas) (int $as.maxReplicas) }}
{{- fail (printf "%s.autoscaling: minReplicas (%d) is above maxReplicas (%d)" .component (int $as.minReplicas) (int $as.maxReplicas)) }}
{{- end }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
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
  minReplicas: {{ $as.minReplicas }}
  maxReplicas: {{ $as.maxReplicas }}
  metrics:
    {{- with $as.targetCPUUtilizationPercentage }}
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ . }}
    {{- end }}
    {{- with $as.targetMemoryUtilizationPercentage }}
    - type: Resource
      resource:
        name: memory
        target:
          type: Utilization
          averageUtilization: {{ . }}
    {{- end }}
    {{- with $as.metrics }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $as.behavior }}
  behavior:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}

{{/* ServiceMonitor (Prometheus Operator): (dict "root" $ "component" "judge") */}}
{{- define "warriorcoder.serviceMonitor" -}}
{{- $root := .root }}
{{- $svc := index $root.Values .component }}
{{- if and $svc.enabled $svc.serviceMonitor.enabled }}
---
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ include "warriorcoder.componentName" . }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "warriorcoder.componentLabels" . | nindent 4 }}
    {{- with $svc.serviceMonitor.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  selector:
    matchLabels:
      {{- include "warriorcoder.selectorLabels" . | nindent 6 }}
  namespaceSelector:
    matchNames: [{{ $root.Release.Namespace }}]
  endpoints:
    - port: metrics
      path: /metrics
      interval: {{ $svc.serviceMonitor.interval }}
      scrapeTimeout: {{ $svc.serviceMonitor.scrapeTimeout }}
      # The services label every series with `service` themselves; keep theirs rather than the
      # operator's (which would rename ours to exported_service and break the dashboard).
      honorLabels: true
{{- end }}
{{- end }}

{{/* PodDisruptionBudget: (dict "root" $ "component" "judge") */}}
{{- define "warriorcoder.pdb" -}}
{{- $root := .root }}
{{- $svc := index $root.Values .component }}
{{- $pdb := $svc.podDisruptionBudget }}
{{- if and $svc.enabled $pdb.enabled }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "warriorcoder.componentName" . }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "warriorcoder.componentLabels" . | nindent 4 }}
spec:
  {{- if not (kindIs "invalid" $pdb.minAvailable) }}
  minAvailable: {{ $pdb.minAvailable }}
  {{- else }}
  maxUnavailable: {{ $pdb.maxUnavailable }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "warriorcoder.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end }}

{{/* Egress to the DNS servers, as a NetworkPolicy egress rule. */}}
{{- define "warriorcoder.dnsEgress" -}}
- to:
    {{- toYaml .Values.networkPolicy.dns | nindent 4 }}
  ports:
    - {port: 53, protocol: UDP}
    - {port: 53, protocol: TCP}
{{- end }}

{{/*
NetworkPolicy of a service: gRPC from clients, /metrics from Prometheus; egress to DNS, Kafka,
MongoDB and, for the model-calling services, the model servers. (dict "root" $ "component" "judge")
*/}}
{{- define "warriorcoder.networkPolicy" -}}
{{- $root := .root }}
{{- $svc := index $root.Values .component }}
{{- $np := $root.Values.networkPolicy }}
{{- $g := $root.Values.global }}
{{- if and $svc.enabled $np.enabled }}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "warriorcoder.componentName" . }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "warriorcoder.componentLabels" . | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "warriorcoder.selectorLabels" . | nindent 6 }}
  policyTypes: [Ingress, Egress]
  ingress:
    - from:
        - podSelector:
            matchLabels:
              warriorcoder/grpc-client: "true"
        {{- with $np.grpcClients }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      ports:
        - {port: grpc, protocol: TCP}
        {{- if $g.grpc.tls.enabled }}
        - {port: grpc-health, protocol: TCP}
        {{- end }}
    - from:
        {{- toYaml $np.prometheus | nindent 8 }}
      ports:
        - {port: metrics, protocol: TCP}
    {{- if and (eq .component "rater") $svc.viewer.enabled }}
    - from:
        {{- if $svc.viewer.allowFrom }}
        {{- toYaml $svc.viewer.allowFrom | nindent 8 }}
        {{- else }}
        - podSelector:
            matchLabels:
              warriorcoder/viewer-client: "true"
        {{- if $svc.viewer.ingress.enabled }}
        - namespaceSelector:
            matchLabels:
              kubernetes.io/metadata.name: {{ $svc.viewer.ingress.controllerNamespace }}
        {{- end }}
        {{- end }}
      ports:
        - {port: viewer, protocol: TCP}
    {{- end }}
  egress:
    {{- include "warriorcoder.dnsEgress" $root | nindent 4 }}
    - ports:
        {{- range $g.kafka.egress.ports }}
        - {port: {{ . }}, protocol: TCP}
        {{- end }}
      {{- with $g.kafka.egress.to }}
      to:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    - ports:
        {{- range $g.mongodb.egress.ports }}
        - {port: {{ . }}, protocol: TCP}
        {{- end }}
      {{- with $g.mongodb.egress.to }}
      to:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    {{- if include "warriorcoder.isModelCaller" . }}
    - to:
        - podSelector:
            matchLabels:
              app.kubernetes.io/instance: {{ $root.Release.Name }}
              warriorcoder/role: model-server
      ports:
        - {port: http, protocol: TCP}
    {{- with $np.extraEgress }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
    {{- end }}
{{- end }}
{{- end }}

{{/* Everything of one service, in order. */}}
{{- define "warriorcoder.component" -}}
{{ include "warriorcoder.deployment" . }}
{{ include "warriorcoder.service" . }}
{{ include "warriorcoder.hpa" . }}
{{ include "warriorcoder.scaledObject" . }}
{{ include "warriorcoder.serviceMonitor" . }}
{{ include "warriorcoder.pdb" . }}
{{ include "warriorcoder.networkPolicy" . }}
{{- end }}
