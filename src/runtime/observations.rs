//! Observations per query at aligned ticks, kept for the replay window.
//!
//! A decision is replayed over the ticks of its window, so every tick's
//! value must be at hand. Values read live at a tick are stored; a query
//! seen for the first time is backfilled for the whole window, reading each
//! past tick exactly as it would have been read live.
//!
//! A read that failed because the source was down (unreachable, or refused
//! by its circuit breaker) is read again at the next evaluation, so once the
//! source is back the window holds what it really held, as on a replica
//! that never saw the outage. Other failures (a rejected query, a query the
//! server failed to evaluate) are not retried for past ticks: retrying an
//! expensive query over the whole window would add load where it hurts.
//! The cache also remembers, per query, the newest tick read successfully,
//! which is how stale a decision's data is.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, TimeDelta, Utc};

use crate::sources::SourceError;

/// One tick's read: the value (or no data), or the source's error.
pub(crate) type Read = Result<Option<f64>, SourceError>;

/// Everything known about one query.
struct QueryLog {
    /// Tick → read.
    ticks: BTreeMap<DateTime<Utc>, Read>,
    /// Newest tick whose read succeeded (a value or no data).
    last_ok: Option<DateTime<Utc>>,
    /// Oldest tick ever read: a query never read successfully is stale
    /// since then.
    first_read: DateTime<Utc>,
    /// Changes each time a tick is written that is not newer than every
    /// tick already held (a backfill, or a past tick read again once the
    /// source is back), so a replay state carried forward over these ticks
    /// knows to start again ([`super::evaluate::PrefixCache`]). Live reads
    /// append the newest tick and leave it alone.
    revision: u64,
}

/// Tick values per query.
#[derive(Default)]
pub(crate) struct ObservationCache {
    /// Query → its reads.
    by_query: HashMap<String, QueryLog>,
    /// The last revision handed out, cache-wide, so a query dropped and
    /// read again never reuses a revision of its earlier log.
    revisions: u64,
}

/// Whether a failed read should be tried again for its (past) tick.
fn retry(e: &SourceError) -> bool {
    matches!(
        e,
        SourceError::Unavailable { .. } | SourceError::CircuitOpen { .. }
    )
}

impl ObservationCache {
    /// Ticks of `[from, to]` (both aligned) not yet read for `query`, or
    /// read while the source was down.
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
            let read = known.and_then(|k| k.ticks.get(&t));
            if read.is_none_or(|r| r.as_ref().is_err_and(retry)) {
                out.push(t);
            }
            t += tick;
        }
        out
    }

    pub(crate) fn insert(&mut self, query: &str, at: DateTime<Utc>, read: Read) {
        let log = self
            .by_query
            .entry(query.to_string())
            .or_insert_with(|| QueryLog {
                ticks: BTreeMap::new(),
                last_ok: None,
                first_read: at,
                revision: 0,
            });
        let rewrite = log
            .ticks
            .last_key_value()
            .is_none_or(|(newest, _)| at <= *newest);
        if rewrite {
            self.revisions += 1;
            log.revision = self.revisions;
        }
        log.first_read = log.first_read.min(at);
        if read.is_ok() && log.last_ok.is_none_or(|t| t < at) {
            log.last_ok = Some(at);
        }
        log.ticks.insert(at, read);
    }

    /// Which version of `query`'s past ticks the cache holds: it changes
    /// whenever a tick other than a new newest one is written. `None` for a
    /// query never read.
    pub(crate) fn revision(&self, query: &str) -> Option<u64> {
        self.by_query.get(query).map(|log| log.revision)
    }

    /// The value of `query` at tick `at`: `None` if unread or no data.
    pub(crate) fn value(&self, query: &str, at: DateTime<Utc>) -> Option<f64> {
        self.by_query
            .get(query)?
            .ticks
            .get(&at)?
            .as_ref()
            .ok()
            .copied()
            .flatten()
    }

    /// The source's error for `query` at `at`, if the read failed.
    pub(crate) fn error(&self, query: &str, at: DateTime<Utc>) -> Option<&SourceError> {
        self.by_query.get(query)?.ticks.get(&at)?.as_ref().err()
    }

    /// The source's verdict that `query` itself is wrong (syntax, several
    /// series), if its read at `at` got one.
    pub(crate) fn rejected(&self, query: &str, at: DateTime<Utc>) -> Option<&SourceError> {
        self.error(query, at).filter(|e| e.is_caller_error())
    }

    /// How old the newest successful read of `query` is at `at`: zero when
    /// the read at `at` succeeded; since the first read when none ever did;
    /// `None` for a query never read.
    pub(crate) fn staleness(&self, query: &str, at: DateTime<Utc>) -> Option<TimeDelta> {
        let log = self.by_query.get(query)?;
        let since = log.last_ok.unwrap_or(log.first_read);
        Some((at - since).max(TimeDelta::zero()))
    }

    /// Forgets ticks before `oldest`, and queries nobody uses.
    pub(crate) fn trim(&mut self, oldest: DateTime<Utc>, used: impl Fn(&str) -> bool) {
        self.by_query.retain(|q, _| used(q));
        for log in self.by_query.values_mut() {
            log.ticks = log.ticks.split_off(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).unwrap()
    }

    fn down() -> SourceError {
        SourceError::Unavailable {
            endpoint: "p".into(),
            message: "connection refused".into(),
        }
    }

    #[test]
    fn reads_failed_while_down_are_retried_and_staleness_follows_the_last_success() {
        let tick = TimeDelta::seconds(15);
        let mut c = ObservationCache::default();
        assert_eq!(c.staleness("q", t(0)), None);
        c.insert("q", t(0), Ok(Some(1.0)));
        c.insert("q", t(15), Err(down()));
        c.insert("q", t(30), Ok(None));
        c.insert(
            "q",
            t(45),
            Err(SourceError::QueryFailed {
                endpoint: "p".into(),
                query: "q".into(),
                message: "timeout: query timed out".into(),
            }),
        );
        c.insert(
            "q",
            t(60),
            Err(SourceError::QueryRejected {
                query: "q".into(),
                message: "parse error".into(),
            }),
        );
        // Only the tick read while the source was down, and unread ones.
        assert_eq!(c.missing("q", t(0), t(75), tick), vec![t(15), t(75)]);
        assert_eq!(c.staleness("q", t(30)), Some(TimeDelta::zero()));
        assert_eq!(c.staleness("q", t(60)), Some(TimeDelta::seconds(30)));
        assert!(c.rejected("q", t(60)).is_some());
        assert!(c.rejected("q", t(45)).is_none());
        assert_eq!(c.value("q", t(0)), Some(1.0));
        assert_eq!(c.value("q", t(30)), None);

        // A query never read successfully is stale since its first read.
        c.insert("r", t(30), Err(down()));
        c.insert("r", t(45), Err(down()));
        assert_eq!(c.staleness("r", t(60)), Some(TimeDelta::seconds(30)));
        // A late success of an old tick does not make newer data older.
        c.insert("q", t(15), Ok(Some(2.0)));
        assert_eq!(c.staleness("q", t(60)), Some(TimeDelta::seconds(30)));
        c.trim(t(30), |q| q == "q");
        assert_eq!(c.value("q", t(0)), None);
        assert_eq!(c.staleness("r", t(60)), None);
        assert_eq!(c.staleness("q", t(60)), Some(TimeDelta::seconds(30)));
    }
}
