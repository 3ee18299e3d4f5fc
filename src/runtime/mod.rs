//! The live driver behind `foresight serve`.
//!
//! * A **registry** of foresight triggers, filled by KEDA's calls: one per
//!   ScaledObject and metadata ([`registry`]). Each holds its parsed spec and
//!   a `watch` channel with its latest decision, which every RPC reads
//!   without I/O.
//! * An **evaluation loop** that wakes on wall-clock-aligned ticks (multiples
//!   of the evaluation interval), reads each distinct query once per tick
//!   into an [observation cache](observations), and replays the policy over
//!   the ScaledObject's window ([`evaluate`]) on a blocking thread. The
//!   decision is thus a pure function of tick-aligned data, identical on
//!   every replica of foresight.
//! * A **training loop** ([`training`]) that fits models on history ending
//!   at aligned boundaries ([`models`]), on blocking threads, shared between
//!   ScaledObjects that ask for the same forecast, keeping the previous model
//!   when a retrain fails.
//! * **Signals** for remediation go to a broadcast channel and the log.
//! * **Calls** from KEDA and the HTTP endpoints ([`calls`]) read the
//!   registry's channels and the telemetry, never the source.
//!
//! Both loops stop when the shutdown future passed to [`Runtime::run`]
//! completes.

mod calls;
mod core;
mod evaluate;
mod models;
mod observations;
mod registry;
mod state;
mod telemetry;
mod training;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use futures::StreamExt;
use tokio::sync::{broadcast, watch};
use tracing::{debug, info, warn};

pub use self::core::{
    CoreError, METRIC_NAME, MetricTarget, Readiness, ScalerCore, TriggerDecision, raised_by,
};
use self::models::{ModelTable, to_delta};
use self::observations::ObservationCache;
use self::registry::{Configured, DORMANT_FORGET, Fault, Registration, dormant, fingerprint};
use self::state::SelectionStore;
pub use self::telemetry::Telemetry;
use crate::config::parse_metadata;
use crate::domain::{Decision, ScaledObjectKey, Signal};
use crate::sources::{BreakerState, HistoryCache, MetricSource, fmt_wait};

/// Tunables of the live driver.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeConfig {
    /// Evaluation period; ticks fall on multiples of it since the epoch.
    pub tick: Duration,
    /// Training boundaries fall on multiples of it since the epoch.
    pub retrain: Duration,
    /// Full model selection happens at multiples of it; the trainings in
    /// between refit the model chosen there (one fit instead of a dozen).
    /// The choice depends only on the history ending at that multiple, so
    /// replicas started at different times agree on it.
    pub reselect: Duration,
    /// Longest a first call for a new ScaledObject waits for a decision.
    pub first_answer_timeout: Duration,
    /// Models trained at once (CPU bound); one less than the cores by default.
    pub training_parallelism: usize,
    /// ScaledObjects KEDA has not asked about for this long are forgotten.
    pub forget_after: Duration,
    /// A trigger last asked about this much before another trigger of its
    /// ScaledObject is taken for removed (see [`registry::dormant`]), and
    /// a dormant trigger's series leave `/metrics` this long after its last
    /// call.
    pub dormant_gap: Duration,
    /// Where model selections are kept across restarts (see `state.rs`);
    /// `None` keeps them in memory only.
    pub state_dir: Option<std::path::PathBuf>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            tick: Duration::from_secs(15),
            retrain: Duration::from_secs(3600),
            reselect: Duration::from_secs(86_400),
            first_answer_timeout: Duration::from_secs(2),
            // Leave a core for serving: training is CPU bound and would
            // otherwise starve the request path (measured in the benchmark).
            training_parallelism: std::thread::available_parallelism()
                .map(|n| n.get().saturating_sub(1).max(1))
                .unwrap_or(1),
            forget_after: Duration::from_secs(3600),
            dormant_gap: registry::DORMANT_GAP
                .to_std()
                .unwrap_or(Duration::from_secs(120)),
            state_dir: None,
        }
    }
}

/// Shared state of the runtime; cloned handles point at one of these.
struct Shared<S> {
    /// Where metrics come from.
    source: S,
    /// Tunables.
    config: RuntimeConfig,
    /// Registered triggers, by ScaledObject and metadata fingerprint.
    registry: RwLock<HashMap<(ScaledObjectKey, u64), Arc<Registration>>>,
    /// Trained models, shared by identical forecast requests.
    models: Mutex<ModelTable>,
    /// Tick-aligned observations for replay.
    observations: Mutex<ObservationCache>,
    /// `mode: holding`'s plans, built once per model and configuration
    /// instead of at every replay.
    plans: Mutex<evaluate::PlanCache>,
    /// The state each long replay's observation-only ticks leave, carried
    /// forward between evaluations instead of replayed at every tick.
    prefixes: Mutex<evaluate::PrefixCache>,
    /// Bumped on every (re-)registration and trained model, so the
    /// evaluation loop reacts at once.
    generation: watch::Sender<u64>,
    /// Signals for remediation; lagging receivers lose the oldest.
    signals: broadcast::Sender<(ScaledObjectKey, Signal)>,
    /// Result of the last source probe: `None` if it succeeded.
    source_error: Mutex<Option<Option<String>>>,
    /// The breaker state seen at the last probe, to log transitions once.
    breaker_state: Mutex<Option<BreakerState>>,
    /// Training windows already fetched, so retrains fetch only the tail.
    history: HistoryCache,
    /// The model selected at each key's latest selection boundaries, which
    /// the trainings up to the next selection refit.
    selections: SelectionStore,
    /// Metrics sink.
    telemetry: Telemetry,
    /// Set at SIGTERM: readiness goes off while the servers keep answering
    /// for the shutdown delay, so Kubernetes routes new connections to
    /// peers before this pod's ports close.
    draining: std::sync::atomic::AtomicBool,
}

/// One replay's result and what decides whether it may be served.
struct Outcome {
    /// The configuration replayed.
    cfg: Arc<Configured>,
    /// The ScaledObjects sharing it.
    members: Vec<Arc<Registration>>,
    /// The decision at the tick, or why there is none.
    decision: Result<Decision, crate::policy::PolicyError>,
    /// The source's rejection of one of the queries at the tick.
    rejected: Option<crate::sources::SourceError>,
    /// Age of the stalest query's newest successful read.
    staleness: TimeDelta,
    /// The source's error at the tick, if a read failed.
    cause: Option<String>,
}

/// Handle to the live driver; cheap to clone.
pub struct Runtime<S> {
    /// The shared state.
    shared: Arc<Shared<S>>,
}

impl<S> Clone for Runtime<S> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The wall-clock tick at or before `now`.
fn floor_tick(now: DateTime<Utc>, tick: Duration) -> DateTime<Utc> {
    let t = i64::try_from(tick.as_millis()).unwrap_or(i64::MAX).max(1);
    let ms = now.timestamp_millis();
    DateTime::from_timestamp_millis(ms - ms.rem_euclid(t)).unwrap_or(now)
}

/// The tick after `done`, or the latest tick already begun when the
/// evaluation of `done` ran past several: ticks missed are not evaluated
/// late one by one, as the latest one's replay covers them.
fn next_due(done: DateTime<Utc>, now: DateTime<Utc>, tick: Duration) -> DateTime<Utc> {
    let step = TimeDelta::from_std(tick).unwrap_or(TimeDelta::seconds(15));
    (done + step).max(floor_tick(now, tick))
}

/// `reads` as runs of consecutive ticks per query, each in time order.
fn runs(reads: Vec<(String, DateTime<Utc>)>, tick: TimeDelta) -> Vec<(String, Vec<DateTime<Utc>>)> {
    let mut by_query: HashMap<String, Vec<DateTime<Utc>>> = HashMap::new();
    for (q, t) in reads {
        by_query.entry(q).or_default().push(t);
    }
    let mut out = Vec::new();
    for (q, mut ticks) in by_query {
        ticks.sort_unstable();
        ticks.dedup();
        let mut run: Vec<DateTime<Utc>> = Vec::new();
        for t in ticks {
            if run.last().is_some_and(|&l| t - l != tick) {
                out.push((q.clone(), std::mem::take(&mut run)));
            }
            run.push(t);
        }
        if !run.is_empty() {
            out.push((q, run));
        }
    }
    out
}

impl<S: MetricSource> Runtime<S> {
    /// Creates a runtime over `source`. Nothing runs until [`Runtime::run`].
    pub fn new(source: S, config: RuntimeConfig) -> Self {
        let (generation, _) = watch::channel(0);
        let (signals, _) = broadcast::channel(1024);
        let models = Mutex::new(ModelTable::new(config.retrain));
        let (selections, warnings) = SelectionStore::open(config.state_dir.clone());
        for w in warnings {
            warn!("{w}");
        }
        Self {
            shared: Arc::new(Shared {
                source,
                config,
                registry: RwLock::new(HashMap::new()),
                models,
                observations: Mutex::new(ObservationCache::default()),
                plans: Mutex::new(evaluate::PlanCache::default()),
                prefixes: Mutex::new(evaluate::PrefixCache::default()),
                generation,
                signals,
                source_error: Mutex::new(None),
                breaker_state: Mutex::new(None),
                history: HistoryCache::new(),
                selections,
                telemetry: Telemetry::new(),
                draining: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// Runs the evaluation and training loops until `shutdown` completes.
    pub async fn run(&self, shutdown: impl Future<Output = ()> + Send) {
        let mut trainings = tokio::task::JoinSet::new();
        {
            let eval = self.evaluation_loop();
            let train = self.training_loop(&mut trainings);
            tokio::select! {
                () = shutdown => info!("runtime stopping"),
                () = eval => {},
                () = train => {},
            }
        }
        // Trainings in flight are cancelled and awaited, so none finishes
        // after shutdown and writes state a successor has already read.
        trainings.shutdown().await;
    }

    /// Probes the source once, so readiness reflects it before the first tick.
    pub async fn warm_up(&self) {
        self.probe_source().await;
    }

    /// Takes this replica out of readiness for the rest of its life (it is
    /// shutting down); it keeps evaluating and answering meanwhile.
    pub fn begin_drain(&self) {
        self.shared
            .draining
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Signals raised for remediation, as they happen.
    pub fn subscribe_signals(&self) -> broadcast::Receiver<(ScaledObjectKey, Signal)> {
        self.shared.signals.subscribe()
    }

    fn dormant_gap(&self) -> TimeDelta {
        to_delta(self.shared.config.dormant_gap)
    }

    fn tick(&self) -> TimeDelta {
        TimeDelta::from_std(self.shared.config.tick).unwrap_or(TimeDelta::seconds(15))
    }

    /// Finds or registers a ScaledObject's trigger. The fast path (known
    /// metadata) hashes the metadata and takes a read lock, nothing more.
    fn register(
        &self,
        key: &ScaledObjectKey,
        metadata: &HashMap<String, String>,
    ) -> Result<Arc<Registration>, CoreError> {
        if key.name.is_empty() || key.namespace.is_empty() {
            return Err(CoreError::MissingIdentity);
        }
        let now = Utc::now();
        if metadata.is_empty() {
            // Empty metadata names a known ScaledObject without restating
            // it: with several live triggers, the one of lowest fingerprint,
            // which every replica that has them picks alike (not the one
            // this replica was last asked about). Not a dormant one, and the
            // call is not counted as the trigger's: it must not wake an
            // edited-away trigger. An unknown one goes on to be refused by
            // the parser, which says what is missing.
            if let Some(r) = self
                .live_registrations()
                .into_iter()
                .filter(|r| r.key() == key)
                .min_by_key(|r| r.fingerprint())
            {
                return Ok(r);
            }
        }
        let fp = fingerprint(metadata);
        let id = (key.clone(), fp);
        if let Some(reg) = self.read_registry().get(&id) {
            reg.touch(now);
            return Ok(Arc::clone(reg));
        }
        let spec = parse_metadata(metadata).map_err(|source| CoreError::InvalidMetadata {
            key: key.clone(),
            source,
        })?;
        for m in &spec.metrics {
            self.shared
                .source
                .check_query(&m.query)
                .map_err(|source| CoreError::InvalidQuery {
                    key: key.clone(),
                    source: Box::new(source),
                })?;
        }
        let configured = Configured::new(fp, spec, &self.shared.config);
        let reg = {
            let mut registry = self
                .shared
                .registry
                .write()
                .unwrap_or_else(|e| e.into_inner());
            // Another call with the same new metadata got here first (KEDA's
            // operator and metrics server call at once after a restart).
            if let Some(existing) = registry.get(&id) {
                existing.touch(now);
                return Ok(Arc::clone(existing));
            }
            let reg = Arc::new(Registration::new(key.clone(), configured, now));
            let trigger = reg.trigger();
            let siblings: Vec<String> = registry
                .values()
                .filter(|r| r.key() == key)
                .map(|r| r.trigger())
                .collect();
            if siblings.is_empty() {
                info!(scaledobject = %key, trigger, "registered");
            } else {
                // An edit or a second foresight trigger: the calls that
                // follow tell which (see `registry::dormant`).
                info!(scaledobject = %key, trigger, others = ?siblings, "registered new metadata: a metadata edit (the old trigger is forgotten 10 minutes after its last call) or another foresight trigger of this ScaledObject (both are served)");
            }
            // Seen before it is visible: registered as never seen, it could
            // be forgotten as idle before the touch below.
            reg.touch(now);
            registry.insert(id, Arc::clone(&reg));
            self.shared
                .telemetry
                .set_scaled_objects(scaled_objects(registry.values()));
            reg
        };
        reg.touch(Utc::now());
        self.shared.generation.send_modify(|g| *g += 1);
        Ok(reg)
    }

    fn read_registry(
        &self,
    ) -> std::sync::RwLockReadGuard<'_, HashMap<(ScaledObjectKey, u64), Arc<Registration>>> {
        self.shared
            .registry
            .read()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn registrations(&self) -> Vec<Arc<Registration>> {
        self.read_registry().values().cloned().collect()
    }

    /// The registrations KEDA still asks about: dormant ones (see
    /// [`registry::dormant`]) are left out of readiness, explanations,
    /// signals and `/metrics`, but still evaluated, so a second trigger
    /// that wakes answers at once.
    fn live_registrations(&self) -> Vec<Arc<Registration>> {
        let regs = self.registrations();
        let asleep = dormant(&regs, self.dormant_gap());
        regs.into_iter()
            .filter(|r| !asleep.contains(&(r.key().clone(), r.fingerprint())))
            .collect()
    }

    fn models(&self) -> std::sync::MutexGuard<'_, ModelTable> {
        self.shared.models.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn evaluation_loop(&self) {
        let tick = self.shared.config.tick;
        // Read a little after the tick, so samples stamped just before it
        // have been ingested by the source; every replica waits alike.
        let delay = (tick / 10).min(Duration::from_secs(1));
        let mut generation = self.shared.generation.subscribe();
        // The tick to evaluate next, kept across the loop: recomputed from
        // the clock at each turn, a bump of `generation` in the `delay`
        // after a tick skipped that tick for every ScaledObject not fresh.
        let mut due = floor_tick(Utc::now(), tick) + self.tick();
        loop {
            let now = Utc::now();
            let wait = (due - now).to_std().unwrap_or_default() + delay;
            tokio::select! {
                () = tokio::time::sleep(wait) => {
                    self.probe_source().await;
                    self.forget_idle(due);
                    let regs = self.registrations();
                    self.evaluate(&regs, due).await;
                    due = next_due(due, Utc::now(), tick);
                }
                changed = generation.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    // New or reconfigured ScaledObjects, and those whose model
                    // just arrived, get the current tick's decision now
                    // instead of up to a tick later. Replaying the same tick
                    // again is idempotent.
                    let fresh: Vec<_> = self
                        .registrations()
                        .into_iter()
                        .filter(|r| r.needs_evaluation())
                        .collect();
                    if !fresh.is_empty() {
                        self.evaluate(&fresh, floor_tick(Utc::now(), tick)).await;
                    }
                }
            }
        }
    }

    async fn probe_source(&self) {
        let result = self.shared.source.probe().await;
        let err = result.err().map(|e| e.to_string());
        if let Some(e) = &err {
            warn!(error = %e, "metric source probe failed");
        }
        self.shared.telemetry.set_source_up(err.is_none());
        *self
            .shared
            .source_error
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(err);
        let health = self.shared.source.health();
        self.shared.telemetry.observe_source(&health);
        if let Some(b) = &health.breaker {
            let previous = self
                .shared
                .breaker_state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .replace(b.state);
            if previous.is_some_and(|p| p != b.state) {
                let last_error = b.last_error.as_deref().unwrap_or("none");
                match b.state {
                    BreakerState::Closed => {
                        info!(endpoint = %health.endpoint, "circuit breaker closed: the metric source answers again")
                    }
                    state => {
                        warn!(endpoint = %health.endpoint, state = state.label(), failures = b.consecutive_failures, last_error, "circuit breaker not closed: failing fast until a probe succeeds")
                    }
                }
            }
        }
    }

    /// Forgets triggers KEDA has not asked about for `forget_after`, and
    /// dormant ones (an edit's old metadata, a removed trigger) after
    /// [`DORMANT_FORGET`]; takes dormant ones' series off `/metrics` once
    /// they have not been asked about for `dormant_gap`, since KEDA no
    /// longer uses their counts. (Not at once: after a restart, or when a
    /// second trigger is added, a live trigger is dormant until its next
    /// call, and its counters would restart from 0.)
    fn forget_idle(&self, now: DateTime<Utc>) {
        let limit = to_delta(self.shared.config.forget_after);
        let mut registry = self
            .shared
            .registry
            .write()
            .unwrap_or_else(|e| e.into_inner());
        let regs: Vec<_> = registry.values().cloned().collect();
        let gap = self.dormant_gap();
        let asleep = dormant(&regs, gap);
        let before = registry.len();
        registry.retain(|id, reg| {
            let idle = now - reg.last_seen();
            let is_dormant = asleep.contains(id);
            let keep = idle < limit && !(is_dormant && idle >= DORMANT_FORGET);
            if (is_dormant && idle >= gap) || !keep {
                self.shared
                    .telemetry
                    .forget(&id.0.to_string(), &reg.trigger());
            }
            if !keep {
                let trigger = reg.trigger();
                if is_dormant {
                    info!(scaledobject = %id.0, trigger, "forgotten: replaced by other metadata (not asked about since)");
                } else {
                    info!(scaledobject = %id.0, trigger, "forgotten after no calls from KEDA");
                }
            }
            keep
        });
        if registry.len() != before {
            self.shared
                .telemetry
                .set_scaled_objects(scaled_objects(registry.values()));
        }
    }

    /// Evaluates `regs` at tick `at`: reads every tick of the replay windows
    /// not yet read (one read per query per tick), then replays each distinct
    /// configuration once on a blocking thread and publishes the results.
    ///
    /// Each query's read at `at` goes first; the rest of its window is read
    /// only if the source did not reject the query, so a bad query costs one
    /// request per tick rather than one per tick of its window.
    async fn evaluate(&self, regs: &[Arc<Registration>], at: DateTime<Utc>) {
        for r in regs {
            r.begin_evaluation();
        }
        let tick = self.tick();
        let mut windows: HashMap<String, TimeDelta> = HashMap::new();
        for r in regs {
            let cfg = r.configured();
            for m in &cfg.spec.metrics {
                let w = windows.entry(m.query.clone()).or_insert(cfg.reach());
                *w = (*w).max(cfg.reach());
            }
        }
        let (now, backfill): (Vec<_>, Vec<_>) = {
            let cache = self.observations();
            windows
                .iter()
                .flat_map(|(q, w)| {
                    cache
                        .missing(q, at - *w, at, tick)
                        .into_iter()
                        .map(move |t| (q.clone(), t))
                })
                .partition(|(_, t)| *t == at)
        };
        self.read(now).await;
        let backfill = {
            let cache = self.observations();
            backfill
                .into_iter()
                .filter(|(q, _)| cache.rejected(q, at).is_none())
                .collect()
        };
        self.backfill(backfill, tick).await;

        // One replay per distinct configuration: decisions depend on the
        // metadata and the data, never on the ScaledObject's name.
        let mut groups: HashMap<u64, (Arc<Configured>, Vec<Arc<Registration>>)> = HashMap::new();
        for r in regs {
            let cfg = r.configured();
            groups
                .entry(cfg.fingerprint)
                .or_insert_with(|| (Arc::clone(&cfg), Vec::new()))
                .1
                .push(Arc::clone(r));
        }
        let live: HashSet<u64> = self
            .registrations()
            .iter()
            .map(|r| r.configured().fingerprint)
            .collect();
        let shared = Arc::clone(&self.shared);
        let results = tokio::task::spawn_blocking(move || {
            let cache = shared
                .observations
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let models = shared.models.lock().unwrap_or_else(|e| e.into_inner());
            let mut plans = shared.plans.lock().unwrap_or_else(|e| e.into_inner());
            let mut prefixes = shared.prefixes.lock().unwrap_or_else(|e| e.into_inner());
            let evaluated: HashSet<u64> = groups.keys().copied().collect();
            let started = std::time::Instant::now();
            let results = groups
                .into_values()
                .map(|(cfg, members)| {
                    let decision = evaluate::replay(
                        &cfg,
                        at,
                        tick,
                        &cache,
                        &models,
                        &mut plans,
                        &mut prefixes,
                    );
                    let queries = || cfg.spec.metrics.iter().map(|m| m.query.as_str());
                    Outcome {
                        rejected: queries().find_map(|q| cache.rejected(q, at).cloned()),
                        staleness: queries()
                            .filter_map(|q| cache.staleness(q, at))
                            .max()
                            .unwrap_or_default(),
                        cause: queries().find_map(|q| cache.error(q, at).map(|e| e.to_string())),
                        decision,
                        members,
                        cfg,
                    }
                })
                .collect::<Vec<_>>();
            plans.sweep(&evaluated, &live);
            prefixes.sweep(&evaluated, &live);
            for elapsed in plans.take_builds() {
                shared.telemetry.observe_plan_build(false, elapsed);
            }
            shared.telemetry.observe_evaluation(started.elapsed());
            shared
                .telemetry
                .set_holding_plans(plans.len(), plans.bytes());
            results
        })
        .await;
        let results = match results {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, "evaluation task failed");
                for r in regs {
                    r.mark_for_evaluation();
                }
                return;
            }
        };
        // The registry is read once per tick, not per publish: with many
        // ScaledObjects a scan at each publish was quadratic.
        let all = self.registrations();
        let asleep = dormant(&all, self.dormant_gap());
        let mut by_object: HashMap<&ScaledObjectKey, Vec<Arc<Registration>>> = HashMap::new();
        for r in &all {
            by_object.entry(r.key()).or_default().push(Arc::clone(r));
        }
        for outcome in &results {
            for reg in &outcome.members {
                let quiet = asleep.contains(&(reg.key().clone(), reg.fingerprint()));
                let triggers = by_object.get(reg.key()).map_or(&[][..], Vec::as_slice);
                self.settle(reg, outcome, quiet, triggers);
            }
        }
        self.trim_observations(at);
    }

    fn observations(&self) -> std::sync::MutexGuard<'_, ObservationCache> {
        self.shared
            .observations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Reads `(query, tick)` pairs concurrently into the observation cache.
    async fn read(&self, reads: Vec<(String, DateTime<Utc>)>) {
        if reads.is_empty() {
            return;
        }
        let source = &self.shared.source;
        let fetched: Vec<(String, DateTime<Utc>, observations::Read)> =
            futures::stream::iter(reads)
                .map(|(q, t)| async move {
                    let r = source.current(&q, t).await;
                    (q, t, r)
                })
                .buffer_unordered(32)
                .collect()
                .await;
        let mut cache = self.observations();
        for (q, t, r) in fetched {
            cache.insert(&q, t, r);
        }
    }

    /// Reads past ticks, each run of consecutive ticks of a query in one
    /// [`MetricSource::instants`] call (one range query for Prometheus, not
    /// one request per tick: a new query with the default 8.5-hour window
    /// would otherwise cost 2,060 requests).
    async fn backfill(&self, reads: Vec<(String, DateTime<Utc>)>, tick: TimeDelta) {
        let runs = runs(reads, tick);
        if runs.is_empty() {
            return;
        }
        let source = &self.shared.source;
        let fetched: Vec<(String, Vec<DateTime<Utc>>, Vec<observations::Read>)> =
            futures::stream::iter(runs)
                .map(|(q, ticks)| async move {
                    let (from, to) = (ticks[0], ticks[ticks.len() - 1]);
                    let reads = source.instants(&q, from, to, tick).await;
                    (q, ticks, reads)
                })
                .buffer_unordered(8)
                .collect()
                .await;
        let mut cache = self.observations();
        for (q, ticks, reads) in fetched {
            for (t, r) in ticks.into_iter().zip(reads) {
                cache.insert(&q, t, r);
            }
        }
    }

    /// Publishes one ScaledObject's outcome: the decision, or why there is
    /// none, and whether it may be served.
    ///
    /// A rejected query is the caller's mistake and is reported as such.
    /// Data up to `maxStaleness` old is served: the policy has held on the
    /// missing data (it never scales down without fresh data), so this is
    /// the last good decision. Beyond it, the decision is kept for
    /// explanations but not served, and KEDA's HPA keeps the current count.
    fn settle(&self, reg: &Registration, o: &Outcome, quiet: bool, triggers: &[Arc<Registration>]) {
        let key = reg.key().to_string();
        let trigger = reg.trigger();
        let max = o.cfg.spec.max_staleness;
        let age = o.staleness;
        if !quiet {
            self.shared.telemetry.set_staleness(
                &key,
                &trigger,
                age.num_milliseconds() as f64 / 1000.0,
            );
        }
        let previous = reg.fault();
        if let Some(e) = &o.rejected {
            if !quiet && !matches!(previous, Some(Fault::Rejected(_))) {
                warn!(scaledobject = %key, trigger, error = %e, "the source rejected a query; GetMetrics answers InvalidArgument until the metadata is fixed");
            }
            reg.set_waiting_reason(e.to_string());
            reg.set_fault(Some(Fault::Rejected(e.clone())));
            reg.settle_evaluation();
            return;
        }
        let cause = o
            .cause
            .clone()
            .unwrap_or_else(|| "no successful read".to_string());
        let too_stale = age > max;
        let shown = |d: TimeDelta| fmt_wait(d.to_std().unwrap_or_default());
        if !quiet && too_stale && !matches!(previous, Some(Fault::Stale { .. })) {
            warn!(scaledobject = %key, trigger, age = %shown(age), max_staleness = %shown(max), cause, "data older than maxStaleness; not serving decisions until the source recovers");
        }
        if !quiet && !too_stale && matches!(previous, Some(Fault::Stale { .. })) {
            info!(scaledobject = %key, trigger, "fresh data again; serving decisions");
        }
        let fault = too_stale.then_some(Fault::Stale { age, max, cause });
        match &o.decision {
            Ok(d) => {
                let mut d = d.clone();
                if too_stale {
                    d.notes.push(format!(
                        "data {} old, beyond maxStaleness {}: not served; GetMetrics answers Unavailable, so the HPA keeps the current replica count",
                        shown(age),
                        shown(max)
                    ));
                } else if age > TimeDelta::zero() {
                    d.notes.push(format!(
                        "data {} old (maxStaleness {}): holding the last good decision; missing data never scales down",
                        shown(age),
                        shown(max)
                    ));
                }
                reg.set_fault(fault);
                reg.set_no_data(false);
                self.publish(reg, &o.cfg, d, quiet, triggers);
            }
            Err(e) => {
                reg.set_no_data(o.cause.is_none());
                reg.set_waiting_reason(match &o.cause {
                    Some(c) => format!("{e}; source: {c}"),
                    None => e.to_string(),
                });
                // The last decision stays published; beyond maxStaleness it
                // must not be served.
                reg.set_fault(fault.filter(|_| reg.latest().is_some()));
            }
        }
        reg.settle_evaluation();
    }

    /// Publishes a decision. A dormant trigger's (see
    /// [`registry::dormant`]) is kept for the call that may wake it, but
    /// neither logged, counted nor signalled: KEDA no longer uses it, and
    /// its old metadata (an old `maxReplicaCount`) could raise signals the
    /// live trigger does not. The signals it had raised are kept as raised,
    /// so one that wakes does not log and count them again.
    ///
    /// The decision is published before its signals are sent, so the
    /// remediation engine's evidence is this tick's decision.
    ///
    /// `triggers` are every registration of the ScaledObject (this one
    /// included), read once for the tick.
    fn publish(
        &self,
        reg: &Registration,
        cfg: &Configured,
        d: Decision,
        quiet: bool,
        triggers: &[Arc<Registration>],
    ) {
        let key = reg.key().to_string();
        let trigger = reg.trigger();
        let previous = reg.latest().map(|p| p.desired_replicas);
        let change = previous.and_then(|p| reg.record_change(d.at, p, d.desired_replicas));
        if quiet {
            reg.publish(d);
            return;
        }
        if let Some(c) = change {
            self.shared.telemetry.observe_change(&key, &trigger, c);
        }
        if previous != Some(d.desired_replicas) {
            info!(
                scaledobject = %key,
                trigger,
                desired = d.desired_replicas,
                previous = ?previous,
                flap = change.is_some_and(|c| c.flap),
                reactive = d.reactive,
                predictive = ?d.predictive,
                driver = ?d.driver,
                limiter = d.limiter.label(),
                released_early = ?d.released_early,
                "replicas changed"
            );
        } else {
            debug!(scaledobject = %key, trigger, desired = d.desired_replicas, limiter = d.limiter.label(), "decision");
        }
        // A trigger whose count the HPA does not follow (another trigger
        // of the ScaledObject asks for more) is not at the workload's
        // ceiling: its own `maxReplicaCount` is a cap chosen for that
        // signal, and remediation raising the ceiling for it would undo it.
        // Siblings asked about lately count even while dormant: after a
        // restart the first trigger registered is dormant until its next
        // call, and the capped one would meanwhile look followed.
        let now = Utc::now();
        let followed = triggers
            .iter()
            .filter(|r| r.fingerprint() != reg.fingerprint())
            .filter(|r| now - r.last_seen() < self.dormant_gap())
            // A sibling whose answer is an error (a rejected query, data
            // past maxStaleness) is not what the HPA follows.
            .filter(|r| r.fault().is_none())
            .filter_map(|r| r.latest())
            .all(|other| other.desired_replicas <= d.desired_replicas);
        let signals: Vec<Signal> = d
            .signals
            .iter()
            .filter(|s| followed || !s.is_about_the_ceiling())
            .cloned()
            .collect();
        let fresh = reg.raise(signals.iter().map(Signal::name).collect());
        {
            let models = self.models();
            for (m, k) in cfg.spec.metrics.iter().zip(&cfg.model_keys) {
                if let Some(mase) = k
                    .as_ref()
                    .and_then(|k| models.at(k, d.at))
                    .and_then(|t| t.validation_mase)
                {
                    self.shared
                        .telemetry
                        .set_mase(&key, &trigger, m.kind.label(), mase);
                }
            }
        }
        self.shared.telemetry.observe_decision(&key, &trigger, &d);
        reg.publish(d);
        for s in signals {
            if fresh.contains(&s.name()) {
                warn!(scaledobject = %key, trigger, signal = s.name(), detail = ?s, "scaling cannot keep up");
                self.shared.telemetry.observe_signal(s.name());
            }
            // No receiver yet (remediation not running) is fine.
            let _ = self.shared.signals.send((reg.key().clone(), s));
        }
    }

    fn trim_observations(&self, at: DateTime<Utc>) {
        let regs = self.registrations();
        let longest = regs
            .iter()
            .map(|r| r.configured().reach())
            .max()
            .unwrap_or_default();
        let used: HashSet<String> = regs
            .iter()
            .flat_map(|r| {
                r.configured()
                    .spec
                    .metrics
                    .iter()
                    .map(|m| m.query.clone())
                    .collect::<Vec<_>>()
            })
            .collect();
        self.shared
            .observations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .trim(at - longest - self.tick(), |q| used.contains(q));
    }
}

/// How many ScaledObjects `regs` serve (a ScaledObject may have several
/// triggers).
fn scaled_objects<'a>(regs: impl Iterator<Item = &'a Arc<Registration>>) -> usize {
    regs.map(|r| r.key()).collect::<HashSet<_>>().len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).unwrap()
    }

    #[test]
    fn the_next_tick_follows_the_last_one_evaluated() {
        let tick = Duration::from_secs(15);
        // On time (the evaluation of 1,005 ended at 1,006.5): the tick
        // after it, whatever happens in between.
        assert_eq!(next_due(t(1_005), t(1_006), tick), t(1_020));
        // Ran past three ticks: the latest begun, not each missed one.
        assert_eq!(next_due(t(1_005), t(1_052), tick), t(1_050));
    }

    #[test]
    fn backfill_reads_each_run_of_consecutive_ticks_at_once() {
        let tick = TimeDelta::seconds(15);
        let reads = [
            ("a", 45),
            ("a", 0),
            ("b", 30),
            ("a", 15),
            ("a", 90),
            ("a", 15),
            ("a", 105),
        ]
        .map(|(q, s)| (q.to_string(), t(s)))
        .to_vec();
        let mut got = runs(reads, tick);
        got.sort();
        let want = [
            ("a", vec![0, 15]),
            ("a", vec![45]),
            ("a", vec![90, 105]),
            ("b", vec![30]),
        ]
        .map(|(q, ts)| (q.to_string(), ts.into_iter().map(t).collect::<Vec<_>>()))
        .to_vec();
        assert_eq!(got, want);
    }
}
