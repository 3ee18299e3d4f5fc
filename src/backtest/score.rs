//! How well the forecasts the policy saw predicted what came: MASE, sMAPE
//! and the coverage of the plain and the anchored intervals at the lead
//! time.

use chrono::{DateTime, TimeDelta, Utc};

use super::{ForecastScore, Models, demand_at};
use crate::domain::Series;
use crate::forecast::Trained;

/// Scores, at every data point in the scored span, the forecast the policy
/// saw for it: the model in force `lead` earlier.
pub(super) fn score_forecasts(
    s: &Series,
    models: &Models,
    lead: TimeDelta,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> ForecastScore {
    let (mut abs_scaled, mut smape, mut inside, mut n) = (0.0, 0.0, 0usize, 0usize);
    let (mut anchored_inside, mut anchored_n) = (0usize, 0usize);
    let mut level = None;
    for (i, y) in s.values.iter().enumerate() {
        let t = s.timestamp(i);
        if t < from || t > to || !y.is_finite() {
            continue;
        }
        let Some(m) = models.at(t - lead) else {
            continue;
        };
        let f = &m.forecast;
        let Some((slot, p)) = f.slot_at(t) else {
            continue;
        };
        let Ok(j) = usize::try_from((slot - f.start).num_seconds() / f.step.num_seconds().max(1))
        else {
            continue;
        };
        level = Some(f.level);
        abs_scaled += (y - p).abs() / m.mase_scale.max(1e-12);
        let denom = y.abs() + p.abs();
        if denom > 0.0 {
            smape += 200.0 * (y - p).abs() / denom;
        }
        if f.lower[j] <= *y && *y <= f.upper[j] {
            inside += 1;
        }
        n += 1;
        if let Some(hit) = anchored_hit(s, m, t - lead, j, *y) {
            anchored_n += 1;
            anchored_inside += usize::from(hit);
        }
    }
    let mean = |x: f64| (n > 0).then(|| x / n as f64);
    ForecastScore {
        mase: mean(abs_scaled),
        smape: mean(smape),
        interval_coverage: mean(inside as f64),
        interval_level: level.unwrap_or(0.0),
        points: n,
        anchored_coverage: (anchored_n > 0).then(|| anchored_inside as f64 / anchored_n as f64),
        anchored_points: anchored_n,
    }
}

/// Whether `y`, the value at forecast slot `j`, falls inside the anchored
/// interval as the policy computed it at `seen` (the value observed then,
/// carried `h` slots ahead). `None` without an anchor, without an
/// observation at `seen`, or when `j` is the slot observed then (`h = 0`)
/// or beyond the anchor's calibrated steps.
fn anchored_hit(s: &Series, m: &Trained, seen: DateTime<Utc>, j: usize, y: f64) -> Option<bool> {
    let a = m.anchor.as_ref()?;
    let f = &m.forecast;
    let observed = demand_at(s, seen)?;
    let (_, p0) = f.slot_at(seen)?;
    let step = f.step.num_milliseconds().max(1);
    let i0 = usize::try_from((seen - f.start).num_milliseconds().div_euclid(step)).ok()?;
    let (center, w) = f.anchored_at(a, observed - p0, i0, j)?;
    Some((y - center).abs() <= w)
}
