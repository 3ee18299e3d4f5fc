//! Forecast fit+predict cost at n = 672, 2016 and 8064 points, against
//! seasonal naive measured in the same run.
//!
//! The data is the last n points of the Azure VM CPU trace from `shared/data`
//! (5-minute steps, so a day is 288 steps and a week 2016). Each size is
//! measured three ways:
//!
//! * `mstl_fit_predict`: one MSTL+ETS fit over every period that has two
//!   full seasons in the window, then a 1-day forecast: the raw model cost.
//! * `select`: [`foresight::forecast::train`], the full model selection
//!   (every candidate on four rolling validation windows, then the winner
//!   refitted on all the data), as a selection boundary runs it.
//! * `refit`: [`foresight::forecast::refit`] of that choice, as the hourly
//!   retrains between selections run it.
//! * `snaive_fit_predict`: the baseline, seasonal naive over one day.
//!
//! `holding` measures what `mode: holding` adds to each training, on the
//! last two weeks (4,032 points) with the target set so that the highest
//! modelled need is 16, 32 or 64 replicas (64 is the cap): `need_fit` learns
//! the next need's distribution, `plan` builds the backward-induction tables
//! a live server builds once per model and evaluation (29 stored slots plus
//! an hour's lookahead, as for a 1-hour retrain at 5-minute steps). The
//! baseline is `forecast/refit` at 4,032 points, measured in the same run.
//!
//! `cargo bench --bench forecast` runs criterion (release); under
//! `cargo test` each case runs once, to check the path.

mod support;

use chrono::TimeDelta;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use foresight::forecast::{Fitted, Model, ModelKind, NeedModel, NeedSpec, TrainSpec, refit, train};
use foresight::policy::{Plan, PlanSpec, Prices};
use foresight::sources::{FileData, LoadOptions};

fn azure_tail(n: usize) -> foresight::domain::Series {
    let path = support::data_file("azure_vm_v2/azure_vm_v2_cpu_5min_30d.csv");
    let (data, _) = FileData::load_with(
        &path,
        &LoadOptions {
            value_column: Some("cpu_usage".into()),
            ..LoadOptions::default()
        },
    )
    .unwrap_or_else(|e| {
        panic!("{e}\nthis benchmark reads shared/data beside the repository, or FORESIGHT_DATA_DIR")
    });
    let s = data
        .series("azure_vm_v2_cpu_5min_30d")
        .expect("the trace's only series");
    let skip = s.values.len() - n;
    foresight::domain::Series::new(s.timestamp(skip), s.step, s.values[skip..].to_vec())
}

const DAY: usize = 288;
const WEEK: usize = 2016;

fn periods_for(n: usize) -> Vec<usize> {
    [DAY, WEEK].into_iter().filter(|p| n > 2 * p).collect()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("forecast");
    g.sample_size(10);
    for n in [672usize, 2016, 4032, 8064] {
        let series = azure_tail(n);
        let y = series.values.clone();
        let periods = periods_for(n);
        let spec = TrainSpec {
            periods: periods.clone(),
            detect: false,
            horizon: DAY,
            level: 0.95,
            prophet: false,
            need: None,
        };
        let mstl = ModelKind::Mstl {
            periods: periods.clone(),
        };
        g.bench_with_input(BenchmarkId::new("mstl_fit_predict", n), &y, |b, y| {
            b.iter(|| {
                mstl.fit(y)
                    .and_then(|f| f.predict(DAY))
                    .expect("MSTL fits the trace")
            })
        });
        g.bench_with_input(BenchmarkId::new("select", n), &series, |b, s| {
            b.iter(|| train(s, &spec).expect("selection succeeds"))
        });
        let chosen = train(&series, &spec).expect("selection succeeds").choice();
        g.bench_with_input(BenchmarkId::new("refit", n), &series, |b, s| {
            b.iter(|| refit(s, &spec, &chosen).expect("refit succeeds"))
        });
        let snaive = ModelKind::SeasonalNaive { period: DAY };
        g.bench_with_input(BenchmarkId::new("snaive_fit_predict", n), &y, |b, y| {
            b.iter(|| {
                snaive
                    .fit(y)
                    .and_then(|f| f.predict(DAY))
                    .expect("seasonal naive fits")
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("holding");
    g.sample_size(10);
    let series = azure_tail(2 * WEEK);
    let mut sorted: Vec<f64> = series
        .values
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .collect();
    sorted.sort_by(f64::total_cmp);
    let high = sorted[sorted.len() * 995 / 1000];
    for n_max in [16u32, 32, 64] {
        let spec = NeedSpec {
            target: high / f64::from(n_max),
            min_replicas: 1,
            max_replicas: 1_000,
        };
        g.bench_with_input(BenchmarkId::new("need_fit", n_max), &series, |b, s| {
            b.iter(|| NeedModel::fit(s, &spec).expect("two weeks hold transitions"))
        });
        let model = NeedModel::fit(&series, &spec).expect("two weeks hold transitions");
        let prices = Prices {
            short_minute: 20.0,
            flap: 5.0,
        };
        let first = series.timestamp(series.values.len() - 1);
        // `plan` may hold counts above the top need, as far as a rise clears
        // the downstream tolerance; `plan_at_needs` caps them at the top
        // need (the version before), so the pair measures that in one run.
        for (name, max_replicas) in [("plan", 1_000), ("plan_at_needs", model.n_max * model.unit)] {
            g.bench_with_input(BenchmarkId::new(name, model.n_max), &model, |b, m| {
                b.iter(|| {
                    let spec = PlanSpec {
                        prices,
                        lead: TimeDelta::minutes(2),
                        hpa_tolerance: 0.1,
                        max_replicas,
                        serve_need: true,
                    };
                    Plan::new(m, &spec, first, series.step, 29, 12)
                        .expect("5-minute samples are further apart than 2 minutes")
                })
            });
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    // No HTML plots: criterion's plotters backend needs system fonts, which
    // minimal machines and containers lack.
    config = Criterion::default().without_plots();
    targets = bench
}
criterion_main!(benches);
