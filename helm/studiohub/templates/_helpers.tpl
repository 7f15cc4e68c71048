{{- /*
  Names, labels and render-time checks of the studiohub chart.

  Object names are fixed, not derived from the release name: the official
  jupyterhub chart mounts our objects into the hub from plain (untemplated)
  values, so both sides must agree on a literal name. That chart names its own
  objects the same way (hub, proxy-public): one StudioHub per namespace.
*/}}

{{- /* The chart's name (app.kubernetes.io/name). */}}
{{- define "studiohub.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- /* The prefix of every object this chart creates: fixed, see above. */}}
{{- define "studiohub.fullname" -}}
studiohub
{{- end }}

{{- /* The ConfigMap holding the catalog (jupyterhub.hub.extraVolumes names it). */}}
{{- define "studiohub.catalog.fullname" -}}
{{ include "studiohub.fullname" . }}-catalog
{{- end }}

{{- /* The sharing service's PersistentVolumeClaim (likewise). */}}
{{- define "studiohub.sharing.fullname" -}}
{{ include "studiohub.fullname" . }}-sharing
{{- end }}

{{- /* The training jobs service's Role and RoleBinding. */}}
{{- define "studiohub.jobs.fullname" -}}
{{ include "studiohub.fullname" . }}-jobs
{{- end }}

{{- /* Where the hub expects them (studiohub.kube.CATALOG_PATH, SHARING_DIR). */}}
{{- define "studiohub.catalog.mountPath" -}}
/usr/local/etc/studiohub
{{- end }}
{{- define "studiohub.sharing.mountPath" -}}
/srv/studiohub
{{- end }}

{{- /* chart label: name-version */}}
{{- define "studiohub.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- /* Selector labels; pass a dict with "root" (the top scope) and "component". */}}
{{- define "studiohub.selectorLabels" -}}
app.kubernetes.io/name: {{ include "studiohub.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name | quote }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- /* Common labels; pass a dict with "root" and "component". */}}
{{- define "studiohub.labels" -}}
{{ include "studiohub.selectorLabels" . }}
helm.sh/chart: {{ include "studiohub.chart" .root }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: studiohub
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end }}

{{- /*
  studiohub.checks: fail early, naming the values to change, when the official
  chart's values no longer install StudioHub's pieces. Included by the catalog
  ConfigMap (always rendered). Helm replaces lists rather than merging them, so
  an operator's own hub.extraVolumes silently drops ours without this.
*/}}
{{- define "studiohub.checks" -}}
{{- $jh := .Values.jupyterhub }}
{{- $hub := $jh.hub | default dict }}
{{- if or (ne (toString $jh.fullnameOverride) "") $jh.nameOverride }}
{{- fail "jupyterhub.fullnameOverride must stay \"\" and jupyterhub.nameOverride unset: StudioHub's hub config and network policies address the official chart's objects by their default names and labels (hub, proxy-public, component: hub)" }}
{{- end }}
{{- $catalog := include "studiohub.catalog.fullname" . }}
{{- $claim := include "studiohub.sharing.fullname" . }}
{{- $catalogVolume := "" }}
{{- $sharingVolume := "" }}
{{- range $hub.extraVolumes | default list }}
{{- if and .configMap (eq (toString .configMap.name) $catalog) }}{{ $catalogVolume = .name }}{{ end }}
{{- if and .persistentVolumeClaim (eq (toString .persistentVolumeClaim.claimName) $claim) }}{{ $sharingVolume = .name }}{{ end }}
{{- end }}
{{- $catalogMounted := false }}
{{- $sharingMounted := false }}
{{- range $hub.extraVolumeMounts | default list }}
{{- if and $catalogVolume (eq .name $catalogVolume) (eq (trimSuffix "/" .mountPath) (include "studiohub.catalog.mountPath" $)) (not .subPath) }}{{ $catalogMounted = true }}{{ end }}
{{- if and $sharingVolume (eq .name $sharingVolume) (eq (trimSuffix "/" .mountPath) (include "studiohub.sharing.mountPath" $)) (not .subPath) }}{{ $sharingMounted = true }}{{ end }}
{{- end }}
{{- if not $catalogMounted }}
{{- fail (printf "jupyterhub.hub.extraVolumes and extraVolumeMounts must mount the ConfigMap %s at %s (no subPath): a list you set replaces the chart's whole list, so copy StudioHub's entries from the chart's values.yaml into yours" $catalog (include "studiohub.catalog.mountPath" .)) }}
{{- end }}
{{- if and .Values.studiohub.sharing.enabled (not $sharingMounted) }}
{{- fail (printf "studiohub.sharing.enabled is true but jupyterhub.hub.extraVolumes and extraVolumeMounts do not mount the PersistentVolumeClaim %s at %s: copy StudioHub's entries from the chart's values.yaml into yours" $claim (include "studiohub.sharing.mountPath" .)) }}
{{- end }}
{{- if and .Values.studiohub.jobs.enabled (not $sharingMounted) }}
{{- fail (printf "studiohub.jobs.enabled is true but jupyterhub.hub.extraVolumes and extraVolumeMounts do not mount the PersistentVolumeClaim %s at %s (the jobs service's store and logs): copy StudioHub's entries from the chart's values.yaml into yours" $claim (include "studiohub.sharing.mountPath" .)) }}
{{- end }}
{{- if and (not .Values.studiohub.sharing.enabled) (not .Values.studiohub.jobs.enabled) $sharingVolume }}
{{- fail (printf "studiohub.sharing.enabled and studiohub.jobs.enabled are false but jupyterhub.hub.extraVolumes still names the PersistentVolumeClaim %s, which is then not created and the hub pod would never start: remove that volume and its mount" $claim) }}
{{- end }}
{{- if not (get ($hub.extraConfig | default dict) "studiohub") }}
{{- fail "jupyterhub.hub.extraConfig.studiohub is missing: it calls studiohub.kube.configure(c), which installs StudioHub's spawner, groups and sharing service in the hub" }}
{{- end }}
{{- end }}
