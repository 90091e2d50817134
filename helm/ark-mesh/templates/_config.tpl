{{/*
The services' config files, camelCase as their msgspec Structs expect (ark_mesh.contracts.config):
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
    "defaultReconciliation" $s.defaultReconciliation
    "allowedModes" $s.allowedModes)
  "scheduler" (dict
    "maxConcurrentQueries" $c.scheduler.maxConcurrentQueries
    "maxConcurrentReconciles" $c.scheduler.maxConcurrentReconciles)
  "resourceControllers" (dict
    "enabled" $c.resourceControllers.enabled
    "workers" $c.resourceControllers.workers
    "probeConcurrency" $c.resourceControllers.probeConcurrency
    "probeTimeout" $c.resourceControllers.probeTimeout)
  "kubernetes" (dict "namespace" (.Values.watchNamespace | default nil))
  "leaderElection" (dict
    "enabled" $s.leaderElection
    "leaseName" (printf "%s-controller" (include "ark-mesh.fullname" .))
    "leaseNamespace" .Release.Namespace
    "leaseDuration" $le.leaseDuration
    "renewDeadline" $le.renewDeadline
    "retryPeriod" $le.retryPeriod)
  "health" (dict "host" "0.0.0.0" "port" $c.healthPort)
  "defaultQueryTtl" .Values.defaultQueryTtl
-}}
{{- if $s.bus -}}
{{- $_ := set $config "bus" (include "ark-mesh.serviceBusConfig" (dict "ctx" . "component" "controller") | fromYaml) -}}
{{- end -}}
{{- $w := $c.webhook -}}
{{- if $w.enabled -}}
{{- $webhook := dict
  "enabled" true
  "host" "0.0.0.0"
  "port" $w.port
  "certDir" (include "ark-mesh.webhookCertDir" .) -}}
{{- if not $w.certManager.enabled -}}
{{- $service := include "ark-mesh.webhookService" . -}}
{{- $_ := set $webhook "selfSigned" (dict
  "namespace" .Release.Namespace
  "service" $service
  "secret" (printf "%s-tls" $service)
  "mutatingConfiguration" (include "ark-mesh.webhookConfigurationName" (dict "ctx" . "mutating" true))
  "validatingConfiguration" (include "ark-mesh.webhookConfigurationName" (dict "ctx" . "mutating" false))) -}}
{{- end -}}
{{- $_ := set $config "webhook" $webhook -}}
{{- end -}}
{{- toYaml $config -}}
{{- end -}}

{{- define "ark-mesh.config.queryReconciler" -}}
{{- $q := .Values.queryReconciler -}}
{{- $config := dict
  "bus" (include "ark-mesh.serviceBusConfig" (dict "ctx" . "component" "query-reconciler") | fromYaml)
  "provision" $q.provision
  "tenant" ($q.tenant | default nil)
  "resources" (dict
    "source" "kubernetes"
    "namespace" (.Values.watchNamespace | default nil)
    "preload" $q.resourceCache.preload
    "syncTimeout" $q.resourceCache.syncTimeout)
  "memory" (dict "backend" $q.memory.backend "readTimeout" $q.memory.readTimeout)
  "models" (dict
    "maxRetries" $q.models.maxRetries
    "timeout" $q.models.timeout
    "maxConnections" $q.models.maxConnections)
  "streaming" (dict
    "coalesce" $q.streaming.coalesce
    "coalesceDelay" $q.streaming.coalesceDelay
    "coalesceBytes" $q.streaming.coalesceBytes)
  "health" (dict "host" "0.0.0.0" "port" $q.healthPort)
  "gracePeriod" $q.gracePeriod
-}}
{{- toYaml $config -}}
{{- end -}}

{{- define "ark-mesh.config.responsesReconciler" -}}
{{- $r := .Values.responsesReconciler -}}
{{- $config := dict
  "bus" (include "ark-mesh.serviceBusConfig" (dict "ctx" . "component" "responses-reconciler") | fromYaml)
  "provision" $r.provision
  "tenant" ($r.tenant | default nil)
  "resources" (dict
    "source" "kubernetes"
    "namespace" (.Values.watchNamespace | default nil)
    "preload" $r.resourceCache.preload
    "syncTimeout" $r.resourceCache.syncTimeout)
  "models" (dict
    "maxRetries" $r.models.maxRetries
    "timeout" $r.models.timeout
    "maxConnections" $r.models.maxConnections)
  "health" (dict "host" "0.0.0.0" "port" $r.healthPort)
  "gracePeriod" $r.gracePeriod
-}}
{{- toYaml $config -}}
{{- end -}}

{{- define "ark-mesh.config.embeddingsReconciler" -}}
{{- $e := .Values.embeddingsReconciler -}}
{{- $config := dict
  "bus" (include "ark-mesh.serviceBusConfig" (dict "ctx" . "component" "embeddings-reconciler") | fromYaml)
  "provision" $e.provision
  "tenant" ($e.tenant | default nil)
  "resources" (dict
    "source" "kubernetes"
    "namespace" (.Values.watchNamespace | default nil)
    "preload" $e.resourceCache.preload
    "syncTimeout" $e.resourceCache.syncTimeout)
  "maxBatch" $e.maxBatch
  "maxResultBytes" (int64 $e.maxResultBytes)
  "timeout" $e.timeout
  "health" (dict "host" "0.0.0.0" "port" $e.healthPort)
  "gracePeriod" $e.gracePeriod
-}}
{{- toYaml $config -}}
{{- end -}}

{{- define "ark-mesh.config.statusSync" -}}
{{- $st := .Values.statusSync -}}
{{- $config := dict
  "bus" (include "ark-mesh.serviceBusConfig" (dict "ctx" . "component" "status-sync") | fromYaml)
  "provision" $st.provision
  "durable" "status-sync"
  "checkNewest" $st.checkNewest
  "events" (dict "enabled" $st.events "controller" "ark-mesh/status-sync")
  "health" (dict "host" "0.0.0.0" "port" $st.healthPort)
  "gracePeriod" $st.gracePeriod
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
  "bus" (include "ark-mesh.serviceBusConfig" (dict "ctx" . "component" "broker") | fromYaml)
  "provision" $b.provision
  "durable" "broker"
  "http" (dict "host" "0.0.0.0" "port" $b.port)
  "health" (dict "host" "0.0.0.0" "port" $b.healthPort)
  "auth" (dict
    "mode" $s.brokerAuth
    "defaultTenant" $b.auth.defaultTenant
    "tokens" $tokens)
  "limits" (dict
    "maxInFlightPerTenant" $b.limits.maxInFlightPerTenant
    "retryAfterSeconds" $b.limits.retryAfterSeconds
    "maxBodyBytes" $b.limits.maxBodyBytes
    "completionWaitSeconds" $b.limits.completionWaitSeconds)
  "streaming" (dict
    "heartbeatSeconds" $b.streaming.heartbeatSeconds
    "watchMaxSeconds" $b.streaming.watchMaxSeconds
    "readWithinSeconds" $b.streaming.readWithinSeconds
    "followerBuffer" $b.streaming.followerBuffer)
  "reconciliation" (dict
    "defaultReconciliation" $b.reconciliation.defaultReconciliation
    "allowedModes" $b.reconciliation.allowedModes)
  "gracePeriod" $b.gracePeriod
-}}
{{- /* A kubernetes section (in-cluster credentials) is what turns Query mirrors on, and
       Query resources (reconciliation: direct) with arkApi. */ -}}
{{- if or $b.queryMirrors $b.arkApi.enabled -}}
{{- $_ := set $config "kubernetes" (dict) -}}
{{- end -}}
{{- /* arkApi: /v1/agents|models|teams|tools read a watch cache, as the reconcilers do. */ -}}
{{- if $b.arkApi.enabled -}}
{{- $_ := set $config "resources" (dict
  "source" "kubernetes"
  "namespace" (.Values.watchNamespace | default nil)
  "preload" (list "Agent" "Model" "Team" "Tool")) -}}
{{- end -}}
{{- toYaml $config -}}
{{- end -}}

{{/* nats-server's configuration (nats.conf syntax). The server name is the pod's, so it
     stays the same across restarts of the StatefulSet's pod (JetStream ties data to it). */}}
{{- define "ark-mesh.natsConfig" -}}
{{- $n := .Values.nats -}}
{{- $name := printf "%s-nats" (include "ark-mesh.fullname" .) -}}
server_name: $POD_NAME
port: {{ $n.port }}
http_port: {{ $n.monitorPort }}
{{- include "ark-mesh.natsSecurity" . }}
jetstream {
  store_dir: /data
  max_memory_store: {{ $n.jetstream.maxMemoryStore }}
  max_file_store: {{ $n.jetstream.maxFileStore }}
}
{{- if gt (int $n.replicas) 1 }}
{{- /* Every node routes to every node (its own route is ignored) by the headless Service's
       stable per-pod names; the pods start in parallel and retry routes until DNS has them. */}}
cluster {
  name: {{ $name }}
  port: {{ $n.clusterPort }}
  routes: [
    {{- range $i := until (int $n.replicas) }}
    nats://{{ $name }}-{{ $i }}.{{ $name }}-headless.{{ $.Release.Namespace }}.svc:{{ $n.clusterPort }}
    {{- end }}
  ]
  connect_retries: 120
}
{{- end }}
{{- end -}}


{{/* nats.conf's authorization (decision 55: a user per service, the operator, a user per
     tenant; passwords are $ARK_NATS_PASSWORD_<n>, which the server reads from its environment,
     filled from nats.auth.secretName) and tls blocks. */}}
{{- define "ark-mesh.natsSecurity" -}}
{{- $n := .Values.nats -}}
{{- if $n.auth.enabled }}
authorization {
  users = [
    {{- range $i, $u := (include "ark-mesh.natsUsers" . | fromYaml).users }}
    # {{ $u.comment }}
    {
      user: {{ $u.user | quote }}
      password: $ARK_NATS_PASSWORD_{{ $i }}
      permissions: {
        publish: { allow: [
          {{- range $u.permissions.publish }}
          {{ . | quote }}
          {{- end }}
        ] }
        subscribe: { allow: [
          {{- range $u.permissions.subscribe }}
          {{ . | quote }}
          {{- end }}
        ] }
      }
    }
    {{- end }}
  ]
}
{{- end }}
{{- if $n.tls.enabled }}
tls {
  cert_file: /etc/nats-tls/tls.crt
  key_file: /etc/nats-tls/tls.key
  ca_file: /etc/nats-tls/ca.crt
  verify: {{ $n.tls.verifyClients }}
  timeout: 2
}
{{- end }}
{{- end -}}

{{/* The NATS users of the release as {users: [{user, comment, permissions}]}, in the order
     of their $ARK_NATS_PASSWORD_<n>: the enabled services, the operator, nats.auth.tenants.
     Permissions come from nats-permissions.json (written from ark_mesh.bus.permissions). */}}
{{- define "ark-mesh.natsUsers" -}}
{{- $s := include "ark-mesh.settings" . | fromYaml -}}
{{- $v := .Values -}}
{{- $table := .Files.Get "nats-permissions.json" | fromYaml -}}
{{- $enabled := dict "controller" true "query-reconciler" $s.queryReconciler "status-sync" $s.statusSync "broker" $s.broker "responses-reconciler" $s.responsesReconciler "embeddings-reconciler" $s.embeddingsReconciler -}}
{{- $provision := dict "controller" true "query-reconciler" $v.queryReconciler.provision "status-sync" $v.statusSync.provision "broker" $v.broker.provision "responses-reconciler" $v.responsesReconciler.provision "embeddings-reconciler" $v.embeddingsReconciler.provision -}}
{{- $users := list -}}
{{- range $service := list "controller" "query-reconciler" "status-sync" "broker" "responses-reconciler" "embeddings-reconciler" -}}
{{- if get $enabled $service -}}
{{- $permissions := get (get $table.services $service) (ternary "provision" "verify" (get $provision $service)) -}}
{{- $users = append $users (dict "user" (printf "ark-%s" $service) "comment" (printf "service %s" $service) "permissions" $permissions) -}}
{{- end -}}
{{- end -}}
{{- $users = append $users (dict "user" "ark-operator" "comment" "people and tools: ark-mesh tail, query, dlq" "permissions" $table.operator) -}}
{{- range $tenant := $v.nats.auth.tenants -}}
{{- $template := ternary $table.tenant.replay $table.tenant.read (default false $tenant.replay) -}}
{{- $publish := list -}}
{{- range $template.publish -}}
{{- $publish = append $publish (replace "{tenant}" $tenant.name .) -}}
{{- end -}}
{{- $subscribe := list -}}
{{- range $template.subscribe -}}
{{- $subscribe = append $subscribe (replace "{tenant}" $tenant.name .) -}}
{{- end -}}
{{- $users = append $users (dict "user" (printf "tenant-%s" $tenant.name) "comment" (printf "tenant %s (custom consumers)" $tenant.name) "permissions" (dict "publish" $publish "subscribe" $subscribe)) -}}
{{- end -}}
{{- toYaml (dict "users" $users) -}}
{{- end -}}
