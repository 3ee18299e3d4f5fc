//! Guardrails between a diagnosis and the cluster. Pure and stateful: the
//! engine owns one `Guardrails` and passes the time in.
//!
//! In order: the confidence threshold, the namespace allow-list, the
//! per-(action, target) circuit breaker, the blast radius, then dry-run.
//! Dry-run decisions count towards the breaker and the blast radius just as
//! enforced ones do, so a dry-run audit log shows exactly what enforcing
//! would have done, escalations included.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::RemediationConfig;
use super::audit::AuditRecord;
use super::incident::{Action, ActionKind, Diagnosis};

/// Whether the engine acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RemediationMode {
    /// Record what would be done; change nothing. The default.
    DryRun,
    /// Act within the guardrails.
    Enforce,
}

/// Why a human is paged instead of an action being taken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "camelCase")]
pub enum PageReason {
    /// The cause calls for no automated action (or none is possible, e.g.
    /// the ceiling is at its hard cap).
    NoAction,
    /// The diagnosis is not confident enough to act on.
    #[serde(rename_all = "camelCase")]
    LowConfidence {
        /// The diagnosis' confidence.
        confidence: f64,
        /// The threshold it missed.
        threshold: f64,
    },
    /// The namespace is not on the allow-list.
    #[serde(rename_all = "camelCase")]
    NamespaceNotAllowed {
        /// The namespace.
        namespace: String,
    },
    /// Acting would touch more targets in the window than allowed.
    #[serde(rename_all = "camelCase")]
    BlastRadius {
        /// Distinct objects already acted on in the window.
        touched: usize,
        /// The most allowed.
        limit: usize,
        /// Remediation-enabled targets the limit is a share of.
        enabled: usize,
    },
    /// This replica of foresight does not hold the leader lease.
    NotLeader,
    /// The incident could not be written to the audit log, and nothing is
    /// done unrecorded.
    #[serde(rename_all = "camelCase")]
    AuditUnwritable {
        /// Why the write failed.
        error: String,
    },
}

/// What the guardrails allow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "camelCase")]
pub enum Verdict {
    /// Act, then page.
    #[serde(rename_all = "camelCase")]
    Execute {
        /// The action.
        action: Action,
    },
    /// Record the action that enforce mode would take, then page.
    #[serde(rename_all = "camelCase")]
    DryRun {
        /// The action.
        action: Action,
    },
    /// Only page a human.
    #[serde(rename_all = "camelCase")]
    PageOnly {
        /// Why.
        #[serde(flatten)]
        reason: PageReason,
    },
    /// The circuit breaker is open: stop, escalate and page.
    #[serde(rename_all = "camelCase")]
    Escalate {
        /// The action that was not repeated.
        action: Action,
        /// How often it already ran within the breaker's window.
        attempts: usize,
    },
}

impl Verdict {
    /// The action this verdict carries out for real, if any.
    pub fn executes(&self) -> Option<&Action> {
        match self {
            Verdict::Execute { action } => Some(action),
            _ => None,
        }
    }
}

/// Actions foresight took, as the cluster recorded them: one Event, or one
/// Event the recorder repeated as a series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastAction {
    /// The first occurrence.
    pub first: DateTime<Utc>,
    /// The latest occurrence: repeats count from here, so every repeat
    /// counts for as long as the last one does.
    pub last: DateTime<Utc>,
    /// Occurrences (a series' count; 1 for a single Event).
    pub count: u32,
    /// Which action.
    pub kind: ActionKind,
    /// `NAMESPACE/NAME` of the object acted on, as [`Action::object`].
    pub object: String,
    /// The Event's name (`NAMESPACE/NAME`): read again, it adds only the
    /// occurrences not merged before.
    pub id: String,
}

/// The guardrails' memory: which actions were decided when.
#[derive(Debug, Clone)]
pub struct Guardrails {
    /// The thresholds and windows.
    cfg: RemediationConfig,
    /// Actions decided (here, or read back), oldest first.
    history: VecDeque<(DateTime<Utc>, ActionKind, String)>,
    /// Occurrences of each Event already merged (by its name), so reading
    /// the cluster again after a lost and regained Lease adds only what is
    /// new.
    merged: BTreeMap<String, u32>,
    /// Decisions of `history` an Event was matched to, so two Events never
    /// claim the same decision.
    claimed: Vec<(DateTime<Utc>, ActionKind, String)>,
}

impl Guardrails {
    /// Guardrails with no history.
    pub fn new(cfg: RemediationConfig) -> Self {
        Self {
            cfg,
            history: VecDeque::new(),
            merged: BTreeMap::new(),
            claimed: Vec::new(),
        }
    }

    /// Takes back what was decided before a restart, from the audit log's
    /// incidents: every action decided (executed or dry-run) counts, at
    /// the time its incident opened, as `judge` counted it. Without this a
    /// restart of foresight (a crash, an upgrade) reset the circuit breaker
    /// and the blast radius.
    pub fn remember(&mut self, records: &[AuditRecord]) {
        for r in records {
            if let AuditRecord::Opened { incident, .. } = r
                && let Verdict::Execute { action } | Verdict::DryRun { action } = &incident.verdict
            {
                self.history
                    .push_back((incident.opened_at, action.kind(), action.object()));
            }
        }
        self.history.make_contiguous().sort_by_key(|(at, _, _)| *at);
    }

    /// Adds the actions the cluster recorded (Events any replica of
    /// foresight published), so a replica that becomes leader counts what
    /// the previous leader did against the breaker and the blast radius;
    /// its own audit log holds only its own decisions.
    ///
    /// An action already remembered is not counted twice: an occurrence is
    /// the decision of the same kind on the same object its history holds
    /// from at most `slack` before it (the action's run, rollout included),
    /// when there is one no other occurrence took. Decisions come from this
    /// replica's judgements and from the audit log, which a replacement pod
    /// reads on the same volume: another pod's Events are matched too, or an
    /// upgrade counted its predecessor's actions twice. An Event read again
    /// adds only occurrences it has gained since.
    pub fn merge_cluster(&mut self, actions: &[PastAction], slack: TimeDelta) {
        let mut sorted: Vec<&PastAction> = actions.iter().collect();
        sorted.sort_by_key(|a| a.first);
        let mut added = Vec::new();
        for a in sorted {
            let seen = self.merged.get(&a.id).copied().unwrap_or(0);
            let mut left = a.count.saturating_sub(seen);
            if left == 0 {
                continue;
            }
            self.merged.insert(a.id.clone(), a.count);
            for entry in &self.history {
                if left == 0 {
                    break;
                }
                let (at, kind, o) = entry;
                if *kind == a.kind
                    && *o == a.object
                    && a.first - slack <= *at
                    && *at <= a.last
                    && !self.claimed.contains(entry)
                {
                    self.claimed.push(entry.clone());
                    left -= 1;
                }
            }
            for _ in 0..left {
                added.push((a.last, a.kind, a.object.clone()));
            }
        }
        // Read back, not decided here: never a decision a later Event is.
        self.claimed.extend(added.iter().cloned());
        self.history.extend(added);
        self.history.make_contiguous().sort_by_key(|(at, _, _)| *at);
    }

    /// Whether judging `d` reaches the breaker and the blast radius, the
    /// checks that read the history: an action, confident enough, in an
    /// allowed namespace.
    pub fn reads_history(&self, d: &Diagnosis) -> bool {
        self.screen(d).is_ok()
    }

    /// The checks before the history: an action, confident enough, in an
    /// allowed namespace; otherwise why only a human is paged.
    fn screen<'d>(&self, d: &'d Diagnosis) -> Result<&'d Action, PageReason> {
        let action = d.action.as_ref().ok_or(PageReason::NoAction)?;
        if d.confidence.is_nan() || d.confidence < self.cfg.confidence_threshold {
            return Err(PageReason::LowConfidence {
                confidence: d.confidence,
                threshold: self.cfg.confidence_threshold,
            });
        }
        if let Some(allowed) = &self.cfg.allowed_namespaces
            && !allowed.contains(action.namespace())
        {
            return Err(PageReason::NamespaceNotAllowed {
                namespace: action.namespace().to_string(),
            });
        }
        Ok(action)
    }

    /// The settings.
    pub fn config(&self) -> &RemediationConfig {
        &self.cfg
    }

    /// The most distinct objects acted on per blast window, given how many
    /// targets have remediation enabled. At least one, so a small cluster
    /// (fewer than four targets) can still be remediated at all.
    pub fn blast_limit(&self, enabled: usize) -> usize {
        // Saturating float-to-int cast of a non-negative share.
        ((self.cfg.blast_radius * enabled as f64).floor() as usize).max(1)
    }

    /// Judges a diagnosis at `now`; `enabled` is the number of
    /// remediation-enabled targets. An `Execute` or `DryRun` verdict is
    /// remembered, so the caller must act on it (or record it) exactly once.
    pub fn judge(&mut self, d: &Diagnosis, enabled: usize, now: DateTime<Utc>) -> Verdict {
        self.forget_before(now);
        let action = match self.screen(d) {
            Ok(a) => a.clone(),
            Err(reason) => return Verdict::PageOnly { reason },
        };
        let object = action.object();
        let attempts = self
            .history
            .iter()
            .filter(|(at, kind, o)| {
                now - *at < self.cfg.breaker_window && *kind == action.kind() && *o == object
            })
            .count();
        if attempts >= self.cfg.breaker_max {
            return Verdict::Escalate { action, attempts };
        }
        let touched: BTreeSet<&str> = self
            .history
            .iter()
            .filter(|(at, _, _)| now - *at < self.cfg.blast_window)
            .map(|(_, _, o)| o.as_str())
            .collect();
        let limit = self.blast_limit(enabled);
        if !touched.contains(object.as_str()) && touched.len() + 1 > limit {
            return Verdict::PageOnly {
                reason: PageReason::BlastRadius {
                    touched: touched.len(),
                    limit,
                    enabled,
                },
            };
        }
        self.history.push_back((now, action.kind(), object));
        match self.cfg.mode {
            RemediationMode::DryRun => Verdict::DryRun { action },
            RemediationMode::Enforce => Verdict::Execute { action },
        }
    }

    fn forget_before(&mut self, now: DateTime<Utc>) {
        let keep = self.cfg.breaker_window.max(self.cfg.blast_window);
        self.claimed.retain(|(at, _, _)| now - *at < keep);
        while self
            .history
            .front()
            .is_some_and(|(at, _, _)| now - *at >= keep)
        {
            self.history.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remediation::incident::Cause;
    use chrono::TimeDelta;
    use proptest::prelude::*;

    fn t(min: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_790_000_000, 0).unwrap() + TimeDelta::minutes(min)
    }

    fn restart(deploy: &str) -> Action {
        Action::Restart {
            namespace: "shop".into(),
            deployment: deploy.into(),
        }
    }

    fn diag(action: Action, confidence: f64) -> Diagnosis {
        Diagnosis {
            cause: Cause::BadDeploy,
            confidence,
            evidence: vec![],
            action: Some(action),
        }
    }

    fn enforce() -> RemediationConfig {
        RemediationConfig {
            mode: RemediationMode::Enforce,
            ..RemediationConfig::default()
        }
    }

    #[test]
    fn dry_run_is_the_default() {
        let mut g = Guardrails::new(RemediationConfig::default());
        let v = g.judge(&diag(restart("a"), 0.9), 4, t(0));
        assert_eq!(
            v,
            Verdict::DryRun {
                action: restart("a")
            }
        );
        assert_eq!(v.executes(), None);
    }

    #[test]
    fn actions_read_from_the_cluster_count_once_each() {
        let cfg = RemediationConfig {
            breaker_max: 3,
            ..enforce()
        };
        let past = |min: i64, deploy: &str| PastAction {
            first: t(min),
            last: t(min),
            count: 1,
            kind: ActionKind::Restart,
            object: format!("shop/{deploy}"),
            id: format!("shop/{deploy}.{min}"),
        };
        // This replica restarted `a` at -20 (its own decision), and its
        // Event landed at -19 after the rollout; the old leader restarted
        // `a` at -5. Two restarts, not three: the fourth-in-an-hour breaker
        // still allows one more.
        let mut g = Guardrails::new(cfg.clone());
        assert!(matches!(
            g.judge(&diag(restart("a"), 0.9), 4, t(-20)),
            Verdict::Execute { .. }
        ));
        g.merge_cluster(&[past(-19, "a"), past(-5, "a")], TimeDelta::minutes(6));
        assert!(matches!(
            g.judge(&diag(restart("a"), 0.9), 4, t(0)),
            Verdict::Execute { .. }
        ));
        assert_eq!(
            g.judge(&diag(restart("a"), 0.9), 4, t(1)),
            Verdict::Escalate {
                action: restart("a"),
                attempts: 3
            }
        );
        // Read again (the Lease lost and won back), the same Events add
        // nothing; a series that grew adds its new occurrence only.
        g.merge_cluster(&[past(-19, "a"), past(-5, "a")], TimeDelta::minutes(6));
        assert_eq!(
            g.judge(&diag(restart("a"), 0.9), 4, t(2)),
            Verdict::Escalate {
                action: restart("a"),
                attempts: 3
            }
        );
        let mut g = Guardrails::new(cfg.clone());
        g.merge_cluster(&[past(-40, "a")], TimeDelta::minutes(6));
        g.merge_cluster(
            &[PastAction {
                last: t(-30),
                count: 2,
                ..past(-40, "a")
            }],
            TimeDelta::minutes(6),
        );
        assert!(matches!(
            g.judge(&diag(restart("a"), 0.9), 4, t(0)),
            Verdict::Execute { .. }
        ));
        assert!(matches!(
            g.judge(&diag(restart("a"), 0.9), 4, t(1)),
            Verdict::Escalate { attempts: 3, .. }
        ));
        // Two restarts decided here (-10 and -3) folded into one Event series (first
        // -9, count 2, last -2): both are decisions already remembered.
        let mut g = Guardrails::new(cfg.clone());
        g.judge(&diag(restart("a"), 0.9), 4, t(-10));
        g.judge(&diag(restart("a"), 0.9), 4, t(-3));
        g.merge_cluster(
            &[PastAction {
                first: t(-9),
                last: t(-2),
                count: 2,
                ..past(-9, "a")
            }],
            TimeDelta::minutes(6),
        );
        assert!(matches!(
            g.judge(&diag(restart("a"), 0.9), 4, t(0)),
            Verdict::Execute { .. }
        ));
        // An Event before the decision, or later than the slack, is
        // another action; so is one on another object.
        let mut g = Guardrails::new(cfg);
        g.judge(&diag(restart("a"), 0.9), 4, t(-30));
        g.merge_cluster(
            &[past(-31, "a"), past(-23, "a"), past(-29, "b")],
            TimeDelta::minutes(6),
        );
        assert_eq!(
            g.judge(&diag(restart("a"), 0.9), 4, t(0)),
            Verdict::Escalate {
                action: restart("a"),
                attempts: 3
            }
        );
        // The blast radius counts the other replica's targets: with 4
        // enabled, one per 10 minutes, and `b` was restarted 3 minutes ago.
        let mut g = Guardrails::new(enforce());
        g.merge_cluster(&[past(-3, "b")], TimeDelta::minutes(6));
        assert!(matches!(
            g.judge(&diag(restart("c"), 0.9), 4, t(0)),
            Verdict::PageOnly {
                reason: PageReason::BlastRadius {
                    touched: 1,
                    limit: 1,
                    ..
                }
            }
        ));
    }

    #[test]
    fn below_the_threshold_only_pages() {
        let mut g = Guardrails::new(enforce());
        let v = g.judge(&diag(restart("a"), 0.84), 4, t(0));
        assert!(matches!(
            v,
            Verdict::PageOnly {
                reason: PageReason::LowConfidence { .. }
            }
        ));
        let v = g.judge(&diag(restart("a"), 0.85), 4, t(0));
        assert!(matches!(v, Verdict::Execute { .. }));
    }

    #[test]
    fn namespaces_outside_the_allow_list_only_page() {
        let mut g = Guardrails::new(RemediationConfig {
            allowed_namespaces: Some(["payments".to_string()].into()),
            ..enforce()
        });
        let v = g.judge(&diag(restart("a"), 0.99), 4, t(0));
        assert!(matches!(
            v,
            Verdict::PageOnly {
                reason: PageReason::NamespaceNotAllowed { .. }
            }
        ));
    }

    #[test]
    fn the_fourth_identical_action_in_an_hour_escalates() {
        let mut g = Guardrails::new(enforce());
        for m in [0, 10, 20] {
            assert!(matches!(
                g.judge(&diag(restart("a"), 0.9), 1, t(m)),
                Verdict::Execute { .. }
            ));
        }
        assert_eq!(
            g.judge(&diag(restart("a"), 0.9), 1, t(59)),
            Verdict::Escalate {
                action: restart("a"),
                attempts: 3
            }
        );
        // A different action on the same target has its own breaker.
        let rb = Action::Rollback {
            namespace: "shop".into(),
            deployment: "a".into(),
            to_revision: None,
        };
        assert!(matches!(
            g.judge(&diag(rb, 0.9), 1, t(59)),
            Verdict::Execute { .. }
        ));
        // An hour after the first, one slot frees up.
        assert!(matches!(
            g.judge(&diag(restart("a"), 0.9), 1, t(60)),
            Verdict::Execute { .. }
        ));
    }

    #[test]
    fn blast_radius_caps_distinct_targets_per_window() {
        let mut g = Guardrails::new(enforce());
        // 8 enabled targets: at most 2 distinct ones per 10 minutes.
        assert!(matches!(
            g.judge(&diag(restart("a"), 0.9), 8, t(0)),
            Verdict::Execute { .. }
        ));
        assert!(matches!(
            g.judge(&diag(restart("b"), 0.9), 8, t(1)),
            Verdict::Execute { .. }
        ));
        assert_eq!(
            g.judge(&diag(restart("c"), 0.9), 8, t(2)),
            Verdict::PageOnly {
                reason: PageReason::BlastRadius {
                    touched: 2,
                    limit: 2,
                    enabled: 8
                }
            }
        );
        // A target already touched may be acted on again.
        assert!(matches!(
            g.judge(&diag(restart("a"), 0.9), 8, t(3)),
            Verdict::Execute { .. }
        ));
        // Once b (touched at minute 1) leaves the window, c may be touched.
        assert!(matches!(
            g.judge(&diag(restart("c"), 0.9), 8, t(10)),
            Verdict::PageOnly { .. }
        ));
        assert!(matches!(
            g.judge(&diag(restart("c"), 0.9), 8, t(11)),
            Verdict::Execute { .. }
        ));
    }

    proptest! {
        /// Whatever arrives, and in either mode, no (action, target) is
        /// decided more than 3 times in any hour, and no 10-minute window
        /// touches more distinct targets than the limit.
        #[test]
        fn guardrails_hold_for_any_sequence(
            steps in prop::collection::vec((0i64..20, 0usize..6, any::<bool>(), 0.5f64..1.0), 1..120),
            enabled in 1usize..20,
            dry in any::<bool>(),
        ) {
            let cfg = RemediationConfig {
                mode: if dry { RemediationMode::DryRun } else { RemediationMode::Enforce },
                ..RemediationConfig::default()
            };
            let mut g = Guardrails::new(cfg);
            let limit = g.blast_limit(enabled);
            let mut now = t(0);
            let mut done: Vec<(DateTime<Utc>, Action)> = vec![];
            for (gap, target, rollback, confidence) in steps {
                now += TimeDelta::minutes(gap);
                let name = format!("d{target}");
                let action = if rollback {
                    Action::Rollback { namespace: "shop".into(), deployment: name, to_revision: None }
                } else {
                    restart(&name)
                };
                match g.judge(&diag(action.clone(), confidence), enabled, now) {
                    Verdict::Execute { action: a } | Verdict::DryRun { action: a } => {
                        prop_assert!(confidence >= 0.85);
                        prop_assert_eq!(&a, &action);
                        done.push((now, a));
                    }
                    _ => {}
                }
            }
            for (i, (at, a)) in done.iter().enumerate() {
                let same = done[..=i]
                    .iter()
                    .filter(|(t2, b)| *at - *t2 < TimeDelta::hours(1) && b == a)
                    .count();
                prop_assert!(same <= 3, "{a:?} decided {same} times within an hour");
                let distinct: BTreeSet<String> = done[..=i]
                    .iter()
                    .filter(|(t2, _)| *at - *t2 < TimeDelta::minutes(10))
                    .map(|(_, b)| b.object())
                    .collect();
                prop_assert!(distinct.len() <= limit);
            }
        }
    }
}
