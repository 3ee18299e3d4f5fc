//! `foresight explain`: why a running server decided what it did.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context, bail};

use super::args::ExplainArgs;
use crate::domain::{Decision, Prediction, Signal};

pub(super) fn run(args: ExplainArgs) -> anyhow::Result<()> {
    let (namespace, name) = args
        .scaled_object
        .split_once('/')
        // Kubernetes names (DNS-1123): anything else (`?`, `#`, `..`) would
        // change the URL rather than name a ScaledObject.
        .filter(|(ns, n)| {
            let dns = |s: &str| {
                !s.is_empty()
                    && s.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
                    && !s.starts_with(['-', '.'])
                    && !s.ends_with(['-', '.'])
            };
            dns(ns) && dns(n)
        })
        .with_context(|| {
            format!(
                "--scaled-object {:?} must be NAMESPACE/NAME, each a Kubernetes name (lowercase letters, digits, '-' and '.'), e.g. shop/orders-consumer",
                args.scaled_object
            )
        })?;
    let base = args.server.trim_end_matches('/');
    let url = format!("{base}/api/v1/scaledobjects/{namespace}/{name}/decision");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let (status, body) = rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?;
        let response = client.get(&url).send().await?;
        let status = response.status();
        Ok::<_, reqwest::Error>((status, response.text().await?))
    })
    .with_context(|| {
        format!("cannot reach foresight at {base}; is `foresight serve` running there? (set --server)")
    })?;
    if status == reqwest::StatusCode::NOT_FOUND {
        // foresight says why; a 404 without a body is not foresight's.
        if body.trim().is_empty() {
            bail!("{url} answered 404 with nothing to say: is --server a foresight HTTP port?");
        }
        bail!("{}", body.trim());
    }
    if !status.is_success() {
        bail!("{url} answered {status}: {}", body.trim());
    }
    if args.json {
        println!("{}", body.trim());
        return Ok(());
    }
    let decision: Decision =
        serde_json::from_str(&body).with_context(|| format!("unexpected answer from {url}"))?;
    // Servers before several triggers were served send no `triggers`.
    let triggers = serde_json::from_str::<Triggers>(&body).unwrap_or_default();
    print!("{}", render(&args.scaled_object, &decision, &triggers));
    Ok(())
}

/// The trigger fields of the answer, beside the decision's own.
#[derive(Debug, Default, serde::Deserialize)]
struct Triggers {
    /// The trigger whose decision this is.
    #[serde(default)]
    trigger: Option<String>,
    /// Every foresight trigger of the ScaledObject KEDA asks about, highest
    /// count first.
    #[serde(default)]
    triggers: Vec<TriggerCount>,
}

/// One trigger's count, from the answer's `triggers`.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct TriggerCount {
    /// Its short name.
    trigger: String,
    /// The count it asks for.
    desired_replicas: u32,
    /// The signal that set it.
    driver: Option<String>,
}

fn num(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.1}"))
}

fn count(v: Option<u32>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// A human-readable explanation of one decision.
fn render(who: &str, d: &Decision, t: &Triggers) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{who} at {} (mode {})",
        d.at.to_rfc3339(),
        d.mode.as_str()
    );
    // With several foresight triggers the HPA follows the highest count;
    // the others are named so an operator knows which one this is.
    if t.triggers.len() > 1 {
        let others: Vec<String> = t
            .triggers
            .iter()
            .filter(|o| Some(&o.trigger) != t.trigger.as_ref())
            .map(|o| {
                format!(
                    "{} wants {} ({})",
                    o.trigger,
                    o.desired_replicas,
                    o.driver.as_deref().unwrap_or("-")
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "  trigger {} of {}, the highest count, which the HPA follows; others: {}",
            t.trigger.as_deref().unwrap_or("?"),
            t.triggers.len(),
            others.join(", ")
        );
    }
    let _ = writeln!(
        out,
        "  desired replicas  {}   recommendation {}   limited by: {}",
        d.desired_replicas,
        d.recommendation,
        d.limiter.label()
    );
    let _ = writeln!(
        out,
        "  reactive {}   predictive {}   driver {}   active {}",
        d.reactive,
        count(d.predictive),
        d.driver.map_or("-", |k| k.label()),
        d.active
    );
    let prediction = match &d.prediction {
        Prediction::Used => "used".to_string(),
        Prediction::Off => "off (mode reactive)".to_string(),
        Prediction::RecordedOnly => "recorded only (mode forecastOnly)".to_string(),
        Prediction::Gated { reason } => format!("gated: {reason}"),
        Prediction::Unavailable { reason } => format!("unavailable: {reason}"),
    };
    let _ = writeln!(
        out,
        "  prediction {prediction} (upper quantile {})",
        d.forecast_quantile
    );
    let _ = writeln!(
        out,
        "  {:<14} {:>12} {:>12} {:>9} {:>10} {:>9} {:>9}",
        "signal", "observed", "forecast max", "reactive", "predictive", "lag drain", "live MASE"
    );
    for r in &d.readings {
        let _ = writeln!(
            out,
            "  {:<14} {:>12} {:>12} {:>9} {:>10} {:>9} {:>9}",
            r.kind.label(),
            num(r.observed),
            num(r.forecast_max),
            count(r.reactive),
            count(r.predictive),
            count(r.lag_drain),
            r.live_mase
                .map_or_else(|| "-".to_string(), |m| format!("{m:.2}"))
        );
    }
    if d.signals.is_empty() {
        let _ = writeln!(out, "  remediation signals: none");
    } else {
        let _ = writeln!(out, "  remediation signals:");
        for s in &d.signals {
            let _ = writeln!(out, "    {}", describe(s));
        }
    }
    for n in &d.notes {
        let _ = writeln!(out, "  note: {n}");
    }
    out
}

fn describe(s: &Signal) -> String {
    match s {
        Signal::AtCeiling {
            max_replicas,
            demand_replicas,
            ..
        } => format!(
            "AtCeiling: demand needs {demand_replicas} replicas, clamped at maxReplicaCount {max_replicas}"
        ),
        Signal::CapacityExhaustionPredicted {
            kind,
            breach_at,
            peak,
            capacity,
            ..
        } => format!(
            "CapacityExhaustionPredicted: {} forecast peaks at {peak:.1}, above capacity {capacity:.1} from {}",
            kind.label(),
            breach_at.to_rfc3339()
        ),
        Signal::NotKeepingUp {
            kind,
            scaled_up_at,
            from_replicas,
            to_replicas,
            value_then,
            value_now,
            ..
        } => format!(
            "NotKeepingUp: {} was {value_then:.1} when replicas went {from_replicas} -> {to_replicas} at {}, and is {value_now:.1} now",
            kind.label(),
            scaled_up_at.to_rfc3339()
        ),
        Signal::LatencySloBreach {
            since, p99, target, ..
        } => format!(
            "LatencySloBreach: p99 {p99:.1} above {target:.1} since {}",
            since.to_rfc3339()
        ),
    }
}
