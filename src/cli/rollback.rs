//! `foresight rollback NAMESPACE/DEPLOYMENT`: `kubectl rollout undo`,
//! through the same code the remediation engine uses.

use std::time::Duration;

use anyhow::Context;

use super::args::RollbackArgs;
use crate::remediation::ActionOutcome;
use crate::remediation::kube::KubeActions;

pub(super) fn run(args: RollbackArgs) -> anyhow::Result<()> {
    let (ns, name) = parse_target(&args.target)?;
    block_on(async {
        let kube = KubeActions::new(client().await?);
        let outcome = kube
            .rollback(ns, name, args.to_revision, None, args.dry_run)
            .await?;
        finish(&kube, ns, name, outcome, args.timeout).await
    })
}

/// `NAMESPACE/NAME`.
pub(super) fn parse_target(s: &str) -> anyhow::Result<(&str, &str)> {
    match s.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ns, name))
        }
        _ => anyhow::bail!("expected NAMESPACE/DEPLOYMENT, e.g. shop/orders, got {s:?}"),
    }
}

pub(super) fn block_on<T>(
    f: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(f)
}

/// A client from KUBECONFIG (or ~/.kube/config), else the in-cluster
/// service account, as kubectl resolves them.
pub(super) async fn client() -> anyhow::Result<kube::Client> {
    // Both rustls providers are compiled in (aws-lc and ring, through
    // different dependencies); rustls then needs one chosen explicitly.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    kube::Client::try_default()
        .await
        .context("cannot reach Kubernetes (set KUBECONFIG, or run in a pod with a service account)")
}

/// Prints the outcome as kubectl would; waits for the rollout of a change.
pub(super) async fn finish(
    kube: &KubeActions,
    ns: &str,
    name: &str,
    outcome: ActionOutcome,
    timeout: Duration,
) -> anyhow::Result<()> {
    match outcome {
        ActionOutcome::Done { message } => {
            println!("deployment.apps/{name} {message}");
            let status = tokio::time::timeout(timeout, kube.wait_rollout(ns, name))
                .await
                .with_context(|| {
                    format!("rollout of {ns}/{name} did not finish within {timeout:?}")
                })??;
            println!("{status}");
            Ok(())
        }
        ActionOutcome::Skipped { message } | ActionOutcome::DryRun { message } => {
            println!("deployment.apps/{name} {message}");
            Ok(())
        }
        ActionOutcome::Refused { message } | ActionOutcome::Failed { message } => {
            anyhow::bail!("{ns}/{name}: {message}")
        }
    }
}
