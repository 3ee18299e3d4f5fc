//! The per-tick timeline, written as Parquet for notebooks and plots.

use std::path::Path;

use chrono::{DateTime, Utc};
use polars::prelude::{Column, DataFrame, DataType, ParquetWriter, TimeUnit};

/// One tick of the replay.
pub(crate) struct Row {
    /// The instant.
    pub(crate) t: DateTime<Utc>,
    /// Recorded demand (the latest sample), `None` in a gap.
    pub(crate) demand: Option<f64>,
    /// The forecast the policy saw for this instant (point, lower, upper).
    pub(crate) forecast: Option<(f64, f64, f64)>,
    /// foresight's (pods, ready pods, backlog).
    pub(crate) foresight: (u32, u32, f64),
    /// The HPA's.
    pub(crate) hpa: (u32, u32, f64),
    /// The oracle's.
    pub(crate) oracle: (u32, u32, f64),
}

/// Every tick, column by column.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timeline {
    /// Tick instants, epoch milliseconds (UTC).
    pub timestamp_ms: Vec<i64>,
    /// Demand at the tick.
    pub demand: Vec<Option<f64>>,
    /// The forecast's point value for the tick, made `leadTime` earlier.
    pub forecast: Vec<Option<f64>>,
    /// Its interval's lower end.
    pub forecast_lower: Vec<Option<f64>>,
    /// Its interval's upper end.
    pub forecast_upper: Vec<Option<f64>>,
    /// Per policy (foresight, hpa, oracle): pods.
    pub replicas: [Vec<u32>; 3],
    /// Per policy: ready pods.
    pub ready: [Vec<u32>; 3],
    /// Per policy: unserved work carried over (queue-like signals).
    pub backlog: [Vec<f64>; 3],
}

/// Policy names in the order of the per-policy arrays.
pub const POLICIES: [&str; 3] = ["foresight", "hpa", "oracle"];

impl Timeline {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Self {
            timestamp_ms: Vec::with_capacity(n),
            demand: Vec::with_capacity(n),
            forecast: Vec::with_capacity(n),
            forecast_lower: Vec::with_capacity(n),
            forecast_upper: Vec::with_capacity(n),
            replicas: std::array::from_fn(|_| Vec::with_capacity(n)),
            ready: std::array::from_fn(|_| Vec::with_capacity(n)),
            backlog: std::array::from_fn(|_| Vec::with_capacity(n)),
        }
    }

    pub(crate) fn push(&mut self, r: Row) {
        self.timestamp_ms.push(r.t.timestamp_millis());
        self.demand.push(r.demand);
        self.forecast.push(r.forecast.map(|f| f.0));
        self.forecast_lower.push(r.forecast.map(|f| f.1));
        self.forecast_upper.push(r.forecast.map(|f| f.2));
        for (i, (n, ready, backlog)) in [r.foresight, r.hpa, r.oracle].into_iter().enumerate() {
            self.replicas[i].push(n);
            self.ready[i].push(ready);
            self.backlog[i].push(backlog);
        }
    }

    /// Ticks recorded.
    pub fn len(&self) -> usize {
        self.timestamp_ms.len()
    }

    /// Whether no tick was recorded.
    pub fn is_empty(&self) -> bool {
        self.timestamp_ms.is_empty()
    }

    fn frame(&self) -> Result<DataFrame, String> {
        let ts = Column::new("timestamp".into(), &self.timestamp_ms)
            .cast(&DataType::Datetime(TimeUnit::Milliseconds, None))
            .map_err(|e| e.to_string())?;
        let mut cols = vec![
            ts,
            Column::new("demand".into(), &self.demand),
            Column::new("forecast".into(), &self.forecast),
            Column::new("forecast_lower".into(), &self.forecast_lower),
            Column::new("forecast_upper".into(), &self.forecast_upper),
        ];
        for (i, p) in POLICIES.iter().enumerate() {
            cols.push(Column::new(
                format!("{p}_replicas").into(),
                &self.replicas[i],
            ));
            cols.push(Column::new(format!("{p}_ready").into(), &self.ready[i]));
            cols.push(Column::new(format!("{p}_backlog").into(), &self.backlog[i]));
        }
        DataFrame::new(self.len(), cols).map_err(|e| e.to_string())
    }
}

/// Writes the timeline as Parquet, atomically: a temporary file in the same
/// directory, renamed over `path` only once complete. Timestamps are UTC.
pub fn write_timeline(t: &Timeline, path: &Path) -> std::io::Result<()> {
    let mut df = t.frame().map_err(std::io::Error::other)?;
    crate::durable::write_atomically(path, |f| {
        ParquetWriter::new(f)
            .finish(&mut df)
            .map(|_| ())
            .map_err(std::io::Error::other)
    })
}
