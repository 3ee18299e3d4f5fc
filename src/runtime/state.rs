//! Model selections, remembered for the refits until the next selection and,
//! with a state directory, kept across restarts.
//!
//! augurs' fitted models cannot be serialised, and refitting is cheap; the
//! expensive part of training is selection (every candidate on several
//! validation windows). So what is stored is the selection's outcome, a
//! [`Choice`], with the instant it was made and a fingerprint of the history
//! window it was made on. After a restart a stored choice is used only for
//! the same selection boundary and only if the source returns the same
//! window (same fingerprint); otherwise selection runs again. One JSON file
//! per model key, replaced atomically.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::Series;
use crate::forecast::Choice;

/// Selections kept per key: replays train a few boundaries back, and the
/// boundary after a selection still refits the previous one's choice.
const KEPT: usize = 2;

/// One selection.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Stored {
    /// The selection boundary: the end of the window selected on.
    selected_at: DateTime<Utc>,
    /// [`fingerprint`] of that window.
    fingerprint: String,
    /// What was chosen.
    choice: Choice,
    /// Made (or checked against the source) by this process; restored
    /// entries are trusted only after their window's fingerprint matches.
    #[serde(skip)]
    verified: bool,
}

/// The file format: the key it belongs to, so a hash collision or a renamed
/// file is detected, and its latest selections.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StateFile {
    /// Format version; files of another version are ignored.
    version: u32,
    /// The model key, as [`super::models::ModelKey`]'s `Debug` text.
    key: String,
    /// Newest first.
    selections: Vec<Stored>,
}

const VERSION: u32 = 1;

/// Selections by model key (the key's `Debug` text, which covers every field
/// that changes what is trained).
pub(crate) struct SelectionStore {
    /// Where selections are persisted; `None` keeps them in memory only.
    dir: Option<PathBuf>,
    /// Newest first, per key.
    entries: Mutex<HashMap<String, Vec<Stored>>>,
}

impl SelectionStore {
    /// A store over `dir` (created if missing), with the selections found
    /// there; unreadable files are skipped and described in the returned
    /// warnings, never fatal: the cost of a lost selection is one reselection.
    pub(crate) fn open(dir: Option<PathBuf>) -> (Self, Vec<String>) {
        let mut warnings = Vec::new();
        let mut entries = HashMap::new();
        if let Some(d) = &dir {
            if let Err(e) = std::fs::create_dir_all(d) {
                warnings.push(format!(
                    "cannot create state directory {}: {e}",
                    d.display()
                ));
            }
            // A write interrupted between its temporary file and the rename
            // (a SIGKILL at the end of the grace period) left one behind;
            // ten minutes is far longer than any write takes, so a peer's
            // write in progress on a shared volume is never taken.
            let swept = crate::durable::sweep_temporaries(
                d,
                "selection-",
                std::time::Duration::from_secs(600),
            );
            if !swept.is_empty() {
                warnings.push(format!(
                    "removed {} temporary file(s) an interrupted write left in {}: {}",
                    swept.len(),
                    d.display(),
                    swept.join(", ")
                ));
            }
            match std::fs::read_dir(d) {
                Ok(files) => {
                    for path in files.filter_map(|f| f.ok().map(|f| f.path())) {
                        if !is_state_file(&path) {
                            continue;
                        }
                        match read(&path) {
                            Ok(f) if f.version == VERSION => {
                                entries.insert(f.key, f.selections);
                            }
                            Ok(f) => warnings.push(format!(
                                "{}: state version {} ignored (this build reads {VERSION})",
                                path.display(),
                                f.version
                            )),
                            Err(e) => warnings.push(format!("{}: {e}; ignored", path.display())),
                        }
                    }
                }
                Err(e) => {
                    warnings.push(format!("cannot read state directory {}: {e}", d.display()))
                }
            }
        }
        (
            Self {
                dir,
                entries: Mutex::new(entries),
            },
            warnings,
        )
    }

    /// The choice selected at `at` for `key`: one made by this process, or
    /// a restored one whose window has `fingerprint` (then trusted from now
    /// on).
    pub(crate) fn get(
        &self,
        key: &str,
        at: DateTime<Utc>,
        fingerprint: Option<&str>,
    ) -> Option<Choice> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let s = entries
            .get_mut(key)?
            .iter_mut()
            .find(|s| s.selected_at == at)?;
        if !s.verified && fingerprint == Some(s.fingerprint.as_str()) {
            s.verified = true;
        }
        s.verified.then(|| s.choice.clone())
    }

    /// Records a selection made by this process and, with a state
    /// directory, writes the key's file atomically.
    pub(crate) fn put(
        &self,
        key: &str,
        at: DateTime<Utc>,
        fingerprint: String,
        choice: Choice,
    ) -> std::io::Result<()> {
        let file = {
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            let kept = entries.entry(key.to_string()).or_default();
            kept.retain(|s| s.selected_at != at);
            kept.push(Stored {
                selected_at: at,
                fingerprint,
                choice,
                verified: true,
            });
            kept.sort_by_key(|s| std::cmp::Reverse(s.selected_at));
            kept.truncate(KEPT);
            StateFile {
                version: VERSION,
                key: key.to_string(),
                selections: kept.clone(),
            }
        };
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(std::io::Error::other)?;
        crate::durable::write_bytes_atomically(&dir.join(file_name(key)), &bytes)
    }

    /// Forgets keys no ScaledObject uses any more (their files stay: a
    /// ScaledObject that comes back after a restart can still use them).
    /// Restored selections not yet checked are kept: after a restart KEDA's
    /// first calls, which register the ScaledObjects, may come later.
    pub(crate) fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k, v| keep(k) || v.iter().any(|s| !s.verified));
    }
}

/// A stable fingerprint of a history window: FNV-1a over its start, step
/// and values (bit patterns, so a NaN gap counts). Stable across builds and
/// platforms, unlike `std`'s hasher.
pub(crate) fn fingerprint(s: &Series) -> String {
    let mut h = Fnv::default();
    h.write(&s.start.timestamp_millis().to_le_bytes());
    h.write(&s.step.num_milliseconds().to_le_bytes());
    for v in &s.values {
        h.write(&v.to_bits().to_le_bytes());
    }
    format!("{:016x}-{}", h.0, s.values.len())
}

fn file_name(key: &str) -> String {
    let mut h = Fnv::default();
    h.write(key.as_bytes());
    format!("selection-{:016x}.json", h.0)
}

fn is_state_file(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("selection-") && n.ends_with(".json"))
}

fn read(p: &Path) -> Result<StateFile, String> {
    let bytes = std::fs::read(p).map_err(|e| e.to_string())?;
    serde_json::from_slice(&bytes).map_err(|e| format!("not a selection state file: {e}"))
}

/// 64-bit FNV-1a.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;
    use crate::forecast::ModelKind;

    fn at(h: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(h * 3600, 0).unwrap()
    }

    fn choice(period: usize) -> Choice {
        Choice {
            model: ModelKind::SeasonalNaive { period },
            validation_mase: Some(0.7),
            width_per_scale: 1.5,
            scale_lag: period,
            anchor_phi: Some(0.8),
            anchor_width_per_scale: vec![0.5, 0.7],
        }
    }

    #[test]
    fn choices_written_before_anchors_existed_still_load() {
        let mut old = serde_json::to_value(choice(24)).unwrap();
        let fields = old.as_object_mut().unwrap();
        assert!(fields.remove("anchorPhi").is_some());
        assert!(fields.remove("anchorWidthPerScale").is_some());
        let c: Choice = serde_json::from_value(old).unwrap();
        assert_eq!((c.anchor_phi, c.anchor_width_per_scale.len()), (None, 0));
        let back: Choice =
            serde_json::from_str(&serde_json::to_string(&choice(24)).unwrap()).unwrap();
        assert_eq!(back, choice(24));
    }

    #[test]
    fn restored_choices_need_the_same_window() {
        let dir = tempfile::tempdir().unwrap();
        let (store, warnings) = SelectionStore::open(Some(dir.path().to_path_buf()));
        assert!(warnings.is_empty(), "{warnings:?}");
        store.put("k", at(24), "fp24".into(), choice(24)).unwrap();
        store.put("k", at(48), "fp48".into(), choice(48)).unwrap();
        store.put("k", at(72), "fp72".into(), choice(72)).unwrap();
        assert_eq!(store.get("k", at(72), None), Some(choice(72)));
        // Only the latest two are kept.
        assert_eq!(store.get("k", at(24), Some("fp24")), None);

        // A new process: nothing is trusted until the window matches.
        std::fs::write(dir.path().join("selection-junk.json"), "{").unwrap();
        let (again, warnings) = SelectionStore::open(Some(dir.path().to_path_buf()));
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("not a selection state file"));
        assert_eq!(again.get("k", at(72), None), None);
        assert_eq!(again.get("k", at(72), Some("other")), None);
        assert_eq!(again.get("k", at(72), Some("fp72")), Some(choice(72)));
        assert_eq!(again.get("k", at(72), None), Some(choice(72)));
        assert_eq!(again.get("k", at(48), Some("fp48")), Some(choice(48)));
        assert_eq!(again.get("other", at(72), Some("fp72")), None);
        // No temporary files are left behind.
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
    }

    #[test]
    fn an_interrupted_write_is_swept_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let left = dir.path().join(".selection-00ff.json.Xy12Ab.tmp");
        std::fs::write(&left, "{\"version\"").unwrap();
        let day_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(86_400);
        std::fs::File::options()
            .write(true)
            .open(&left)
            .unwrap()
            .set_modified(day_ago)
            .unwrap();
        let (_, warnings) = SelectionStore::open(Some(dir.path().to_path_buf()));
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("removed 1 temporary file") && warnings[0].contains(".Xy12Ab.tmp"),
            "{warnings:?}"
        );
        assert!(!left.exists());
    }

    #[test]
    fn fingerprints_see_values_gaps_and_alignment() {
        let s = |start: i64, v: Vec<f64>| {
            Series::new(
                DateTime::from_timestamp(start, 0).unwrap(),
                TimeDelta::minutes(1),
                v,
            )
        };
        let a = fingerprint(&s(0, vec![1.0, 2.0, 3.0]));
        assert_eq!(a, fingerprint(&s(0, vec![1.0, 2.0, 3.0])));
        assert_ne!(a, fingerprint(&s(60, vec![1.0, 2.0, 3.0])));
        assert_ne!(a, fingerprint(&s(0, vec![1.0, f64::NAN, 3.0])));
        assert_ne!(a, fingerprint(&s(0, vec![1.0, 2.0, 3.5])));
    }
}
