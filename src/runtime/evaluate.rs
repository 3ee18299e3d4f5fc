//! Decisions as a pure function of tick-aligned data: the policy is replayed
//! from a fresh state over the ticks of the replay window, so the decision at
//! a tick depends only on the observations and models of that window, never
//! on when this process started or which calls it received. Two replicas of
//! foresight with the same data therefore give the same answer, and a
//! restart loses no stabilisation or rate-limit state.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};

use super::models::ModelTable;
use super::observations::ObservationCache;
use super::registry::Configured;
use crate::domain::{Decision, Mode};
use crate::forecast::Trained;
use crate::policy::{
    ForecastInput, MetricInput, Observation, Plan, PolicyError, PolicyState, decide, holding_plan,
};

/// Identifies one plan: the configuration (its fingerprint covers every
/// rule the plan depends on), the signal's index in it, and the forecast's
/// start (one per trained model).
type PlanKey = (u64, usize, DateTime<Utc>);

/// `mode: holding`'s plans, kept across evaluations: every evaluation
/// replays its window from a fresh state, and without this each replay
/// rebuilt the plan of every model in the window (2-4 ms per configuration
/// at 16 modelled needs, 50-100 ms at 64, every tick). The training workers
/// build each new model's plans before the model is published
/// ([`PlanCache::insert_built`]), so a replay builds one only for a
/// configuration registered after its model was trained.
#[derive(Default)]
pub(crate) struct PlanCache {
    /// Each plan with the model it was built for: a key whose model was
    /// replaced (dropped and trained again) must not get the old plan.
    plans: HashMap<PlanKey, Kept>,
    /// Keys used since the last [`PlanCache::sweep`], so plans of models
    /// that left every window are dropped.
    used: HashSet<PlanKey>,
    /// How long each plan built by a replay since the last
    /// [`PlanCache::take_builds`] took, for `/metrics`.
    builds: Vec<Duration>,
}

/// One kept plan.
struct Kept {
    /// The model it was built for.
    trained: Arc<Trained>,
    /// The plan.
    plan: Arc<Plan>,
    /// Built at training and not used by a replay yet: its model may not be
    /// active yet (it activates a little after its boundary), so sweeps
    /// keep it until a replay uses it or a newer plan of its configuration
    /// and signal is used.
    fresh: bool,
}

/// Builds the plan for signal `index` of `cfg` under `trained`'s model, as
/// the policy would; `None` when it cannot be built (the policy then says
/// why in the decision).
pub(crate) fn build_plan(cfg: &Configured, trained: &Trained) -> Option<Plan> {
    holding_plan(&cfg.behavior, &ForecastInput::from_trained(trained)).ok()
}

impl PlanCache {
    /// The plan for signal `index` of `cfg` under `trained`'s model, built
    /// if not kept; `None` when it cannot be built.
    fn get(&mut self, cfg: &Configured, index: usize, trained: &Arc<Trained>) -> Option<Arc<Plan>> {
        let key = (cfg.fingerprint, index, trained.forecast.start);
        self.used.insert(key);
        if let Some(kept) = self.plans.get_mut(&key)
            && Arc::ptr_eq(&kept.trained, trained)
        {
            kept.fresh = false;
            return Some(Arc::clone(&kept.plan));
        }
        let started = Instant::now();
        let plan = Arc::new(build_plan(cfg, trained)?);
        self.builds.push(started.elapsed());
        self.plans.insert(
            key,
            Kept {
                trained: Arc::clone(trained),
                plan: Arc::clone(&plan),
                fresh: false,
            },
        );
        Some(plan)
    }

    /// Keeps a plan built at training for signal `index` of the
    /// configuration `fingerprint` under `trained`'s model, before the
    /// model is published, so no replay builds it.
    pub(crate) fn insert_built(
        &mut self,
        fingerprint: u64,
        index: usize,
        trained: &Arc<Trained>,
        plan: Plan,
    ) {
        self.plans.insert(
            (fingerprint, index, trained.forecast.start),
            Kept {
                trained: Arc::clone(trained),
                plan: Arc::new(plan),
                fresh: true,
            },
        );
    }

    /// After an evaluation of the configurations `evaluated`: drops their
    /// plans that no replay used (but fresh ones newer than every plan of
    /// their signal that was used), and every plan of a configuration no
    /// longer in `live`.
    pub(crate) fn sweep(&mut self, evaluated: &HashSet<u64>, live: &HashSet<u64>) {
        let used = std::mem::take(&mut self.used);
        let mut newest: HashMap<(u64, usize), DateTime<Utc>> = HashMap::new();
        for k in &used {
            let n = newest.entry((k.0, k.1)).or_insert(k.2);
            *n = (*n).max(k.2);
        }
        self.plans.retain(|k, kept| {
            let waiting = kept.fresh && newest.get(&(k.0, k.1)).is_none_or(|n| k.2 > *n);
            live.contains(&k.0) && (!evaluated.contains(&k.0) || used.contains(k) || waiting)
        });
    }

    /// How long each plan built by a replay since the last call took.
    pub(crate) fn take_builds(&mut self) -> Vec<Duration> {
        std::mem::take(&mut self.builds)
    }

    /// Plans kept.
    pub(crate) fn len(&self) -> usize {
        self.plans.len()
    }

    /// Heap bytes of the plans kept (their decision tables).
    pub(crate) fn bytes(&self) -> usize {
        self.plans.values().map(|k| k.plan.heap_bytes()).sum()
    }
}

/// The tick-aligned instants of `[to - span, to]`.
pub(crate) fn ticks(
    to: DateTime<Utc>,
    span: TimeDelta,
    tick: TimeDelta,
) -> impl Iterator<Item = DateTime<Utc>> {
    let n = (span.num_milliseconds() / tick.num_milliseconds().max(1)).max(0);
    (0..=n)
        .rev()
        .map(move |k| to - tick * i32::try_from(k).unwrap_or(0))
}

/// The policy state left by the observation-only ticks of each
/// configuration's replay (those before its forecasts' window), carried
/// forward one tick per evaluation while the replay's start stays put (see
/// [`Configured::replay_start`]). A replay then decides the forecasts'
/// window alone, 121 ticks at the defaults, instead of 2,060.
///
/// The carried state is exactly what a replay from the start would reach:
/// those ticks read nothing but observations, and a state is dropped when
/// its start moves on, or when a query's past ticks were written again (a
/// backfill, or ticks read again after an outage), which is what
/// [`ObservationCache::revision`] tells.
#[derive(Default)]
pub(crate) struct PrefixCache {
    /// Configuration fingerprint → its carried state.
    prefixes: HashMap<u64, Prefix>,
    /// Fingerprints used since the last [`PrefixCache::sweep`], so states
    /// of configurations no longer evaluated are dropped.
    used: HashSet<u64>,
    /// Observation-only ticks decided, so tests can tell a carried state
    /// from one replayed from its start.
    decided: u64,
}

/// One configuration's carried state.
struct Prefix {
    /// The replay start it was carried from.
    start: DateTime<Utc>,
    /// The last tick it includes.
    through: DateTime<Utc>,
    /// The revisions of the configuration's queries it was read at.
    revisions: Vec<Option<u64>>,
    /// The policy state after `through`.
    state: PolicyState,
}

impl PrefixCache {
    /// The state a replay from `start` reaches after the ticks before
    /// `end` (exclusive), all decided on observations alone.
    fn state_before(
        &mut self,
        cfg: &Configured,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        tick: TimeDelta,
        cache: &ObservationCache,
    ) -> PolicyState {
        if start >= end {
            return PolicyState::default();
        }
        let last = end - tick;
        let revisions: Vec<Option<u64>> = cfg
            .spec
            .metrics
            .iter()
            .map(|m| cache.revision(&m.query))
            .collect();
        self.used.insert(cfg.fingerprint);
        let carried = self
            .prefixes
            .remove(&cfg.fingerprint)
            .filter(|p| p.start == start && p.revisions == revisions && p.through <= last);
        let (mut state, mut t) = match carried {
            Some(p) => (p.state, p.through + tick),
            None => (PolicyState::default(), start),
        };
        while t <= last {
            let metrics = cfg
                .spec
                .metrics
                .iter()
                .map(|m| MetricInput {
                    kind: m.kind,
                    target: m.target,
                    observed: cache.value(&m.query, t),
                    forecast: None,
                    forecast_note: None,
                })
                .collect();
            let obs = Observation {
                metrics,
                last_remediation: cfg.spec.last_remediation,
            };
            if let Ok((_, next)) = decide(&cfg.behavior, &obs, &state, t) {
                state = next;
            }
            self.decided += 1;
            t += tick;
        }
        self.prefixes.insert(
            cfg.fingerprint,
            Prefix {
                start,
                through: last,
                revisions,
                state: state.clone(),
            },
        );
        state
    }

    /// Drops the states of configurations no longer registered (`live`),
    /// and of those `evaluated` since the last sweep without using theirs
    /// (their replay has no observation-only ticks any more). An evaluation
    /// of a few ScaledObjects (a new one, say) keeps everyone else's.
    pub(crate) fn sweep(&mut self, evaluated: &HashSet<u64>, live: &HashSet<u64>) {
        let used = std::mem::take(&mut self.used);
        self.prefixes
            .retain(|fp, _| live.contains(fp) && (!evaluated.contains(fp) || used.contains(fp)));
    }

    /// Observation-only ticks decided since the last call.
    #[cfg(test)]
    pub(crate) fn take_decided(&mut self) -> u64 {
        std::mem::take(&mut self.decided)
    }
}

/// Replays the policy over the window ending at `at` and returns the
/// decision at `at`.
pub(crate) fn replay(
    cfg: &Configured,
    at: DateTime<Utc>,
    tick: TimeDelta,
    cache: &ObservationCache,
    models: &ModelTable,
    plans: &mut PlanCache,
    prefixes: &mut PrefixCache,
) -> Result<Decision, PolicyError> {
    let holding = cfg.behavior.mode == Mode::Holding;
    // Older ticks only carry the state (a long descent) forward, on
    // observations alone: the models of that time are kept by a replica
    // that was running then but not trained by one started since, and the
    // two must agree.
    let start = cfg.replay_start(at, tick);
    let forecasts_from = (at - cfg.replay).max(start);
    let mut state = prefixes.state_before(cfg, start, forecasts_from, tick, cache);
    let mut last = Err(PolicyError::NoData);
    for t in ticks(at, at - forecasts_from, tick) {
        let is_now = t == at;
        let trained: Vec<Option<&Arc<Trained>>> = cfg
            .model_keys
            .iter()
            .map(|key| key.as_ref().and_then(|k| models.at(k, t)))
            .collect();
        let kept: Vec<Option<Arc<Plan>>> = trained
            .iter()
            .enumerate()
            .map(|(i, tr)| {
                let tr = tr.filter(|tr| holding && tr.need.is_some())?;
                plans.get(cfg, i, tr)
            })
            .collect();
        let metrics: Vec<MetricInput<'_>> = cfg
            .spec
            .metrics
            .iter()
            .zip(&cfg.model_keys)
            .zip(trained.iter().zip(&kept))
            .map(|((m, key), (trained, plan))| {
                let forecast_note = match (key, trained, is_now) {
                    (Some(k), None, true) => Some(format!(
                        "forecast unavailable ({})",
                        models.last_error(k).unwrap_or("first training pending")
                    )),
                    _ => None,
                };
                MetricInput {
                    kind: m.kind,
                    target: m.target,
                    observed: cache.value(&m.query, t),
                    forecast: trained.map(|tr| ForecastInput {
                        plan: plan.as_ref(),
                        ..ForecastInput::from_trained(tr)
                    }),
                    forecast_note,
                }
            })
            .collect();
        let obs = Observation {
            metrics,
            last_remediation: cfg.spec.last_remediation,
        };
        match decide(&cfg.behavior, &obs, &state, t) {
            Ok((d, next)) => {
                state = next;
                last = Ok(d);
            }
            Err(e) => last = Err(e),
        }
    }
    let mut d = last?;
    for m in &cfg.spec.metrics {
        if let Some(e) = cache.error(&m.query, at) {
            d.notes.push(format!("{}: {e}", m.kind));
        }
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::registry::ANCHOR_PERIOD;

    /// `replay` with a prefix cache of its own, which must decide.
    fn replay_fresh(
        cfg: &Configured,
        at: DateTime<Utc>,
        tick: TimeDelta,
        cache: &ObservationCache,
        models: &ModelTable,
        plans: &mut PlanCache,
    ) -> Decision {
        replay(
            cfg,
            at,
            tick,
            cache,
            models,
            plans,
            &mut PrefixCache::default(),
        )
        .unwrap()
    }

    #[test]
    fn ticks_cover_the_window_oldest_first() {
        let to = DateTime::from_timestamp(1_000, 0).unwrap();
        let t: Vec<i64> = ticks(to, TimeDelta::seconds(45), TimeDelta::seconds(15))
            .map(|t| t.timestamp())
            .collect();
        assert_eq!(t, vec![955, 970, 985, 1_000]);
    }

    /// A reactive configuration scaled to 45 pods' worth of load, which
    /// falls to 5 pods' worth at `drop`; one observation per tick from two
    /// hours before the drop to `until` after it.
    fn descent_setup(
        extra: &[(&str, &str)],
        until: TimeDelta,
    ) -> (Arc<Configured>, ObservationCache, DateTime<Utc>) {
        let meta: std::collections::HashMap<String, String> = [
            ("queueDepthQuery", "q"),
            ("queueDepthTarget", "10"),
            ("mode", "reactive"),
            ("minReplicaCount", "1"),
            ("maxReplicaCount", "50"),
        ]
        .iter()
        .chain(extra)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let config = crate::runtime::RuntimeConfig::default();
        let spec = crate::config::parse_metadata(&meta).unwrap();
        let cfg = Configured::new(super::super::registry::fingerprint(&meta), spec, &config);
        let drop = DateTime::from_timestamp(1_700_006_400, 0).unwrap();
        let mut cache = ObservationCache::default();
        let tick = TimeDelta::seconds(15);
        for t in ticks(drop + until, TimeDelta::hours(2) + until, tick) {
            cache.insert("q", t, Ok(Some(if t < drop { 450.0 } else { 50.0 })));
        }
        (cfg, cache, drop)
    }

    #[test]
    fn a_descent_longer_than_the_forecast_window_keeps_its_rate() {
        // 1 pod per 5 minutes after a 5-minute window: 45 → 5 takes 205
        // minutes, far past the 30 minutes forecasts are replayed over.
        let until = TimeDelta::minutes(90);
        let (cfg, cache, drop) = descent_setup(&[], until);
        assert_eq!(cfg.replay, TimeDelta::minutes(30));
        // (50 − 1) steps and 2 to spare, 5 minutes each, after the window.
        assert_eq!(cfg.memory, TimeDelta::minutes(5 + 51 * 5));
        let tick = TimeDelta::seconds(15);
        let models = ModelTable::new(std::time::Duration::from_secs(3_600));
        let at_minute = |m: i64| {
            replay_fresh(
                &cfg,
                drop + TimeDelta::minutes(m),
                tick,
                &cache,
                &models,
                &mut PlanCache::default(),
            )
            .desired_replicas
        };
        assert_eq!(at_minute(-1), 45);
        // Each minute's replay starts far enough back to know the count
        // it inherits: one pod per 5 minutes all the way, where a replay
        // of 30 minutes fell to 5 at once after the load had been low for
        // that long.
        // (The HPA's tolerance makes the steps 5 pods, each followed by 25
        // quiet minutes, so the rate holds on average.)
        let counts: Vec<u32> = (0..=90).map(at_minute).collect();
        for (m, w) in counts.windows(2).enumerate() {
            assert!(w[1] <= w[0] && w[0] - w[1] <= 5, "minute {m}: {counts:?}");
        }
        for (m, c) in counts.iter().enumerate() {
            let average = 45 - m as u32 / 5;
            assert!(c + 5 >= average, "minute {m}: {counts:?}");
        }
        assert_eq!(counts[90], 27, "{counts:?}");
    }

    /// A load that moves every few minutes, so the state the
    /// observation-only ticks leave (a descent in progress, its rate
    /// periods and stabilisation window) differs from tick to tick.
    fn wandering_cache(
        cfg: &Configured,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> ObservationCache {
        let mut cache = ObservationCache::default();
        let tick = TimeDelta::seconds(15);
        for t in ticks(to, to - from + cfg.reach(), tick) {
            let minute = t.timestamp() / 60;
            let wave = (minute as f64 / 37.0).sin() * 180.0 + (minute as f64 / 11.0).cos() * 60.0;
            let spike = if minute % 97 < 4 { 250.0 } else { 0.0 };
            cache.insert("q", t, Ok(Some((240.0 + wave + spike).max(0.0))));
        }
        cache
    }

    #[test]
    fn a_carried_prefix_decides_as_a_replay_from_the_start_would() {
        let (cfg, _, drop) = descent_setup(&[], TimeDelta::zero());
        assert!(
            cfg.memory > cfg.replay,
            "the replay has observation-only ticks"
        );
        let tick = TimeDelta::seconds(15);
        let models = ModelTable::new(std::time::Duration::from_secs(3_600));
        // Three hours of ticks: the start moves on three times.
        let (from, to) = (drop, drop + TimeDelta::hours(3));
        let cache = wandering_cache(&cfg, from, to);
        let mut carried = PrefixCache::default();
        let (mut fresh_ticks, mut changes, mut t) = (0, 0, from);
        let mut previous = None;
        while t <= to {
            let mut fresh = PrefixCache::default();
            let a = replay(
                &cfg,
                t,
                tick,
                &cache,
                &models,
                &mut PlanCache::default(),
                &mut carried,
            )
            .unwrap();
            let b = replay(
                &cfg,
                t,
                tick,
                &cache,
                &models,
                &mut PlanCache::default(),
                &mut fresh,
            )
            .unwrap();
            assert_eq!(a, b, "at {t}");
            fresh_ticks += fresh.take_decided();
            changes += u32::from(previous.is_some_and(|p| p != a.desired_replicas));
            previous = Some(a.desired_replicas);
            t += tick;
        }
        assert!(
            changes >= 10,
            "the count moved {changes} times: the test needs a moving state"
        );
        // Carried: one full replay per start (four), one tick per
        // evaluation otherwise.
        let evaluations = 3 * 240 + 1;
        let carried_ticks = carried.take_decided();
        let per_start = u64::try_from(((cfg.reach() - cfg.replay).num_seconds()) / 15).unwrap();
        assert!(
            carried_ticks <= evaluations + 4 * per_start,
            "carried {carried_ticks} ticks against {fresh_ticks} replayed"
        );
        assert!(
            fresh_ticks > 10 * carried_ticks,
            "carried {carried_ticks}, replayed {fresh_ticks}"
        );
    }

    #[test]
    fn a_past_tick_written_again_starts_the_carried_state_over() {
        let (cfg, _, drop) = descent_setup(&[], TimeDelta::zero());
        let tick = TimeDelta::seconds(15);
        let models = ModelTable::new(std::time::Duration::from_secs(3_600));
        let at = drop + TimeDelta::minutes(20);
        let mut cache = wandering_cache(&cfg, drop, at + TimeDelta::minutes(5));
        let mut carried = PrefixCache::default();
        replay(
            &cfg,
            at,
            tick,
            &cache,
            &models,
            &mut PlanCache::default(),
            &mut carried,
        )
        .unwrap();
        carried.take_decided();
        // An outage's ticks, read again once the source is back: two hours
        // of a far higher load, inside the observation-only ticks.
        let start = cfg.replay_start(at + tick, tick);
        for t in ticks(start + TimeDelta::hours(2), TimeDelta::hours(2), tick) {
            cache.insert("q", t, Ok(Some(900.0)));
        }
        let a = replay(
            &cfg,
            at + tick,
            tick,
            &cache,
            &models,
            &mut PlanCache::default(),
            &mut carried,
        )
        .unwrap();
        let b = replay_fresh(
            &cfg,
            at + tick,
            tick,
            &cache,
            &models,
            &mut PlanCache::default(),
        );
        assert_eq!(a, b);
        assert!(
            carried.take_decided() > 100,
            "the rewritten ticks were replayed, not carried over"
        );
    }

    #[test]
    fn a_long_replay_starts_on_the_hour_before_its_memory() {
        let (cfg, _, drop) = descent_setup(&[], TimeDelta::zero());
        let tick = TimeDelta::seconds(15);
        // Hours at the configuration's own phase, a whole number of ticks.
        let phase = i64::try_from(cfg.fingerprint % 240).unwrap() * 15;
        let mut starts = std::collections::BTreeSet::new();
        for k in 0..=480 {
            let at = drop + tick * k;
            let start = cfg.replay_start(at, tick);
            assert_eq!((start.timestamp() - phase) % 3_600, 0, "at {at}: {start}");
            assert!(start <= at - cfg.memory && start > at - cfg.memory - ANCHOR_PERIOD);
            starts.insert(start);
        }
        assert!(starts.len() >= 2, "two hours of ticks: {starts:?}");
        // Another configuration moves at another phase.
        let (other, _, _) = descent_setup(&[("maxReplicaCount", "49")], TimeDelta::zero());
        assert_ne!(
            other.fingerprint % 240,
            cfg.fingerprint % 240,
            "pick another key"
        );
        // A tick that does not divide an hour: the start stays on the
        // tick grid, at a whole number of ticks per period.
        let seven = TimeDelta::seconds(7);
        // On the 7-second grid, as every evaluation tick is.
        let at = DateTime::from_timestamp(7 * 242_857_143, 0).unwrap();
        let start = cfg.replay_start(at, seven);
        assert_eq!((at - start).num_seconds() % 7, 0);
        let phase = i64::try_from(cfg.fingerprint % 514).unwrap() * 7;
        assert_eq!(
            (start.timestamp() - phase) % (514 * 7),
            0,
            "3,600 s is 514 whole ticks of 7 s"
        );
        // A replay that is all forecasts' window starts exactly that far back.
        let (short, _, _) = descent_setup(
            &[("scaleDownPods", "25"), ("scaleDownPeriod", "1m")],
            TimeDelta::zero(),
        );
        assert_eq!(short.memory, short.replay);
        assert_eq!(short.replay_start(at, seven), at - short.memory);
        assert_eq!(short.reach(), short.memory);
    }

    #[test]
    fn serve_holds_the_cooldown_after_the_stamped_remediation() {
        // The remediation engine stamped `lastRemediation` at the drop:
        // for `cooldown` after it, serve's replay scales nothing down.
        let drop = DateTime::from_timestamp(1_700_006_400, 0).unwrap();
        let stamp = drop.to_rfc3339();
        let (cfg, cache, _) = descent_setup(
            &[("cooldown", "30m"), ("lastRemediation", stamp.as_str())],
            TimeDelta::minutes(40),
        );
        let models = ModelTable::new(std::time::Duration::from_secs(3_600));
        let at = |m: i64| {
            replay(
                &cfg,
                drop + TimeDelta::minutes(m),
                TimeDelta::seconds(15),
                &cache,
                &models,
                &mut PlanCache::default(),
                &mut PrefixCache::default(),
            )
            .unwrap()
        };
        let held = at(25);
        assert_eq!(
            (held.desired_replicas, held.limiter),
            (45, crate::domain::Limiter::Cooldown)
        );
        assert!(at(40).desired_replicas < 45, "the descent starts after it");
    }

    #[test]
    fn the_replay_is_as_long_as_the_slowest_descent_and_no_longer_than_12_hours() {
        let memory = |extra: &[(&str, &str)]| descent_setup(extra, TimeDelta::zero()).0.memory;
        // Percentages: 50 → 1 at 50% a period is 6 halvings (ln 50 / ln 2).
        assert_eq!(
            memory(&[("scaleDownPods", "0"), ("scaleDownPercent", "50")]),
            TimeDelta::minutes(5 + 8 * 5)
        );
        // Pods and percentage: whichever comes down faster.
        assert_eq!(
            memory(&[("scaleDownPods", "10"), ("scaleDownPercent", "50")]),
            TimeDelta::minutes(5 + 7 * 5)
        );
        // A short descent leaves the forecasts' 30 minutes.
        assert_eq!(
            memory(&[("scaleDownPods", "25"), ("scaleDownPeriod", "1m")]),
            TimeDelta::minutes(30)
        );
        // Scale-down off never ends: the cap.
        assert_eq!(
            memory(&[("scaleDownPods", "0"), ("scaleDownPercent", "0")]),
            TimeDelta::hours(12)
        );
        assert_eq!(memory(&[("scaleDownPeriod", "30m")]), TimeDelta::hours(12));
    }

    /// A holding configuration, a model trained on two days of a 5-minute
    /// daily cycle ending at `boundary`, and observations for every tick of
    /// the replay window ending an hour later.
    fn holding_setup() -> (Arc<Configured>, ModelTable, ObservationCache, DateTime<Utc>) {
        let meta: std::collections::HashMap<String, String> = [
            ("queueDepthQuery", "q"),
            ("queueDepthTarget", "10"),
            ("mode", "holding"),
            ("step", "5m"),
            ("history", "2d"),
            ("minReplicaCount", "1"),
            ("maxReplicaCount", "40"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let config = crate::runtime::RuntimeConfig::default();
        let spec = crate::config::parse_metadata(&meta).unwrap();
        let cfg = Configured::new(super::super::registry::fingerprint(&meta), spec, &config);
        let value = |i: i64| {
            let day = (i as f64 * std::f64::consts::TAU / 288.0).sin();
            100.0 + 80.0 * day + ((i * 7_919) % 37) as f64
        };
        let boundary = DateTime::from_timestamp(1_700_006_400, 0).unwrap();
        let step = TimeDelta::minutes(5);
        let n = 576;
        let start = boundary - step * (n as i32 - 1);
        let series = crate::domain::Series::new(start, step, (0..n).map(value).collect());
        let key = cfg.model_keys[0].clone().unwrap();
        let trained = crate::forecast::train(&series, &key.train_spec(&series, &config)).unwrap();
        assert!(trained.need.is_some(), "the need model was learnt");
        let mut models = ModelTable::new(config.retrain);
        models.finish(&key, boundary, Ok(Arc::new(trained)), boundary);
        let at = boundary + TimeDelta::hours(1);
        let tick = TimeDelta::seconds(15);
        let mut cache = ObservationCache::default();
        for t in ticks(at, cfg.reach(), tick) {
            let i = n + (t - boundary).num_minutes() / 5;
            cache.insert("q", t, Ok(Some(value(i))));
        }
        (cfg, models, cache, at)
    }

    /// The one plan `plans` keeps.
    fn only_plan(plans: &PlanCache) -> Arc<Plan> {
        assert_eq!(plans.len(), 1);
        plans
            .plans
            .values()
            .next()
            .map(|k| Arc::clone(&k.plan))
            .unwrap()
    }

    #[test]
    fn plans_built_at_training_are_used_and_kept_until_their_model_is() {
        let (cfg, models, cache, at) = holding_setup();
        let tick = TimeDelta::seconds(15);
        let key = cfg.model_keys[0].clone().unwrap();
        let trained = Arc::clone(models.at(&key, at).unwrap());
        let mut plans = PlanCache::default();
        plans.insert_built(
            cfg.fingerprint,
            0,
            &trained,
            build_plan(&cfg, &trained).unwrap(),
        );
        let built = only_plan(&plans);
        let decision = replay_fresh(&cfg, at, tick, &cache, &models, &mut plans);
        assert!(plans.take_builds().is_empty(), "the replay built a plan");
        assert!(Arc::ptr_eq(&built, &only_plan(&plans)));
        let fresh = replay_fresh(&cfg, at, tick, &cache, &models, &mut PlanCache::default());
        assert_eq!(
            decision, fresh,
            "a plan built at training decides as one built by the replay"
        );
        let mut cold = PlanCache::default();
        replay_fresh(&cfg, at, tick, &cache, &models, &mut cold);
        assert_eq!(
            cold.take_builds().len(),
            1,
            "a replay with no plan kept builds one"
        );

        // The next boundary's model, trained but not active yet: no replay
        // uses its plan, and sweeps keep it until one does.
        let fp = HashSet::from([cfg.fingerprint]);
        let shifted = |hours: i64| {
            let mut t = Trained::clone(&trained);
            t.forecast.start += TimeDelta::hours(hours);
            Arc::new(t)
        };
        let (next, previous) = (shifted(1), shifted(-1));
        plans.insert_built(cfg.fingerprint, 0, &next, build_plan(&cfg, &next).unwrap());
        plans.sweep(&fp, &fp);
        assert_eq!(plans.len(), 2, "the waiting plan was dropped");
        replay_fresh(&cfg, at, tick, &cache, &models, &mut plans);
        plans.sweep(&fp, &fp);
        assert_eq!(plans.len(), 2, "the waiting plan was dropped");

        // A fresh plan older than one a replay uses is one no replay will
        // reach: dropped.
        plans.insert_built(
            cfg.fingerprint,
            0,
            &previous,
            build_plan(&cfg, &previous).unwrap(),
        );
        assert_eq!(plans.len(), 3);
        replay_fresh(&cfg, at, tick, &cache, &models, &mut plans);
        plans.sweep(&fp, &fp);
        assert_eq!(plans.len(), 2, "the older unused plan was kept");
        plans.sweep(&HashSet::new(), &HashSet::new());
        assert_eq!(
            plans.len(),
            0,
            "a retired configuration's plans are dropped"
        );
    }

    #[test]
    fn holding_plans_are_kept_across_replays_and_change_no_decision() {
        let (cfg, mut models, cache, at) = holding_setup();
        let tick = TimeDelta::seconds(15);
        let mut plans = PlanCache::default();
        let first = replay_fresh(&cfg, at, tick, &cache, &models, &mut plans);
        assert_eq!(first.mode, Mode::Holding);
        assert!(
            first.notes.iter().any(|n| n.contains("holding plan")),
            "the plan decided: {:?}",
            first.notes
        );
        assert_eq!(plans.len(), 1, "one model in the window, one plan");
        let kept = only_plan(&plans);
        let n = kept.n_max() as usize;
        assert_eq!(plans.bytes(), kept.heap_bytes());
        assert!(plans.bytes() >= 2 * 9 * n * n, "{} bytes", plans.bytes());

        // The same tick again, and the next, reuse the plan and decide as a
        // replay that builds its own does.
        for at in [at, at + tick] {
            let cached = replay_fresh(&cfg, at, tick, &cache, &models, &mut plans);
            let built = replay_fresh(&cfg, at, tick, &cache, &models, &mut PlanCache::default());
            assert_eq!(cached, built);
        }
        assert_eq!(plans.len(), 1);
        assert!(
            Arc::ptr_eq(&kept, &only_plan(&plans)),
            "the plan was rebuilt"
        );

        // A model trained again for the same boundary gets a plan of its own.
        let key = cfg.model_keys[0].clone().unwrap();
        let boundary = at - TimeDelta::hours(1);
        let retrained = models.at(&key, at).map(|t| Trained::clone(t)).unwrap();
        models.finish(&key, boundary, Ok(Arc::new(retrained)), at);
        replay_fresh(&cfg, at, tick, &cache, &models, &mut plans);
        let rebuilt = plans.plans.values().next().unwrap();
        assert!(Arc::ptr_eq(&rebuilt.trained, models.at(&key, at).unwrap()));
        assert!(
            !Arc::ptr_eq(&kept, &rebuilt.plan),
            "a replaced model kept the old plan"
        );

        // Sweeps keep what the last evaluation used, and drop configurations
        // nobody has any more.
        let fp = HashSet::from([cfg.fingerprint]);
        plans.sweep(&fp, &fp);
        assert_eq!(plans.len(), 1);
        plans.sweep(&fp, &fp);
        assert_eq!(
            plans.len(),
            0,
            "a plan no replay used since the last sweep is dropped"
        );
        assert_eq!(plans.bytes(), 0);
        replay_fresh(&cfg, at, tick, &cache, &models, &mut plans);
        plans.sweep(&HashSet::new(), &HashSet::new());
        assert_eq!(
            plans.len(),
            0,
            "a retired configuration's plans are dropped"
        );
    }
}
