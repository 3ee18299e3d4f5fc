//! The training loop: fits the models the registered ScaledObjects ask
//! for at aligned boundaries, on blocking threads, keeps the previous model
//! when a retrain fails, and builds `mode: holding`'s plans beside each new
//! model so an evaluation does not pay for them.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

use super::models::{ModelKey, activation_delay, to_delta};
use super::registry::Configured;
use super::{Runtime, evaluate, state};
use crate::domain::Mode;
use crate::forecast::{Choice, Trained};
use crate::policy::Plan;
use crate::sources::{HistoryFetch, MetricSource};

impl<S: MetricSource> Runtime<S> {
    pub(super) async fn training_loop(&self, trainings: &mut tokio::task::JoinSet<()>) {
        let permits = Arc::new(Semaphore::new(
            self.shared.config.training_parallelism.max(1),
        ));
        let mut generation = self.shared.generation.subscribe();
        loop {
            while trainings.try_join_next().is_some() {}
            let regs = self.registrations();
            // Each model is trained for the boundaries the longest replay
            // among the ScaledObjects using it covers; one window for all
            // made every model train for the longest of any.
            let mut windows: HashMap<ModelKey, chrono::TimeDelta> = HashMap::new();
            for r in &regs {
                let cfg = r.configured();
                for key in cfg.model_keys.iter().flatten() {
                    let w = windows.entry(key.clone()).or_insert(cfg.replay);
                    *w = (*w).max(cfg.replay);
                }
            }
            self.shared.history.retain(|query, step, span| {
                windows
                    .keys()
                    .any(|k| k.query == query && k.step == step && k.history == span)
            });
            let ids: HashSet<String> = windows.keys().map(|k| format!("{k:?}")).collect();
            self.shared.selections.retain(|k| ids.contains(k));
            let due = {
                let mut models = self.models();
                models.retain_only(&windows);
                models.take_due(&windows, Utc::now())
            };
            for (key, boundary) in due {
                let this = self.clone();
                let permits = Arc::clone(&permits);
                trainings.spawn(async move {
                    let Ok(_permit) = permits.acquire_owned().await else {
                        return;
                    };
                    this.train(key, boundary).await;
                });
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(5)) => {}
                changed = generation.changed() => if changed.is_err() { return },
            }
        }
    }

    /// The model selected at `at` for `key`: made earlier by this process,
    /// restored from the state directory for the same window, or selected
    /// now on the history window ending at `at` (so a replica that started
    /// after `at` makes the same choice as one that was running then).
    /// `None` when the history cannot be read or nothing fits: the caller
    /// then selects on its own window.
    async fn selection(&self, key: &ModelKey, at: DateTime<Utc>) -> Option<Choice> {
        let id = format!("{key:?}");
        if let Some(c) = self.shared.selections.get(&id, at, None) {
            return Some(c);
        }
        let series = match self
            .shared
            .source
            .history(&key.query, at - key.history, at, key.step)
            .await
        {
            Ok(s) => s,
            Err(e) => {
                warn!(query = %key.query, selected_at = %at, error = %e, "history for model selection failed; selecting on the current window");
                return None;
            }
        };
        let fp = state::fingerprint(&series);
        if let Some(c) = self.shared.selections.get(&id, at, Some(&fp)) {
            info!(query = %key.query, selected_at = %at, model = %c.model, "model selection restored from the state directory");
            return Some(c);
        }
        let spec = key.train_spec(&series, &self.shared.config);
        let trained = tokio::task::spawn_blocking(move || crate::forecast::train(&series, &spec))
            .await
            .ok()?
            .ok()?;
        let choice = trained.choice();
        self.store_selection(&id, at, fp, choice.clone());
        Some(choice)
    }

    fn store_selection(&self, id: &str, at: DateTime<Utc>, fingerprint: String, choice: Choice) {
        if let Err(e) = self.shared.selections.put(id, at, fingerprint, choice) {
            warn!(selected_at = %at, error = %e, "cannot write the model selection to the state directory; it is kept in memory");
        }
    }

    /// Trains `key` on the history window ending at `boundary`.
    async fn train(&self, key: ModelKey, boundary: DateTime<Utc>) {
        // Only the tail since the last fetch of this window is fetched.
        let history = self
            .shared
            .history
            .history(
                &self.shared.source,
                &key.query,
                boundary - key.history,
                boundary,
                key.step,
            )
            .await;
        let series = match history {
            Ok((s, how)) => {
                match how {
                    HistoryFetch::Full => {
                        debug!(query = %key.query, points = s.len(), "history fetched whole")
                    }
                    HistoryFetch::Tail { from, points } => {
                        debug!(query = %key.query, from = %from, tail = points, points = s.len(), "history tail fetched")
                    }
                }
                s
            }
            Err(e) => {
                warn!(query = %key.query, error = %e, "history fetch failed; keeping the previous model");
                self.shared
                    .telemetry
                    .observe_training(Duration::ZERO, false);
                self.models()
                    .finish(&key, boundary, Err(e.to_string()), Utc::now());
                return;
            }
        };
        let spec = key.train_spec(&series, &self.shared.config);
        let started = std::time::Instant::now();
        let selected_at = crate::forecast::plan::selection_boundary(
            boundary,
            to_delta(self.shared.config.retrain),
            to_delta(self.shared.config.reselect),
        );
        let id = format!("{key:?}");
        let fp = (selected_at == boundary).then(|| state::fingerprint(&series));
        let chosen = match &fp {
            // A restart at a selection boundary reuses the stored selection
            // if the source returned the same window.
            Some(fp) => {
                let c = self.shared.selections.get(&id, boundary, Some(fp));
                if let Some(c) = &c {
                    info!(query = %key.query, selected_at = %boundary, model = %c.model, "model selection restored from the state directory");
                }
                c
            }
            None => self.selection(&key, selected_at).await,
        };
        let refitted = chosen.is_some();
        let result = tokio::task::spawn_blocking(move || match chosen {
            Some(c) => crate::forecast::refit(&series, &spec, &c),
            None => crate::forecast::train(&series, &spec),
        })
        .await;
        let elapsed = started.elapsed();
        let result = match result {
            Ok(r) => r.map(Arc::new).map_err(|e| e.to_string()),
            Err(join) => Err(format!("training task failed: {join}")),
        };
        if let (Some(fp), Ok(t), false) = (fp, &result, refitted) {
            self.store_selection(&id, boundary, fp, t.choice());
        }
        self.shared
            .telemetry
            .observe_training(elapsed, result.is_ok());
        match &result {
            Ok(t) => {
                info!(query = %key.query, boundary = %boundary, model = %t.model, mase = ?t.validation_mase, observations = t.observations, ms = elapsed.as_millis() as u64, refitted, selected_at = %selected_at, "model trained")
            }
            Err(e) => {
                warn!(query = %key.query, boundary = %boundary, error = %e, "training failed; keeping the previous model")
            }
        }
        let built = match &result {
            Ok(t) if t.need.is_some() => self.build_plans(&key, t).await,
            _ => Vec::new(),
        };
        let now = Utc::now();
        {
            // The plans are published with their model, under the locks an
            // evaluation holds (models, then plans), so no replay sees the
            // model without them.
            let mut models = self.models();
            let mut plans = self.shared.plans.lock().unwrap_or_else(|e| e.into_inner());
            if let Ok(t) = &result {
                for (fingerprint, index, plan) in built {
                    plans.insert_built(fingerprint, index, t, plan);
                }
            }
            models.finish(&key, boundary, result, now);
        }
        // Decisions that use this model are re-evaluated for the current
        // tick. One that is not active yet is used by no decision so far
        // (the tick it activates at is evaluated anyway), and marking for it
        // would hold readiness at every boundary for nothing.
        let active = boundary + activation_delay(self.shared.config.retrain) <= now;
        for reg in self.registrations() {
            if active
                && reg
                    .configured()
                    .model_keys
                    .iter()
                    .flatten()
                    .any(|k| *k == key)
            {
                reg.mark_for_evaluation();
            }
        }
        self.shared.generation.send_modify(|g| *g += 1);
    }

    /// Builds, on a blocking thread (under the caller's training permit),
    /// the `mode: holding` plans of every registered configuration whose
    /// signals use `key`'s model, for its new model `trained`: an evaluation
    /// would otherwise build them at the first tick that uses the model,
    /// 1-35 ms each (16-64 modelled needs), for every configuration at
    /// once after each hourly training.
    async fn build_plans(&self, key: &ModelKey, trained: &Arc<Trained>) -> Vec<(u64, usize, Plan)> {
        let mut seen = HashSet::new();
        let mut targets: Vec<(Arc<Configured>, usize)> = Vec::new();
        for reg in self.registrations() {
            let cfg = reg.configured();
            if cfg.behavior.mode != Mode::Holding || !seen.insert(cfg.fingerprint) {
                continue;
            }
            for (index, k) in cfg.model_keys.iter().enumerate() {
                if k.as_ref() == Some(key) {
                    targets.push((Arc::clone(&cfg), index));
                }
            }
        }
        if targets.is_empty() {
            return Vec::new();
        }
        let trained = Arc::clone(trained);
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || {
            targets
                .into_iter()
                .filter_map(|(cfg, index)| {
                    let started = std::time::Instant::now();
                    let plan = evaluate::build_plan(&cfg, &trained)?;
                    shared.telemetry.observe_plan_build(true, started.elapsed());
                    Some((cfg.fingerprint, index, plan))
                })
                .collect()
        })
        .await
        .unwrap_or_else(|e| {
            warn!(error = %e, "building holding plans failed; evaluations will build them");
            Vec::new()
        })
    }
}
