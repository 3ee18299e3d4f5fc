{{/*
Names and labels, following `helm create` and the recommended
app.kubernetes.io/* labels.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "foresight.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's resources. Truncated to 63 characters
because some Kubernetes name fields are limited to that (DNS-1123 labels).
*/}}
{{- define "foresight.fullname" -}}
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

{{/*
A name cut to Kubernetes' 63 characters without two names colliding: one
that is longer keeps its first 54 characters and ends in 8 of its sha256,
so `<fullname>-remediation` never truncates to `<fullname>` (a 62- or
63-character fullname made two Roles of one name), nor two long
`<namespace>-<fullname>` ClusterRoles to the same name.
*/}}
{{- define "foresight.fit" -}}
{{- if le (len .) 63 }}
{{- . }}
{{- else }}
{{- printf "%s-%s" (trunc 54 . | trimSuffix "-") (sha256sum . | trunc 8) }}
{{- end }}
{{- end }}

{{/* chart-version, as the helm.sh/chart label wants it. */}}
{{- define "foresight.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every resource. */}}
{{- define "foresight.labels" -}}
helm.sh/chart: {{ include "foresight.chart" . }}
{{ include "foresight.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | trimAll "_.-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: external-scaler
app.kubernetes.io/part-of: keda
{{- end }}

{{/* Labels that select the pods; never change them between releases. */}}
{{- define "foresight.selectorLabels" -}}
app.kubernetes.io/name: {{ include "foresight.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The ServiceAccount's name. */}}
{{- define "foresight.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "foresight.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name must name an existing ServiceAccount when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image reference; the tag defaults to the chart's appVersion. */}}
{{- define "foresight.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* The gRPC address KEDA dials: the Service's cluster DNS name and port. */}}
{{- define "foresight.scalerAddress" -}}
{{- printf "%s.%s.svc.%s:%d" (include "foresight.fullname" .) .Release.Namespace .Values.clusterDomain (int .Values.service.grpcPort) }}
{{- end }}

{{/* The TLS Secret, required when TLS is on. */}}
{{- define "foresight.tlsSecretName" -}}
{{- required "tls.secretName must name a kubernetes.io/tls Secret (tls.crt, tls.key) when tls.enabled is true" .Values.tls.secretName }}
{{- end }}

{{/* Where the pod mounts things; the settings file refers to these paths. */}}
{{- /* The remediation leader Lease: one per release. */}}
{{- define "foresight.leaseName" -}}
{{- include "foresight.fit" (printf "%s-remediation" (include "foresight.fullname" .)) }}
{{- end }}
{{- define "foresight.configDir" -}}/etc/foresight/config{{- end }}
{{- define "foresight.tlsDir" -}}/etc/foresight/tls{{- end }}
{{- define "foresight.clientCaDir" -}}/etc/foresight/client-ca{{- end }}
{{- define "foresight.dataDir" -}}/var/lib/foresight{{- end }}
{{- define "foresight.prometheusTokenDir" -}}/var/run/secrets/foresight/prometheus{{- end }}

{{/*
The RBAC rules foresight needs in each namespace it watches. Keep them equal
to the kube calls in src/remediation (tests/helm_chart.rs checks the
rendered rules against its EXPECTED_WATCH_RULES). Remediation's patches
are here only when it may act in every watched namespace; with
remediation.namespaces they are granted in those namespaces alone
(foresight.actRules, rbac.yaml).
*/}}
{{- define "foresight.watchRules" -}}
# Read the scale target (get) and its rollout's ReplicaSets (list by the
# Deployment's selector); nothing lists Deployments or watches: a
# cluster-wide list of Deployments would read every pod template, inline
# secrets included.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get"]
- apiGroups: ["apps"]
  resources: ["replicasets"]
  verbs: ["list"]
# Read ScaledObjects (the ceiling a diagnosis compares against).
- apiGroups: ["keda.sh"]
  resources: ["scaledobjects"]
  verbs: ["get"]
{{- if and .Values.remediation.enabled (not .Values.remediation.namespaces) }}
{{ include "foresight.actRules" . }}
{{- end }}
{{- end }}

{{/*
What enforcing remediation changes: rollback and restart patch the
Deployment, RaiseCeiling the ScaledObject's maxReplicaCount, and each
action is published as an Event, which a new leader lists. A dry run does
none of these, so without remediation.enabled RBAC is read-only.
*/}}
{{- define "foresight.actRules" -}}
# Remediation actions patch the target Deployment.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["patch"]
# RaiseCeiling patches the ScaledObject's maxReplicaCount.
- apiGroups: ["keda.sh"]
  resources: ["scaledobjects"]
  verbs: ["patch"]
# Record actions as Events on the object acted on; a new remediation leader
# lists foresight's own Events to count the actions the old one took.
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch", "list"]
{{- end }}

{{/*
A Kubernetes quantity ("256Mi", "1Gi", "500M", "1073741824") in MiB, for
comparing sizes; the schema allows only these forms.
*/}}
{{- define "foresight.mebibytes" -}}
{{- $q := toString . -}}
{{- $n := regexFind "^[0-9]+(\\.[0-9]+)?" $q | float64 -}}
{{- $unit := trimPrefix (regexFind "^[0-9]+(\\.[0-9]+)?" $q) $q -}}
{{- $factor := dict "" 0.00000095367431640625 "Ki" 0.0009765625 "Mi" 1.0 "Gi" 1024.0 "Ti" 1048576.0 "k" 0.00095367431640625 "M" 0.95367431640625 "G" 953.67431640625 "T" 953674.31640625 -}}
{{- mulf $n (get $factor $unit | default 0.0) -}}
{{- end }}
