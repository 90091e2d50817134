{{/*
Names, labels and the effective settings every template shares.
*/}}

{{- define "ark-mesh.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Object name prefix; kept to 40 characters so "<prefix>-query-reconciler" and the pod
     name suffixes stay within Kubernetes' 63-character label limit. */}}
{{- define "ark-mesh.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "ark-mesh.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels of one component: (dict "ctx" $ "component" "controller"). */}}
{{- define "ark-mesh.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ark-mesh.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Labels of every object of one component: (dict "ctx" $ "component" "controller"). */}}
{{- define "ark-mesh.labels" -}}
helm.sh/chart: {{ include "ark-mesh.chart" .ctx }}
{{ include "ark-mesh.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: ark-mesh
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
{{- end -}}

{{- define "ark-mesh.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* Cluster-scoped names carry the release namespace: two releases of the same name in two
     namespaces must not share (and overwrite) one ClusterRole. */}}
{{- define "ark-mesh.clusterName" -}}
{{- printf "%s-%s-%s" .ctx.Release.Namespace (include "ark-mesh.fullname" .ctx) .component | trunc 253 -}}
{{- end -}}

{{/*
The effective settings: the preset's defaults overlaid with explicit values, checked for
combinations no preset can honour. Templates read it with
  {{- $s := include "ark-mesh.settings" . | fromYaml -}}
Every check fails the render with a message that names the value to change.
*/}}
{{- define "ark-mesh.settings" -}}
{{- /* presets.yaml is the one table of presets, shared with the local mesh (ark-mesh dev). */ -}}
{{- $presets := .Files.Get "presets.yaml" | fromYaml -}}
{{- $v := .Values -}}
{{- $name := toString $v.preset -}}
{{- if not (hasKey $presets $name) -}}
{{- fail (printf "preset: %q is not a preset; use simple, scale-flexible or scale-strict" $name) -}}
{{- end -}}
{{- $preset := get $presets $name -}}
{{- $allowed := $v.reconciliation.allowedModes | default $preset.allowedModes -}}
{{- $default := $v.reconciliation.defaultReconciliation | default $preset.defaultReconciliation -}}
{{- $bus := $preset.bus -}}
{{- $queryReconciler := ternary $bus $v.queryReconciler.enabled (kindIs "invalid" $v.queryReconciler.enabled) -}}
{{- $statusSync := ternary $bus $v.statusSync.enabled (kindIs "invalid" $v.statusSync.enabled) -}}
{{- $broker := ternary $bus $v.broker.enabled (kindIs "invalid" $v.broker.enabled) -}}
{{- $responsesReconciler := ternary $bus $v.responsesReconciler.enabled (kindIs "invalid" $v.responsesReconciler.enabled) -}}
{{- $embeddingsReconciler := ternary $bus $v.embeddingsReconciler.enabled (kindIs "invalid" $v.embeddingsReconciler.enabled) -}}
{{- /* ARCHITECTURE §2: in scale-strict the broker API requires authenticated tenants. */ -}}
{{- $brokerAuth := $v.broker.auth.mode | default (ternary "token" "none" (eq $name "scale-strict")) -}}
{{- if eq $name "simple" -}}
{{- range $allowed -}}
{{- if ne . "inController" -}}
{{- fail (printf "reconciliation.allowedModes: preset simple runs without NATS, so only inController is possible (got %v); choose preset scale-flexible to allow %s" $allowed .) -}}
{{- end -}}
{{- end -}}
{{- if $queryReconciler -}}
{{- fail "queryReconciler.enabled: preset simple runs without NATS, so there is no query-reconciler; choose preset scale-flexible" -}}
{{- end -}}
{{- if $statusSync -}}
{{- fail "statusSync.enabled: preset simple runs without NATS, so there is no status-sync; choose preset scale-flexible" -}}
{{- end -}}
{{- if $broker -}}
{{- fail "broker.enabled: preset simple runs without NATS, so there is no broker (it publishes QueryRequests to JetStream); choose preset scale-flexible" -}}
{{- end -}}
{{- if $responsesReconciler -}}
{{- fail "responsesReconciler.enabled: preset simple runs without NATS, so there is no responses-reconciler (it pulls ResponsesRequests from JetStream); choose preset scale-flexible" -}}
{{- end -}}
{{- if $embeddingsReconciler -}}
{{- fail "embeddingsReconciler.enabled: preset simple runs without NATS, so there is no embeddings-reconciler (it pulls EmbeddingsRequests from JetStream); choose preset scale-flexible" -}}
{{- end -}}
{{- if or $v.nats.url $v.nats.deploy -}}
{{- fail "nats: preset simple runs without NATS; leave nats.url and nats.deploy unset, or choose preset scale-flexible" -}}
{{- end -}}
{{- end -}}
{{- if and (eq $name "scale-strict") (has "inController" $allowed) -}}
{{- fail (printf "reconciliation.allowedModes: preset scale-strict never resolves in the controller; remove inController (got %v) or choose preset scale-flexible" $allowed) -}}
{{- end -}}
{{- if not (has $default $allowed) -}}
{{- fail (printf "reconciliation.defaultReconciliation: %q is not in reconciliation.allowedModes %v" $default $allowed) -}}
{{- end -}}
{{- if and $broker (eq $brokerAuth "token") (not $v.broker.auth.tokens) -}}
{{- fail (printf "broker.auth.tokens: broker.auth.mode is token%s, which needs at least one {tenant, sha256} (sha256: the hex SHA-256 of the bearer token, e.g. `printf %%s \"$TOKEN\" | sha256sum`)" (ternary " (the default of preset scale-strict)" "" (not $v.broker.auth.mode))) -}}
{{- end -}}
{{- if and $bus (not $v.nats.auth.enabled) (not $v.nats.insecure) -}}
{{- fail (printf "nats.auth.enabled: preset %s runs services on NATS, which carries every tenant's data; keep nats.auth.enabled: true (a user with its own permissions per service, passwords from the Secret nats.auth.secretName, docs/operations.md \"NATS authorization\") or set nats.insecure: true for development (every service then logs a warning at start)" $name) -}}
{{- end -}}
{{- $deployNats := false -}}
{{- if $bus -}}
{{- $deployNats = ternary (not $v.nats.url) $v.nats.deploy (kindIs "invalid" $v.nats.deploy) -}}
{{- if and $v.nats.url $deployNats -}}
{{- fail (printf "nats: both nats.url (%s) and nats.deploy are set; use an external NATS (url) or the chart's own (deploy), not both" $v.nats.url) -}}
{{- end -}}
{{- if not (or $v.nats.url $deployNats) -}}
{{- fail (printf "nats: preset %s needs NATS with JetStream; set nats.url to an external server or nats.deploy: true" $name) -}}
{{- end -}}
{{- end -}}
{{- $replicas := int $v.controller.replicas -}}
{{- $leader := ternary (gt $replicas 1) $v.controller.leaderElection.enabled (kindIs "invalid" $v.controller.leaderElection.enabled) -}}
{{- if and (gt $replicas 1) (not $leader) -}}
{{- fail (printf "controller.leaderElection.enabled: false with controller.replicas %d; replicas would reconcile the same Queries twice (enable it or use 1 replica)" $replicas) -}}
{{- end -}}
{{- $servers := list -}}
{{- $natsReplicas := 1 -}}
{{- if $v.nats.url -}}
{{- $servers = ternary $v.nats.url (list $v.nats.url) (kindIs "slice" $v.nats.url) -}}
{{- else if $deployNats -}}
{{- $natsReplicas = int $v.nats.replicas -}}
{{- $fullname := include "ark-mesh.fullname" . -}}
{{- if eq $natsReplicas 1 -}}
{{- $servers = list (printf "nats://%s-nats.%s.svc:%d" $fullname .Release.Namespace (int $v.nats.port)) -}}
{{- else -}}
{{- /* Every node by its stable name: a client that loses its node reconnects to another at
       once, without waiting for the Service to drop the dead endpoint. */ -}}
{{- range $i := until $natsReplicas -}}
{{- $servers = append $servers (printf "nats://%s-nats-%d.%s-nats-headless.%s.svc:%d" $fullname $i $fullname $.Release.Namespace (int $v.nats.port)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
preset: {{ $name }}
defaultReconciliation: {{ $default }}
allowedModes: {{ toJson $allowed }}
bus: {{ $bus }}
natsServers: {{ toJson $servers }}
natsReplicas: {{ $natsReplicas }}
deployNats: {{ $deployNats }}
queryReconciler: {{ $queryReconciler }}
statusSync: {{ $statusSync }}
broker: {{ $broker }}
responsesReconciler: {{ $responsesReconciler }}
embeddingsReconciler: {{ $embeddingsReconciler }}
brokerAuth: {{ $brokerAuth }}
inController: {{ has "inController" $allowed }}
leaderElection: {{ $leader }}
{{- end -}}

{{/* The bus block every service gets, identical for all of them. */}}
{{- define "ark-mesh.busConfig" -}}
{{- $s := include "ark-mesh.settings" . | fromYaml -}}
{{- $bus := deepCopy .Values.bus -}}
{{- $connection := get $bus "connection" | default dict -}}
{{- $_ := set $connection "servers" $s.natsServers -}}
{{- $_ := set $bus "connection" $connection -}}
{{- /* Streams and buckets without replicas get one per node of the chart's NATS (1 for an
       external server); their durable consumers follow their stream. */ -}}
{{- $topology := get $bus "topology" | default dict -}}
{{- range $key := list "work" "chunks" "events" "status" "memory" "dlq" "queriesBucket" "cancelBucket" "runsBucket" "responsesBucket" "sessionsBucket" -}}
{{- $entry := get $topology $key | default dict -}}
{{- if or (not (hasKey $entry "replicas")) (kindIs "invalid" (index $entry "replicas")) -}}
{{- $_ := set $entry "replicas" (int $s.natsReplicas) -}}
{{- end -}}
{{- $_ := set $topology $key $entry -}}
{{- end -}}
{{- $_ := set $bus "topology" $topology -}}
{{- toYaml $bus -}}
{{- end -}}

{{/* The bus block of one service: (dict "ctx" $ "component" "broker"). The shared block plus
     this service's NATS identity (user ark-<component>, password from $ARK_NATS_PASSWORD,
     filled from nats.auth.secretName) and TLS, or `insecure: true` with nats.insecure. */}}
{{- define "ark-mesh.serviceBusConfig" -}}
{{- $v := .ctx.Values -}}
{{- $bus := include "ark-mesh.busConfig" .ctx | fromYaml -}}
{{- $connection := get $bus "connection" -}}
{{- if $v.nats.auth.enabled -}}
{{- $_ := set $connection "auth" (dict "user" (printf "ark-%s" .component) "password" (dict "env" "ARK_NATS_PASSWORD")) -}}
{{- else -}}
{{- $_ := set $connection "insecure" true -}}
{{- end -}}
{{- if $v.nats.tls.enabled -}}
{{- $tls := dict "caFile" "/etc/ark-mesh/nats-tls/ca.crt" -}}
{{- with $v.nats.tls.serverName -}}
{{- $_ := set $tls "serverName" . -}}
{{- end -}}
{{- if $v.nats.tls.clientSecretName -}}
{{- $_ := set $tls "certFile" "/etc/ark-mesh/nats-client-tls/tls.crt" -}}
{{- $_ := set $tls "keyFile" "/etc/ark-mesh/nats-client-tls/tls.key" -}}
{{- end -}}
{{- $_ := set $connection "tls" $tls -}}
{{- end -}}
{{- toYaml $bus -}}
{{- end -}}

{{/* The Secret holding the NATS users' passwords (key: the user name). */}}
{{- define "ark-mesh.natsAuthSecret" -}}
{{- .Values.nats.auth.secretName | default (printf "%s-nats-auth" (include "ark-mesh.fullname" .)) -}}
{{- end -}}

{{/* Environment of every ark-mesh container: (dict "ctx" $ "component" "controller"
     "extraEnv" list). */}}
{{- define "ark-mesh.env" -}}
{{- $v := .ctx.Values -}}
{{- $attributes := "k8s.namespace.name=$(POD_NAMESPACE),k8s.pod.name=$(POD_NAME)" -}}
{{- with $v.telemetry.resourceAttributes -}}
{{- $attributes = printf "%s,%s" $attributes . -}}
{{- end -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: ARK_LOG_FORMAT
  value: {{ $v.logging.format | quote }}
- name: ARK_LOG_LEVEL
  value: {{ $v.logging.level | quote }}
- name: OTEL_SERVICE_NAME
  value: {{ printf "ark-mesh-%s" .component | quote }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ $attributes | quote }}
- name: OTEL_METRICS_EXPORTER
  value: {{ ternary "otlp,prometheus" "otlp" (and $v.metrics.enabled true) | quote }}
{{- with $v.telemetry.otlpEndpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ . | quote }}
{{- end }}
{{- with $v.telemetry.tracesSampler }}
- name: OTEL_TRACES_SAMPLER
  value: {{ . | quote }}
{{- end }}
{{- with $v.telemetry.tracesSamplerArg }}
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ . | quote }}
{{- end }}
{{- $s := include "ark-mesh.settings" .ctx | fromYaml }}
{{- if and $s.bus $v.nats.auth.enabled }}
- name: ARK_NATS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "ark-mesh.natsAuthSecret" .ctx }}
      key: {{ printf "ark-%s" .component }}
{{- end }}
{{- with $v.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- with .extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
One ark-mesh service Deployment. Parameters (dict):
  ctx        the root context
  component  controller | query-reconciler | responses-reconciler | embeddings-reconciler
             | status-sync | broker
  module     the Python module run with `python -m`
  config     the rendered config file (its checksum rolls the pods when it changes)
  values     the component's values (replicas, healthPort, resources, extraEnv, podAnnotations)
  grace      terminationGracePeriodSeconds
  ports      optional: more named container ports (list of ContainerPorts) after `health`
*/}}
{{- define "ark-mesh.serviceDeployment" -}}
{{- $ctx := .ctx -}}
{{- $v := $ctx.Values -}}
{{- $s := include "ark-mesh.settings" $ctx | fromYaml -}}
{{- $volumes := .volumes | default list -}}
{{- if and $s.bus $v.nats.tls.enabled -}}
{{- /* Only the CA of the server's Secret (never its key), and this client's own pair. */ -}}
{{- $volumes = append $volumes (dict "name" "nats-tls" "secretName" $v.nats.tls.secretName "mountPath" "/etc/ark-mesh/nats-tls" "items" (list (dict "key" "ca.crt" "path" "ca.crt"))) -}}
{{- with $v.nats.tls.clientSecretName -}}
{{- $volumes = append $volumes (dict "name" "nats-client-tls" "secretName" . "mountPath" "/etc/ark-mesh/nats-client-tls") -}}
{{- end -}}
{{- end -}}
{{- $labels := dict "ctx" $ctx "component" .component -}}
{{- $name := printf "%s-%s" (include "ark-mesh.fullname" $ctx) .component -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $name }}
  namespace: {{ $ctx.Release.Namespace }}
  labels:
    {{- include "ark-mesh.labels" $labels | nindent 4 }}
spec:
  replicas: {{ .values.replicas }}
  selector:
    matchLabels:
      {{- include "ark-mesh.selectorLabels" $labels | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "ark-mesh.selectorLabels" $labels | nindent 8 }}
        {{- with $v.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        {{- /* the file as mounted: the ConfigMap's block scalar ends with a newline */}}
        checksum/config: {{ printf "%s\n" .config | sha256sum }}
        {{- if $v.metrics.enabled }}
        prometheus.io/scrape: "true"
        prometheus.io/port: {{ .values.healthPort | quote }}
        prometheus.io/path: /metrics
        {{- end }}
        {{- with $v.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
        {{- with .values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ $name }}
      {{- with $v.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml $v.podSecurityContext | nindent 8 }}
      terminationGracePeriodSeconds: {{ .grace }}
      containers:
        - name: {{ .component }}
          image: {{ include "ark-mesh.image" $ctx }}
          imagePullPolicy: {{ $v.image.pullPolicy }}
          command:
            {{- range $v.commandWrapper }}
            - {{ . | quote }}
            {{- end }}
            - python
            - -m
            - {{ .module }}
            - --config
            - /etc/ark-mesh/config.yaml
          env:
            {{- include "ark-mesh.env" (dict "ctx" $ctx "component" .component "extraEnv" .values.extraEnv) | nindent 12 }}
          ports:
            - name: health
              containerPort: {{ .values.healthPort }}
              protocol: TCP
            {{- with .ports }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          startupProbe:
            httpGet:
              path: /healthz
              port: health
            periodSeconds: 2
            failureThreshold: 60
          livenessProbe:
            httpGet:
              path: /healthz
              port: health
            periodSeconds: 10
            timeoutSeconds: 3
            failureThreshold: 3
          readinessProbe:
            httpGet:
              path: /readyz
              port: health
            periodSeconds: 5
            timeoutSeconds: 3
            failureThreshold: 3
          resources:
            {{- toYaml .values.resources | nindent 12 }}
          securityContext:
            {{- toYaml $v.securityContext | nindent 12 }}
          volumeMounts:
            - name: config
              mountPath: /etc/ark-mesh
              readOnly: true
            - name: tmp
              mountPath: /tmp
            {{- range $volumes }}
            - name: {{ .name }}
              mountPath: {{ .mountPath }}
              readOnly: true
            {{- end }}
            {{- with $v.extraVolumeMounts }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
      volumes:
        - name: config
          configMap:
            name: {{ $name }}
        - name: tmp
          emptyDir: {}
        {{- range $volumes }}
        - name: {{ .name }}
          secret:
            secretName: {{ .secretName }}
            {{- with .items }}
            items:
              {{- toYaml . | nindent 14 }}
            {{- end }}
        {{- end }}
        {{- with $v.extraVolumes }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with $v.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- if and $v.topologySpread.enabled (or (gt (int .values.replicas) 1) (dig "autoscaling" "enabled" false .values)) }}
      {{- /* Replicas on different nodes (and zones when the cluster has them): a node drain
             or a lost zone takes one replica, not the service. */}}
      topologySpreadConstraints:
        {{- range $v.topologySpread.topologyKeys }}
        - maxSkew: {{ $v.topologySpread.maxSkew }}
          topologyKey: {{ . }}
          whenUnsatisfiable: {{ $v.topologySpread.whenUnsatisfiable }}
          labelSelector:
            matchLabels:
              {{- include "ark-mesh.selectorLabels" $labels | nindent 14 }}
        {{- end }}
      {{- end }}
{{ include "ark-mesh.servicePolicies" . }}
{{- end -}}

{{/* What keeps one service available and fenced, next to its Deployment: a PodDisruptionBudget
     when it runs more than one replica, an optional HorizontalPodAutoscaler, a NetworkPolicy
     admitting only its own ports, an optional PodMonitor. Same arguments as
     ark-mesh.serviceDeployment. */}}
{{- define "ark-mesh.servicePolicies" -}}
{{- $ctx := .ctx -}}
{{- $v := $ctx.Values -}}
{{- $labels := dict "ctx" $ctx "component" .component -}}
{{- $name := printf "%s-%s" (include "ark-mesh.fullname" $ctx) .component -}}
{{- $autoscaling := dig "autoscaling" "enabled" false .values -}}
{{- if and $v.podDisruptionBudget.enabled (or (gt (int .values.replicas) 1) $autoscaling) }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ $name }}
  namespace: {{ $ctx.Release.Namespace }}
  labels:
    {{- include "ark-mesh.labels" $labels | nindent 4 }}
spec:
  maxUnavailable: {{ $v.podDisruptionBudget.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "ark-mesh.selectorLabels" $labels | nindent 6 }}
{{- end }}
{{- if $autoscaling }}
{{- $a := .values.autoscaling }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ $name }}
  namespace: {{ $ctx.Release.Namespace }}
  labels:
    {{- include "ark-mesh.labels" $labels | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ $name }}
  minReplicas: {{ $a.minReplicas }}
  maxReplicas: {{ $a.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $a.targetCPUUtilizationPercentage }}
{{- end }}
{{- if $v.networkPolicy.enabled }}
---
{{- /* Ingress only: egress stays open (model providers, MCP and A2A servers, the Kubernetes
       API live anywhere). The health port takes probes and Prometheus; the service's own
       ports (broker http, controller webhook) take their clients. */}}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ $name }}
  namespace: {{ $ctx.Release.Namespace }}
  labels:
    {{- include "ark-mesh.labels" $labels | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "ark-mesh.selectorLabels" $labels | nindent 6 }}
  policyTypes: [Ingress]
  ingress:
    - ports:
        - port: health
          protocol: TCP
      {{- with $v.networkPolicy.metricsFrom }}
      from:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    {{- range .ports }}
    - ports:
        - port: {{ .name }}
          protocol: TCP
      {{- if and (eq .name "http") $v.networkPolicy.brokerFrom }}
      from:
        {{- toYaml $v.networkPolicy.brokerFrom | nindent 8 }}
      {{- end }}
    {{- end }}
{{- end }}
{{- if and $v.metrics.enabled $v.metrics.podMonitor.enabled }}
---
{{- /* A PodMonitor, not a ServiceMonitor: the health port is on every pod and behind no
       Service, and each replica must be scraped on its own. */}}
apiVersion: monitoring.coreos.com/v1
kind: PodMonitor
metadata:
  name: {{ $name }}
  namespace: {{ $ctx.Release.Namespace }}
  labels:
    {{- include "ark-mesh.labels" $labels | nindent 4 }}
    {{- with $v.metrics.podMonitor.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  selector:
    matchLabels:
      {{- include "ark-mesh.selectorLabels" $labels | nindent 6 }}
  podMetricsEndpoints:
    - port: health
      path: /metrics
      interval: {{ $v.metrics.podMonitor.interval }}
{{- end }}
{{- end -}}

{{/* The ConfigMap holding one service's config file: (dict "ctx" $ "component" … "config" …). */}}
{{- define "ark-mesh.serviceConfigMap" -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "ark-mesh.fullname" .ctx }}-{{ .component }}
  namespace: {{ .ctx.Release.Namespace }}
  labels:
    {{- include "ark-mesh.labels" (dict "ctx" .ctx "component" .component) | nindent 4 }}
data:
  config.yaml: |
    {{- .config | nindent 4 }}
{{- end -}}

{{/* One service's ServiceAccount: (dict "ctx" $ "component" … "values" …). */}}
{{- define "ark-mesh.serviceAccount" -}}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "ark-mesh.fullname" .ctx }}-{{ .component }}
  namespace: {{ .ctx.Release.Namespace }}
  labels:
    {{- include "ark-mesh.labels" (dict "ctx" .ctx "component" .component) | nindent 4 }}
  {{- with .values.serviceAccount.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}

{{/*
The permissions of one service where its Queries live: a Role and RoleBinding in
watchNamespace, or a ClusterRole and ClusterRoleBinding when every namespace is watched.
Parameters (dict): ctx, component, rules (a list of PolicyRules).
*/}}
{{- define "ark-mesh.scopedRbac" -}}
{{- $ctx := .ctx -}}
{{- $labels := dict "ctx" $ctx "component" .component -}}
{{- $account := printf "%s-%s" (include "ark-mesh.fullname" $ctx) .component -}}
{{- if $ctx.Values.watchNamespace -}}
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {{ $account }}
  namespace: {{ $ctx.Values.watchNamespace }}
  labels:
    {{- include "ark-mesh.labels" $labels | nindent 4 }}
rules:
  {{- toYaml .rules | nindent 2 }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ $account }}
  namespace: {{ $ctx.Values.watchNamespace }}
  labels:
    {{- include "ark-mesh.labels" $labels | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {{ $account }}
subjects:
  - kind: ServiceAccount
    name: {{ $account }}
    namespace: {{ $ctx.Release.Namespace }}
{{- else -}}
{{- $cluster := include "ark-mesh.clusterName" $labels -}}
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {{ $cluster }}
  labels:
    {{- include "ark-mesh.labels" $labels | nindent 4 }}
rules:
  {{- toYaml .rules | nindent 2 }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {{ $cluster }}
  labels:
    {{- include "ark-mesh.labels" $labels | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: {{ $cluster }}
subjects:
  - kind: ServiceAccount
    name: {{ $account }}
    namespace: {{ $ctx.Release.Namespace }}
{{- end -}}
{{- end -}}

{{/* Read access to everything the resolver reads (ark_mesh.resolver.RESOLVER_KINDS). */}}
{{- define "ark-mesh.resolverReadRules" -}}
- apiGroups: ["ark.mckinsey.com"]
  resources: ["agents", "models", "teams", "tools", "memories", "a2aservers", "mcpservers"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["configmaps", "secrets"]
  verbs: ["get", "list", "watch"]
{{- end -}}

{{/* Read access to what the embeddings-reconciler reads: Models, and the Secrets and
     ConfigMaps their API keys, base URLs and headers come from. No Agents, Teams, Tools… */}}
{{- define "ark-mesh.embeddingsReadRules" -}}
- apiGroups: ["ark.mckinsey.com"]
  resources: ["models"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["configmaps", "secrets"]
  verbs: ["get", "list", "watch"]
{{- end -}}

{{/* What the controller's resource controllers need beyond reading what the resolver reads:
     ExecutionEngines (Agent availability), the status subresource of every kind whose status
     they write, and the children discovery keeps (Tools of MCP servers, Agents of A2A servers). */}}
{{- define "ark-mesh.resourceControllerRules" -}}
- apiGroups: ["ark.mckinsey.com"]
  resources: ["executionengines"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["ark.mckinsey.com"]
  resources: ["models/status", "agents/status", "teams/status", "tools/status", "memories/status", "executionengines/status", "mcpservers/status", "a2aservers/status"]
  verbs: ["patch"]
- apiGroups: ["ark.mckinsey.com"]
  resources: ["tools", "agents"]
  verbs: ["create", "update", "delete"]
{{- end -}}

{{/* Creating Events, in both APIs the EventRecorder uses (events.k8s.io, then core);
     patch folds a repeat into the first event (series / count), as client-go does. */}}
{{- define "ark-mesh.eventRules" -}}
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end -}}

{{/* The Service in front of the controller's admission webhooks. */}}
{{- define "ark-mesh.webhookService" -}}
{{- printf "%s-webhook" (include "ark-mesh.fullname" .) -}}
{{- end -}}

{{/* Where the controller reads (cert-manager) or writes (self-signed) its serving certificate. */}}
{{- define "ark-mesh.webhookCertDir" -}}
/tmp/k8s-webhook-server/serving-certs
{{- end -}}

{{/* A webhook configuration's (cluster-scoped) name: (dict "ctx" $ "mutating" true|false). */}}
{{- define "ark-mesh.webhookConfigurationName" -}}
{{- include "ark-mesh.clusterName" (dict "ctx" .ctx "component" (ternary "mutating-webhook" "validating-webhook" .mutating)) -}}
{{- end -}}

{{/* What admission reads where the objects live: the objects a verdict names must exist. */}}
{{- define "ark-mesh.admissionReadRules" -}}
- apiGroups: ["ark.mckinsey.com"]
  resources: ["agents", "models", "teams", "tools", "memories", "evaluators"]
  verbs: ["get"]
{{- end -}}
