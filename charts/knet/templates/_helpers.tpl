{{/*
Names, labels and the pieces every component shares.
*/}}

{{- define "knet.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* <release>-<chart>, or the release name when it already contains the chart name ("knet"). */}}
{{- define "knet.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The name of one component's objects: include "knet.componentName" (list . "agent") */}}
{{- define "knet.componentName" -}}
{{- $root := index . 0 -}}
{{- printf "%s-%s" (include "knet.fullname" $root) (index . 1) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "knet.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every object. */}}
{{- define "knet.labels" -}}
helm.sh/chart: {{ include "knet.chart" . }}
app.kubernetes.io/name: {{ include "knet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: knet
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Labels of one component's objects: include "knet.componentLabels" (list . "agent") */}}
{{- define "knet.componentLabels" -}}
{{ include "knet.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* Selector labels of one component (stable across upgrades). */}}
{{- define "knet.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "knet.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "knet.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The ServiceAccount name of one component. */}}
{{- define "knet.serviceAccountName" -}}
{{- include "knet.componentName" . -}}
{{- end -}}

{{/*
The API server knet's components use, as JSON: {"url": "...", "from": "...", "host": "...", "port": "..."}.
controlPlaneEndpoint `auto` takes the `server` of the kubeconfig in the ConfigMap kube-public/cluster-info,
which kubeadm (and so kind) publishes, looked up at install and upgrade; any other value is the URL itself.
`lookup` finds nothing under `helm template` or a client-side dry-run, so these need an explicit URL.
IPv6 literals lose their brackets in "host" (KUBERNETES_SERVICE_HOST takes a bare address); the port defaults to 443.
*/}}
{{- define "knet.apiServer" -}}
{{- $set := "--set controlPlaneEndpoint=https://HOST:6443 (the API server's address)" -}}
{{- $value := required (printf "controlPlaneEndpoint is required: auto, or the API server URL that knet's components use instead of the kubernetes Service VIP: %s" $set) .Values.controlPlaneEndpoint -}}
{{- $url := $value -}}
{{- $from := "controlPlaneEndpoint" -}}
{{- if eq $value "auto" -}}
{{- $from = "kube-public/cluster-info" -}}
{{- $info := lookup "v1" "ConfigMap" "kube-public" "cluster-info" -}}
{{- if not $info -}}
{{- fail (printf "controlPlaneEndpoint is auto, but there is no ConfigMap kube-public/cluster-info to read the API server from (kubeadm and kind publish it; helm template and client-side dry-runs cannot read it): %s" $set) -}}
{{- end -}}
{{- $clusters := dig "data" "kubeconfig" "" $info | fromYaml | dig "clusters" list -}}
{{- $url = "" -}}
{{- if and (kindIs "slice" $clusters) $clusters (kindIs "map" (first $clusters)) -}}
{{- $url = dig "cluster" "server" "" (first $clusters) -}}
{{- end -}}
{{- if not $url -}}
{{- fail (printf "controlPlaneEndpoint is auto, but the kubeconfig in kube-public/cluster-info names no server: %s" $set) -}}
{{- end -}}
{{- end -}}
{{- $u := urlParse $url -}}
{{- if ne $u.scheme "https" -}}
{{- fail (printf "controlPlaneEndpoint %q (from %s) must be an https:// URL" $url $from) -}}
{{- end -}}
{{- $hostport := $u.host -}}
{{- $host := "" -}}
{{- $port := "" -}}
{{- if hasPrefix "[" $hostport -}}
{{- $host = regexReplaceAll "^\\[([^\\]]*)\\].*$" $hostport "${1}" -}}
{{- $port = regexReplaceAll "^\\[[^\\]]*\\]:?" $hostport "" -}}
{{- else -}}
{{- $host = regexReplaceAll ":.*$" $hostport "" -}}
{{- $port = regexReplaceAll "^[^:]*:?" $hostport "" -}}
{{- end -}}
{{- if not $host -}}
{{- fail (printf "controlPlaneEndpoint %q (from %s) has no host" $url $from) -}}
{{- end -}}
{{- dict "url" $url "from" $from "host" $host "port" (default "443" $port) | toJson -}}
{{- end -}}

{{/*
Environment every component gets: how to reach the API server, who it is, how much to log.
Setting KUBERNETES_SERVICE_HOST/PORT makes Kopf's and the kubernetes client's in-cluster login use the
control-plane endpoint instead of the Service VIP that knet's agent programs.
*/}}
{{- define "knet.commonEnv" -}}
{{- $api := include "knet.apiServer" . | fromJson -}}
- name: KNET_API_SERVER
  value: {{ $api.url | quote }}
- name: KUBERNETES_SERVICE_HOST
  value: {{ $api.host | quote }}
- name: KUBERNETES_SERVICE_PORT
  value: {{ $api.port | quote }}
- name: KNET_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- end -}}

{{/* Soft anti-affinity: prefer one replica per node. include "knet.spreadAffinity" (list . "dns") */}}
{{- define "knet.spreadAffinity" -}}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
  - weight: 100
    podAffinityTerm:
      topologyKey: kubernetes.io/hostname
      labelSelector:
        matchLabels:
          {{- include "knet.selectorLabels" . | nindent 10 }}
{{- end -}}

{{/* The Service the ingress pods are reached through (for Ingress status), as NAMESPACE/NAME. */}}
{{- define "knet.ingressServiceRef" -}}
{{- if .Values.ingress.enabled -}}
{{- printf "%s/%s" .Release.Namespace (include "knet.componentName" (list . "ingress")) -}}
{{- end -}}
{{- end -}}

{{- define "knet.dnsServiceName" -}}
{{- if .Values.dns.service.kubeDNSCompatible -}}
kube-dns
{{- else -}}
{{- .Values.dns.service.name -}}
{{- end -}}
{{- end -}}

{{- define "knet.peeringName" -}}
{{- default (include "knet.componentName" (list . "controller")) .Values.controller.peering.name -}}
{{- end -}}
