//! Incremental history: after the first load of a training window, each
//! retrain fetches only the new tail and stitches it to what it has.
//!
//! Models retrain at every boundary on the `history` ending there, so two
//! consecutive windows overlap in all but one retrain interval: refetching
//! three weeks each hour to learn one new hour is wasted load on Prometheus.
//! The cache keeps the last window per (query, step, window length), bounded
//! to that window. The tail is fetched from the last cached point inclusive,
//! so that point, which may have been read before all its samples were
//! ingested, is read again. Stitching checks that the tail lies on the
//! cached grid and otherwise falls back to a full fetch, so the result is
//! the same series a full fetch returns (`tests/prometheus_source.rs`
//! checks this against a real server).

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, TimeDelta, Utc};

use super::{MetricSource, SourceError};
use crate::domain::Series;

/// Identifies one cached window.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    /// The query.
    query: String,
    /// The requested step.
    step: TimeDelta,
    /// `end - start` of the requested window: two models of the same query
    /// with different `history` keep separate windows instead of evicting
    /// each other.
    span: TimeDelta,
}

/// How a request was served, for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryFetch {
    /// The whole window was fetched.
    Full,
    /// Only the tail from `from` was fetched and stitched to the cache.
    Tail {
        /// Start of the tail request (one step before the last cached
        /// point, so that point is read again).
        from: DateTime<Utc>,
        /// Points the tail returned.
        points: usize,
    },
}

/// Last window per (query, step, span); see the module documentation.
#[derive(Default)]
pub struct HistoryCache {
    /// The cached windows.
    entries: Mutex<HashMap<Key, Series>>,
}

impl HistoryCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// History of `query` over `[start, end]`, as `source.history` would
    /// return it, fetching only what the cache does not already hold.
    pub async fn history<S: MetricSource>(
        &self,
        source: &S,
        query: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        step: TimeDelta,
    ) -> Result<(Series, HistoryFetch), SourceError> {
        let key = Key {
            query: query.to_string(),
            step,
            span: end - start,
        };
        // Cloned so no lock is held across the fetch.
        let cached = self
            .entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned();
        if let Some(c) = cached.filter(|c| !c.is_empty()) {
            let last = c.timestamp(c.len() - 1);
            // The cache must reach back to the window's first point (the
            // first grid point after `start`), end inside the window (else
            // the "tail" would be the whole window or more), and not beyond
            // `end`.
            if c.start <= start + c.step && last > start && last <= end {
                let from = last - c.step;
                let tail = source.history(query, from, end, step).await?;
                if let Some(series) = stitch(&c, &tail, start) {
                    self.store(key, &series);
                    let points = tail.len();
                    return Ok((series, HistoryFetch::Tail { from, points }));
                }
            }
        }
        let series = source.history(query, start, end, step).await?;
        self.store(key, &series);
        Ok((series, HistoryFetch::Full))
    }

    /// Keeps `series` unless a newer window is already cached (trainings of
    /// older boundaries may finish after newer ones).
    fn store(&self, key: Key, series: &Series) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.get(&key) {
            Some(old) if old.end() > series.end() => {}
            _ => {
                entries.insert(key, series.clone());
            }
        }
    }

    /// Forgets windows whose (query, step, span) `keep` rejects, e.g. those
    /// of models no ScaledObject uses any more.
    pub fn retain(&self, keep: impl Fn(&str, TimeDelta, TimeDelta) -> bool) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k, _| keep(&k.query, k.step, k.span));
    }

    /// Windows cached.
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `cached` followed by `tail` (which wins where they overlap), keeping the
/// points after `start`; `None` when the tail is not on the cached grid.
fn stitch(cached: &Series, tail: &Series, start: DateTime<Utc>) -> Option<Series> {
    let step_ms = cached.step.num_milliseconds();
    if tail.is_empty() || tail.step != cached.step || step_ms <= 0 {
        return None;
    }
    let offset = (tail.start - cached.start).num_milliseconds();
    if offset < 0 || offset % step_ms != 0 {
        return None;
    }
    let k = usize::try_from(offset / step_ms).ok()?;
    let mut values: Vec<f64> = cached.values[..k.min(cached.len())].to_vec();
    // The tail starts at or before the point after the cache (it re-reads
    // the last cached point), so there is never a gap to fill.
    if k > cached.len() {
        return None;
    }
    values.extend_from_slice(&tail.values);
    // The window's first point is the first grid point after `start`.
    let skip = if cached.start > start {
        0
    } else {
        usize::try_from((start - cached.start).num_milliseconds() / step_ms + 1).ok()?
    };
    if skip > values.len() {
        return None;
    }
    let first = cached.start + cached.step * i32::try_from(skip).ok()?;
    Some(Series::new(first, cached.step, values.split_off(skip)))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::sources::{FileData, FileSource};

    /// Records every history request made to the wrapped source.
    struct Counting {
        /// The real source.
        inner: FileSource,
        /// `(start, end)` of each history call.
        calls: Mutex<Vec<(DateTime<Utc>, DateTime<Utc>)>>,
        /// Points returned in total.
        points: AtomicUsize,
    }

    impl MetricSource for Counting {
        fn describe(&self) -> String {
            self.inner.describe()
        }
        fn check_query(&self, query: &str) -> Result<(), SourceError> {
            self.inner.check_query(query)
        }
        async fn history(
            &self,
            query: &str,
            start: DateTime<Utc>,
            end: DateTime<Utc>,
            step: TimeDelta,
        ) -> Result<Series, SourceError> {
            self.calls.lock().unwrap().push((start, end));
            let s = self.inner.history(query, start, end, step).await?;
            self.points.fetch_add(s.len(), Ordering::Relaxed);
            Ok(s)
        }
        async fn current(
            &self,
            query: &str,
            at: DateTime<Utc>,
        ) -> Result<Option<f64>, SourceError> {
            self.inner.current(query, at).await
        }
        async fn probe(&self) -> Result<(), SourceError> {
            Ok(())
        }
    }

    fn source() -> Counting {
        // Ten days of a 1-minute ramp with a gap, starting at the epoch.
        let mut csv = String::from("series,timestamp,value\n");
        for i in 0..14_400 {
            let v = if (500..520).contains(&i) {
                String::new()
            } else {
                (i % 977).to_string()
            };
            csv.push_str(&format!("q,{},{v}\n", i * 60));
        }
        let (data, _) = FileData::from_csv_bytes("ramp.csv", csv.as_bytes()).unwrap();
        Counting {
            inner: FileSource::new(data),
            calls: Mutex::new(Vec::new()),
            points: AtomicUsize::new(0),
        }
    }

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    #[tokio::test]
    async fn the_second_fetch_asks_only_for_the_tail_and_equals_a_full_one() {
        let src = source();
        let cache = HistoryCache::new();
        let (step, span) = (TimeDelta::minutes(1), TimeDelta::days(2));
        let b1 = t(3 * 86_400);
        let (first, how) = cache.history(&src, "q", b1 - span, b1, step).await.unwrap();
        assert_eq!(how, HistoryFetch::Full);
        assert_eq!(first.len(), 2 * 1_440);

        let mut prev_end = b1;
        for hours in [1, 2, 5] {
            let b2 = b1 + TimeDelta::hours(hours);
            let before = src.calls.lock().unwrap().len();
            let (stitched, how) = cache.history(&src, "q", b2 - span, b2, step).await.unwrap();
            let calls = src.calls.lock().unwrap()[before..].to_vec();
            assert_eq!(calls.len(), 1, "one request");
            // From one step before the last cached point, to the new end.
            assert_eq!(calls[0], (prev_end - step, b2), "after {hours}h");
            assert!(
                matches!(how, HistoryFetch::Tail { points, .. } if points == (b2 - prev_end).num_minutes() as usize + 1),
                "{how:?}"
            );
            let full = src.inner.history("q", b2 - span, b2, step).await.unwrap();
            assert_eq!(stitched.start, full.start);
            assert_eq!(stitched.len(), full.len());
            for (i, (a, b)) in stitched.values.iter().zip(&full.values).enumerate() {
                assert!(a == b || (a.is_nan() && b.is_nan()), "#{i}: {a} vs {b}");
            }
            prev_end = b2;
        }
        assert_eq!(cache.len(), 1, "bounded: one window per key");
    }

    #[tokio::test]
    async fn a_window_the_cache_cannot_extend_is_fetched_whole() {
        let src = source();
        let cache = HistoryCache::new();
        let step = TimeDelta::minutes(1);
        let span = TimeDelta::hours(6);
        let b = t(5 * 86_400);
        cache.history(&src, "q", b - span, b, step).await.unwrap();
        // An older boundary (finished late): not a tail of the cache.
        let older = b - TimeDelta::hours(1);
        let (s, how) = cache
            .history(&src, "q", older - span, older, step)
            .await
            .unwrap();
        assert_eq!(how, HistoryFetch::Full);
        assert_eq!(s.timestamp(s.len() - 1), older);
        // The newer window stays cached: the next boundary is a tail.
        let next = b + TimeDelta::hours(1);
        let (_, how) = cache
            .history(&src, "q", next - span, next, step)
            .await
            .unwrap();
        assert!(matches!(how, HistoryFetch::Tail { .. }), "{how:?}");
        // A window beyond the cached span entirely: full.
        let far = b + TimeDelta::days(2);
        let (_, how) = cache
            .history(&src, "q", far - span, far, step)
            .await
            .unwrap();
        assert_eq!(how, HistoryFetch::Full);

        cache.retain(|q, _, _| q != "q");
        assert!(cache.is_empty());
    }
}
