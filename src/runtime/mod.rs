//! The live driver behind `foresight serve`.
//!
//! * A **registry** of ScaledObjects, filled by KEDA's calls. Each holds its
//!   parsed spec, its policy state and a `watch` channel with its latest
//!   decision, which every RPC reads without I/O.
//! * An **evaluation loop** that wakes on wall-clock-aligned ticks (multiples
//!   of the evaluation interval), reads each distinct query once, and runs
//!   the policy for every ScaledObject. Aligned ticks make replicas of
//!   foresight evaluate the same instants.
//! * A **training loop** that fits models in the background on blocking
//!   threads, shared between ScaledObjects that ask for the same forecast,
//!   and keeps the previous model when a retrain fails.
//!
//! Both loops stop when the shutdown future passed to [`Runtime::run`]
//! completes.

mod core;
mod models;
mod registry;
mod telemetry;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use futures::StreamExt;
use tokio::sync::{Semaphore, watch};
use tracing::{debug, info, warn};

pub use self::core::{CoreError, METRIC_NAME, MetricTarget, Readiness, ScalerCore};
use self::models::{ModelKey, ModelTable};
use self::registry::{Configured, Registration, fingerprint};
pub use self::telemetry::Telemetry;
use crate::config::parse_metadata;
use crate::domain::{Decision, ScaledObjectKey};
use crate::policy::{self, MetricInput, PolicyError};
use crate::sources::{MetricSource, SourceError};

/// Tunables of the live driver.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeConfig {
    /// Evaluation period; ticks fall on multiples of it since the epoch.
    pub tick: Duration,
    /// Models older than this are retrained.
    pub retrain: Duration,
    /// Longest a first call for a new ScaledObject waits for a decision.
    pub first_answer_timeout: Duration,
    /// Models trained at once (CPU bound).
    pub training_parallelism: usize,
    /// ScaledObjects KEDA has not asked about for this long are forgotten.
    pub forget_after: Duration,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            tick: Duration::from_secs(15),
            retrain: Duration::from_secs(3600),
            first_answer_timeout: Duration::from_secs(2),
            training_parallelism: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            forget_after: Duration::from_secs(3600),
        }
    }
}

/// Shared state of the runtime; cloned handles point at one of these.
struct Shared<S> {
    /// Where metrics come from.
    source: S,
    /// Tunables.
    config: RuntimeConfig,
    /// Registered ScaledObjects.
    registry: RwLock<HashMap<ScaledObjectKey, Arc<Registration>>>,
    /// Trained models, shared by identical forecast requests.
    models: Mutex<ModelTable>,
    /// Bumped on every (re-)registration so both loops react at once.
    generation: watch::Sender<u64>,
    /// Result of the last source probe: `None` if it succeeded.
    source_error: Mutex<Option<Option<String>>>,
    /// Metrics sink.
    telemetry: Telemetry,
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

impl<S: MetricSource> Runtime<S> {
    /// Creates a runtime over `source`. Nothing runs until [`Runtime::run`].
    pub fn new(source: S, config: RuntimeConfig) -> Self {
        let (generation, _) = watch::channel(0);
        Self {
            shared: Arc::new(Shared {
                source,
                config,
                registry: RwLock::new(HashMap::new()),
                models: Mutex::new(ModelTable::default()),
                generation,
                source_error: Mutex::new(None),
                telemetry: Telemetry::new(),
            }),
        }
    }

    /// Runs the evaluation and training loops until `shutdown` completes.
    pub async fn run(&self, shutdown: impl Future<Output = ()> + Send) {
        let eval = self.evaluation_loop();
        let train = self.training_loop();
        tokio::select! {
            () = shutdown => info!("runtime stopping"),
            () = eval => {},
            () = train => {},
        }
    }

    /// Finds or registers a ScaledObject. The fast path (known key, same
    /// metadata) hashes the metadata and takes a read lock, nothing more.
    fn register(
        &self,
        key: &ScaledObjectKey,
        metadata: &HashMap<String, String>,
    ) -> Result<Arc<Registration>, CoreError> {
        if key.name.is_empty() || key.namespace.is_empty() {
            return Err(CoreError::MissingIdentity);
        }
        let fp = fingerprint(metadata);
        if let Some(reg) = self.read_registry().get(key) {
            // Empty metadata names a known ScaledObject without restating it.
            if metadata.is_empty() || reg.fingerprint() == fp {
                reg.touch(Utc::now());
                return Ok(Arc::clone(reg));
            }
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
                    source,
                })?;
        }
        let configured = Configured::new(fp, spec, &self.shared.config);
        let reg = {
            let mut registry = self
                .shared
                .registry
                .write()
                .unwrap_or_else(|e| e.into_inner());
            match registry.get(key) {
                Some(existing) => {
                    info!(scaledobject = %key, "metadata changed; re-registered");
                    existing.reconfigure(configured);
                    Arc::clone(existing)
                }
                None => {
                    info!(scaledobject = %key, "registered");
                    let reg = Arc::new(Registration::new(key.clone(), configured));
                    registry.insert(key.clone(), Arc::clone(&reg));
                    self.shared.telemetry.set_scaled_objects(registry.len());
                    reg
                }
            }
        };
        reg.touch(Utc::now());
        self.shared.generation.send_modify(|g| *g += 1);
        Ok(reg)
    }

    fn read_registry(
        &self,
    ) -> std::sync::RwLockReadGuard<'_, HashMap<ScaledObjectKey, Arc<Registration>>> {
        self.shared
            .registry
            .read()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn registrations(&self) -> Vec<Arc<Registration>> {
        self.read_registry().values().cloned().collect()
    }

    async fn evaluation_loop(&self) {
        let tick = self.shared.config.tick;
        let mut generation = self.shared.generation.subscribe();
        loop {
            let now = Utc::now();
            let next =
                floor_tick(now, tick) + TimeDelta::from_std(tick).unwrap_or(TimeDelta::seconds(15));
            let wait = (next - now).to_std().unwrap_or_default();
            tokio::select! {
                () = tokio::time::sleep(wait) => {
                    self.probe_source().await;
                    self.forget_idle(next);
                    let regs = self.registrations();
                    self.evaluate(&regs, next).await;
                }
                changed = generation.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    // New or changed ScaledObjects get a decision for the
                    // current tick now, instead of waiting up to a tick.
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
    }

    fn forget_idle(&self, now: DateTime<Utc>) {
        let limit =
            TimeDelta::from_std(self.shared.config.forget_after).unwrap_or(TimeDelta::hours(1));
        let mut registry = self
            .shared
            .registry
            .write()
            .unwrap_or_else(|e| e.into_inner());
        let before = registry.len();
        registry.retain(|key, reg| {
            let keep = now - reg.last_seen() < limit;
            if !keep {
                info!(scaledobject = %key, "forgotten after no calls from KEDA");
            }
            keep
        });
        if registry.len() != before {
            self.shared.telemetry.set_scaled_objects(registry.len());
        }
    }

    /// Evaluates `regs` at tick `at`: one read per distinct query, then the
    /// policy for each ScaledObject.
    async fn evaluate(&self, regs: &[Arc<Registration>], at: DateTime<Utc>) {
        let queries: HashSet<String> = regs
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
        let source = &self.shared.source;
        let values: HashMap<String, Result<Option<f64>, SourceError>> =
            futures::stream::iter(queries)
                .map(|q| async move {
                    let v = source.current(&q, at).await;
                    (q, v)
                })
                .buffer_unordered(32)
                .collect()
                .await;
        for reg in regs {
            self.evaluate_one(reg, at, &values);
        }
    }

    fn evaluate_one(
        &self,
        reg: &Registration,
        at: DateTime<Utc>,
        values: &HashMap<String, Result<Option<f64>, SourceError>>,
    ) {
        let cfg = reg.configured();
        let models = self.shared.models.lock().unwrap_or_else(|e| e.into_inner());
        let mut notes = Vec::new();
        let inputs: Vec<MetricInput> = cfg
            .spec
            .metrics
            .iter()
            .zip(&cfg.model_keys)
            .map(|(m, model_key)| {
                let observed = match values.get(&m.query) {
                    Some(Ok(v)) => *v,
                    Some(Err(e)) => {
                        notes.push(format!("{}: {e}", m.kind));
                        None
                    }
                    None => None,
                };
                let forecast_max = model_key.as_ref().and_then(|k| {
                    let Some(trained) = models.trained(k) else {
                        notes.push(format!(
                            "{}: forecast unavailable ({})",
                            m.kind,
                            models.last_error(k).unwrap_or("first training pending")
                        ));
                        return None;
                    };
                    if let Some(mase) = trained.validation_mase {
                        self.shared.telemetry.set_mase(
                            &reg.key().to_string(),
                            m.kind.label(),
                            mase,
                        );
                    }
                    trained
                        .forecast
                        .window_max_upper(at, at + cfg.spec.lead_time)
                });
                MetricInput {
                    kind: m.kind,
                    target: m.target,
                    observed,
                    forecast_max,
                }
            })
            .collect();
        drop(models);

        let outcome = reg.with_policy_state(|state| {
            let (mut d, next) = policy::decide(&cfg.behavior, &inputs, state, at)?;
            *state = next;
            d.notes.extend(notes.iter().cloned());
            Ok::<Decision, PolicyError>(d)
        });
        match outcome {
            Ok(d) => {
                debug!(scaledobject = %reg.key(), desired = d.desired_replicas, limiter = d.limiter.label(), "decision");
                self.shared
                    .telemetry
                    .observe_decision(&reg.key().to_string(), &d);
                reg.publish(d);
            }
            Err(e) => {
                let mut reason = e.to_string();
                if !notes.is_empty() {
                    reason = format!("{reason}: {}", notes.join("; "));
                }
                reg.set_waiting_reason(reason);
            }
        }
    }

    async fn training_loop(&self) {
        let permits = Arc::new(Semaphore::new(
            self.shared.config.training_parallelism.max(1),
        ));
        let mut generation = self.shared.generation.subscribe();
        loop {
            let wanted: HashSet<ModelKey> = self
                .registrations()
                .iter()
                .flat_map(|r| {
                    r.configured()
                        .model_keys
                        .iter()
                        .flatten()
                        .cloned()
                        .collect::<Vec<_>>()
                })
                .collect();
            let due = {
                let mut models = self.shared.models.lock().unwrap_or_else(|e| e.into_inner());
                models.retain_only(&wanted);
                models.take_due(&wanted, Utc::now())
            };
            for key in due {
                let this = self.clone();
                let permits = Arc::clone(&permits);
                tokio::spawn(async move {
                    let Ok(_permit) = permits.acquire_owned().await else {
                        return;
                    };
                    this.train(key).await;
                });
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(5)) => {}
                changed = generation.changed() => if changed.is_err() { return },
            }
        }
    }

    async fn train(&self, key: ModelKey) {
        let end = Utc::now();
        let history = self
            .shared
            .source
            .history(&key.query, end - key.history, end, key.step)
            .await;
        let series = match history {
            Ok(s) => s,
            Err(e) => {
                warn!(query = %key.query, error = %e, "history fetch failed; keeping the previous model");
                self.shared
                    .telemetry
                    .observe_training(Duration::ZERO, false);
                self.models()
                    .finish(&key, Err(e.to_string()), end, self.shared.config.retrain);
                return;
            }
        };
        let spec = key.train_spec(&series, &self.shared.config);
        let started = std::time::Instant::now();
        let result =
            tokio::task::spawn_blocking(move || crate::forecast::train(&series, &spec)).await;
        let elapsed = started.elapsed();
        let result = match result {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(join) => Err(format!("training task failed: {join}")),
        };
        self.shared
            .telemetry
            .observe_training(elapsed, result.is_ok());
        match &result {
            Ok(t) => {
                info!(query = %key.query, model = %t.model, mase = ?t.validation_mase, observations = t.observations, ms = elapsed.as_millis() as u64, "model trained")
            }
            Err(e) => {
                warn!(query = %key.query, error = %e, "training failed; keeping the previous model")
            }
        }
        self.models()
            .finish(&key, result.map(Arc::new), end, self.shared.config.retrain);
    }

    fn models(&self) -> std::sync::MutexGuard<'_, ModelTable> {
        self.shared.models.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<S: MetricSource> ScalerCore for Runtime<S> {
    fn metric_target(
        &self,
        key: &ScaledObjectKey,
        metadata: &HashMap<String, String>,
    ) -> Result<MetricTarget, CoreError> {
        self.register(key, metadata)
            .map(|reg| reg.target_rx().borrow().clone())
    }

    async fn decision(
        &self,
        key: &ScaledObjectKey,
        metadata: &HashMap<String, String>,
    ) -> Result<Arc<Decision>, CoreError> {
        let reg = self.register(key, metadata)?;
        let mut rx = reg.decisions_rx();
        if let Some(d) = rx.borrow().clone() {
            return Ok(d);
        }
        let waited = tokio::time::timeout(
            self.shared.config.first_answer_timeout,
            rx.wait_for(Option::is_some),
        )
        .await;
        match waited {
            Ok(Ok(d)) => d.clone().ok_or_else(|| CoreError::NotReady {
                key: key.clone(),
                reason: reg.waiting_reason(),
            }),
            _ => Err(CoreError::NotReady {
                key: key.clone(),
                reason: reg.waiting_reason(),
            }),
        }
    }

    fn watch_decisions(
        &self,
        key: &ScaledObjectKey,
        metadata: &HashMap<String, String>,
    ) -> Result<watch::Receiver<Option<Arc<Decision>>>, CoreError> {
        self.register(key, metadata).map(|r| r.decisions_rx())
    }

    fn watch_target(
        &self,
        key: &ScaledObjectKey,
        metadata: &HashMap<String, String>,
    ) -> Result<watch::Receiver<MetricTarget>, CoreError> {
        self.register(key, metadata).map(|r| r.target_rx())
    }

    fn explain(&self, key: &ScaledObjectKey) -> Option<Arc<Decision>> {
        self.read_registry()
            .get(key)?
            .decisions_rx()
            .borrow()
            .clone()
    }

    fn readiness(&self) -> Readiness {
        let probe = self
            .shared
            .source_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let (source_ok, source_error) = match probe {
            None => (false, Some("not probed yet".to_string())),
            Some(None) => (true, None),
            Some(Some(e)) => (false, Some(e)),
        };
        let regs = self.registrations();
        let mut awaiting: Vec<String> = regs
            .iter()
            .filter(|r| r.decisions_rx().borrow().is_none())
            .map(|r| r.key().to_string())
            .collect();
        awaiting.sort();
        let models_pending = self.models().never_trained();
        Readiness {
            ready: source_ok && awaiting.is_empty() && models_pending == 0,
            source: self.shared.source.describe(),
            source_ok,
            source_error,
            scaled_objects: regs.len(),
            awaiting_decision: awaiting,
            models_pending,
        }
    }

    fn telemetry(&self) -> &Telemetry {
        &self.shared.telemetry
    }
}

impl<S: MetricSource> Runtime<S> {
    /// Probes the source once, so readiness reflects it before the first tick.
    pub async fn warm_up(&self) {
        self.probe_source().await;
    }
}
