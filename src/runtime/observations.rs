//! Observations per query at aligned ticks, kept for the replay window.
//!
//! A decision is replayed over the ticks of its window, so every tick's
//! value must be at hand. Values read live at a tick are stored; a query
//! seen for the first time is backfilled for the whole window, reading each
//! past tick exactly as it would have been read live.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, TimeDelta, Utc};

/// One tick's read: the value (or no data), or the source's error.
pub(crate) type Read = Result<Option<f64>, String>;

/// Tick values per query.
#[derive(Default)]
pub(crate) struct ObservationCache {
    /// Query → tick → read.
    by_query: HashMap<String, BTreeMap<DateTime<Utc>, Read>>,
}

impl ObservationCache {
    /// Ticks of `[from, to]` (both aligned) not yet read for `query`.
    pub(crate) fn missing(
        &self,
        query: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        tick: TimeDelta,
    ) -> Vec<DateTime<Utc>> {
        let known = self.by_query.get(query);
        let mut out = Vec::new();
        let mut t = from;
        while t <= to {
            if known.is_none_or(|k| !k.contains_key(&t)) {
                out.push(t);
            }
            t += tick;
        }
        out
    }

    pub(crate) fn insert(&mut self, query: &str, at: DateTime<Utc>, read: Read) {
        self.by_query
            .entry(query.to_string())
            .or_default()
            .insert(at, read);
    }

    /// The value of `query` at tick `at`: `None` if unread or no data.
    pub(crate) fn value(&self, query: &str, at: DateTime<Utc>) -> Option<f64> {
        self.by_query
            .get(query)?
            .get(&at)?
            .as_ref()
            .ok()
            .copied()
            .flatten()
    }

    /// The source's error for `query` at `at`, if the read failed.
    pub(crate) fn error(&self, query: &str, at: DateTime<Utc>) -> Option<&str> {
        self.by_query
            .get(query)?
            .get(&at)?
            .as_ref()
            .err()
            .map(String::as_str)
    }

    /// Forgets ticks before `oldest`, and queries nobody uses.
    pub(crate) fn trim(&mut self, oldest: DateTime<Utc>, used: impl Fn(&str) -> bool) {
        self.by_query.retain(|q, _| used(q));
        for ticks in self.by_query.values_mut() {
            *ticks = ticks.split_off(&oldest);
        }
    }
}
