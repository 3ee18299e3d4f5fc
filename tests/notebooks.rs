//! The notebooks in notebooks/ run headless against the binary under test
//! (`jupyter nbconvert --execute`, a time limit per cell, into a temporary
//! directory so the committed files stay untouched), and each saves its
//! figures as PNGs into FIGURES_DIR. Without Jupyter these tests fail and
//! name the install command: a notebook must never pass by being skipped.
//! The committed notebooks must have their outputs cleared.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const NOTEBOOKS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/notebooks");

/// Every notebook and the figures it must save.
const NOTEBOOKS: [(&str, &[&str]); 4] = [
    (
        "forecast_inspection",
        &[
            "nyc_taxi_trace.png",
            "forecast_nyc_taxi.png",
            "inspect_nyc_taxi.png",
            "residuals_nyc_taxi.png",
            "profile_nyc_taxi.png",
        ],
    ),
    (
        "backtest_report",
        &["backtest_capacity.png", "backtest_frontier.png"],
    ),
    ("accuracy_study", &["accuracy_study.png"]),
    ("goal_feasibility", &["goal_feasibility.png"]),
];

/// Seconds any one cell may take; the slowest (the feasibility notebook's
/// five full-trace backtest sweeps, and its holding schedules on
/// twitter_amzn) take 50-100 s each with the ci-profile binary.
const CELL_TIMEOUT_S: u32 = 300;

fn notebook(name: &str) -> PathBuf {
    Path::new(NOTEBOOKS_DIR).join(format!("{name}.ipynb"))
}

/// `python3 -m nbconvert` rather than the `jupyter` script, which pip may
/// put in a directory that is not on PATH.
fn nbconvert() -> Command {
    let mut c = Command::new("python3");
    c.args(["-m", "nbconvert"]);
    c
}

fn require_jupyter() {
    let ok = nbconvert()
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "Jupyter's nbconvert is not installed, so the notebooks cannot run: run \
         tests/install-deps.sh (or python3 -m pip install -r notebooks/requirements.txt)"
    );
}

/// Executes one notebook into a temporary directory and checks its figures.
fn execute(name: &str, figures: &[&str]) {
    require_jupyter();
    let out = tempfile::tempdir().unwrap();
    let figures_dir = out.path().join("figures");
    let started = Instant::now();
    let run = nbconvert()
        .args([
            "--to",
            "notebook",
            "--execute",
            &format!("--ExecutePreprocessor.timeout={CELL_TIMEOUT_S}"),
            "--output-dir",
        ])
        .arg(out.path())
        .arg(notebook(name))
        .env("FORESIGHT_BIN", env!("CARGO_BIN_EXE_foresight"))
        .env("FIGURES_DIR", &figures_dir)
        .output()
        .expect("cannot run python3");
    let took = started.elapsed();
    assert!(
        run.status.success(),
        "notebook {name} failed after {took:?}:\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    eprintln!("notebook {name} executed in {:.1} s", took.as_secs_f64());
    // The executed copy went to the temporary directory.
    assert!(out.path().join(format!("{name}.ipynb")).is_file());
    for fig in figures {
        let path = figures_dir.join(fig);
        let bytes = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("notebook {name} did not save {fig}: {e}"));
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{fig} is not a PNG");
        let img = image::load_from_memory(&bytes).unwrap();
        assert!(
            img.width() >= 600 && img.height() >= 300,
            "{fig} is only {}x{}",
            img.width(),
            img.height()
        );
        // A real plot has many colours (lines, fills, anti-aliased text);
        // an empty axes has a handful.
        let mut colours: Vec<[u8; 3]> = img.to_rgb8().pixels().map(|p| p.0).collect();
        colours.sort_unstable();
        colours.dedup();
        assert!(
            colours.len() > 50,
            "{fig} looks empty ({} colours)",
            colours.len()
        );
    }
}

#[test]
fn forecast_inspection_notebook_runs_headless() {
    execute(NOTEBOOKS[0].0, NOTEBOOKS[0].1);
}

#[test]
fn backtest_report_notebook_runs_headless() {
    execute(NOTEBOOKS[1].0, NOTEBOOKS[1].1);
}

#[test]
fn accuracy_study_notebook_runs_headless() {
    execute(NOTEBOOKS[2].0, NOTEBOOKS[2].1);
}

#[test]
fn goal_feasibility_notebook_runs_headless() {
    execute(NOTEBOOKS[3].0, NOTEBOOKS[3].1);
}

/// Every notebook in the directory is one of the above, so none can be
/// added without being executed here.
#[test]
fn every_notebook_is_executed_by_these_tests() {
    let mut found: Vec<String> = std::fs::read_dir(NOTEBOOKS_DIR)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.strip_suffix(".ipynb").map(str::to_string)
        })
        .collect();
    found.sort();
    let mut listed: Vec<String> = NOTEBOOKS.iter().map(|(n, _)| n.to_string()).collect();
    listed.sort();
    assert_eq!(found, listed);
}

/// Committed notebooks carry no outputs, execution counts or embedded
/// images: diffs stay readable and results come from running them.
#[test]
fn committed_notebooks_have_cleared_outputs() {
    for (name, _) in NOTEBOOKS {
        let text = std::fs::read_to_string(notebook(name)).unwrap();
        let nb: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(nb["nbformat"], 4, "{name}");
        let cells = nb["cells"].as_array().unwrap();
        assert!(cells.len() > 3, "{name}");
        for (i, cell) in cells.iter().enumerate() {
            if cell["cell_type"] == "code" {
                assert_eq!(
                    cell["outputs"],
                    serde_json::json!([]),
                    "{name} cell {i} has outputs; clear them (jupyter nbconvert --clear-output --inplace)"
                );
                assert!(
                    cell["execution_count"].is_null(),
                    "{name} cell {i} has an execution count; clear the outputs"
                );
            }
        }
    }
}
