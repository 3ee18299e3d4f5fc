//! One entry per foresight trigger KEDA has asked about: a ScaledObject and
//! the fingerprint of the trigger's metadata. KEDA names a ScaledObject in
//! its calls but not the trigger, so a ScaledObject with two foresight
//! triggers is told apart by their metadata, and an edit of a trigger's
//! metadata is, to foresight, a new trigger beside the old one: the old one
//! stops being asked about, goes [dormant], and is forgotten after
//! [`DORMANT_FORGET`].

use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::watch;

use super::models::ModelKey;
use super::{METRIC_NAME, MetricTarget, RuntimeConfig};
use crate::domain::{Change, ChangeTracker, Decision, Mode, ScaledObjectKey, ScalerSpec};
use crate::policy::Behavior;
use crate::sources::SourceError;

/// Why a ScaledObject's latest decision must not be served.
#[derive(Debug, Clone)]
pub(crate) enum Fault {
    /// The source rejected one of its queries (a PromQL error, several
    /// series): the caller's mistake, reported as `InvalidArgument` with the
    /// source's own message.
    Rejected(SourceError),
    /// Its data is older than `maxStaleness`: foresight stops answering, so
    /// the HPA keeps the current replica count.
    Stale {
        /// Age of the stalest signal's newest successful read.
        age: TimeDelta,
        /// The ScaledObject's `maxStaleness`.
        max: TimeDelta,
        /// The source's last error, to say why.
        cause: String,
    },
}

/// A stable hash of metadata, independent of map order; lets the hot path
/// recognise unchanged metadata without parsing it.
pub(crate) fn fingerprint(metadata: &HashMap<String, String>) -> u64 {
    let mut pairs: Vec<(&String, &String)> = metadata.iter().collect();
    pairs.sort_unstable();
    let mut h = DefaultHasher::new();
    pairs.hash(&mut h);
    h.finish()
}

/// A trigger's parsed configuration; metadata that differs is another
/// registration.
pub(crate) struct Configured {
    /// Fingerprint of the metadata it was parsed from.
    pub(crate) fingerprint: u64,
    /// The typed spec.
    pub(crate) spec: ScalerSpec,
    /// Policy limits derived from the spec.
    pub(crate) behavior: Behavior,
    /// Per metric (same order as `spec.metrics`): the model that forecasts
    /// it, or `None` when it is never predicted (latency, reactive mode).
    pub(crate) model_keys: Vec<Option<ModelKey>>,
    /// How far back forecasts take part in the replay, and so which
    /// models are trained: long enough for every window the policy keeps
    /// around a forecast (stabilisation and rate periods, the `2 × leadTime`
    /// response check, the lag drain's counts in force, the latency breach
    /// duration), and at least 30 min.
    pub(crate) replay: TimeDelta,
    /// How far back decisions are replayed: `replay`, or longer when a
    /// scale-down from `maxReplicaCount` to `minReplicaCount` at the
    /// configured rate takes longer (see [`descent`]), at most
    /// [`MAX_MEMORY`]. The ticks before `replay` are decided on
    /// observations alone (models that old are not kept by every replica).
    pub(crate) memory: TimeDelta,
}

/// The longest replay: 12 h of 15-second ticks is 2,880 decisions per
/// evaluation (a few ms), and a descent slower than that is cut short.
pub(crate) const MAX_MEMORY: TimeDelta = TimeDelta::hours(12);

/// How often the start of a replay longer than its forecasts' window moves
/// on. The start is the last multiple of this period (counted in ticks
/// since the epoch) at or before `at - memory`, so for a whole period every
/// evaluation replays the observation-only ticks from the same start, and
/// the state they leave can be carried forward one tick at a time
/// ([`super::evaluate::PrefixCache`]) instead of being replayed whole at
/// every tick: 2,060 decisions per evaluation at the defaults, where the
/// forecasts' window is 121. The start is a function of the tick alone, so
/// replicas still agree; the replay is up to one period longer than
/// `memory`, never shorter.
pub(crate) const ANCHOR_PERIOD: TimeDelta = TimeDelta::hours(1);

/// How long the policy can take to come down from `maxReplicaCount` to
/// `minReplicaCount`: the stabilisation window, then one rate period per
/// step, with two periods to spare for steps the HPA's tolerance makes
/// wait. Each replay starts from a fresh state; one shorter than a descent
/// in progress would start below its count and drop to the recommendation
/// in one tick, as serve did (45 → 5 once the load had been low for 30
/// minutes, with 1 pod per 5 minutes configured). Scale-down disabled (no
/// pods, no percentage) never ends, so it is [`MAX_MEMORY`].
pub(crate) fn descent(spec: &ScalerSpec) -> TimeDelta {
    let r = &spec.rules;
    let (max, min) = (spec.max_replicas, spec.min_replicas);
    let by_pods =
        (r.scale_down_pods > 0).then(|| max.saturating_sub(min).div_ceil(r.scale_down_pods));
    let by_percent = (r.scale_down_percent > 0).then(|| {
        if r.scale_down_percent >= 100 {
            return 1;
        }
        let keep = 1.0 - f64::from(r.scale_down_percent) / 100.0;
        let ratio = f64::from(max.max(1)) / f64::from(min.max(1));
        // Saturating float-to-int cast; the cap bounds it anyway.
        (ratio.ln() / -keep.ln()).ceil() as u32
    });
    let periods = match (by_pods, by_percent) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => return MAX_MEMORY,
    };
    let span = r
        .scale_down_period
        .checked_mul(i32::try_from(periods.saturating_add(2)).unwrap_or(i32::MAX))
        .and_then(|d| d.checked_add(&r.scale_down_stabilization))
        .unwrap_or(MAX_MEMORY);
    span.min(MAX_MEMORY)
}

impl Configured {
    /// Where the replay of the decision at `at` starts: `at - memory` when
    /// every replayed tick takes forecasts, otherwise the last anchor (a
    /// multiple of [`ANCHOR_PERIOD`] in ticks since the epoch, plus this
    /// configuration's phase) at or before it. `at` is on the tick grid, as
    /// every evaluation tick is.
    pub(crate) fn replay_start(&self, at: DateTime<Utc>, tick: TimeDelta) -> DateTime<Utc> {
        let earliest = at - self.memory;
        if self.memory <= self.replay {
            return earliest;
        }
        let tick_ms = tick.num_milliseconds().max(1);
        let period = (ANCHOR_PERIOD.num_milliseconds() / tick_ms).max(1);
        let index = earliest.timestamp_millis().div_euclid(tick_ms);
        // Each configuration's anchors at its own phase within the period
        // (from its fingerprint, which every replica computes alike), so
        // the full replays of many configurations do not all fall on the
        // same tick once an hour.
        let phase = i64::try_from(self.fingerprint % period.unsigned_abs()).unwrap_or(0);
        let anchor = (index - phase).div_euclid(period) * period + phase;
        DateTime::from_timestamp_millis(anchor * tick_ms).unwrap_or(earliest)
    }

    /// How far back observations must be kept and backfilled for this
    /// configuration's replays (see [`Self::replay_start`]).
    pub(crate) fn reach(&self) -> TimeDelta {
        if self.memory <= self.replay {
            self.memory
        } else {
            self.memory + ANCHOR_PERIOD
        }
    }

    pub(crate) fn new(fingerprint: u64, spec: ScalerSpec, config: &RuntimeConfig) -> Arc<Self> {
        let tick = TimeDelta::from_std(config.tick).unwrap_or(TimeDelta::seconds(15));
        let r = &spec.rules;
        let replay = [
            TimeDelta::minutes(30),
            r.scale_down_stabilization + r.scale_down_period.max(r.scale_up_period),
            spec.lead_time * 2 + tick,
            // The lag drain's memory of the counts in force.
            crate::policy::counts_window(spec.lead_time) + tick,
            r.latency_breach_duration + tick,
        ]
        .into_iter()
        .max()
        .unwrap_or(TimeDelta::minutes(30));
        // Whole ticks, so every replica replays the same instants.
        let tick_ms = tick.num_milliseconds().max(1);
        let whole = |d: TimeDelta| {
            TimeDelta::milliseconds((d.num_milliseconds() + tick_ms - 1) / tick_ms * tick_ms)
        };
        let memory = whole(replay.max(descent(&spec)));
        let replay = whole(replay);
        let model_keys = spec
            .metrics
            .iter()
            .map(|m| {
                (spec.mode != Mode::Reactive && m.kind.is_additive())
                    .then(|| ModelKey::new(&m.query, m.target, &spec))
            })
            .collect();
        Arc::new(Self {
            fingerprint,
            behavior: Behavior::from_spec(&spec),
            spec,
            model_keys,
            replay,
            memory,
        })
    }
}

/// How long a dormant trigger (one not asked about since a newer trigger of
/// its ScaledObject registered: an edit of its metadata, most likely) is
/// kept after its last call. A second foresight trigger of the same
/// ScaledObject is called again within KEDA's polling interval and so
/// wakes up well within this; an edited-away one is never called again.
pub(crate) const DORMANT_FORGET: TimeDelta = TimeDelta::minutes(10);

/// The short name of a trigger in logs, `/metrics` (`trigger` label) and
/// explanations: the fingerprint of its metadata, in 8 hex digits, which
/// every replica of one version computes alike.
pub(crate) fn trigger_id(fingerprint: u64) -> String {
    format!("{:08x}", fingerprint >> 32)
}

/// The default of [`super::RuntimeConfig::dormant_gap`]: how much longer
/// ago a trigger was last asked about than another trigger of its
/// ScaledObject before it counts as gone (removed from the ScaledObject, or
/// edited away and back). KEDA asks about every trigger of a ScaledObject
/// in the same loop (the operator's `IsActive` poll, the HPA's metrics
/// sync), so live triggers' last calls are seconds apart whatever the
/// polling interval.
pub(crate) const DORMANT_GAP: TimeDelta = TimeDelta::minutes(2);

/// Which registrations of `regs` are dormant: not asked about by KEDA since
/// another trigger of their ScaledObject was first registered (an edit: at
/// once), or asked about last more than `gap` before another was
/// (a trigger removed, or an edit reverted to metadata registered before).
/// A second trigger of a ScaledObject is asked about at every poll, so it
/// wakes at its next call.
pub(crate) fn dormant(
    regs: &[Arc<Registration>],
    gap: TimeDelta,
) -> HashSet<(ScaledObjectKey, u64)> {
    let mut siblings: HashMap<&ScaledObjectKey, Vec<&Registration>> = HashMap::new();
    for r in regs {
        siblings.entry(r.key()).or_default().push(r);
    }
    regs.iter()
        .filter(|r| {
            let seen = r.last_seen();
            siblings[r.key()].iter().any(|s| {
                s.fingerprint() != r.fingerprint()
                    && (s.created > seen || s.last_seen() - seen > gap)
            })
        })
        .map(|r| (r.key().clone(), r.fingerprint()))
        .collect()
}

/// Live state of one foresight trigger of one ScaledObject.
pub(crate) struct Registration {
    /// Which ScaledObject.
    key: ScaledObjectKey,
    /// The configuration, parsed from this trigger's metadata.
    configured: Arc<Configured>,
    /// When it was first asked about: a sibling not called since then has
    /// been edited away (see [`dormant`]).
    created: DateTime<Utc>,
    /// Metric spec served to KEDA; notifies `StreamMetricSpec` on change.
    target: watch::Sender<MetricTarget>,
    /// Latest decision; `None` until the first evaluation succeeds.
    decisions: watch::Sender<Option<Arc<Decision>>>,
    /// Names of the signals raised at the last tick, to log changes once.
    raised: Mutex<Vec<&'static str>>,
    /// The last change of the published count: the next is a flap on
    /// `/metrics` when it reverses it sooner than the backtest allows.
    changes: Mutex<ChangeTracker>,
    /// Last call from KEDA, epoch ms; idle registrations are forgotten.
    last_seen_ms: AtomicI64,
    /// Why there is no decision yet, for `NotReady` errors.
    waiting_reason: Mutex<String>,
    /// Bumped on (re-)configuration and when a model its decisions use
    /// arrives, so the next wake-up evaluates at once.
    wanted: AtomicU64,
    /// The value of `wanted` when the latest evaluation began: below
    /// `wanted`, an evaluation is owed.
    taken: AtomicU64,
    /// The value of `taken` when the latest evaluation was settled: below
    /// `wanted`, what is published may predate a model this replica has,
    /// and a peer that has it could answer differently (see
    /// [`Registration::up_to_date`]).
    settled: AtomicU64,
    /// The last evaluation found no data while every read at its tick
    /// succeeded (a query that matches nothing): every replica answers it
    /// alike, so it does not hold readiness. Not so when a read failed
    /// here, which a peer may not have.
    no_data: std::sync::atomic::AtomicBool,
    /// Why the latest decision must not be served; watched so a first call
    /// waiting for a decision also ends on a fault.
    fault: watch::Sender<Option<Fault>>,
}

impl Registration {
    pub(crate) fn new(
        key: ScaledObjectKey,
        configured: Arc<Configured>,
        created: DateTime<Utc>,
    ) -> Self {
        Self {
            key,
            configured,
            // At the resolution of `last_seen` (ms): compared with a
            // sibling's last call, a finer `created` made a call in the same
            // millisecond count as before it, and that sibling dormant for
            // good (`tests/cli_explain.rs` caught it, one run in two).
            created: DateTime::from_timestamp_millis(created.timestamp_millis()).unwrap_or(created),
            target: watch::channel(MetricTarget {
                name: METRIC_NAME.to_string(),
                target: 1.0,
            })
            .0,
            decisions: watch::channel(None).0,
            raised: Mutex::new(Vec::new()),
            changes: Mutex::new(ChangeTracker::default()),
            last_seen_ms: AtomicI64::new(0),
            waiting_reason: Mutex::new("waiting for the first evaluation".into()),
            wanted: AtomicU64::new(1),
            taken: AtomicU64::new(0),
            settled: AtomicU64::new(0),
            no_data: std::sync::atomic::AtomicBool::new(false),
            fault: watch::channel(None).0,
        }
    }

    pub(crate) fn key(&self) -> &ScaledObjectKey {
        &self.key
    }

    pub(crate) fn fingerprint(&self) -> u64 {
        self.configured.fingerprint
    }

    /// See [`trigger_id`].
    pub(crate) fn trigger(&self) -> String {
        trigger_id(self.configured.fingerprint)
    }

    pub(crate) fn configured(&self) -> Arc<Configured> {
        Arc::clone(&self.configured)
    }

    /// Records whether the last evaluation found no data on reads that all
    /// succeeded.
    pub(crate) fn set_no_data(&self, clean: bool) {
        self.no_data.store(clean, Ordering::Release);
    }

    /// See [`Self::set_no_data`].
    pub(crate) fn no_data(&self) -> bool {
        self.no_data.load(Ordering::Acquire)
    }

    /// Whether an evaluation has settled (with a decision, a fault, or no
    /// data): a call without a decision then gets that answer at once
    /// instead of waiting for one.
    pub(crate) fn answered(&self) -> bool {
        self.settled.load(Ordering::Acquire) > 0
    }

    pub(crate) fn needs_evaluation(&self) -> bool {
        self.taken.load(Ordering::Acquire) < self.wanted.load(Ordering::Acquire)
    }

    /// Records that an evaluation starts, before it reads the models: a
    /// model that arrives after that read marks the registration again,
    /// and the mark survives the evaluation's publish, so the tick is
    /// replayed once more with it. (Clearing on publish instead lost such
    /// marks, and a replica could serve a decision missing a model it
    /// already had until the next tick, disagreeing with its peers.)
    pub(crate) fn begin_evaluation(&self) {
        self.taken
            .store(self.wanted.load(Ordering::Acquire), Ordering::Release);
    }

    /// Records that the evaluation begun last has been published (or has
    /// failed for a reason of its own).
    pub(crate) fn settle_evaluation(&self) {
        self.settled
            .store(self.taken.load(Ordering::Acquire), Ordering::Release);
    }

    /// Whether the latest settled evaluation began after every model and
    /// configuration change: readiness waits for this, or a replica that has
    /// just trained its last model would be routed KEDA's calls while still
    /// serving the decision it made without it (in 2 of 19 runs of
    /// `tests/replica_agreement.rs`'s holding case, the later replica's
    /// rolling live MASE differed at the first tick both were asked about).
    pub(crate) fn up_to_date(&self) -> bool {
        self.settled.load(Ordering::Acquire) >= self.wanted.load(Ordering::Acquire)
    }

    pub(crate) fn touch(&self, now: DateTime<Utc>) {
        self.last_seen_ms
            .store(now.timestamp_millis(), Ordering::Relaxed);
    }

    pub(crate) fn last_seen(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.last_seen_ms.load(Ordering::Relaxed))
            .unwrap_or_default()
    }

    pub(crate) fn target_rx(&self) -> watch::Receiver<MetricTarget> {
        self.target.subscribe()
    }

    pub(crate) fn decisions_rx(&self) -> watch::Receiver<Option<Arc<Decision>>> {
        self.decisions.subscribe()
    }

    /// Records the published count going from `before` to `after` at `t`;
    /// the change, if it is one.
    pub(crate) fn record_change(
        &self,
        t: DateTime<Utc>,
        before: u32,
        after: u32,
    ) -> Option<Change> {
        self.changes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record(t, before, after)
    }

    /// Records the signals raised now; returns those that were not raised
    /// at the previous tick.
    pub(crate) fn raise(&self, names: Vec<&'static str>) -> Vec<&'static str> {
        let mut raised = self.raised.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = names
            .iter()
            .copied()
            .filter(|n| !raised.contains(n))
            .collect();
        *raised = names;
        fresh
    }

    /// Flags the registration for evaluation at the next wake-up.
    pub(crate) fn mark_for_evaluation(&self) {
        self.wanted.fetch_add(1, Ordering::AcqRel);
    }

    /// The latest decision, if any.
    pub(crate) fn latest(&self) -> Option<Arc<Decision>> {
        self.decisions.borrow().clone()
    }

    pub(crate) fn publish(&self, d: Decision) {
        self.decisions.send_replace(Some(Arc::new(d)));
    }

    pub(crate) fn set_waiting_reason(&self, reason: String) {
        *self
            .waiting_reason
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = reason;
    }

    /// Records (or clears) why the latest decision must not be served.
    pub(crate) fn set_fault(&self, fault: Option<Fault>) {
        self.fault.send_if_modified(|f| {
            let changed = f.is_some() || fault.is_some();
            *f = fault;
            changed
        });
    }

    pub(crate) fn fault(&self) -> Option<Fault> {
        self.fault.borrow().clone()
    }

    pub(crate) fn fault_rx(&self) -> watch::Receiver<Option<Fault>> {
        self.fault.subscribe()
    }

    pub(crate) fn waiting_reason(&self) -> String {
        self.waiting_reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_ignores_map_order() {
        let a: HashMap<String, String> = [("a", "1"), ("b", "2"), ("c", "3")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut b = HashMap::new();
        for k in ["c", "a", "b"] {
            b.insert(k.to_string(), a[k].clone());
        }
        assert_eq!(fingerprint(&a), fingerprint(&b));
        b.insert("c".into(), "4".into());
        assert_ne!(fingerprint(&a), fingerprint(&b));
    }

    fn registration(target: &str, created: DateTime<Utc>) -> Arc<Registration> {
        let m: HashMap<String, String> = [("connectionsQuery", "q"), ("connectionsTarget", target)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let spec = crate::config::parse_metadata(&m).unwrap();
        let cfg = Configured::new(fingerprint(&m), spec, &RuntimeConfig::default());
        let reg = Arc::new(Registration::new(
            ScaledObjectKey::new("ns", "so"),
            cfg,
            created,
        ));
        reg.touch(created);
        reg
    }

    #[test]
    fn a_trigger_not_called_since_a_newer_one_came_is_dormant() {
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let at = |s: i64| t0 + TimeDelta::seconds(s);
        let (a, b) = (registration("1", at(0)), registration("2", at(30)));
        let id = |r: &Arc<Registration>| (r.key().clone(), r.fingerprint());
        // `b` came after `a`'s last call: an edit, until `a` is called again.
        assert_eq!(
            dormant(&[Arc::clone(&a), Arc::clone(&b)], DORMANT_GAP),
            HashSet::from([id(&a)])
        );
        // Called again: a second trigger of the same ScaledObject, both live.
        a.touch(at(45));
        assert!(dormant(&[Arc::clone(&a), Arc::clone(&b)], DORMANT_GAP).is_empty());
        // Another ScaledObject's trigger never makes one dormant.
        let other = Arc::new(Registration::new(
            ScaledObjectKey::new("ns", "other"),
            a.configured(),
            at(60),
        ));
        other.touch(at(60));
        assert!(dormant(&[Arc::clone(&a), Arc::clone(&b), other], DORMANT_GAP).is_empty());
        // Three edits in a row: only the newest is live.
        let c = registration("3", at(90));
        assert_eq!(
            dormant(
                &[Arc::clone(&a), Arc::clone(&b), Arc::clone(&c)],
                DORMANT_GAP
            ),
            HashSet::from([id(&a), id(&b)])
        );
        // A trigger removed from the ScaledObject (or an edit reverted to
        // older metadata): asked about no more while another still is. Not
        // dormant while the gap is within a poll's spread...
        let (d, e) = (registration("4", at(0)), registration("5", at(0)));
        d.touch(at(300));
        e.touch(at(300) + DORMANT_GAP);
        assert!(dormant(&[Arc::clone(&d), Arc::clone(&e)], DORMANT_GAP).is_empty());
        // ...but once the other has been asked about for longer.
        e.touch(at(301) + DORMANT_GAP);
        assert_eq!(
            dormant(&[Arc::clone(&d), Arc::clone(&e)], DORMANT_GAP),
            HashSet::from([id(&d)])
        );
        // A sibling's call in the same millisecond as another's creation
        // is not before it.
        let t = at(1000) + TimeDelta::microseconds(100);
        let (f, g) = (registration("6", at(1000)), registration("7", t));
        f.touch(t + TimeDelta::microseconds(300));
        assert!(dormant(&[Arc::clone(&f), Arc::clone(&g)], DORMANT_GAP).is_empty());
        assert_ne!(a.trigger(), b.trigger());
        assert_eq!(a.trigger().len(), 8);
    }

    #[test]
    fn a_mark_made_during_an_evaluation_survives_its_publish() {
        let meta: HashMap<String, String> = [("connectionsQuery", "q"), ("connectionsTarget", "1")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let spec = crate::config::parse_metadata(&meta).unwrap();
        let cfg = Configured::new(fingerprint(&meta), spec, &RuntimeConfig::default());
        let reg = Registration::new(ScaledObjectKey::new("ns", "so"), cfg, Utc::now());
        assert!(!reg.answered());
        assert!(
            reg.needs_evaluation(),
            "a new registration is evaluated at once"
        );
        reg.begin_evaluation();
        assert!(!reg.needs_evaluation());
        // A model arrives after the evaluation read the model table...
        reg.mark_for_evaluation();
        // ...and the evaluation then publishes what it computed without it.
        reg.set_fault(None);
        reg.set_waiting_reason("x".into());
        reg.settle_evaluation();
        assert!(
            reg.needs_evaluation(),
            "the tick must be replayed again with the new model"
        );
        assert!(!reg.up_to_date(), "what is published lacks the new model");
        reg.begin_evaluation();
        assert!(!reg.needs_evaluation());
        assert!(!reg.up_to_date(), "not until the replay is settled");
        reg.settle_evaluation();
        assert!(reg.up_to_date() && reg.answered());
    }
}
