//! Golden counts for `mode: holding`: the need model
//! (`foresight::forecast::NeedModel`) and the plan's choices
//! (`foresight::policy::Plan`) must give exactly the counts of the
//! feasibility notebook's implementation, which derived and measured the
//! policy. `fixtures/holding/golden_holding.py` copies the notebook's
//! `next_need_model`, `holding_schedule` and `follow` verbatim, runs them on
//! a synthetic 12-day series at three pairs of prices, and writes
//! `fixtures/holding/golden.json` (its docstring says how, and what was
//! held fixed: one model learnt on every transition, one plan over the whole
//! series, followed from period 1).

use chrono::{DateTime, TimeDelta};
use foresight::domain::Series;
use foresight::forecast::{NeedModel, NeedSpec};
use foresight::policy::{Plan, PlanSpec, Prices};
use serde::Deserialize;

#[derive(Deserialize)]
struct Golden {
    values: Vec<f64>,
    n_max: u32,
    edges: [f64; 2],
    schedules: Vec<Schedule>,
}

#[derive(Deserialize)]
struct Schedule {
    short_minute_price: f64,
    flap_price: f64,
    at_landing: Vec<u32>,
    before_next: Vec<u32>,
}

fn golden() -> Golden {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/holding/golden.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// 0 none, 1 up, 2 down: the plan's encoding of the last change.
fn direction(from: u32, to: u32) -> usize {
    match to.cmp(&from) {
        std::cmp::Ordering::Greater => 1,
        std::cmp::Ordering::Less => 2,
        std::cmp::Ordering::Equal => 0,
    }
}

#[test]
fn the_plan_chooses_the_notebooks_counts() {
    let g = golden();
    // Monday 2024-01-01 00:00 UTC.
    let start = DateTime::from_timestamp(1_704_067_200, 0).unwrap();
    let step = TimeDelta::minutes(5);
    let series = Series::new(start, step, g.values.clone());
    let spec = NeedSpec {
        target: 10.0,
        min_replicas: 1,
        max_replicas: 100,
    };
    let model = NeedModel::fit(&series, &spec).unwrap();
    assert_eq!(model.n_max, g.n_max);
    assert_eq!(model.edges, g.edges);
    let need: Vec<u32> = g.values.iter().map(|v| spec.need(*v)).collect();
    let slots = need.len();

    for s in &g.schedules {
        let prices = Prices {
            short_minute: s.short_minute_price,
            flap: s.flap_price,
        };
        // Stored for every slot but the last, with nothing beyond: the
        // notebook's plan ends with the series.
        // The notebook counts every change as applied: no downstream HPA.
        let spec = PlanSpec {
            prices,
            lead: TimeDelta::minutes(2),
            hpa_tolerance: 0.0,
            max_replicas: 1_000,
            // The notebook's accounting may leave a need short.
            serve_need: false,
        };
        let plan = Plan::new(&model, &spec, start, step, slots - 1, 0).unwrap();
        let (mut held, mut dir) = (need[1].min(model.n_max), 0);
        let (mut landing, mut before) = (Vec::new(), Vec::new());
        for k in 1..slots - 1 {
            let t = plan.tercile(need[k - 1]);
            let c0 = plan.at_landing(k, need[k], t, held, dir);
            let c3 = plan.before_next(k, need[k], t, c0, direction(held, c0));
            (held, dir) = (c3, direction(c0, c3));
            let spike = if need[k] > model.n_max { need[k] } else { 0 };
            landing.push(c0.max(spike));
            before.push(c3.max(spike));
        }
        let differ = |a: &[u32], b: &[u32]| a.iter().zip(b).filter(|(x, y)| x != y).count();
        assert_eq!(
            (
                differ(&landing, &s.at_landing),
                differ(&before, &s.before_next)
            ),
            (0, 0),
            "prices {prices:?}: counts differ from the notebook's"
        );
        assert_eq!(landing.len(), s.at_landing.len());
    }
}
