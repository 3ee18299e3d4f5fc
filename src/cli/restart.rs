//! `foresight restart NAMESPACE/DEPLOYMENT`: `kubectl rollout restart`,
//! through the same code the remediation engine uses.

use super::args::RestartArgs;
use super::rollback::{block_on, client, finish, parse_target};
use crate::remediation::kube::KubeActions;

pub(super) fn run(args: RestartArgs) -> anyhow::Result<()> {
    let (ns, name) = parse_target(&args.target)?;
    block_on(async {
        let kube = KubeActions::new(client().await?);
        let outcome = kube
            .restart(ns, name, chrono::Utc::now(), args.dry_run)
            .await?;
        finish(&kube, ns, name, outcome, args.timeout).await
    })
}
