//! `--state-dir`: a restarted runtime reuses the model selection it stored,
//! and only for the same history window.
//!
//! Each runtime is stopped before the next starts on the same directory, as
//! a restarted pod would be. Whether a runtime selected again is read from
//! the state file: a selection it makes is written (atomically: a new file
//! renamed over the old, so a new inode), a restored one is not. A forced
//! reselection is read from the file's content instead, because inode
//! numbers are recycled.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use foresight::domain::{Prediction, ScaledObjectKey};
use foresight::runtime::{Runtime, RuntimeConfig, ScalerCore};
use foresight::sources::{FileData, FileSource};
use tokio_util::sync::CancellationToken;

/// Two hours of 1-second data with a 10-minute cycle, replayed in a loop
/// against the wall clock (as in `replica_agreement.rs`).
fn wave() -> FileSource {
    let mut csv = String::from("series,timestamp,value\n");
    for i in 0..7_200i64 {
        let v = 1_500.0
            + 1_200.0 * (i as f64 * std::f64::consts::TAU / 600.0).sin()
            + ((i * 7_919) % 1_500) as f64;
        csv.push_str(&format!("wave,{i},{v:.1}\n"));
    }
    FileSource::new(
        FileData::from_csv_bytes("wave.csv", csv.as_bytes())
            .unwrap()
            .0,
    )
}

fn metadata() -> HashMap<String, String> {
    [
        ("connectionsQuery", "wave"),
        ("connectionsTarget", "100"),
        ("history", "1h"),
        ("step", "10s"),
        ("seasonality", "none"),
        ("maxReplicaCount", "60"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Runs a runtime on `dir` until its decision uses a trained model, then
/// stops it.
async fn run_until_trained(dir: &Path) {
    let runtime = Runtime::new(
        wave(),
        RuntimeConfig {
            tick: Duration::from_secs(1),
            retrain: Duration::from_secs(300),
            // A day: the selection boundary is midnight UTC, before every
            // training boundary of the test, so trainings refit it.
            reselect: Duration::from_secs(86_400),
            state_dir: Some(dir.to_path_buf()),
            ..RuntimeConfig::default()
        },
    );
    runtime.warm_up().await;
    let shutdown = CancellationToken::new();
    let driver = runtime.clone();
    let s = shutdown.clone();
    let task = tokio::spawn(async move { driver.run(s.cancelled_owned()).await });
    let key = ScaledObjectKey::new("shop", "web");
    let meta = metadata();
    let trained = tokio::time::timeout(Duration::from_secs(120), async {
        loop {
            if let Ok(d) = runtime.decision(&key, &meta).await
                && !matches!(d.prediction, Prediction::Unavailable { .. })
            {
                return d;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("a model is trained within 120 s");
    assert!(trained.desired_replicas >= 1);
    shutdown.cancel();
    task.await.unwrap();
}

fn state_file(dir: &Path) -> PathBuf {
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    assert_eq!(files.len(), 1, "one model key, one state file: {files:?}");
    files[0].clone()
}

fn day() -> i64 {
    chrono::Utc::now().timestamp().div_euclid(86_400)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_reuses_the_stored_selection_for_the_same_window_only() {
    let dir = tempfile::tempdir().unwrap();
    let started_on = day();
    run_until_trained(dir.path()).await;
    let file = state_file(dir.path());
    let stored: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(stored["version"], 1);
    assert!(stored["key"].as_str().unwrap().contains("wave"), "{stored}");
    let sel = &stored["selections"][0];
    assert!(
        sel["fingerprint"].as_str().is_some_and(|f| !f.is_empty()),
        "{stored}"
    );
    assert!(sel["choice"]["model"].is_object(), "{stored}");
    let written = std::fs::metadata(&file).unwrap().ino();

    // Restart on the same directory: the window at the selection boundary
    // is the same, so the stored choice is used and the file is not
    // rewritten.
    run_until_trained(dir.path()).await;
    let same_day = day() == started_on;
    let after = std::fs::metadata(&file).unwrap().ino();
    if same_day {
        assert_eq!(
            written,
            after,
            "the restarted runtime selected again:\nbefore {stored}\nafter {}",
            std::fs::read_to_string(&file).unwrap()
        );
    }

    // A stored selection whose window differs (here: its fingerprint) is
    // not trusted: the next runtime selects again and rewrites the file
    // with the real fingerprint.
    let mut tampered = stored.clone();
    tampered["selections"][0]["fingerprint"] = "0000000000000000-0".into();
    std::fs::write(&file, serde_json::to_vec(&tampered).unwrap()).unwrap();
    run_until_trained(dir.path()).await;
    let redone: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    // Read from the content, not the inode: the runtime may write the file
    // more than once, and a filesystem may hand a freed inode number to the
    // second write (seen on ext4 in CI).
    assert_ne!(
        redone["selections"][0]["fingerprint"], "0000000000000000-0",
        "a mismatched window must be selected again: {redone}"
    );
    if same_day && day() == started_on {
        assert_eq!(
            redone["selections"][0]["fingerprint"], sel["fingerprint"],
            "the same window gives the same fingerprint"
        );
        assert_eq!(redone["selections"][0]["choice"], sel["choice"]);
    }
}
