//! `foresight incidents [list|show ID]`: reads the remediation audit log.

use super::args::{IncidentsArgs, IncidentsCommand};
use crate::remediation::{AuditLog, IncidentSummary, PageReason, Verdict, summarize};

pub(super) fn run(args: IncidentsArgs) -> anyhow::Result<()> {
    let path = args.audit_log.clone().unwrap_or_else(default_audit_log);
    let log = AuditLog::new(&path);
    let (records, skipped) = log.read_all()?;
    // Said on stderr, so `--json` stays parseable; each costs its line
    // only.
    for s in &skipped {
        if s.line == 0 {
            eprintln!("warning: {}: skipped {}", s.file.display(), s.reason);
        } else {
            eprintln!(
                "warning: {} line {}: skipped, {}",
                s.file.display(),
                s.line,
                s.reason
            );
        }
    }
    // A typo in the path reads as an empty log; say which it is.
    if records.is_empty() && skipped.is_empty() && !path.exists() {
        eprintln!(
            "warning: there is no audit log at {} (nothing recorded there yet, or a wrong --audit-log)",
            path.display()
        );
    }
    let orphans = crate::remediation::orphaned(&records);
    if !orphans.is_empty() {
        eprintln!(
            "warning: {} incident(s) have records but no opening record (rotated away with an older segment, or on a damaged line), so they are not listed: {}",
            orphans.len(),
            orphans.join(", ")
        );
    }
    let incidents = summarize(&records);
    match args.command.unwrap_or(IncidentsCommand::List) {
        IncidentsCommand::List => {
            if args.json {
                return super::print_out(&format!(
                    "{}\n",
                    serde_json::to_string_pretty(&incidents)?
                ));
            }
            if incidents.is_empty() {
                println!("no incidents in {}", path.display());
            }
            let lines: String = incidents.iter().map(|s| format!("{}\n", line(s))).collect();
            super::print_out(&lines)?;
        }
        IncidentsCommand::Show { id } => {
            let Some(s) = incidents.iter().find(|s| s.incident.id == id) else {
                anyhow::bail!(
                    "no incident {id:?} in {} (see `foresight incidents list`)",
                    path.display()
                );
            };
            if args.json {
                println!("{}", serde_json::to_string_pretty(s)?);
            } else {
                print!("{}", show(s));
            }
        }
    }
    Ok(())
}

fn line(s: &IncidentSummary) -> String {
    let i = &s.incident;
    format!(
        "{}  {}  {:?} ({:.2})  {}  {}",
        i.id,
        i.target,
        i.diagnosis.cause,
        i.diagnosis.confidence,
        s.status(),
        verdict(&i.verdict)
    )
}

fn verdict(v: &Verdict) -> String {
    match v {
        Verdict::Execute { action } => action.to_string(),
        Verdict::DryRun { action } => format!("dry run: {action}"),
        Verdict::PageOnly {
            reason: PageReason::NotLeader,
        } => "not acted on: this replica is not the leader".to_string(),
        Verdict::PageOnly { reason } => format!("page only: {reason:?}"),
        Verdict::Escalate { action, attempts } => {
            format!("escalated: {action} already ran {attempts} times")
        }
    }
}

fn show(s: &IncidentSummary) -> String {
    let i = &s.incident;
    let mut out = format!(
        "incident {}\n  opened     {}\n  target     {} (ScaledObject {})\n  cause      {:?}, confidence {:.2}\n  verdict    {}\n  status     {}\n",
        i.id,
        i.opened_at.to_rfc3339(),
        i.target,
        i.target.scaled_object,
        i.diagnosis.cause,
        i.diagnosis.confidence,
        verdict(&i.verdict),
        s.status()
    );
    if let Some(sig) = &i.signal {
        out.push_str(&format!("  signal     {}\n", sig.name()));
    }
    out.push_str("  evidence\n");
    for e in &i.diagnosis.evidence {
        let at = e.at.map(|t| t.to_rfc3339()).unwrap_or_default();
        out.push_str(&format!("    [{}] {} {}\n", e.source, at, e.detail));
    }
    for a in &s.actions {
        out.push_str(&format!(
            "  action     {} started {}\n",
            a.action,
            a.started_at.to_rfc3339()
        ));
        match &a.finished {
            Some((at, o)) => out.push_str(&format!(
                "             finished {}: {}\n",
                at.to_rfc3339(),
                o.message()
            )),
            None => out.push_str("             never finished (foresight stopped mid-action)\n"),
        }
    }
    for (at, err) in &s.pages {
        match err {
            None => out.push_str(&format!("  paged      {}\n", at.to_rfc3339())),
            Some(e) => out.push_str(&format!("  page failed {}: {e}\n", at.to_rfc3339())),
        }
    }
    out
}

/// The environment variable holding the paging webhook URL. Only from the
/// environment: chat webhooks carry their secret in the URL, which a flag
/// would show in `ps` and a settings file would store.
const WEBHOOK_URL_ENV: &str = "FORESIGHT_WEBHOOK_URL";

/// The remediation engine `foresight serve` runs, and the leader election
/// that lets it act, to be released when serve stops.
pub(super) struct Remediation {
    /// The engine; run it on its own task.
    pub(super) engine: crate::remediation::Engine,
    /// The election, once joined, when there is a cluster to hold a Lease
    /// in: released at shutdown so another replica takes over at once.
    pub(super) election: ElectionSlot,
}

/// The leader election, filled in when it is joined (at start-up, or later
/// when the API server was out of reach then).
pub(super) type ElectionSlot = std::sync::Arc<tokio::sync::Mutex<Slot>>;

/// What [`ElectionSlot`] holds.
#[derive(Default)]
pub(super) struct Slot {
    /// The joined election, released at shutdown.
    election: Option<crate::remediation::kube::LeaderElection>,
    /// Shutdown has released the slot: an election joined after it is
    /// released at once, not held until its Lease expires.
    closed: bool,
}

impl Slot {
    /// Keeps `election` for release at shutdown, or releases it now when
    /// shutdown has already come.
    async fn keep(&mut self, election: crate::remediation::kube::LeaderElection) {
        if self.closed {
            election.release(std::time::Duration::from_secs(5)).await;
        } else {
            self.election = Some(election);
        }
    }

    /// At shutdown: releases the election, if joined, and closes the slot.
    pub(super) async fn release(&mut self) {
        self.closed = true;
        if let Some(e) = self.election.take() {
            e.release(std::time::Duration::from_secs(5)).await;
        }
    }
}

/// Joins the leader election over `wanted`, in at most 10 s. The error
/// says whether trying again may succeed (see
/// [`crate::remediation::RemediationError::is_transient`]; a timeout may).
async fn join(
    client: kube::Client,
    wanted: &crate::remediation::kube::LeaseSettings,
) -> Result<
    (
        tokio::sync::watch::Receiver<bool>,
        crate::remediation::kube::LeaderElection,
    ),
    (bool, anyhow::Error),
> {
    let joined = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        crate::remediation::kube::join_leader_election(client, wanted),
    )
    .await;
    match joined {
        Ok(joined) => joined.map_err(|e| (e.is_transient(), anyhow::Error::from(e))),
        Err(_) => Err((
            true,
            anyhow::anyhow!(
                "timed out after 10 s joining leader election over Lease {}/{}",
                wanted.namespace,
                wanted.name
            ),
        )),
    }
}

/// The Lease this replica campaigns for: `--lease-name` (the chart names
/// one per release: two releases in one namespace on one Lease left one of
/// them never leading), in `POD_NAMESPACE`, as `POD_NAME`.
fn wanted_lease(name: Option<&str>) -> crate::remediation::kube::LeaseSettings {
    let namespace = std::env::var("POD_NAMESPACE").unwrap_or_else(|_| "default".to_string());
    let identity =
        std::env::var("POD_NAME").unwrap_or_else(|_| format!("foresight-{}", std::process::id()));
    let mut wanted = crate::remediation::kube::LeaseSettings::new(namespace, identity);
    if let Some(name) = name {
        wanted.name = name.to_string();
    }
    wanted
}

/// The remediation engine `foresight serve` runs, wired to the runtime:
/// its signals, its registered ScaledObjects (the blast radius' base), its
/// latest decisions (evidence) and its `/metrics`. `None` when remediation
/// is off.
///
/// Kubernetes credentials are optional here: without them the engine still
/// diagnoses and records (dry-run), so `serve` works outside a cluster. With
/// them, a Lease elects the one replica that acts.
pub(super) async fn remediation_engine<C: crate::runtime::ScalerCore>(
    settings: &crate::config::ServeSettings,
    core: std::sync::Arc<C>,
    baselines: Option<crate::sources::AnySource>,
) -> anyhow::Result<Option<Remediation>> {
    use std::sync::Arc;

    use anyhow::Context;
    use tracing::{info, warn};

    use crate::remediation::kube::KubeActions;
    use crate::remediation::{
        Engine, EngineOptions, Pager, RemediationConfig, RemediationMode, RemediationSetting,
        incident_counter,
    };

    let mode = match settings.remediation {
        RemediationSetting::Off => return Ok(None),
        RemediationSetting::DryRun => RemediationMode::DryRun,
        RemediationSetting::Enforce => RemediationMode::Enforce,
    };
    let audit = match (&settings.audit_log, mode) {
        (Some(path), _) => AuditLog::new(path),
        (None, RemediationMode::Enforce) => anyhow::bail!(
            "--remediation enforce needs an audit log: set --audit-log or FORESIGHT_AUDIT_LOG"
        ),
        // Dry run without a configured log records next to the process,
        // in a temporary directory, so nothing lands in the working tree.
        (None, RemediationMode::DryRun) => AuditLog::new(default_audit_log()),
    };
    let audit = audit.with_rotation((settings.audit_log_rotate_mib > 0).then(|| {
        crate::remediation::Rotation {
            max_bytes: settings.audit_log_rotate_mib.saturating_mul(1 << 20),
            keep: settings.audit_log_keep,
        }
    }));
    if mode == RemediationMode::Enforce {
        // Nothing is done unrecorded, so an unwritable log would stop every
        // action at the first incident: refuse to start instead.
        audit
            .check_writable()
            .context("--remediation enforce cannot write its audit log (--audit-log)")?;
    } else if let Err(e) = audit.check_writable() {
        // A dry run acts on nothing, so it starts; but every incident would
        // go unrecorded, which is worth saying now rather than per incident.
        tracing::warn!(error = %e, "the dry run cannot write its audit log; incidents will be logged but not recorded (--audit-log)");
    }
    let config = RemediationConfig {
        mode,
        allowed_namespaces: (!settings.remediation_namespaces.is_empty())
            .then(|| settings.remediation_namespaces.iter().cloned().collect()),
        ..RemediationConfig::default()
    };
    let config_namespaces = config.allowed_namespaces.clone();
    let pager = std::env::var(WEBHOOK_URL_ENV)
        .ok()
        .filter(|u| !u.trim().is_empty())
        .map(|u| Pager::new(u, settings.page_format, std::time::Duration::from_secs(10)));
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut client = match kube::Client::try_default().await {
        Ok(c) => Some(c),
        Err(e) if mode == RemediationMode::Enforce => {
            return Err(e).context("--remediation enforce needs Kubernetes credentials");
        }
        Err(e) => {
            info!(error = %e, "no Kubernetes credentials; remediation diagnoses from signals alone");
            None
        }
    };
    // A cluster that cannot be reached (say, a stale kubeconfig on a laptop)
    // must not stop a dry run from serving: it then runs without
    // Kubernetes. Enforcing without a lease would let replicas race.
    let lease = match &client {
        Some(c) => {
            let wanted = wanted_lease(settings.lease_name.as_deref());
            Some(join(c.clone(), &wanted).await)
        }
        None => None,
    };
    let slot: ElectionSlot = Arc::new(tokio::sync::Mutex::new(Slot::default()));
    let (leader, election) = match lease {
        Some(Ok((leader, election))) => {
            slot.lock().await.keep(election).await;
            (leader, slot)
        }
        // Refused outright (RBAC, a Lease name the API server rejects): no
        // retry fixes it, and retrying quietly would leave remediation
        // never acting on a pod that looks healthy.
        Some(Err((false, e))) if mode == RemediationMode::Enforce => {
            return Err(e.context("cannot set up the remediation leader lease"));
        }
        // An API server out of reach (an outage, an upgrade of the control
        // plane) must not take the scaler down with it: exiting here made
        // every restarted pod crash-loop, and KEDA lost its scaler, though
        // scaling needs no API server. Serve, act on nothing, and keep
        // trying to join.
        Some(Err((_, e))) if mode == RemediationMode::Enforce => {
            warn!(error = %format!("{e:#}"), "cannot join the remediation leader election yet; serving scaling decisions and acting on no incident until it joins; retrying every 15 s");
            let (tx, rx) = tokio::sync::watch::channel(false);
            let (c, wanted) = (
                client
                    .clone()
                    .context("a lease was tried, so there is a client")?,
                wanted_lease(settings.lease_name.as_deref()),
            );
            let retry_slot = Arc::clone(&slot);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(std::time::Duration::from_secs(15)).await;
                    match join(c.clone(), &wanted).await {
                        Ok((mut inner, election)) => {
                            info!(lease = %format!("{}/{}", wanted.namespace, wanted.name), "joined the remediation leader election");
                            let mut held = retry_slot.lock().await;
                            let closed = held.closed;
                            held.keep(election).await;
                            drop(held);
                            if closed {
                                return;
                            }
                            tx.send_replace(*inner.borrow_and_update());
                            while inner.changed().await.is_ok() {
                                tx.send_replace(*inner.borrow_and_update());
                            }
                            return;
                        }
                        Err((true, e)) => {
                            warn!(error = %format!("{e:#}"), "still cannot join the remediation leader election")
                        }
                        Err((false, e)) => {
                            tracing::error!(error = %format!("{e:#}"), "the API server refuses the remediation leader election (check RBAC and --lease-name); remediation acts on nothing until it is fixed")
                        }
                    }
                }
            });
            (rx, slot)
        }
        Some(Err((_, e))) => {
            warn!(error = %format!("{e:#}"), "no leader lease; remediation diagnoses from signals alone");
            client = None;
            (tokio::sync::watch::channel(true).1, slot)
        }
        // Without a cluster there is nothing to coordinate over.
        None => (tokio::sync::watch::channel(true).1, slot),
    };
    let kube = client.map(|c| KubeActions::new(c).with_events(std::env::var("POD_NAME").ok()));
    info!(
        mode = ?mode,
        audit_log = %audit.path().display(),
        pager = ?pager.as_ref().map(Pager::describe),
        page_format = ?settings.page_format,
        kubernetes = kube.is_some(),
        "remediation engine"
    );
    let lookup = Arc::clone(&core);
    let counter = Arc::clone(&core);
    let engine = Engine::new(
        EngineOptions {
            config,
            audit,
            pager,
            kube,
            baselines: baselines.map(|source| {
                Arc::new(crate::remediation::SourceBaselines::new(source))
                    as Arc<dyn crate::remediation::BaselineSource>
            }),
            enabled_targets: enabled_targets(counter, config_namespaces),
            recent_decision: Some(Arc::new(move |key, signal| {
                crate::runtime::raised_by(&lookup.explain(key), signal)
            })),
            incidents: Some(incident_counter(core)),
        },
        leader,
    );
    let engine = match std::env::var("POD_NAME") {
        Ok(pod) if !pod.is_empty() => engine.with_replica(pod),
        _ => engine,
    };
    Ok(Some(Remediation { engine, election }))
}

/// Counts the ScaledObjects remediation may act on (registered, in an
/// allowed namespace), the base of the blast radius: counting those it may
/// not act on would let it touch more of the others.
fn enabled_targets<C: crate::runtime::ScalerCore>(
    core: std::sync::Arc<C>,
    allowed: Option<std::collections::BTreeSet<String>>,
) -> crate::remediation::TargetCount {
    std::sync::Arc::new(move || {
        core.scaled_objects()
            .iter()
            .filter(|k| allowed.as_ref().is_none_or(|a| a.contains(&k.namespace)))
            .count()
    })
}

/// The environment variable holding the bearer token `POST /alerts`
/// requires; environment only, like every secret. Unset: no `/alerts`.
const ALERTS_TOKEN_ENV: &str = "FORESIGHT_ALERTS_TOKEN";

/// `POST /alerts` and the channel it feeds the engine, when a token is set.
pub(super) fn alerts_intake(
    leader: crate::remediation::Leadership,
) -> Option<(
    axum::Router,
    tokio::sync::mpsc::Receiver<crate::remediation::AlertmanagerAlert>,
)> {
    let token = std::env::var(ALERTS_TOKEN_ENV)
        .ok()
        .filter(|t| !t.trim().is_empty())?;
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    tracing::info!("POST /alerts accepts Alertmanager webhooks");
    Some((
        crate::remediation::alerts_router(token.trim().to_string(), tx, leader),
        rx,
    ))
}

/// Where a dry run records without `--audit-log`: the temporary directory,
/// so nothing lands in the working tree. `incidents` reads it by default.
fn default_audit_log() -> std::path::PathBuf {
    std::env::temp_dir().join("foresight-audit.jsonl")
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::domain::ScaledObjectKey;
    use crate::runtime::{Runtime, RuntimeConfig, ScalerCore};
    use crate::sources::FileSource;

    #[test]
    fn the_blast_radius_counts_only_scaled_objects_in_allowed_namespaces() {
        let (source, _) = FileSource::embedded().unwrap();
        let core = std::sync::Arc::new(Runtime::new(source, RuntimeConfig::default()));
        let metadata: HashMap<String, String> = [
            ("queueDepthQuery", "elb_requests"),
            ("queueDepthTarget", "10"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (ns, name) in [("shop", "a"), ("shop", "b"), ("batch", "c"), ("lab", "d")] {
            core.metric_target(&ScaledObjectKey::new(ns, name), &metadata)
                .unwrap();
        }
        let all = enabled_targets(std::sync::Arc::clone(&core), None);
        assert_eq!(all(), 4);
        let allowed = ["shop", "batch"].map(String::from).into_iter().collect();
        let some = enabled_targets(core, Some(allowed));
        assert_eq!(some(), 3, "lab is not remediated, so not counted");
    }
}
