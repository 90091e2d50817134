{{/*
The services' config files, snake_case as their msgspec Structs expect:
  controller             ark_mesh.controller.config.ControllerConfig
  query-reconciler       ark_mesh.query_reconciler.config.QueryReconcilerConfig
  responses-reconciler   ark_mesh.responses_reconciler.config.ResponsesReconcilerConfig
  embeddings-reconciler  ark_mesh.embeddings_reconciler.config.EmbeddingsReconcilerConfig
  status-sync            ark_mesh.status_sync.config.StatusSyncConfig
  broker                 ark_mesh.broker.config.BrokerConfig
Each one is rendered once, into its ConfigMap and into the checksum that rolls its pods.
*/}}

{{- define "ark-mesh.config.controller" -}}
{{- $s := include "ark-mesh.settings" . | fromYaml -}}
{{- $c := .Values.controller -}}
{{- $le := $c.leaderElection -}}
{{- $config := dict
  "reconciliation" (dict
    "default_reconciliation" $s.defaultReconciliation
    "allowed_modes" $s.allowedModes)
  "scheduler" (dict
    "max_concurrent_queries" $c.scheduler.maxConcurrentQueries
    "max_concurrent_reconciles" $c.scheduler.maxConcurrentReconciles)
  "resource_controllers" (dict
    "enabled" $c.resourceControllers.enabled
    "workers" $c.resourceControllers.workers
    "probe_concurrency" $c.resourceControllers.probeConcurrency
    "probe_timeout" $c.resourceControllers.probeTimeout)
  "kubernetes" (dict "namespace" (.Values.watchNamespace | default nil))
  "leader_election" (dict
    "enabled" $s.leaderElection
    "lease_name" (printf "%s-controller" (include "ark-mesh.fullname" .))
    "lease_namespace" .Release.Namespace
    "lease_duration" $le.leaseDuration
    "renew_deadline" $le.renewDeadline
    "retry_period" $le.retryPeriod)
  "health" (dict "host" "0.0.0.0" "port" $c.healthPort)
  "default_query_ttl" .Values.defaultQueryTtl
-}}
{{- if $s.bus -}}
{{- $_ := set $config "bus" (include "ark-mesh.busConfig" . | fromYaml) -}}
{{- end -}}
{{- $w := $c.webhook -}}
{{- if $w.enabled -}}
{{- $webhook := dict
  "enabled" true
  "host" "0.0.0.0"
  "port" $w.port
  "cert_dir" (include "ark-mesh.webhookCertDir" .) -}}
{{- if not $w.certManager.enabled -}}
{{- $service := include "ark-mesh.webhookService" . -}}
{{- $_ := set $webhook "self_signed" (dict
  "namespace" .Release.Namespace
  "service" $service
  "secret" (printf "%s-tls" $service)
  "mutating_configuration" (include "ark-mesh.webhookConfigurationName" (dict "ctx" . "mutating" true))
  "validating_configuration" (include "ark-mesh.webhookConfigurationName" (dict "ctx" . "mutating" false))) -}}
{{- end -}}
{{- $_ := set $config "webhook" $webhook -}}
{{- end -}}
{{- toYaml $config -}}
{{- end -}}

{{- define "ark-mesh.config.queryReconciler" -}}
{{- $q := .Values.queryReconciler -}}
{{- $config := dict
  "bus" (include "ark-mesh.busConfig" . | fromYaml)
  "provision" $q.provision
  "tenant" ($q.tenant | default nil)
  "resources" (dict
    "source" "kubernetes"
    "namespace" (.Values.watchNamespace | default nil)
    "preload" $q.resourceCache.preload
    "sync_timeout" $q.resourceCache.syncTimeout)
  "memory" (dict "backend" $q.memory.backend "read_timeout" $q.memory.readTimeout)
  "models" (dict "max_retries" $q.models.maxRetries "timeout" $q.models.timeout)
  "streaming" (dict
    "coalesce" $q.streaming.coalesce
    "coalesce_delay" $q.streaming.coalesceDelay
    "coalesce_bytes" $q.streaming.coalesceBytes)
  "health" (dict "host" "0.0.0.0" "port" $q.healthPort)
  "grace_period" $q.gracePeriod
-}}
{{- toYaml $config -}}
{{- end -}}

{{- define "ark-mesh.config.responsesReconciler" -}}
{{- $r := .Values.responsesReconciler -}}
{{- $config := dict
  "bus" (include "ark-mesh.busConfig" . | fromYaml)
  "provision" $r.provision
  "tenant" ($r.tenant | default nil)
  "resources" (dict
    "source" "kubernetes"
    "namespace" (.Values.watchNamespace | default nil)
    "preload" $r.resourceCache.preload
    "sync_timeout" $r.resourceCache.syncTimeout)
  "models" (dict "max_retries" $r.models.maxRetries "timeout" $r.models.timeout)
  "health" (dict "host" "0.0.0.0" "port" $r.healthPort)
  "grace_period" $r.gracePeriod
-}}
{{- toYaml $config -}}
{{- end -}}

{{- define "ark-mesh.config.embeddingsReconciler" -}}
{{- $e := .Values.embeddingsReconciler -}}
{{- $config := dict
  "bus" (include "ark-mesh.busConfig" . | fromYaml)
  "provision" $e.provision
  "tenant" ($e.tenant | default nil)
  "resources" (dict
    "source" "kubernetes"
    "namespace" (.Values.watchNamespace | default nil)
    "preload" $e.resourceCache.preload
    "sync_timeout" $e.resourceCache.syncTimeout)
  "max_batch" $e.maxBatch
  "timeout" $e.timeout
  "health" (dict "host" "0.0.0.0" "port" $e.healthPort)
  "grace_period" $e.gracePeriod
-}}
{{- toYaml $config -}}
{{- end -}}

{{- define "ark-mesh.config.statusSync" -}}
{{- $st := .Values.statusSync -}}
{{- $config := dict
  "bus" (include "ark-mesh.busConfig" . | fromYaml)
  "provision" $st.provision
  "durable" "status-sync"
  "check_newest" $st.checkNewest
  "events" (dict "enabled" $st.events "controller" "ark-mesh/status-sync")
  "health" (dict "host" "0.0.0.0" "port" $st.healthPort)
  "grace_period" $st.gracePeriod
-}}
{{- toYaml $config -}}
{{- end -}}

{{- define "ark-mesh.config.broker" -}}
{{- $s := include "ark-mesh.settings" . | fromYaml -}}
{{- $b := .Values.broker -}}
{{- $tokens := list -}}
{{- range $b.auth.tokens -}}
{{- $tokens = append $tokens (dict "tenant" .tenant "sha256" .sha256) -}}
{{- end -}}
{{- $config := dict
  "bus" (include "ark-mesh.busConfig" . | fromYaml)
  "provision" $b.provision
  "durable" "broker"
  "http" (dict "host" "0.0.0.0" "port" $b.port)
  "health" (dict "host" "0.0.0.0" "port" $b.healthPort)
  "auth" (dict
    "mode" $s.brokerAuth
    "default_tenant" $b.auth.defaultTenant
    "tokens" $tokens)
  "limits" (dict
    "max_in_flight_per_tenant" $b.limits.maxInFlightPerTenant
    "retry_after_seconds" $b.limits.retryAfterSeconds
    "max_body_bytes" $b.limits.maxBodyBytes
    "completion_wait_seconds" $b.limits.completionWaitSeconds)
  "streaming" (dict "heartbeat_seconds" $b.streaming.heartbeatSeconds)
  "grace_period" $b.gracePeriod
-}}
{{- /* A kubernetes section (in-cluster credentials) is what turns Query mirrors on. */ -}}
{{- if $b.queryMirrors -}}
{{- $_ := set $config "kubernetes" (dict) -}}
{{- end -}}
{{- toYaml $config -}}
{{- end -}}

{{/* nats-server's configuration (nats.conf syntax). The server name is the pod's, so it
     stays the same across restarts of the StatefulSet's pod (JetStream ties data to it). */}}
{{- define "ark-mesh.natsConfig" -}}
{{- $n := .Values.nats -}}
server_name: $POD_NAME
port: {{ $n.port }}
http_port: {{ $n.monitorPort }}
jetstream {
  store_dir: /data
  max_memory_store: {{ $n.jetstream.maxMemoryStore }}
  max_file_store: {{ $n.jetstream.maxFileStore }}
}
{{- end -}}
