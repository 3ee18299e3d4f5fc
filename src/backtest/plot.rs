//! `--png`: demand against each policy's ready capacity, and the replica
//! counts, over the scored span.

use std::path::Path;

use crate::chart::{BLUE, GREEN, GREY, Line, ORANGE, Panel, draw, thin};

use super::timeline::POLICIES;
use super::{Report, Timeline};

/// Most points per drawn line; more only blurs a 1600-pixel-wide chart.
const MAX_POINTS: usize = 3_000;

/// Draws the backtest chart to `path` (PNG, atomically).
pub fn plot(t: &Timeline, report: &Report, path: &Path) -> std::io::Result<()> {
    let t0 = t.timestamp_ms.first().copied().unwrap_or(0);
    let hours = |i: usize| (t.timestamp_ms[i] - t0) as f64 / 3_600_000.0;
    let target = report.input.target_per_pod;
    let colors = [BLUE, ORANGE, GREEN];
    let demand: Vec<(f64, f64)> = (0..t.len())
        .map(|i| (hours(i), t.demand[i].unwrap_or(f64::NAN)))
        .collect();
    let mut capacity = vec![Line {
        label: "demand",
        points: thin(&demand, MAX_POINTS, false),
        color: GREY,
        band_floor: None,
    }];
    let mut replicas = Vec::new();
    for (p, name) in POLICIES.iter().enumerate() {
        let cap: Vec<(f64, f64)> = (0..t.len())
            .map(|i| (hours(i), f64::from(t.ready[p][i]) * target))
            .collect();
        capacity.push(Line {
            label: name,
            points: thin(&cap, MAX_POINTS, true),
            color: colors[p],
            band_floor: None,
        });
        let n: Vec<(f64, f64)> = (0..t.len())
            .map(|i| (hours(i), f64::from(t.replicas[p][i])))
            .collect();
        replicas.push(Line {
            label: name,
            points: thin(&n, MAX_POINTS, false),
            color: colors[p],
            band_floor: None,
        });
    }
    let i = &report.input;
    let x_label = format!("hours since {}", i.from);
    draw(
        path,
        &x_label,
        &[
            Panel {
                title: format!(
                    "{}: demand vs ready capacity (target {} per pod, start-up {}s)",
                    i.series, i.target_per_pod, i.startup_seconds
                ),
                y_label: &i.signal,
                lines: capacity,
            },
            Panel {
                title: "replicas (ready or starting)".into(),
                y_label: "replicas",
                lines: replicas,
            },
        ],
    )
}
