{{/*
The first tier's pod template, shared by the Deployment and the DaemonSet.
The checksum of the rendered config is an annotation, so a config change
rolls the pods.
*/}}
{{- define "otlp-lb.proxyPodTemplate" -}}
{{- $min := add .Values.preStopSleepSeconds 30 }}
{{- if lt (int .Values.terminationGracePeriodSeconds) (int $min) }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must be at least preStopSleepSeconds + 30 (%v): the proxy drains its queues for up to 30 s after SIGTERM" .Values.terminationGracePeriodSeconds $min) }}
{{- end }}
metadata:
  labels:
    {{- include "otlp-lb.selectorLabels" (dict "ctx" . "component" "proxy") | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/config: {{ include "otlp-lb.proxyConfig" . | sha256sum }}
    {{- with include "otlp-lb.scrapeAnnotations" . | trim }}
    {{- . | nindent 4 }}
    {{- end }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "otlp-lb.serviceAccountName" . }}
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  {{- if and (eq .Values.mode "deployment") .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- range .Values.topologySpreadConstraints }}
    - {{- toYaml (omit . "labelSelector") | nindent 6 }}
      labelSelector:
        {{- if .labelSelector }}
        {{- toYaml .labelSelector | nindent 8 }}
        {{- else }}
        matchLabels:
          {{- include "otlp-lb.selectorLabels" (dict "ctx" $ "component" "proxy") | nindent 10 }}
        {{- end }}
    {{- end }}
  {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: otlp-lb
      image: {{ include "otlp-lb.image" . }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args: ["--config", "/etc/otlp-lb/config.yaml"]
      {{- with .Values.extraEnv }}
      env:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      ports:
        - name: grpc
          containerPort: {{ .Values.ports.grpc }}
          protocol: TCP
        - name: http
          containerPort: {{ .Values.ports.http }}
          protocol: TCP
        - name: metrics
          containerPort: {{ .Values.ports.metrics }}
          protocol: TCP
        - name: health
          containerPort: {{ .Values.ports.health }}
          protocol: TCP
      {{- include "otlp-lb.probes" (dict "ctx" . "preStop" .Values.preStopSleepSeconds) | nindent 6 }}
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: config
          mountPath: /etc/otlp-lb
          readOnly: true
        {{- if and .Values.backends.tls.enabled .Values.backends.tls.secretName }}
        - name: tls
          mountPath: {{ .Values.backends.tls.mountPath }}
          readOnly: true
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ include "otlp-lb.fullname" . }}
    {{- if and .Values.backends.tls.enabled .Values.backends.tls.secretName }}
    - name: tls
      secret:
        secretName: {{ .Values.backends.tls.secretName }}
    {{- end }}
{{- end }}
