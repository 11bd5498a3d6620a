{{/*
Names, labels, and the one place that spells the config's component type
names: the collector's current lower_snake_case names (`load_balancing`,
`otlp_grpc`, `otlp_http`, `cumulative_to_delta`), keyed by the names values
use (`agents.exporter.type: otlp`).
*/}}

{{- define "otlp-lb.components" -}}
loadbalancing: load_balancing
otlp: otlp_grpc
otlphttp: otlp_http
debug: debug
tail_sampling: tail_sampling
cumulativetodelta: cumulative_to_delta
health_check: health_check
receiver: otlp
{{- end }}

{{- define "otlp-lb.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-scoped name prefix; short enough for "-agents-metrics" to follow. */}}
{{- define "otlp-lb.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 47 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 47 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 47 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "otlp-lb.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "otlp-lb.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Labels of every object; pass (dict "ctx" $ "component" NAME). */}}
{{- define "otlp-lb.labels" -}}
helm.sh/chart: {{ include "otlp-lb.chart" .ctx }}
{{ include "otlp-lb.selectorLabels" . }}
app.kubernetes.io/version: {{ default .ctx.Chart.AppVersion .ctx.Values.image.tag | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: otlp-lb
{{- end }}

{{- define "otlp-lb.selectorLabels" -}}
app.kubernetes.io/name: {{ include "otlp-lb.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "otlp-lb.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "otlp-lb.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The agent StatefulSets as a JSON list of {name, component, signals,
replicas, resources}: one shared set, or one per signal with perSignal.
Agents serve the enabled pools that have no resolver of their own.
*/}}
{{- define "otlp-lb.agentSets" -}}
{{- $sets := list }}
{{- if .Values.agents.enabled }}
{{- $signals := list }}
{{- range $signal := list "traces" "metrics" "logs" }}
{{- $pool := index $.Values.pools $signal }}
{{- if and $pool.enabled (empty $pool.resolver) }}
{{- $signals = append $signals $signal }}
{{- end }}
{{- end }}
{{- $base := printf "%s-agents" (include "otlp-lb.fullname" .) }}
{{- if .Values.agents.perSignal }}
{{- range $signal := $signals }}
{{- $p := index $.Values.agents $signal }}
{{- $sets = append $sets (dict "name" (printf "%s-%s" $base $signal) "component" (printf "agents-%s" $signal) "signals" (list $signal) "replicas" $p.replicas "resources" (default $.Values.agents.resources $p.resources)) }}
{{- end }}
{{- else if $signals }}
{{- $sets = append $sets (dict "name" $base "component" "agents" "signals" $signals "replicas" .Values.agents.replicas "resources" .Values.agents.resources) }}
{{- end }}
{{- end }}
{{- toJson $sets }}
{{- end }}

{{/* The headless Service of the agents that serve SIGNAL; pass (dict "ctx" $ "signal" SIGNAL). */}}
{{- define "otlp-lb.agentServiceFor" -}}
{{- range $set := include "otlp-lb.agentSets" .ctx | fromJsonArray }}
{{- if has $.signal $set.signals }}{{ $set.name }}{{ end }}
{{- end }}
{{- end }}

{{/* `tls` settings of an exporter from a tls value block (insecure when disabled). */}}
{{- define "otlp-lb.exporterTls" -}}
{{- if .enabled }}
insecure: false
{{- if .secretName }}
{{- if .caKey }}
ca_file: {{ printf "%s/%s" .mountPath .caKey | quote }}
{{- end }}
{{- if and .certKey .keyKey }}
cert_file: {{ printf "%s/%s" .mountPath .certKey | quote }}
key_file: {{ printf "%s/%s" .mountPath .keyKey | quote }}
{{- end }}
{{- end }}
{{- if .serverNameOverride }}
server_name_override: {{ .serverNameOverride | quote }}
{{- end }}
{{- else }}
insecure: true
{{- end }}
{{- end }}

{{/* The telemetry and health settings both tiers share. */}}
{{- define "otlp-lb.serviceTelemetry" -}}
telemetry:
  metrics:
    level: normal
    readers:
      - pull:
          exporter:
            prometheus:
              host: 0.0.0.0
              port: {{ .Values.ports.metrics }}
  logs:
    level: {{ .Values.logLevel }}
    encoding: {{ .Values.logEncoding }}
{{- end }}

{{/* The first tier's config: `config` verbatim, or generated from pools and backends. */}}
{{- define "otlp-lb.proxyConfig" -}}
{{- if .Values.config }}
{{- toYaml .Values.config }}
{{- else }}
{{- $c := include "otlp-lb.components" . | fromYaml }}
{{- $enabled := list }}
{{- range $signal := list "traces" "metrics" "logs" }}
{{- if (index $.Values.pools $signal).enabled }}{{ $enabled = append $enabled $signal }}{{ end }}
{{- end }}
{{- if not $enabled }}
{{- fail "pools: enable at least one of traces, metrics, logs" }}
{{- end -}}
receivers:
  {{ $c.receiver }}:
    protocols:
      grpc:
        endpoint: "0.0.0.0:{{ .Values.ports.grpc }}"
        max_recv_msg_size_mib: {{ .Values.receiver.maxRecvMsgSizeMib }}
      http:
        endpoint: "0.0.0.0:{{ .Values.ports.http }}"
        max_request_body_size: {{ .Values.receiver.maxRequestBodySize | int64 }}
exporters:
{{- range $signal := $enabled }}
{{- $pool := index $.Values.pools $signal }}
  {{ $c.loadbalancing }}/{{ $signal }}:
    routing_key: {{ $pool.routing_key }}
    {{- with $pool.routing_attributes }}
    routing_attributes: {{ toJson . }}
    {{- end }}
    timeout: {{ $pool.timeout }}
    {{- with $pool.retry_on_failure }}
    retry_on_failure:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    {{- with $pool.sending_queue }}
    sending_queue:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    protocol:
      otlp:
        timeout: {{ $.Values.backends.timeout }}
        compression: {{ $.Values.backends.compression }}
        {{- with $.Values.backends.headers }}
        headers:
          {{- toYaml . | nindent 10 }}
        {{- end }}
        tls:
          {{- include "otlp-lb.exporterTls" $.Values.backends.tls | trim | nindent 10 }}
    resolver:
    {{- if $pool.resolver }}
      {{- toYaml $pool.resolver | nindent 6 }}
    {{- else }}
    {{- if not $.Values.agents.enabled }}
    {{- fail (printf "pools.%s.resolver is empty and agents.enabled is false: give the pool a resolver (static, dns or k8s) or enable the agents" $signal) }}
    {{- end }}
    {{- if $.Values.backends.tls.enabled }}
    {{- fail (printf "backends.tls.enabled: the chart's agents serve plaintext only; pools.%s needs a resolver of its own to use TLS" $signal) }}
    {{- end }}
      k8s:
        service: "{{ include "otlp-lb.agentServiceFor" (dict "ctx" $ "signal" $signal) }}.{{ $.Release.Namespace }}"
        ports: [{{ $.Values.ports.grpc }}]
        return_hostnames: true
    {{- end }}
{{- end }}
extensions:
  {{ $c.health_check }}:
    endpoint: "0.0.0.0:{{ .Values.ports.health }}"
    path: /
service:
  extensions: [{{ $c.health_check }}]
  {{- include "otlp-lb.serviceTelemetry" . | nindent 2 }}
  pipelines:
  {{- range $signal := $enabled }}
    {{ $signal }}:
      receivers: [{{ $c.receiver }}]
      exporters: [{{ $c.loadbalancing }}/{{ $signal }}]
  {{- end }}
{{- end }}
{{- end }}

{{/* An agent's config for the signals of one set; pass (dict "ctx" $ "signals" LIST). */}}
{{- define "otlp-lb.agentConfig" -}}
{{- $ := .ctx }}
{{- $a := $.Values.agents }}
{{- if $a.config }}
{{- toYaml $a.config }}
{{- else }}
{{- $c := include "otlp-lb.components" $ | fromYaml }}
{{- $type := $a.exporter.type }}
{{- $exporter := index $c $type }}
{{- $ts := and (has "traces" .signals) $a.tailSampling.enabled }}
{{- $c2d := and (has "metrics" .signals) $a.cumulativeToDelta.enabled }}
{{- if and $a.exporter.tls.enabled (ne $type "otlp") }}
{{- fail "agents.exporter.tls: only the otlp exporter takes TLS settings; otlphttp uses the system's roots for https:// endpoints" }}
{{- end -}}
receivers:
  {{ $c.receiver }}:
    protocols:
      grpc:
        endpoint: "0.0.0.0:{{ $.Values.ports.grpc }}"
        max_recv_msg_size_mib: {{ $.Values.receiver.maxRecvMsgSizeMib }}
{{- if or $ts $c2d }}
processors:
  {{- if $ts }}
  {{ $c.tail_sampling }}:
    {{- toYaml $a.tailSampling.settings | nindent 4 }}
  {{- end }}
  {{- if $c2d }}
  {{ $c.cumulativetodelta }}:
    {{- if $a.cumulativeToDelta.settings }}
    {{- toYaml $a.cumulativeToDelta.settings | nindent 4 }}
    {{- else }} {}
    {{- end }}
  {{- end }}
{{- end }}
exporters:
  {{ $exporter }}:
  {{- if eq $type "otlp" }}
    {{- $s := omit $a.exporter.otlp "endpoint" }}
    endpoint: {{ required "agents.exporter.otlp.endpoint is required with agents.exporter.type: otlp" $a.exporter.otlp.endpoint | quote }}
    {{- with $s }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
    tls:
      {{- include "otlp-lb.exporterTls" $a.exporter.tls | trim | nindent 6 }}
  {{- else if eq $type "otlphttp" }}
    {{- $h := $a.exporter.otlphttp }}
    {{- if not (or $h.endpoint $h.traces_endpoint $h.metrics_endpoint $h.logs_endpoint) }}
    {{- fail "agents.exporter.otlphttp.endpoint (or traces_endpoint, metrics_endpoint, logs_endpoint) is required with agents.exporter.type: otlphttp" }}
    {{- end }}
    {{- $s := dict }}
    {{- range $k, $v := $h }}{{ if $v }}{{ $_ := set $s $k $v }}{{ end }}{{ end }}
    {{- toYaml $s | nindent 4 }}
  {{- else }}
    {{- toYaml $a.exporter.debug | nindent 4 }}
  {{- end }}
extensions:
  {{ $c.health_check }}:
    endpoint: "0.0.0.0:{{ $.Values.ports.health }}"
    path: /
service:
  extensions: [{{ $c.health_check }}]
  {{- include "otlp-lb.serviceTelemetry" $ | nindent 2 }}
  pipelines:
  {{- range $signal := .signals }}
    {{ $signal }}:
      receivers: [{{ $c.receiver }}]
      {{- if and (eq $signal "traces") $ts }}
      processors: [{{ $c.tail_sampling }}]
      {{- else if and (eq $signal "metrics") $c2d }}
      processors: [{{ $c.cumulativetodelta }}]
      {{- end }}
      exporters: [{{ $exporter }}]
  {{- end }}
{{- end }}
{{- end }}

{{/*
Namespaces whose EndpointSlices a k8s resolver of CONFIG (a YAML string)
watches, as a JSON list: from `service: NAME.NAMESPACE`, else the release
namespace (the binary's default is the pod's namespace).
*/}}
{{- define "otlp-lb.k8sNamespaces" -}}
{{- $config := .config | fromYaml }}
{{- $namespaces := list }}
{{- range $id, $exporter := (default dict $config.exporters) }}
{{- if and (kindIs "map" $exporter) (kindIs "map" $exporter.resolver) }}
{{- with $exporter.resolver.k8s }}
{{- $parts := splitList "." (toString .service) }}
{{- $ns := $.ctx.Release.Namespace }}
{{- if gt (len $parts) 1 }}{{ $ns = index $parts 1 }}{{ end }}
{{- $namespaces = append $namespaces $ns }}
{{- end }}
{{- end }}
{{- end }}
{{- $namespaces | uniq | sortAlpha | toJson }}
{{- end }}

{{/* Probes and preStop of a container; pass (dict "ctx" $ "preStop" SECONDS). */}}
{{- define "otlp-lb.probes" -}}
readinessProbe:
  httpGet:
    path: /
    port: health
  periodSeconds: 5
  failureThreshold: 2
# Liveness must outlast a drain (health is 503 from SIGTERM until exit) and
# a start waiting for its first resolver answer, so it fails only a process
# that stopped answering for a minute.
livenessProbe:
  httpGet:
    path: /
    port: health
  initialDelaySeconds: 10
  periodSeconds: 10
  failureThreshold: 6
lifecycle:
  preStop:
    sleep:
      seconds: {{ .preStop }}
{{- end }}

{{/* Pod annotations for scraping when no ServiceMonitor is used. */}}
{{- define "otlp-lb.scrapeAnnotations" -}}
{{- if not .Values.serviceMonitor.enabled }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .Values.ports.metrics | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- end }}
