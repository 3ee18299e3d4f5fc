//! The Helm chart (charts/foresight), rendered by the real `helm`.
//!
//! `helm` must be on PATH or at `$HOME/.local/bin/helm`, where
//! tests/install-deps.sh puts it. These tests fail (never skip) without it.
//!
//! Every rendered document is parsed: core kinds into their k8s-openapi types
//! (and serialised back, so a misspelt or misplaced field, which serde would
//! otherwise drop silently, fails), KEDA's and the Prometheus Operator's
//! kinds against the fields those projects define. The server's own code
//! then reads what the chart hands it: the settings file goes through
//! `ServeSettings::from_file`, the example trigger's metadata through
//! `parse_metadata`, and the dashboard's metric names are compared with what
//! `/metrics` exposes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use foresight::config::{ServeSettings, TlsFiles, parse_metadata};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscalerBehavior;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, PersistentVolumeClaim, Service, ServiceAccount, Volume,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

const INSTALL: &str = "tests/install-deps.sh";
const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/foresight");
const ALL_ON: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/helm/all-on.yaml"
);
const RELEASE: &str = "foresight";
const NAMESPACE: &str = "keda";

/// What foresight's Kubernetes calls need in each namespace it watches, as
/// (API group, resource, verbs, granted only when remediation is enabled).
///
/// This must match the kube calls in src/remediation/kube.rs and the Event
/// recorder. Adding a call there means adding it here and to
/// `foresight.watchRules` in charts/foresight/templates/_helpers.tpl.
const EXPECTED_WATCH_RULES: &[(&str, &str, &[&str], bool)] = &[
    // Read the scale target (`KubeActions::deployment`) and list its
    // ReplicaSets by its selector (`KubeActions::replica_sets`); nothing lists
    // Deployments or watches anything.
    ("apps", "deployments", &["get"], false),
    ("apps", "replicasets", &["list"], false),
    // Remediation actions patch the target Deployment.
    ("apps", "deployments", &["patch"], true),
    ("keda.sh", "scaledobjects", &["get"], false),
    // RaiseCeiling patches the ScaledObject's maxReplicaCount.
    ("keda.sh", "scaledobjects", &["patch"], true),
    // Publish actions as Events; a new leader lists foresight's own to
    // restore the guardrails' history (`KubeActions::past_actions`). Only
    // when enforcing: a dry run publishes and lists none.
    (
        "events.k8s.io",
        "events",
        &["create", "patch", "list"],
        true,
    ),
];

/// Leader election's Lease, in the release's own namespace only: what
/// kube-lease-manager sends (it renews with a patch), get and patch on the
/// release's own Lease by name (a grant on every Lease let foresight patch
/// the KEDA operator's), and create, which RBAC cannot limit by name.
const EXPECTED_LEASE_RULES: &[(&str, &str, &[&str])] = &[
    (
        "coordination.k8s.io",
        "leases/foresight-remediation",
        &["get", "patch"],
    ),
    ("coordination.k8s.io", "leases", &["create"]),
];

/// Metrics the dashboard charts that foresight does not export yet, each
/// waiting on an unbuilt feature (the panel descriptions say which). Once a
/// feature exports its metric, delete it here; the test then holds the
/// dashboard to the real name.
const PENDING_DASHBOARD_METRICS: &[&str] = &[];

/// Secrets `foresight serve` reads from the environment only (never from a
/// flag, which would show in the process list); its --help names them in
/// prose. Every other FORESIGHT_* variable the chart sets must be a flag's
/// `[env: ...]`.
const ENV_ONLY_SECRETS: &[&str] = &["FORESIGHT_WEBHOOK_URL", "FORESIGHT_ALERTS_TOKEN"];

// ---------------------------------------------------------------------------
// Running helm

/// The helm binary: on PATH, else `$HOME/.local/bin/helm` (install-deps).
fn helm() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join("helm"));
    let home = std::env::var_os("HOME").map(|h| Path::new(&h).join(".local/bin/helm"));
    on_path
        .chain(home)
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("helm not found on PATH or at $HOME/.local/bin/helm; install it with {INSTALL}")
        })
}

fn run_helm(args: &[&str]) -> Output {
    let helm = helm();
    Command::new(&helm).args(args).output().unwrap_or_else(|e| {
        panic!(
            "cannot run {}: {e}; reinstall with {INSTALL}",
            helm.display()
        )
    })
}

/// `helm template` with extra arguments; panics with helm's message on failure.
fn template(extra: &[&str]) -> String {
    let mut args = vec!["template", RELEASE, CHART, "--namespace", NAMESPACE];
    args.extend_from_slice(extra);
    let out = run_helm(&args);
    assert!(
        out.status.success(),
        "helm {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Every non-empty YAML document, as JSON values.
fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|doc| {
            let v = serde_yaml::Value::deserialize(doc).expect("helm rendered invalid YAML");
            serde_json::to_value(v).expect("YAML document is not JSON-compatible")
        })
        .filter(|v| !v.is_null())
        .collect()
}

// ---------------------------------------------------------------------------
// Typed parsing

/// Parses into a k8s-openapi type and requires that serialising it back
/// gives the same document: k8s-openapi ignores unknown fields, so without
/// this a misspelt field would vanish without a trace.
fn typed<T: DeserializeOwned + serde::Serialize>(doc: &Value) -> T {
    let t: T = serde_json::from_value(doc.clone()).unwrap_or_else(|e| {
        panic!(
            "{} does not parse as {}: {e}\n{doc:#}",
            kind_name(doc),
            std::any::type_name::<T>()
        )
    });
    let back = serde_json::to_value(&t).unwrap();
    assert_eq!(
        &back,
        doc,
        "{} lost or changed fields when parsed as {}",
        kind_name(doc),
        std::any::type_name::<T>()
    );
    t
}

fn kind_name(doc: &Value) -> String {
    format!(
        "{}/{}",
        doc["kind"].as_str().unwrap_or("?"),
        doc["metadata"]["name"].as_str().unwrap_or("?")
    )
}

/// The shape of a custom resource's fields, as its project defines them.
enum Shape {
    /// A string.
    Str,
    /// An integer.
    Int,
    /// A boolean.
    Bool,
    /// A map of strings to strings.
    StrMap,
    /// Anything; checked elsewhere, or opaque to this test.
    Any,
    /// An object with exactly these optional fields.
    Obj(&'static [(&'static str, Shape)]),
    /// A list of one shape.
    List(&'static Shape),
}

/// Fails on any field the shape does not define, or a value of the wrong type.
fn check_shape(path: &str, v: &Value, shape: &Shape) {
    match (shape, v) {
        (Shape::Any, _)
        | (Shape::Str, Value::String(_))
        | (Shape::Bool, Value::Bool(_))
        | (Shape::Int, Value::Number(_)) => {}
        (Shape::StrMap, Value::Object(m)) => {
            for (k, v) in m {
                assert!(v.is_string(), "{path}.{k} must be a string, is {v}");
            }
        }
        (Shape::Obj(fields), Value::Object(m)) => {
            for (k, v) in m {
                let Some((_, s)) = fields.iter().find(|(name, _)| name == k) else {
                    panic!(
                        "{path}.{k} is not a field of this kind; known: {:?}",
                        fields.iter().map(|(n, _)| n).collect::<Vec<_>>()
                    )
                };
                check_shape(&format!("{path}.{k}"), v, s);
            }
        }
        (Shape::List(item), Value::Array(items)) => {
            for (i, v) in items.iter().enumerate() {
                check_shape(&format!("{path}[{i}]"), v, item);
            }
        }
        _ => panic!("{path} has the wrong type: {v}"),
    }
}

/// keda.sh/v1alpha1 ScaledObject's spec, as KEDA's ScaledObjectSpec
/// (apis/keda/v1alpha1/scaledobject_types.go) defines it.
const SCALED_OBJECT_SPEC: Shape = Shape::Obj(&[
    (
        "scaleTargetRef",
        Shape::Obj(&[
            ("apiVersion", Shape::Str),
            ("kind", Shape::Str),
            ("name", Shape::Str),
            ("envSourceContainerName", Shape::Str),
        ]),
    ),
    ("pollingInterval", Shape::Int),
    ("initialCooldownPeriod", Shape::Int),
    ("cooldownPeriod", Shape::Int),
    ("idleReplicaCount", Shape::Int),
    ("minReplicaCount", Shape::Int),
    ("maxReplicaCount", Shape::Int),
    (
        "advanced",
        Shape::Obj(&[
            (
                "horizontalPodAutoscalerConfig",
                Shape::Obj(&[
                    ("name", Shape::Str),
                    // Parsed as autoscaling/v2 HorizontalPodAutoscalerBehavior.
                    ("behavior", Shape::Any),
                ]),
            ),
            ("restoreToOriginalReplicaCount", Shape::Bool),
            (
                "scalingModifiers",
                Shape::Obj(&[
                    ("formula", Shape::Str),
                    ("target", Shape::Str),
                    ("activationTarget", Shape::Str),
                    ("metricType", Shape::Str),
                ]),
            ),
        ]),
    ),
    (
        "triggers",
        Shape::List(&Shape::Obj(&[
            ("type", Shape::Str),
            ("name", Shape::Str),
            ("useCachedMetrics", Shape::Bool),
            ("metadata", Shape::StrMap),
            (
                "authenticationRef",
                Shape::Obj(&[("name", Shape::Str), ("kind", Shape::Str)]),
            ),
            ("metricType", Shape::Str),
        ])),
    ),
    (
        "fallback",
        Shape::Obj(&[
            ("failureThreshold", Shape::Int),
            ("replicas", Shape::Int),
            ("behavior", Shape::Str),
        ]),
    ),
]);

/// keda.sh/v1alpha1 TriggerAuthentication's spec (TriggerAuthenticationSpec).
const TRIGGER_AUTHENTICATION_SPEC: Shape = Shape::Obj(&[
    ("podIdentity", Shape::Any),
    (
        "secretTargetRef",
        Shape::List(&Shape::Obj(&[
            ("parameter", Shape::Str),
            ("name", Shape::Str),
            ("key", Shape::Str),
        ])),
    ),
    ("env", Shape::Any),
    ("hashiCorpVault", Shape::Any),
    ("azureKeyVault", Shape::Any),
    ("awsSecretManager", Shape::Any),
    ("gcpSecretManager", Shape::Any),
    ("configMapTargetRef", Shape::Any),
    ("boundServiceAccountToken", Shape::Any),
]);

/// monitoring.coreos.com/v1 ServiceMonitor's spec, the fields the chart may
/// use (the Prometheus Operator defines more; none of them is set here).
const SERVICE_MONITOR_SPEC: Shape = Shape::Obj(&[
    ("selector", Shape::Any),
    (
        "namespaceSelector",
        Shape::Obj(&[
            ("any", Shape::Bool),
            ("matchNames", Shape::List(&Shape::Str)),
        ]),
    ),
    (
        "endpoints",
        Shape::List(&Shape::Obj(&[
            ("port", Shape::Str),
            ("path", Shape::Str),
            ("scheme", Shape::Str),
            ("interval", Shape::Str),
            ("scrapeTimeout", Shape::Str),
        ])),
    ),
    ("jobLabel", Shape::Str),
]);

/// A custom resource: apiVersion, kind, metadata (as ObjectMeta) and a spec
/// of the given shape, nothing else.
fn custom(doc: &Value, api_version: &str, spec: &Shape) -> ObjectMeta {
    let name = kind_name(doc);
    assert_eq!(doc["apiVersion"], api_version, "{name}");
    let m = doc.as_object().unwrap();
    for k in m.keys() {
        assert!(
            ["apiVersion", "kind", "metadata", "spec"].contains(&k.as_str()),
            "{name}: unexpected top-level field {k}"
        );
    }
    check_shape(&name, &doc["spec"], spec);
    typed(&doc["metadata"])
}

// ---------------------------------------------------------------------------
// The rendered chart

/// One rendering, split by kind and parsed.
struct Rendered {
    /// Every document, for checks that apply to all of them.
    all: Vec<Value>,
    /// The one Deployment.
    deployment: Deployment,
    /// The one Service.
    service: Service,
    /// ConfigMaps by name.
    config_maps: BTreeMap<String, ConfigMap>,
    /// Roles by namespace/name.
    roles: BTreeMap<String, Role>,
    /// RoleBindings.
    role_bindings: Vec<RoleBinding>,
    /// ClusterRoles.
    cluster_roles: Vec<ClusterRole>,
    /// ClusterRoleBindings.
    cluster_role_bindings: Vec<ClusterRoleBinding>,
    /// ServiceAccounts.
    service_accounts: Vec<ServiceAccount>,
    /// PodDisruptionBudgets.
    pdbs: Vec<PodDisruptionBudget>,
    /// PersistentVolumeClaims.
    pvcs: Vec<PersistentVolumeClaim>,
    /// ScaledObjects (checked against KEDA's fields).
    scaled_objects: Vec<Value>,
    /// TriggerAuthentications (checked against KEDA's fields).
    trigger_auths: Vec<Value>,
    /// ServiceMonitors (checked against the Prometheus Operator's fields).
    service_monitors: Vec<Value>,
}

fn render(extra: &[&str]) -> Rendered {
    let all = documents(&template(extra));
    let mut r = Rendered {
        all: all.clone(),
        deployment: Deployment::default(),
        service: Service::default(),
        config_maps: BTreeMap::new(),
        roles: BTreeMap::new(),
        role_bindings: Vec::new(),
        cluster_roles: Vec::new(),
        cluster_role_bindings: Vec::new(),
        service_accounts: Vec::new(),
        pdbs: Vec::new(),
        pvcs: Vec::new(),
        scaled_objects: Vec::new(),
        trigger_auths: Vec::new(),
        service_monitors: Vec::new(),
    };
    let (mut deployments, mut services) = (0, 0);
    for doc in &all {
        match doc["kind"].as_str().unwrap_or_default() {
            "Deployment" => {
                r.deployment = typed(doc);
                deployments += 1;
            }
            "Service" => {
                r.service = typed(doc);
                services += 1;
            }
            "ConfigMap" => {
                let cm: ConfigMap = typed(doc);
                r.config_maps
                    .insert(cm.metadata.name.clone().unwrap_or_default(), cm);
            }
            "Role" => {
                let role: Role = typed(doc);
                let key = format!(
                    "{}/{}",
                    role.metadata.namespace.as_deref().unwrap_or_default(),
                    role.metadata.name.as_deref().unwrap_or_default()
                );
                r.roles.insert(key, role);
            }
            "RoleBinding" => r.role_bindings.push(typed(doc)),
            "ClusterRole" => r.cluster_roles.push(typed(doc)),
            "ClusterRoleBinding" => r.cluster_role_bindings.push(typed(doc)),
            "ServiceAccount" => r.service_accounts.push(typed(doc)),
            "PodDisruptionBudget" => r.pdbs.push(typed(doc)),
            "PersistentVolumeClaim" => r.pvcs.push(typed(doc)),
            "ScaledObject" => {
                custom(doc, "keda.sh/v1alpha1", &SCALED_OBJECT_SPEC);
                r.scaled_objects.push(doc.clone());
            }
            "TriggerAuthentication" => {
                custom(doc, "keda.sh/v1alpha1", &TRIGGER_AUTHENTICATION_SPEC);
                r.trigger_auths.push(doc.clone());
            }
            "ServiceMonitor" => {
                custom(doc, "monitoring.coreos.com/v1", &SERVICE_MONITOR_SPEC);
                r.service_monitors.push(doc.clone());
            }
            other => panic!("unexpected kind {other:?} rendered: {doc:#}"),
        }
    }
    assert_eq!(
        (deployments, services),
        (1, 1),
        "one Deployment, one Service"
    );
    r
}

impl Rendered {
    fn container(&self) -> &Container {
        let pod = self.pod_spec();
        assert_eq!(pod.containers.len(), 1);
        &pod.containers[0]
    }

    fn pod_spec(&self) -> &k8s_openapi::api::core::v1::PodSpec {
        self.deployment
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .expect("Deployment has a pod spec")
    }

    fn volume(&self, name: &str) -> &Volume {
        self.pod_spec()
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == name)
            .unwrap_or_else(|| panic!("no volume {name}"))
    }

    /// The volume mounted exactly at `path`.
    fn volume_at(&self, path: &str) -> &Volume {
        let mount = self
            .container()
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.mount_path == path)
            .unwrap_or_else(|| panic!("nothing is mounted at {path}"));
        self.volume(&mount.name)
    }

    fn env(&self, name: &str) -> Option<&k8s_openapi::api::core::v1::EnvVar> {
        self.container()
            .env
            .iter()
            .flatten()
            .find(|e| e.name == name)
    }

    fn env_value(&self, name: &str) -> &str {
        self.env(name)
            .and_then(|e| e.value.as_deref())
            .unwrap_or_else(|| panic!("env {name} has no literal value"))
    }

    fn port(&self, name: &str) -> i32 {
        self.container()
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("no container port {name}"))
            .container_port
    }

    /// The server's settings file, read by the server's own loader.
    fn settings(&self) -> ServeSettings {
        let path = self.env_value("FORESIGHT_CONFIG");
        let (dir, file) = path.rsplit_once('/').unwrap();
        let cm_name = self
            .volume_at(dir)
            .config_map
            .as_ref()
            .expect("FORESIGHT_CONFIG is on a ConfigMap volume")
            .name
            .clone();
        let text = self.config_maps[&cm_name]
            .data
            .as_ref()
            .and_then(|d| d.get(file))
            .unwrap_or_else(|| panic!("ConfigMap {cm_name} has no {file}"));
        let tmp = tempfile::tempdir().unwrap();
        let local = tmp.path().join(file);
        std::fs::write(&local, text).unwrap();
        ServeSettings::from_file(&local)
            .unwrap_or_else(|e| panic!("the server refuses the chart's settings: {e}\n{text}"))
    }

    /// (namespace, API group, resource, verb) for every rule of every Role,
    /// plus ("*cluster*", ...) for ClusterRoles.
    fn grants(&self) -> BTreeSet<(String, String, String, String)> {
        let mut out = BTreeSet::new();
        let mut add = |ns: &str, rules: &[PolicyRule]| {
            for rule in rules {
                assert!(
                    rule.non_resource_urls.is_none(),
                    "non-resource URLs granted: {rule:?}"
                );
                // A grant limited to named objects is `resource/name`.
                let names: Vec<Option<&String>> = match &rule.resource_names {
                    Some(n) => n.iter().map(Some).collect(),
                    None => vec![None],
                };
                for group in rule.api_groups.iter().flatten() {
                    for res in rule.resources.iter().flatten() {
                        for verb in &rule.verbs {
                            for s in [group, res, verb] {
                                assert!(!s.contains('*'), "wildcard in RBAC rule {rule:?}");
                            }
                            for name in &names {
                                let res = match name {
                                    Some(n) => format!("{res}/{n}"),
                                    None => res.clone(),
                                };
                                out.insert((ns.into(), group.clone(), res, verb.clone()));
                            }
                        }
                    }
                }
            }
        };
        for role in self.roles.values() {
            let ns = role.metadata.namespace.as_deref().expect("Role namespace");
            add(ns, role.rules.as_deref().unwrap_or_default());
        }
        for role in &self.cluster_roles {
            add("*cluster*", role.rules.as_deref().unwrap_or_default());
        }
        out
    }

    fn service_account_name(&self) -> String {
        self.pod_spec()
            .service_account_name
            .clone()
            .expect("serviceAccountName")
    }
}

fn expected_grants(
    namespaces: &[&str],
    remediation: bool,
) -> BTreeSet<(String, String, String, String)> {
    let mut out = BTreeSet::new();
    for ns in namespaces {
        for (group, res, verbs, needs_remediation) in EXPECTED_WATCH_RULES {
            if *needs_remediation && !remediation {
                continue;
            }
            for verb in *verbs {
                out.insert((
                    ns.to_string(),
                    group.to_string(),
                    res.to_string(),
                    verb.to_string(),
                ));
            }
        }
    }
    for (group, res, verbs) in EXPECTED_LEASE_RULES {
        for verb in *verbs {
            out.insert((
                NAMESPACE.into(),
                group.to_string(),
                res.to_string(),
                verb.to_string(),
            ));
        }
    }
    out
}

fn chart_yaml() -> Value {
    let text = std::fs::read_to_string(format!("{CHART}/Chart.yaml")).unwrap();
    serde_json::to_value(serde_yaml::from_str::<serde_yaml::Value>(&text).unwrap()).unwrap()
}

// ---------------------------------------------------------------------------
// Checks shared by every rendering

/// Labels, names, security and wiring that hold whatever the values.
fn check_common(r: &Rendered) {
    let chart = chart_yaml();
    let app_version = chart["appVersion"].as_str().unwrap();
    for doc in &r.all {
        let name = kind_name(doc);
        let labels = &doc["metadata"]["labels"];
        for key in [
            "app.kubernetes.io/name",
            "app.kubernetes.io/instance",
            "app.kubernetes.io/version",
            "app.kubernetes.io/managed-by",
            "helm.sh/chart",
        ] {
            assert!(labels[key].is_string(), "{name} lacks label {key}");
        }
        assert_eq!(labels["app.kubernetes.io/instance"], RELEASE, "{name}");
        assert_eq!(labels["app.kubernetes.io/managed-by"], "Helm", "{name}");
        assert_eq!(labels["app.kubernetes.io/version"], app_version, "{name}");
    }

    let c = r.container();
    // The image the top-level Dockerfile builds, tagged with appVersion.
    assert_eq!(
        c.image.as_deref(),
        Some(format!("foresight:{app_version}").as_str())
    );
    assert_eq!(c.args, Some(vec!["serve".to_string()]));

    // Ports and probes match the server's defaults and endpoints.
    let defaults = ServeSettings::default();
    assert_eq!(r.port("grpc"), i32::from(defaults.grpc_addr.port()));
    assert_eq!(r.port("http"), i32::from(defaults.http_addr.port()));
    let settings = r.settings();
    assert_eq!(
        settings.grpc_addr, defaults.grpc_addr,
        "settings file grpc-addr"
    );
    assert_eq!(
        settings.http_addr, defaults.http_addr,
        "settings file http-addr"
    );
    // The audit log rotates, as the server's default does.
    assert_eq!(
        (settings.audit_log_rotate_mib, settings.audit_log_keep),
        (defaults.audit_log_rotate_mib, defaults.audit_log_keep)
    );
    // The server's own delay after SIGTERM, inside the pod's grace period.
    let grace = r
        .deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.termination_grace_period_seconds)
        .expect("terminationGracePeriodSeconds");
    assert!(
        settings.shutdown_delay.as_secs() > 0
            && i64::try_from(settings.shutdown_delay.as_secs()).unwrap() + 25 <= grace,
        "shutdown delay {:?}, grace {grace}",
        settings.shutdown_delay
    );
    let probe_path = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        let get = p
            .as_ref()
            .and_then(|p| p.http_get.as_ref())
            .expect("HTTP probe");
        assert_eq!(get.port, IntOrString::String("http".into()));
        get.path.clone().unwrap_or_default()
    };
    assert_eq!(probe_path(&c.liveness_probe), "/healthz");
    assert_eq!(probe_path(&c.readiness_probe), "/readyz");

    // Resources set.
    let res = c.resources.as_ref().expect("resources");
    for key in ["cpu", "memory"] {
        assert!(
            res.requests.as_ref().is_some_and(|m| m.contains_key(key)),
            "requests.{key}"
        );
        assert!(
            res.limits.as_ref().is_some_and(|m| m.contains_key(key)),
            "limits.{key}"
        );
    }

    // Non-root, read-only root filesystem, no capabilities, RuntimeDefault.
    let pod_sc = r
        .pod_spec()
        .security_context
        .as_ref()
        .expect("pod securityContext");
    assert_eq!(pod_sc.run_as_non_root, Some(true));
    assert!(pod_sc.run_as_user.is_some_and(|u| u != 0));
    let sc = c
        .security_context
        .as_ref()
        .expect("container securityContext");
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    let caps = sc.capabilities.as_ref().expect("capabilities");
    assert_eq!(caps.drop, Some(vec!["ALL".to_string()]));
    assert!(caps.add.as_ref().is_none_or(|a| a.is_empty()));
    for profile in [&pod_sc.seccomp_profile, &sc.seccomp_profile] {
        assert_eq!(
            profile.as_ref().map(|p| p.type_.as_str()),
            Some("RuntimeDefault")
        );
    }
    // The image's user (Dockerfile) is the pod's user.
    let dockerfile =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile")).unwrap();
    let uid = pod_sc.run_as_user.unwrap();
    assert!(
        dockerfile.contains(&format!("USER {uid}:{uid}")),
        "Dockerfile must run as the chart's UID {uid}"
    );
    assert!(
        dockerfile.contains(&format!("-t foresight:{app_version} ")),
        "Dockerfile must document the chart's default image foresight:{app_version}"
    );

    // Every FORESIGHT_* variable is one the server reads, or listed as pending.
    let help = Command::new(env!("CARGO_BIN_EXE_foresight"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for var in c.env.iter().flatten().map(|e| e.name.as_str()) {
        if !var.starts_with("FORESIGHT_") {
            continue;
        }
        let read = if ENV_ONLY_SECRETS.contains(&var) {
            help.contains(var)
        } else {
            help.contains(&format!("[env: {var}="))
        };
        assert!(
            read,
            "the chart sets {var}, which `foresight serve` does not read"
        );
    }

    // Downward API for leader election and Events.
    for (var, field) in [
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
    ] {
        let from = r
            .env(var)
            .and_then(|e| e.value_from.as_ref())
            .and_then(|v| v.field_ref.as_ref())
            .unwrap_or_else(|| panic!("{var} from the downward API"));
        assert_eq!(from.field_path, field);
    }
    // State and audit log on the writable data volume.
    let data = r.volume_at("/var/lib/foresight");
    assert!(data.empty_dir.is_some() || data.persistent_volume_claim.is_some());
    assert_eq!(
        r.env_value("FORESIGHT_STATE_DIR"),
        "/var/lib/foresight/state"
    );
    assert_eq!(
        r.env_value("FORESIGHT_AUDIT_LOG"),
        "/var/lib/foresight/audit.log"
    );
    assert!(r.volume_at("/tmp").empty_dir.is_some(), "/tmp is writable");

    // The Service exposes both ports by name and selects the pods.
    let spec = r.service.spec.as_ref().unwrap();
    let svc_ports: BTreeMap<_, _> = spec
        .ports
        .iter()
        .flatten()
        .map(|p| (p.name.clone().unwrap(), (p.port, p.target_port.clone())))
        .collect();
    assert_eq!(
        svc_ports["grpc"],
        (9090, Some(IntOrString::String("grpc".into())))
    );
    assert_eq!(
        svc_ports["http"],
        (8080, Some(IntOrString::String("http".into())))
    );
    let pod_labels = r
        .deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap();
    for (k, v) in spec.selector.iter().flatten() {
        assert_eq!(pod_labels.get(k), Some(v), "Service selector {k}");
    }

    // RBAC binds the pod's ServiceAccount.
    let sa = r.service_account_name();
    assert!(
        r.service_accounts
            .iter()
            .any(|s| s.metadata.name.as_deref() == Some(sa.as_str()))
    );
    for subjects in r
        .role_bindings
        .iter()
        .map(|b| &b.subjects)
        .chain(r.cluster_role_bindings.iter().map(|b| &b.subjects))
    {
        let subjects = subjects.as_deref().unwrap_or_default();
        assert_eq!(subjects.len(), 1);
        assert_eq!(subjects[0].kind, "ServiceAccount");
        assert_eq!(subjects[0].name, sa);
        assert_eq!(subjects[0].namespace.as_deref(), Some(NAMESPACE));
    }
    for b in &r.role_bindings {
        let key = format!(
            "{}/{}",
            b.metadata.namespace.as_deref().unwrap(),
            b.role_ref.name
        );
        assert_eq!(b.role_ref.kind, "Role");
        assert!(
            r.roles.contains_key(&key),
            "RoleBinding to missing Role {key}"
        );
    }
    for b in &r.cluster_role_bindings {
        assert_eq!(b.role_ref.kind, "ClusterRole");
        assert!(
            r.cluster_roles
                .iter()
                .any(|c| c.metadata.name.as_deref() == Some(b.role_ref.name.as_str()))
        );
    }
}

// ---------------------------------------------------------------------------
// Tests

#[test]
fn helm_lint_strict_passes() {
    for extra in [vec![], vec!["--values", ALL_ON]] {
        let mut args = vec!["lint", "--strict", CHART];
        args.extend(extra.iter().copied());
        let out = run_helm(&args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "helm {args:?}:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("1 chart(s) linted, 0 chart(s) failed"),
            "{stdout}"
        );
        assert!(!stdout.contains("[WARNING]"), "{stdout}");
    }
}

#[test]
fn chart_metadata_matches_the_crate() {
    let chart = chart_yaml();
    assert_eq!(chart["apiVersion"], "v2");
    assert_eq!(chart["appVersion"], env!("CARGO_PKG_VERSION"));
    // The floor matches the k8s-openapi feature these tests parse with (v1_30).
    assert_eq!(chart["kubeVersion"], ">=1.30.0-0");
    let old = run_helm(&["template", RELEASE, CHART, "--kube-version", "1.29.9"]);
    assert!(!old.status.success(), "Kubernetes 1.29 must be refused");
    template(&["--kube-version", "1.30.0"]);
}

#[test]
fn default_values_render_a_secure_minimal_install() {
    let r = render(&[]);
    check_common(&r);
    assert_eq!(r.deployment.spec.as_ref().unwrap().replicas, Some(2));

    // Only the core parts by default.
    assert!(r.scaled_objects.is_empty() && r.trigger_auths.is_empty());
    assert!(r.service_monitors.is_empty() && r.pvcs.is_empty());
    assert_eq!(r.config_maps.len(), 1, "no dashboard by default");
    assert!(r.volume_at("/var/lib/foresight").empty_dir.is_some());

    // Plaintext gRPC, the embedded demo source, no secrets.
    let s = r.settings();
    assert_eq!(s.tls().unwrap(), None);
    assert_eq!(s.prometheus_url, None);
    assert!(r.env("FORESIGHT_PROMETHEUS_BEARER_TOKEN_FILE").is_none());
    assert!(r.env("FORESIGHT_WEBHOOK_URL").is_none());
    // Remediation diagnoses and records by default, and acts only when enabled.
    assert_eq!(r.env_value("FORESIGHT_REMEDIATION"), "dry-run");
    assert!(r.env("FORESIGHT_REMEDIATION_NAMESPACES").is_none());
    assert!(r.env("FORESIGHT_ALERTS_TOKEN").is_none());
    assert_eq!(r.env_value("FORESIGHT_PAGE_FORMAT"), "slack");

    // A PDB that keeps one of the two replicas through drains.
    assert_eq!(r.pdbs.len(), 1);
    let pdb = r.pdbs[0].spec.as_ref().unwrap();
    assert_eq!(pdb.min_available, Some(IntOrString::Int(1)));
    // The Lease the RBAC names is the one the pod campaigns for.
    assert_eq!(r.env_value("FORESIGHT_LEASE_NAME"), "foresight-remediation");
    assert_eq!(
        r.deployment
            .spec
            .as_ref()
            .unwrap()
            .strategy
            .as_ref()
            .unwrap()
            .type_
            .as_deref(),
        Some("RollingUpdate")
    );
    let selector: &LabelSelector = pdb.selector.as_ref().unwrap();
    assert_eq!(
        selector.match_labels,
        r.deployment.spec.as_ref().unwrap().selector.match_labels
    );

    // Cluster-wide read access, no Deployment patch without remediation.
    assert_eq!(r.cluster_roles.len(), 1);
    assert_eq!(r.grants(), expected_grants(&["*cluster*"], false));
    // Only the lease Role is namespaced.
    assert_eq!(r.roles.len(), 1);
}

/// Remediation acts, and a new leader lists Events, where RBAC allows:
/// with watched namespaces and no remediation namespaces of its own, the
/// server is told the watched ones (listing Events everywhere would be
/// refused by the per-namespace Roles).
#[test]
fn remediation_namespaces_default_to_the_watched_ones() {
    let r = render(&["--set", "watchNamespaces={shop,payments}"]);
    assert_eq!(
        r.env_value("FORESIGHT_REMEDIATION_NAMESPACES"),
        "shop,payments"
    );
    assert_eq!(r.grants(), expected_grants(&["shop", "payments"], false));
    let r = render(&[
        "--set",
        "watchNamespaces={shop,payments}",
        "--set",
        "remediation.namespaces={shop}",
    ]);
    assert_eq!(r.env_value("FORESIGHT_REMEDIATION_NAMESPACES"), "shop");
}

/// remediation.namespaces bounds what the credentials allow, not only what
/// foresight chooses: the patches are granted in those namespaces alone,
/// whether the reads are cluster-wide or per watched namespace.
#[test]
fn remediation_patches_only_where_it_may_act() {
    let patches = |r: &Rendered| -> BTreeSet<(String, String)> {
        r.grants()
            .into_iter()
            .filter(|(_, _, _, verb)| verb == "patch")
            .filter(|(_, group, _, _)| group == "apps" || group == "keda.sh")
            .map(|(ns, _, res, _)| (ns, res))
            .collect()
    };
    let pairs = |v: &[(&str, &str)]| -> BTreeSet<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    // Cluster-wide reads; acting in two namespaces.
    let r = render(&[
        "--set",
        "remediation.enabled=true",
        "--set",
        "remediation.namespaces={shop,payments}",
    ]);
    check_common(&r);
    assert_eq!(
        patches(&r),
        pairs(&[
            ("payments", "deployments"),
            ("payments", "scaledobjects"),
            ("shop", "deployments"),
            ("shop", "scaledobjects"),
        ])
    );
    // Everything enforcing adds (patches, Events) is in those two
    // namespaces; the reads stay cluster-wide.
    let mut want = expected_grants(&["*cluster*"], false);
    want.extend(
        expected_grants(&["shop", "payments"], true)
            .difference(&expected_grants(&["shop", "payments"], false))
            .cloned(),
    );
    assert_eq!(r.grants(), want);
    assert_eq!(
        r.env_value("FORESIGHT_REMEDIATION_NAMESPACES"),
        "shop,payments"
    );
    // Three watched namespaces, acting in one.
    let r = render(&[
        "--set",
        "remediation.enabled=true",
        "--set",
        "watchNamespaces={shop,payments,batch}",
        "--set",
        "remediation.namespaces={batch}",
    ]);
    check_common(&r);
    assert_eq!(
        patches(&r),
        pairs(&[("batch", "deployments"), ("batch", "scaledobjects")])
    );
    // Without remediation.namespaces, wherever it reads (as before).
    let r = render(&["--set", "remediation.enabled=true"]);
    assert_eq!(
        patches(&r),
        pairs(&[("*cluster*", "deployments"), ("*cluster*", "scaledobjects")])
    );
    // Not enabled: no patch anywhere, whatever the namespaces.
    let r = render(&["--set", "remediation.namespaces={shop}"]);
    assert!(patches(&r).is_empty());
}

#[test]
fn every_optional_part_renders_and_wires_up() {
    let r = render(&["--values", ALL_ON]);
    check_common(&r);

    // Namespaced RBAC: a Role per watched namespace, remediation's patch,
    // the lease Role at home, no ClusterRole.
    assert!(r.cluster_roles.is_empty() && r.cluster_role_bindings.is_empty());
    assert_eq!(r.grants(), expected_grants(&["shop", "payments"], true));

    // TLS: the settings file names files that the Secrets mount.
    let TlsFiles {
        cert,
        key,
        client_ca,
    } = r.settings().tls().unwrap().expect("TLS on");
    let client_ca = client_ca.expect("client certificates required");
    for (file, secret) in [
        (&cert, "foresight-tls"),
        (&key, "foresight-tls"),
        (&client_ca, "keda-client-ca"),
    ] {
        let dir = file.parent().unwrap().to_str().unwrap();
        let name = file.file_name().unwrap().to_str().unwrap();
        let vol = r.volume_at(dir).secret.as_ref().expect("a Secret volume");
        assert_eq!(vol.secret_name.as_deref(), Some(secret));
        let items = vol.items.as_deref().unwrap_or_default();
        assert!(
            items.iter().any(|i| i.path == name),
            "{secret} does not project {name}"
        );
    }

    // Prometheus: URL in the settings, the token as a mounted file.
    let s = r.settings();
    assert_eq!(
        s.prometheus_url.as_deref(),
        Some("http://prometheus-operated.monitoring.svc:9090")
    );
    let token = r.env_value("FORESIGHT_PROMETHEUS_BEARER_TOKEN_FILE");
    let (dir, file) = token.rsplit_once('/').unwrap();
    let vol = r.volume_at(dir).secret.as_ref().unwrap();
    assert_eq!(vol.secret_name.as_deref(), Some("foresight-prometheus"));
    assert!(
        vol.items
            .iter()
            .flatten()
            .any(|i| i.key == "token" && i.path == file)
    );
    // The webhook URL straight from its Secret.
    let webhook = r
        .env("FORESIGHT_WEBHOOK_URL")
        .and_then(|e| e.value_from.as_ref())
        .and_then(|v| v.secret_key_ref.as_ref())
        .expect("webhook URL from a Secret");
    assert_eq!(
        (webhook.name.as_str(), webhook.key.as_str()),
        ("foresight-webhook", "url")
    );
    assert_eq!(r.env_value("FORESIGHT_REMEDIATION"), "enforce");
    assert_eq!(r.env_value("FORESIGHT_PAGE_FORMAT"), "generic");
    assert_eq!(
        r.env_value("FORESIGHT_REMEDIATION_NAMESPACES"),
        "shop,payments"
    );
    let token = r
        .env("FORESIGHT_ALERTS_TOKEN")
        .and_then(|e| e.value_from.as_ref())
        .and_then(|v| v.secret_key_ref.as_ref())
        .expect("alerts token from a Secret");
    assert_eq!(
        (token.name.as_str(), token.key.as_str()),
        ("foresight-alerts", "token")
    );
    let pulls = r
        .pod_spec()
        .image_pull_secrets
        .as_deref()
        .unwrap_or_default();
    assert_eq!(pulls.len(), 1);
    assert_eq!(pulls[0].name, "regcred");

    // The PVC backs the data volume.
    assert_eq!(r.pvcs.len(), 1);
    let claim = r
        .volume_at("/var/lib/foresight")
        .persistent_volume_claim
        .as_ref()
        .expect("PVC-backed data");
    assert_eq!(Some(&claim.claim_name), r.pvcs[0].metadata.name.as_ref());

    check_example_scaled_object(&r);
    check_service_monitor(&r);
    check_dashboard(&r);
}

fn check_example_scaled_object(r: &Rendered) {
    assert_eq!(r.scaled_objects.len(), 1);
    let so = &r.scaled_objects[0];
    assert_eq!(so["metadata"]["namespace"], "shop");
    let spec = &so["spec"];
    let triggers = spec["triggers"].as_array().unwrap();
    assert_eq!(triggers.len(), 1);
    let trigger = &triggers[0];
    assert_eq!(trigger["type"], "external");
    // foresight is the replica authority: target 1, value = replicas, which
    // only AverageValue (the default) turns into exactly that count.
    assert!(
        trigger
            .get("metricType")
            .is_none_or(|t| t == "AverageValue")
    );

    // The scaler address is the Service's cluster DNS name and gRPC port.
    let svc = r.service.metadata.name.as_deref().unwrap();
    let meta: std::collections::HashMap<String, String> =
        serde_json::from_value(trigger["metadata"].clone()).unwrap();
    assert_eq!(
        meta["scalerAddress"],
        format!("{svc}.{NAMESPACE}.svc.cluster.local:9090")
    );
    // foresight accepts the metadata as is, with the ScaledObject's bounds.
    parse_metadata(&meta).unwrap_or_else(|e| panic!("foresight refuses the metadata: {e}"));
    assert_eq!(meta["minReplicaCount"], spec["minReplicaCount"].to_string());
    assert_eq!(meta["maxReplicaCount"], spec["maxReplicaCount"].to_string());

    // HPA behaviour permissive: no stabilisation, generous rate limits.
    let behavior: HorizontalPodAutoscalerBehavior =
        typed(&spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]);
    for (dir, rules, min_percent) in [
        ("scaleUp", behavior.scale_up.as_ref(), 1000),
        ("scaleDown", behavior.scale_down.as_ref(), 100),
    ] {
        let rules = rules.unwrap_or_else(|| panic!("{dir} set"));
        assert_eq!(rules.stabilization_window_seconds, Some(0), "{dir}");
        let policies = rules.policies.as_deref().unwrap_or_default();
        assert!(
            policies
                .iter()
                .any(|p| p.type_ == "Percent" && p.value >= min_percent && p.period_seconds <= 15),
            "{dir} policies too strict: {policies:?}"
        );
    }

    // TLS on: KEDA authenticates with exactly caCert, tlsClientCert, tlsClientKey.
    assert_eq!(r.trigger_auths.len(), 1);
    let auth = &r.trigger_auths[0];
    assert_eq!(auth["metadata"]["namespace"], "shop");
    assert_eq!(
        trigger["authenticationRef"]["name"],
        auth["metadata"]["name"]
    );
    let refs: BTreeMap<String, (String, String)> = auth["spec"]["secretTargetRef"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["parameter"].as_str().unwrap().to_string(),
                (
                    r["name"].as_str().unwrap().to_string(),
                    r["key"].as_str().unwrap().to_string(),
                ),
            )
        })
        .collect();
    let expected: BTreeMap<String, (String, String)> = [
        ("caCert", ("foresight-ca", "ca.crt")),
        ("tlsClientCert", ("keda-client-tls", "tls.crt")),
        ("tlsClientKey", ("keda-client-tls", "tls.key")),
    ]
    .into_iter()
    .map(|(p, (n, k))| (p.to_string(), (n.to_string(), k.to_string())))
    .collect();
    assert_eq!(refs, expected);
}

fn check_service_monitor(r: &Rendered) {
    assert_eq!(r.service_monitors.len(), 1);
    let sm = &r.service_monitors[0];
    assert_eq!(sm["metadata"]["labels"]["release"], "kube-prometheus-stack");
    let endpoints = sm["spec"]["endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 1);
    assert_eq!(endpoints[0]["port"], "http");
    assert_eq!(endpoints[0]["path"], "/metrics");
    let selector: LabelSelector = typed(&sm["spec"]["selector"]);
    let svc_labels = r.service.metadata.labels.clone().unwrap();
    for (k, v) in selector.match_labels.iter().flatten() {
        assert_eq!(
            svc_labels.get(k),
            Some(v),
            "ServiceMonitor selects the Service by {k}"
        );
    }
}

fn check_dashboard(r: &Rendered) {
    let cm = r
        .config_maps
        .values()
        .find(|c| {
            c.metadata
                .labels
                .as_ref()
                .is_some_and(|l| l.contains_key("grafana_dashboard"))
        })
        .expect("dashboard ConfigMap labelled for the Grafana sidecar");
    let json = cm.data.as_ref().unwrap().values().next().unwrap();
    let dash: Value = serde_json::from_str(json).expect("dashboard is JSON");
    let titles: Vec<&str> = dash["panels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    for wanted in [
        "Forecast against actual",
        "Desired replicas",
        "Decisions by reason",
        "Source and breaker state",
        "Incidents",
        "Replica changes and flaps",
    ] {
        assert!(
            titles.contains(&wanted),
            "dashboard lacks {wanted:?}: {titles:?}"
        );
    }
    // Every metric it queries is exported now, or pending on a named feature.
    let exported = registered_metrics();
    let mut names = BTreeSet::new();
    let mut rest = json.as_str();
    while let Some(i) = rest.find("foresight_") {
        rest = &rest[i..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        names.insert(rest[..end].to_string());
        rest = &rest[end..];
    }
    assert!(!names.is_empty());
    for name in names {
        let family = ["_total", "_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(&name);
        if PENDING_DASHBOARD_METRICS.contains(&name.as_str()) {
            assert!(
                !exported.contains(family),
                "{name} is exported now: remove it from PENDING_DASHBOARD_METRICS"
            );
            continue;
        }
        assert!(
            exported.contains(family),
            "dashboard queries {name}, which /metrics does not export ({exported:?})"
        );
    }
}

/// The metric families foresight registers, read from the registrations in
/// src/runtime/telemetry.rs: `/metrics` leaves out labelled families until
/// they have a sample, so rendering a fresh registry would miss most of them.
fn registered_metrics() -> BTreeSet<String> {
    let src = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/runtime/telemetry.rs"
    ))
    .unwrap();
    let mut out = BTreeSet::new();
    for (i, _) in src.match_indices("registry.register(") {
        let rest = src[i + "registry.register(".len()..].trim_start();
        if let Some(name) = rest.strip_prefix('"').and_then(|r| r.split('"').next()) {
            out.insert(format!("foresight_{name}"));
        }
    }
    assert!(
        out.contains("foresight_desired_replicas"),
        "cannot read metric registrations from telemetry.rs: {out:?}"
    );
    out
}

#[test]
fn tls_without_client_certificates() {
    let r = render(&[
        "--set",
        "tls.enabled=true,tls.secretName=foresight-tls,exampleScaledObject.enabled=true",
    ]);
    check_common(&r);
    let tls = r.settings().tls().unwrap().expect("TLS on");
    assert_eq!(tls.client_ca, None);
    // KEDA needs only the CA; it comes from the server's own Secret
    // (cert-manager puts ca.crt beside tls.crt).
    let auth = &r.trigger_auths[0];
    let refs = auth["spec"]["secretTargetRef"].as_array().unwrap();
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[0]["parameter"], "caCert");
    assert_eq!(refs[0]["name"], "foresight-tls");
    // In another namespace KEDA cannot read the server's Secret: the CA's
    // Secret there must be named.
    let out = run_helm(&[
        "template",
        RELEASE,
        CHART,
        "--set",
        "tls.enabled=true,tls.secretName=foresight-tls,exampleScaledObject.enabled=true,exampleScaledObject.namespace=shop",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "accepted");
    assert!(
        stderr
            .contains("exampleScaledObject.authentication.caSecretName must name a Secret in shop"),
        "{stderr}"
    );
    // Without TLS values the example ScaledObject has no authentication.
    let plain = render(&["--set", "exampleScaledObject.enabled=true"]);
    assert!(plain.trigger_auths.is_empty());
    assert!(
        plain.scaled_objects[0]["spec"]["triggers"][0]
            .get("authenticationRef")
            .is_none()
    );
}

#[test]
fn names_follow_overrides() {
    let r = render(&[
        "--set",
        "fullnameOverride=scaler,imagePullSecrets[0].name=regcred",
    ]);
    assert_eq!(r.deployment.metadata.name.as_deref(), Some("scaler"));
    assert_eq!(r.service.metadata.name.as_deref(), Some("scaler"));
    // The longest names: every object's name stays within 63 characters
    // and unique per kind and namespace. A 62- or 63-character fullname
    // truncated `<fullname>-remediation` back to `<fullname>`.
    for len in [50, 60, 62, 63] {
        let fullname = "f".repeat(len);
        let r = render(&[
            "--set",
            &format!(
                "fullnameOverride={fullname},remediation.enabled=true,remediation.namespaces={{{NAMESPACE}}},watchNamespaces={{{NAMESPACE}}},grafanaDashboard.enabled=true"
            ),
        ]);
        let mut seen = BTreeSet::new();
        for doc in &r.all {
            let name = doc["metadata"]["name"].as_str().unwrap().to_string();
            assert!(name.len() <= 63, "{name} ({} characters)", name.len());
            let key = (
                doc["kind"].as_str().unwrap().to_string(),
                doc["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                name,
            );
            assert!(
                seen.insert(key.clone()),
                "fullname of {len}: two objects {key:?}"
            );
        }
        // The Lease the pod campaigns for is the one its Role names.
        let lease = r.env_value("FORESIGHT_LEASE_NAME");
        assert!(lease.len() <= 63 && lease != fullname, "{lease}");
        assert!(
            r.grants()
                .iter()
                .any(|(_, _, res, verb)| res == &format!("leases/{lease}") && verb == "patch"),
            "no grant on leases/{lease}"
        );
    }
    // Two releases in long namespaces that differ only at the end get
    // ClusterRoles of different names (cluster-scoped: they would clash).
    let cluster_role = |ns: &str| {
        let out = run_helm(&["template", RELEASE, CHART, "-n", ns]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        documents(&String::from_utf8_lossy(&out.stdout))
            .into_iter()
            .find(|d| d["kind"] == "ClusterRole")
            .map(|d| d["metadata"]["name"].as_str().unwrap().to_string())
            .unwrap()
    };
    let long = "n".repeat(60);
    let (a, b) = (
        cluster_role(&format!("{long}-a")),
        cluster_role(&format!("{long}-b")),
    );
    assert!(a != b && a.len() <= 63 && b.len() <= 63, "{a} / {b}");
    // Pinned by digest: `repository@digest`, the tag unused.
    let digest = format!("sha256:{}", "ab".repeat(32));
    let r = render(&[
        "--set",
        &format!("image.repository=registry.example/foresight,image.tag=9.9,image.digest={digest}"),
    ]);
    let c = &r.pod_spec().containers[0];
    assert_eq!(
        c.image.as_deref(),
        Some(format!("registry.example/foresight@{digest}").as_str())
    );
    let r = render(&["--set", "nameOverride=predictor"]);
    assert_eq!(
        r.deployment.metadata.name.as_deref(),
        Some("foresight-predictor")
    );
    assert_eq!(
        r.deployment.metadata.labels.as_ref().unwrap()["app.kubernetes.io/name"],
        "predictor"
    );
}

#[test]
fn wrong_value_types_fail_through_the_schema() {
    for (set, key, want) in [
        ("replicaCount=two", "/replicaCount", "want integer"),
        ("tls.enabled=maybe", "/tls/enabled", "want boolean"),
        (
            "config.logFormat=xml",
            "/config/logFormat",
            "must be one of",
        ),
        (
            "config.retrainInterval=1.5h",
            "/config/retrainInterval",
            "pattern",
        ),
        // foresight refuses a zero interval at start-up: the install would
        // crash-loop.
        (
            "config.evaluationInterval=0s",
            "/config/evaluationInterval",
            "pattern",
        ),
        (
            "remediation.pageFormat=teams",
            "/remediation/pageFormat",
            "must be one of",
        ),
        // A digest in the tag rendered `foresight:sha256:...`, which no
        // runtime pulls.
        ("image.tag=sha256:0123", "/image/tag", "pattern"),
        ("image.digest=latest", "/image/digest", "pattern"),
        // Two Roles of one name.
        (
            "remediation.namespaces={a,a}",
            "/remediation/namespaces",
            "are equal",
        ),
        (
            "remediation.auditLog.keep=0",
            "/remediation/auditLog/keep",
            "minimum",
        ),
    ] {
        let out = run_helm(&["template", RELEASE, CHART, "--set", set]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "--set {set} was accepted");
        assert!(
            stderr.contains("values don't meet the specifications of the schema")
                && stderr.contains(key)
                && stderr.contains(want),
            "--set {set}: unclear error:\n{stderr}"
        );
    }
    // No delay at all is a setting the server takes.
    let r = render(&["--set", "shutdownDelaySeconds=0"]);
    assert_eq!(r.settings().shutdown_delay, std::time::Duration::ZERO);
    // Values the schema allows but the chart refuses, each with a message
    // naming the value and the fix.
    for (sets, want) in [
        // Remediation in a namespace foresight has no Role in: every call
        // there would be refused at the first incident.
        (
            &[
                "watchNamespaces={payments}",
                "remediation.namespaces={shop}",
            ][..],
            "remediation.namespaces holds \"shop\", which is not in watchNamespaces",
        ),
        // A grace period the shutdown delay would use up: the kubelet would
        // SIGKILL foresight mid-close.
        (
            &["shutdownDelaySeconds=25"],
            "terminationGracePeriodSeconds (30) must be at least shutdownDelaySeconds (25) + 25",
        ),
        // One Service port twice: the API server refuses the Service.
        (
            &["service.grpcPort=8080"],
            "service.grpcPort and service.httpPort are both 8080",
        ),
        // One port for both servers: the second bind would fail at start-up.
        (
            &["ports.http=9090"],
            "ports.grpc and ports.http are both 9090",
        ),
        (&["tls.enabled=true"], "tls.secretName must name"),
        // A selector label overridden: the pods would fall outside the
        // Deployment's own selector (and a repeated label is a YAML error
        // naming no value).
        (
            &["podLabels.app\\.kubernetes\\.io/instance=other"],
            "podLabels.app.kubernetes.io/instance: the chart sets this label on the pod itself",
        ),
        // An environment variable the chart sets, or one given twice: which
        // one wins is the kubelet's choice.
        (
            &[
                "extraEnv[0].name=FORESIGHT_REMEDIATION",
                "extraEnv[0].value=off",
            ],
            "extraEnv[0]: the chart sets FORESIGHT_REMEDIATION itself, from remediation.enabled",
        ),
        (
            &[
                "remediation.webhookUrlSecret.name=pager",
                "extraEnv[0].name=FORESIGHT_WEBHOOK_URL",
                "extraEnv[0].value=https://example.com",
            ],
            "the chart sets FORESIGHT_WEBHOOK_URL itself, from remediation.webhookUrlSecret",
        ),
        // One overriding a setting the chart checks: the volume check
        // would be bypassed.
        (
            &[
                "extraEnv[0].name=FORESIGHT_AUDIT_LOG_KEEP",
                "extraEnv[0].value=900",
            ],
            "the chart sets FORESIGHT_AUDIT_LOG_KEEP itself, from remediation.auditLog.keep",
        ),
        (
            &[
                "extraEnv[0].name=RUST_BACKTRACE",
                "extraEnv[0].value=1",
                "extraEnv[1].name=RUST_BACKTRACE",
                "extraEnv[1].value=0",
            ],
            "extraEnv[1]: RUST_BACKTRACE is already extraEnv[0]; keep one",
        ),
        // An audit log that would fill its volume: every enforced action
        // would then be refused.
        (
            &["remediation.auditLog.keep=20"],
            "up to (keep 20 + 1) x rotateMiB 16 = 336 MiB of audit log, more than the data volume's 256Mi (persistence.emptyDirSizeLimit)",
        ),
        (
            &["persistence.enabled=true", "persistence.size=50Mi"],
            "= 80 MiB of audit log, more than the data volume's 50Mi (persistence.size)",
        ),
        (
            &[
                "exampleScaledObject.enabled=true",
                "exampleScaledObject.minReplicaCount=70",
            ],
            "exampleScaledObject.minReplicaCount (70) is above maxReplicaCount (60)",
        ),
    ] {
        let stderr = refused(sets);
        assert!(stderr.contains(want), "--set {sets:?}:\n{stderr}");
    }
    // What the checks let through: an environment variable the chart sets
    // only with its value (the webhook without webhookUrlSecret), a claim
    // the chart does not size, sizes in other units.
    for sets in [
        &[
            "extraEnv[0].name=FORESIGHT_WEBHOOK_URL",
            "extraEnv[0].value=https://example.com",
        ][..],
        &[
            "persistence.enabled=true",
            "persistence.existingClaim=shared",
            "persistence.size=1Mi",
        ],
        &[
            "persistence.emptyDirSizeLimit=1Gi",
            "remediation.auditLog.keep=60",
        ],
        &[
            "persistence.emptyDirSizeLimit=100M",
            "remediation.auditLog.keep=4",
        ],
        &["remediation.auditLog.rotateMiB=0"],
    ] {
        let args: Vec<&str> = sets.iter().flat_map(|s| ["--set", s]).collect();
        template(&args);
    }
    for (set, key) in [
        ("persistence.size=1GB", "/persistence/size"),
        ("fullnameOverride=My_App", "/fullnameOverride"),
    ] {
        let stderr = refused(&[set]);
        assert!(
            stderr.contains("values don't meet the specifications of the schema")
                && stderr.contains(key),
            "--set {set}:\n{stderr}"
        );
    }
}

/// `helm template` with `sets` (each a `--set`), which must fail; its stderr.
fn refused(sets: &[&str]) -> String {
    let mut args = vec!["template", RELEASE, CHART];
    args.extend(sets.iter().flat_map(|s| ["--set", s]));
    let out = run_helm(&args);
    assert!(!out.status.success(), "--set {sets:?} was accepted");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn readme_documents_the_install() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    assert!(readme.contains("helm install foresight charts/foresight -n keda"));
    assert!(readme.contains("kind: TriggerAuthentication"));
}

#[test]
fn one_replica_or_a_single_node_claim_does_not_block_drains_or_rollouts() {
    // One replica with minAvailable 1 forbade every eviction: node drains
    // hung. The PDB then allows one pod down instead.
    let r = render(&["--set", "replicaCount=1"]);
    let pdb = r.pdbs[0].spec.as_ref().unwrap();
    assert_eq!(pdb.min_available, None);
    assert_eq!(pdb.max_unavailable, Some(IntOrString::Int(1)));
    // Percentages round up, as the eviction API does: 50% of one replica
    // is that replica, 100% of two is both.
    for (replicas, min) in [("1", "50%"), ("2", "100%")] {
        let r = render(&[
            "--set",
            &format!("replicaCount={replicas}"),
            "--set-string",
            &format!("podDisruptionBudget.minAvailable={min}"),
        ]);
        let pdb = r.pdbs[0].spec.as_ref().unwrap();
        assert_eq!(pdb.min_available, None, "{replicas} replicas, {min}");
        assert_eq!(pdb.max_unavailable, Some(IntOrString::Int(1)));
    }
    let r = render(&["--set-string", "podDisruptionBudget.minAvailable=50%"]);
    assert_eq!(
        r.pdbs[0].spec.as_ref().unwrap().min_available,
        Some(IntOrString::String("50%".into()))
    );
    // A ReadWriteOnce claim: a surge pod on another node could never mount
    // it while the old pod held it, so the rollout recreates instead.
    let r = render(&[
        "--set",
        "persistence.enabled=true",
        "--set",
        "persistence.accessModes={ReadWriteOnce}",
    ]);
    let strategy = r
        .deployment
        .spec
        .as_ref()
        .unwrap()
        .strategy
        .clone()
        .unwrap();
    assert_eq!(strategy.type_.as_deref(), Some("Recreate"));
    assert!(strategy.rolling_update.is_none());
    // Two releases in one namespace campaign for two Leases.
    let other = render(&["--set", "fullnameOverride=payments-scaler"]);
    assert_eq!(
        other.env_value("FORESIGHT_LEASE_NAME"),
        "payments-scaler-remediation"
    );
}
