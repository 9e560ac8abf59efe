{{- /*
Security of the services (warriorcoder/service/security.py, docs/api.md): the gRPC token and TLS,
Kafka SSL/SASL and MongoDB TLS, each wired from Secrets. Included by warriorcoder.deployment.
*/ -}}

{{/* Name of the Secret holding the gRPC bearer token. */}}
{{- define "warriorcoder.grpcTokenSecretName" -}}
{{- default (printf "%s-grpc-token" (include "warriorcoder.fullname" .)) .Values.global.grpc.auth.existingSecret }}
{{- end }}

{{/* Port of the probes and the helm test: the plaintext health port when gRPC speaks TLS. */}}
{{- define "warriorcoder.healthCheckPort" -}}
{{- $g := .Values.global }}
{{- if $g.grpc.tls.enabled }}{{ $g.grpc.healthPort }}{{ else }}{{ $g.grpcPort }}{{ end }}
{{- end }}

{{/* Values that cannot work together, refused with the value to fix. */}}
{{- define "warriorcoder.checkSecurity" -}}
{{- $g := .Values.global }}
{{- if and $g.grpc.tls.enabled (eq (int $g.grpc.healthPort) (int $g.grpcPort)) }}
{{- fail "global.grpc.healthPort: must differ from global.grpcPort (the health port is plaintext)" }}
{{- end }}
{{- if and $g.grpc.tls.writerIdentities (not $g.grpc.tls.clientCertificates) }}
{{- fail "global.grpc.tls.writerIdentities: needs global.grpc.tls.clientCertificates" }}
{{- end }}
{{- if and $g.grpc.tls.clientCertificates (not $g.grpc.tls.enabled) }}
{{- fail "global.grpc.tls.clientCertificates: needs global.grpc.tls.enabled" }}
{{- end }}
{{- if hasPrefix "SASL_" $g.kafka.securityProtocol }}
{{- if or (not $g.kafka.sasl.username) (not $g.kafka.sasl.existingSecret) }}
{{- fail (printf "global.kafka.sasl: securityProtocol %s needs sasl.username and sasl.existingSecret" $g.kafka.securityProtocol) }}
{{- end }}
{{- end }}
{{- if and (or $g.kafka.tls.caSecret $g.kafka.tls.clientSecret) (not (hasSuffix "SSL" $g.kafka.securityProtocol)) }}
{{- fail (printf "global.kafka.tls: Secrets given, but securityProtocol %s uses no SSL" $g.kafka.securityProtocol) }}
{{- end }}
{{- end }}

{{/* Environment variables of the security settings (a service container's env list). */}}
{{- define "warriorcoder.securityEnv" -}}
{{- $g := .Values.global -}}
# A pod listens on all interfaces; the settings then require a token or client certificates.
- name: WARRIORCODER_GRPC_HOST
  value: "0.0.0.0"
{{- if $g.grpc.auth.allowUnauthenticated }}
- name: WARRIORCODER_GRPC_ALLOW_UNAUTHENTICATED
  value: "true"
{{- else }}
- name: WARRIORCODER_GRPC_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "warriorcoder.grpcTokenSecretName" . }}
      key: {{ $g.grpc.auth.existingSecretKey }}
{{- end }}
{{- if $g.grpc.tls.enabled }}
- name: WARRIORCODER_GRPC_TLS_CERT_FILE
  value: /etc/warriorcoder-tls/grpc/tls.crt
- name: WARRIORCODER_GRPC_TLS_KEY_FILE
  value: /etc/warriorcoder-tls/grpc/tls.key
- name: WARRIORCODER_GRPC_HEALTH_PORT
  value: {{ $g.grpc.healthPort | quote }}
{{- if $g.grpc.tls.clientCertificates }}
- name: WARRIORCODER_GRPC_TLS_CLIENT_CA_FILE
  value: /etc/warriorcoder-tls/grpc/ca.crt
{{- with $g.grpc.tls.writerIdentities }}
- name: WARRIORCODER_GRPC_WRITER_IDENTITIES
  value: {{ join "," . | quote }}
{{- end }}
{{- end }}
{{- end }}
- name: WARRIORCODER_KAFKA_SECURITY_PROTOCOL
  value: {{ $g.kafka.securityProtocol | quote }}
{{- if hasPrefix "SASL_" $g.kafka.securityProtocol }}
- name: WARRIORCODER_KAFKA_SASL_MECHANISM
  value: {{ $g.kafka.sasl.mechanism | quote }}
- name: WARRIORCODER_KAFKA_SASL_USERNAME
  value: {{ $g.kafka.sasl.username | quote }}
- name: WARRIORCODER_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $g.kafka.sasl.existingSecret }}
      key: {{ $g.kafka.sasl.passwordKey }}
{{- end }}
{{- with $g.kafka.tls.caSecret }}
- name: WARRIORCODER_KAFKA_SSL_CA_FILE
  value: /etc/warriorcoder-tls/kafka-ca/{{ $g.kafka.tls.caKey }}
{{- end }}
{{- with $g.kafka.tls.clientSecret }}
- name: WARRIORCODER_KAFKA_SSL_CERT_FILE
  value: /etc/warriorcoder-tls/kafka-client/{{ $g.kafka.tls.certKey }}
- name: WARRIORCODER_KAFKA_SSL_KEY_FILE
  value: /etc/warriorcoder-tls/kafka-client/{{ $g.kafka.tls.keyKey }}
{{- end }}
{{- if $g.mongodb.tls.enabled }}
- name: WARRIORCODER_MONGO_TLS
  value: "true"
{{- with $g.mongodb.tls.caSecret }}
- name: WARRIORCODER_MONGO_TLS_CA_FILE
  value: /etc/warriorcoder-tls/mongodb-ca/{{ $g.mongodb.tls.caKey }}
{{- end }}
{{- with $g.mongodb.tls.clientSecret }}
- name: WARRIORCODER_MONGO_TLS_CERTIFICATE_KEY_FILE
  value: /etc/warriorcoder-tls/mongodb-client/{{ $g.mongodb.tls.clientKey }}
{{- end }}
{{- end }}
{{- end }}

{{/* (volume name, Secret name) of every certificate Secret the services mount. */}}
{{- define "warriorcoder.tlsSecrets" -}}
{{- $g := .Values.global }}
{{- $out := list }}
{{- if $g.grpc.tls.enabled }}{{ $out = append $out (list "grpc" $g.grpc.tls.secretName) }}{{ end }}
{{- with $g.kafka.tls.caSecret }}{{ $out = append $out (list "kafka-ca" .) }}{{ end }}
{{- with $g.kafka.tls.clientSecret }}{{ $out = append $out (list "kafka-client" .) }}{{ end }}
{{- if $g.mongodb.tls.enabled }}
{{- with $g.mongodb.tls.caSecret }}{{ $out = append $out (list "mongodb-ca" .) }}{{ end }}
{{- with $g.mongodb.tls.clientSecret }}{{ $out = append $out (list "mongodb-client" .) }}{{ end }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{/* volumeMounts of the certificate Secrets (read-only, under /etc/warriorcoder-tls). */}}
{{- define "warriorcoder.securityVolumeMounts" -}}
{{- range (include "warriorcoder.tlsSecrets" . | fromJsonArray) }}
- name: tls-{{ index . 0 }}
  mountPath: /etc/warriorcoder-tls/{{ index . 0 }}
  readOnly: true
{{- end }}
{{- end }}

{{/* volumes of the certificate Secrets (files readable by the service's user only). */}}
{{- define "warriorcoder.securityVolumes" -}}
{{- range (include "warriorcoder.tlsSecrets" . | fromJsonArray) }}
- name: tls-{{ index . 0 }}
  secret:
    secretName: {{ index . 1 }}
    defaultMode: 0440
{{- end }}
{{- end }}
