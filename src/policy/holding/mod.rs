//! The holding policy (`mode: holding`): counts chosen by backward induction
//! over a learnt model of the next sample's need.
//!
//! For a series sampled every few minutes, each sample's need is known only
//! when it lands, and the forecast's upper quantile must either buy capacity
//! for every possible jump (costly) or release it after each sample (a flap
//! per sample). The holding policy instead prices both: it decides twice per
//! sample period, when a sample lands and `leadTime` before the next one, and
//! picks the count that minimises expected pod-minutes + `shortMinutePrice` ×
//! short minutes + `flapPrice` × flaps over the next hour, for the
//! distribution of the next need that [`NeedModel`](crate::forecast::NeedModel) learnt from history.
//! Both prices are given in minutes of the average need, and turned into
//! pod-minutes with the model's mean need.
//! `notebooks/goal_feasibility.ipynb` derived it and measured what it can
//! reach on the real traces; this is its Rust form, with the same accounting:
//!
//! * a rise is ready `leadTime` after it is asked for and paid from the ask;
//!   a drop is immediate;
//! * a reversal of the previous change at the next decision instant (less
//!   than a period later) is a flap, one a whole period later is not;
//! * the state carried between instants is the count in force and the
//!   direction of the last change.
//!
//! A plan is computed once per trained model ([`Plan::new`]): backward
//! induction gives the expected values per future sample slot, and the plan
//! keeps, for every state of every slot, the count with the least cost
//! against them. A decision reads it ([`Plan::at_landing`],
//! [`Plan::before_next`]), so it is a pure function of the model, the slot
//! and the state, as replica agreement needs.
//!
//! Layout: [`induction`] is the backward induction's arithmetic (one slot's
//! decisions, the matrix product, which steps the downstream HPA applies);
//! [`plan`] builds a [`Plan`] from a model with it and answers lookups;
//! this file turns a signal's samples into lookups ([`hold`]) and explains
//! the answer.

mod induction;
mod plan;

use std::fmt::Write as _;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};

use self::induction::{NONE, applied, direction};
use self::plan::Odds;
pub use self::plan::{Plan, PlanError, PlanSpec, Prices};
use super::{Behavior, ForecastInput};
use crate::forecast::NeedSpec;

/// What one signal's holding policy remembers between ticks.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct HoldMemory {
    /// The plan of the model in force, keyed by its forecast's start (one
    /// plan per trained model, built at its first use unless the caller
    /// handed one in).
    plan: Option<(DateTime<Utc>, Arc<Plan>)>,
    /// Landing time of the slot whose decisions were made last.
    landed: Option<DateTime<Utc>>,
    /// Whether that slot's second decision (`leadTime` before the next
    /// sample) was made.
    second_done: bool,
    /// The planned count in force (up to [`Plan::max_count`]).
    held: u32,
    /// The direction of the last change of `held`: a reversal at the next
    /// instant is a flap.
    dir: usize,
    /// The need of the landed slot (uncapped, to serve spikes above the model).
    need: u32,
    /// The tercile of the need of the slot before it.
    before: usize,
    /// The count a rise at this landing went past the need from, and the
    /// count that serves the need, when the downstream HPA would ignore a
    /// rise from one to the other: the note says why the count is above
    /// the need.
    past_tolerance: Option<(u32, u32)>,
    /// What the pods above the need buy, by the model, when the count in
    /// force is above it: the note says so. Worked out when the count is
    /// decided, not at every tick that reads it.
    odds: Option<Odds>,
}

/// The slots a plan stores past the forecast's start, and how far past the
/// last of them it looks: a model serves until the next training's is
/// active, which the forecast's horizon covers; an hour further ahead
/// changed no count in the notebook's runs (1, 3 and 12 hours agreed).
const LOOKAHEAD: TimeDelta = TimeDelta::hours(1);
/// ...but at most this many samples: the plan's cost grows with its slots,
/// and on 10-second samples an hour is 360 of them (a second per plan at 40
/// modelled needs, which made a live server's ticks lag). Twelve is the
/// hour at 5-minute samples, where it was measured.
const MAX_LOOKAHEAD_SLOTS: usize = 12;

/// The plan `mode: holding` follows while `f`'s model is in force, under
/// `b`'s prices and bounds. A pure function of its inputs: `serve`, which
/// replays its window at every evaluation, builds it once per model and
/// passes it back in [`ForecastInput::plan`].
pub fn holding_plan(b: &Behavior, f: &ForecastInput<'_>) -> Result<Plan, String> {
    let model = f
        .need
        .ok_or("the training history held no transitions to learn the next need from")?;
    // Priced in minutes of the average fleet: a fixed number of pod-minutes
    // would make a short minute cheaper than serving a large need, and the
    // plan would under-provision every workload above that size.
    let prices = Prices {
        short_minute: b.rules.short_minute_price * model.mean_need,
        flap: b.rules.flap_price * model.mean_need,
    };
    let step = f.forecast.step;
    let per = step.num_milliseconds().max(1);
    let lookahead = usize::try_from((LOOKAHEAD.num_milliseconds() + per - 1) / per)
        .unwrap_or(MAX_LOOKAHEAD_SLOTS)
        .min(MAX_LOOKAHEAD_SLOTS);
    let spec = PlanSpec {
        prices,
        lead: b.lead_time,
        hpa_tolerance: b.rules.hpa_tolerance,
        max_replicas: b.max_replicas,
        serve_need: true,
    };
    Plan::new(
        model,
        &spec,
        f.forecast.start - step,
        step,
        f.forecast.point.len() + 1,
        lookahead,
    )
    .map_err(|e| e.to_string())
}

/// The holding count at `now` for a signal whose value is `value`, with a
/// note explaining it, updating `mem`; `Err` says why there is none (the
/// caller falls back).
pub(super) fn hold(
    mem: &mut HoldMemory,
    b: &Behavior,
    f: &ForecastInput<'_>,
    target: f64,
    value: f64,
    current: Option<u32>,
    now: DateTime<Utc>,
) -> Result<(u32, String), String> {
    let need_spec = NeedSpec {
        target,
        min_replicas: b.min_replicas,
        max_replicas: b.max_replicas,
    };
    let lead = b.lead_time;
    let key = f.forecast.start;
    if mem.plan.as_ref().is_none_or(|(k, _)| *k != key) {
        let plan = match f.plan {
            Some(p) => Arc::clone(p),
            None => Arc::new(holding_plan(b, f)?),
        };
        mem.plan = Some((key, plan));
    }
    let Some((_, plan)) = &mem.plan else {
        return Err("no plan".into());
    };
    let (k, landed) = plan
        .slot(now)
        .ok_or("the plan does not reach now (retraining overdue)")?;
    let n = plan.n_max();
    if mem.landed != Some(landed) {
        let need = need_spec.need(value);
        let previous = plan.step;
        let before = match mem.landed {
            Some(t) if t + previous == landed => mem.need,
            _ => need,
        };
        let (held, dir) = match mem.landed {
            Some(_) => (mem.held, mem.dir),
            None => (current.unwrap_or(need).clamp(1, plan.max_count()), NONE),
        };
        mem.before = plan.tercile(before);
        let c0 = plan.at_landing(k, need, mem.before, held, dir);
        let odds = plan.odds(k, need, mem.before, c0);
        let serving = plan.level(need) as u32 * plan.unit;
        let ignored = !applied(
            plan.count_level(held) - 1,
            plan.count_level(serving) - 1,
            b.rules.hpa_tolerance,
        );
        *mem = HoldMemory {
            plan: mem.plan.take(),
            landed: Some(landed),
            second_done: false,
            held: c0,
            dir: direction(held as usize, c0 as usize),
            need,
            before: mem.before,
            past_tolerance: (c0 > serving && serving > held && ignored).then_some((held, serving)),
            odds,
        };
    }
    let Some((_, plan)) = &mem.plan else {
        return Err("no plan".into());
    };
    if !mem.second_done && now >= plan.second_decision(landed, lead) {
        let c3 = plan.before_next(k, mem.need, mem.before, mem.held, mem.dir);
        mem.dir = direction(mem.held as usize, c3 as usize);
        mem.held = c3;
        mem.second_done = true;
        mem.odds = plan.odds(k, mem.need, mem.before, c3);
    }
    // A need above what the model plans for is served as it lands.
    let spike = if mem.need > n { mem.need } else { 0 };
    let served = mem.held.max(spike);
    // One buffer: a replay formats this note at every tick of its window,
    // and only the last tick's is kept.
    let mut note = format!("holding plan: the sample in force needs {} (", mem.need);
    // Writing to a String cannot fail.
    let _ = if spike > 0 {
        write!(note, "above the {n} modelled, so served as it lands")
    } else {
        write!(note, "tercile {} before it", mem.before)
    };
    let _ = write!(
        note,
        "), {} {served}",
        if mem.second_done {
            "asked for the next sample:"
        } else {
            "held since it landed:"
        }
    );
    match (mem.past_tolerance, mem.odds) {
        (Some((from, to)), _) if !mem.second_done => {
            let _ = write!(
                note,
                " (above the need: a rise from {from} to {to} is within the downstream HPA's tolerance of {} and would be ignored)",
                b.rules.hpa_tolerance
            );
        }
        // Why pods above the need are worth their price: the chance the
        // next sample needs them. A spike above the model has no such odds.
        (_, Some(o)) if spike == 0 => {
            let _ = write!(
                note,
                "; by the model, the next sample needs more than {} with probability {}% and more than {} with {}%",
                o.need, o.above_need, o.count, o.above_count
            );
        }
        _ => {}
    }
    Ok((served, note))
}
