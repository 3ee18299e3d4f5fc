//! The audit trail: one JSON object per line, appended and fsync'd before
//! `append` returns. Every action is bracketed by an `actionStarted` and an
//! `actionFinished` record, so a crash mid-action leaves a started record
//! with no finish, which `foresight incidents` shows as interrupted.
//!
//! The log rotates by size: once the live file would pass its limit, it
//! becomes `PATH.1`, the older segments move up one (`PATH.2`, ...) and the
//! oldest beyond the count kept is deleted. Appends and rotations hold an
//! exclusive lock on `PATH.lock`, so replicas sharing the log on one volume
//! never rotate at once or append to a segment being moved; readers hold a
//! shared one while they list and read the segments.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::error::RemediationError;
use super::incident::{Action, ActionOutcome, Incident};

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "camelCase")]
pub enum AuditRecord {
    /// An incident was diagnosed and judged; written before anything is done.
    #[serde(rename_all = "camelCase")]
    Opened {
        /// When.
        at: DateTime<Utc>,
        /// The incident, evidence included (boxed: it dwarfs the other
        /// records).
        incident: Box<Incident>,
    },
    /// An action is about to be sent to the cluster.
    #[serde(rename_all = "camelCase")]
    ActionStarted {
        /// When.
        at: DateTime<Utc>,
        /// The incident.
        incident_id: String,
        /// The action.
        action: Action,
    },
    /// An action ended.
    #[serde(rename_all = "camelCase")]
    ActionFinished {
        /// When.
        at: DateTime<Utc>,
        /// The incident.
        incident_id: String,
        /// The action.
        action: Action,
        /// How it ended.
        outcome: ActionOutcome,
    },
    /// A human was (or could not be) paged.
    #[serde(rename_all = "camelCase")]
    Paged {
        /// When.
        at: DateTime<Utc>,
        /// The incident.
        incident_id: String,
        /// Why paging failed, if it did.
        error: Option<String>,
    },
}

impl AuditRecord {
    /// The incident a record belongs to.
    pub fn incident_id(&self) -> &str {
        match self {
            AuditRecord::Opened { incident, .. } => &incident.id,
            AuditRecord::ActionStarted { incident_id, .. }
            | AuditRecord::ActionFinished { incident_id, .. }
            | AuditRecord::Paged { incident_id, .. } => incident_id,
        }
    }
}

/// The most rotated segments kept; higher numbers are not segments.
pub const MAX_KEEP: u32 = 1000;

/// When the audit log rotates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// The live file's size limit, in bytes: an append that would pass it
    /// goes to a fresh file (a single record larger than it still lands
    /// whole, alone in its file).
    pub max_bytes: u64,
    /// Rotated segments kept besides the live file (1 to 1,000; segment
    /// names have at most four digits).
    pub keep: u32,
}

impl Default for Rotation {
    /// 16 MiB, four segments kept: at most 80 MiB, thousands of incidents
    /// with their evidence, far more than the guardrails' windows need.
    fn default() -> Self {
        Self {
            max_bytes: 16 << 20,
            keep: 4,
        }
    }
}

/// The append-only, fsync'd JSON-lines audit log.
#[derive(Debug, Clone)]
pub struct AuditLog {
    /// The live segment; rotated ones are `PATH.1` (the newest) upwards.
    path: PathBuf,
    /// When to rotate; `None` never does (the log grows without bound: on
    /// a volume of fixed size, until appends fail and enforcing stops).
    rotation: Option<Rotation>,
}

impl AuditLog {
    /// The log at `path` (created on first append), with the default
    /// [`Rotation`].
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            rotation: Some(Rotation::default()),
        }
    }

    /// The same log, rotating as `rotation` says (`None`: never).
    pub fn with_rotation(mut self, rotation: Option<Rotation>) -> Self {
        self.rotation = rotation.map(|r| Rotation {
            keep: r.keep.clamp(1, MAX_KEEP),
            ..r
        });
        self
    }

    /// Segment `n` (1 = the newest rotated one).
    fn segment(&self, n: u32) -> PathBuf {
        let mut s = self.path.clone().into_os_string();
        s.push(format!(".{n}"));
        PathBuf::from(s)
    }

    /// The lock appends, rotations and reads share (see the module docs).
    fn lock_path(&self) -> PathBuf {
        let mut s = self.path.clone().into_os_string();
        s.push(".lock");
        PathBuf::from(s)
    }

    /// The lock file held exclusively, created if missing; released when
    /// the returned file is dropped.
    fn lock_exclusive(&self) -> std::io::Result<std::fs::File> {
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(self.lock_path())?;
        f.lock()?;
        Ok(f)
    }

    /// The lock file held shared, if it exists and can be locked: a reader
    /// creates nothing (`foresight incidents` on a copy, or a mistyped
    /// path, left a lock file behind), and a log without one (on a
    /// read-only mount, or written by an older version) is read unlocked.
    fn lock_shared(&self) -> Option<std::fs::File> {
        let path = self.lock_path();
        let locked = std::fs::File::open(&path).and_then(|f| f.lock_shared().map(|()| f));
        match locked {
            Ok(f) => Some(f),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                // A rotation may then move a segment while it is read.
                tracing::warn!(path = %path.display(), error = %e, "cannot take the audit log's lock; reading without it");
                None
            }
        }
    }

    /// The directory the log is in.
    fn dir(&self) -> PathBuf {
        match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    /// Rotated segments on disk, oldest first (highest number first), by
    /// listing rather than by `keep`, so segments kept under a larger
    /// `keep` are still read.
    fn rotated(&self) -> std::io::Result<Vec<(u32, PathBuf)>> {
        let dir = self.dir();
        let Some(base) = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
        else {
            return Ok(Vec::new());
        };
        let prefix = format!("{base}.");
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let name = entry?.file_name().to_string_lossy().into_owned();
            // Only what `rotate` names: 1 to MAX_KEEP, digits only, no
            // leading zero. Not an operator's dated copy (`audit.log.2025`,
            // `audit.log.20250101`), which would be read as the oldest
            // segment and deleted at the next rotation, nor `audit.log.+1`,
            // which parses as 1.
            if let Some(n) = name
                .strip_prefix(&prefix)
                .filter(|n| {
                    (1..=4).contains(&n.len())
                        && n.bytes().all(|b| b.is_ascii_digit())
                        && !n.starts_with('0')
                })
                .and_then(|n| n.parse::<u32>().ok())
                .filter(|n| *n <= MAX_KEEP)
            {
                out.push((n, self.segment(n)));
            }
        }
        out.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
        Ok(out)
    }

    /// Moves the live file to segment 1, the others up one, and deletes
    /// those beyond `keep`; under the exclusive lock.
    fn rotate(&self, keep: u32) -> std::io::Result<()> {
        for (n, path) in self.rotated()? {
            if n >= keep {
                std::fs::remove_file(&path)?;
                tracing::info!(path = %path.display(), keep, "oldest audit log segment deleted");
            } else {
                std::fs::rename(&path, self.segment(n + 1))?;
            }
        }
        std::fs::rename(&self.path, self.segment(1))
    }

    /// Where the log is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the log for appending (creating it, empty, if missing), so
    /// a path that cannot be written is found at start-up rather than at
    /// the first incident, when it would stop every action.
    pub fn check_writable(&self) -> Result<(), RemediationError> {
        // The lock too: a log whose lock file cannot be made (a writable
        // file in a read-only directory) or locked (no lock support on the
        // volume) would refuse every append.
        self.lock_exclusive()
            .map_err(|source| RemediationError::AuditOpen {
                path: self.lock_path(),
                source,
            })?;
        self.open().map(drop)
    }

    /// The log opened for appending (and reading its last byte), created
    /// if missing.
    fn open(&self) -> Result<std::fs::File, RemediationError> {
        OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&self.path)
            .map_err(|source| RemediationError::AuditOpen {
                path: self.path.clone(),
                source,
            })
    }

    /// Appends a record and syncs it to disk before returning. Blocking:
    /// a record must be durable before the action it announces starts.
    pub fn append(&self, record: &AuditRecord) -> Result<(), RemediationError> {
        let write_err = |source| RemediationError::AuditWrite {
            path: self.path.clone(),
            source,
        };
        let mut line =
            serde_json::to_vec(record).map_err(|e| write_err(std::io::Error::other(e)))?;
        line.push(b'\n');
        let _lock = self
            .lock_exclusive()
            .map_err(|source| RemediationError::AuditWrite {
                path: self.lock_path(),
                source,
            })?;
        let mut created = !self.path.exists();
        if let Some(r) = self.rotation {
            let len = match std::fs::metadata(&self.path) {
                Ok(m) => m.len(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
                Err(e) => return Err(write_err(e)),
            };
            if len > 0 && len.saturating_add(line.len() as u64) > r.max_bytes {
                match self.rotate(r.keep) {
                    Ok(()) => created = true,
                    // The record still goes to the live file, past its
                    // limit: a durable record beats a tidy log, and an
                    // error here would stop every enforced action.
                    Err(e) => tracing::warn!(
                        path = %self.path.display(),
                        error = %e,
                        "audit log rotation failed; appending to the live file past its size limit"
                    ),
                }
            }
        }
        let mut f = self.open()?;
        // A crash mid-write leaves a last line with no newline; appended
        // to as it is, the next record would share its line and both be
        // lost to `read`. A newline first ends the torn line on its own.
        let len = f.metadata().map_err(write_err)?.len();
        if len > 0 {
            let mut last = [0u8; 1];
            f.read_exact_at(&mut last, len - 1).map_err(write_err)?;
            if last[0] != b'\n' {
                line.insert(0, b'\n');
            }
        }
        // One write of the whole line: with O_APPEND it lands at the end
        // in one piece, never interleaved mid-line.
        f.write_all(&line).map_err(write_err)?;
        f.sync_data().map_err(write_err)?;
        if created {
            // A new file's directory entry (and a rotation's renames) is
            // durable only once the directory is synced.
            let dir = match self.path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                _ => PathBuf::from("."),
            };
            std::fs::File::open(&dir)
                .and_then(|d| d.sync_all())
                .map_err(write_err)?;
        }
        Ok(())
    }

    /// Every record, oldest first; lines that are not records are skipped
    /// with a warning each (see [`AuditLog::read_all`]).
    pub fn read(&self) -> Result<Vec<AuditRecord>, RemediationError> {
        let (records, skipped) = self.read_all()?;
        for s in &skipped {
            tracing::warn!(path = %s.file.display(), line = s.line, reason = %s.reason, "audit log line skipped");
        }
        Ok(records)
    }

    /// Every record, oldest first, and the lines that are not records.
    ///
    /// A line is read on its own, so one bad line costs that line only:
    /// when one made the whole log an error, `foresight incidents` could
    /// show nothing and `serve` started its guardrails with no history at
    /// all, forgetting every action the breaker and the blast radius count.
    /// Skipped, each with its reason: a line cut short by a crash (JSON that
    /// ends early, or a multi-byte character cut in two; `append` ends such
    /// a line before writing the next record), the NUL bytes a file system
    /// can leave after a crash, a record of a kind this version does not
    /// know (written by a newer one), and anything else that is not a
    /// record. Only a log that cannot be read at all is an error.
    ///
    /// Rotated segments are read first, oldest first, then the live file.
    pub fn read_all(&self) -> Result<(Vec<AuditRecord>, Vec<SkippedLine>), RemediationError> {
        self.read_since(None)
    }

    /// As [`Self::read_all`], skipping rotated segments last written before
    /// `since` (every record in them is older): `serve`'s guardrails need
    /// only their windows, and reading every segment of a large log held
    /// the start-up (80 MiB, the default's most, took 1.4 s and 178 MB).
    /// A rotated segment that cannot be read is skipped with a warning, as
    /// a damaged line is; only the live file's failure is an error.
    pub fn read_since(
        &self,
        since: Option<std::time::SystemTime>,
    ) -> Result<(Vec<AuditRecord>, Vec<SkippedLine>), RemediationError> {
        // Shared, so no rotation moves a segment between listing and
        // reading it. A log on a read-only mount (an operator reading a
        // copy) has no lock file to take: read without.
        let _lock = self.lock_shared();
        let read_err = |path: &Path, source| RemediationError::AuditRead {
            path: path.to_path_buf(),
            source,
        };
        let dir = self.dir();
        let mut files: Vec<PathBuf> = self
            .rotated()
            .map_err(|e| read_err(&dir, e))?
            .into_iter()
            .map(|(_, p)| p)
            .filter(|p| {
                since.is_none_or(|since| {
                    std::fs::metadata(p)
                        .and_then(|m| m.modified())
                        .map_or(true, |m| m >= since)
                })
            })
            .collect();
        files.push(self.path.clone());
        let mut out = Vec::new();
        let mut skipped = Vec::new();
        for file in files {
            let bytes = match std::fs::read(&file) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) if file != self.path => {
                    skipped.push(SkippedLine {
                        file: file.clone(),
                        line: 0,
                        reason: format!("the whole segment: cannot read it ({e})"),
                    });
                    continue;
                }
                Err(e) => return Err(read_err(&file, e)),
            };
            parse_lines(&file, &bytes, &mut out, &mut skipped);
        }
        Ok((out, skipped))
    }
}

/// The records of one segment's bytes into `out`, the other lines into
/// `skipped` (see [`AuditLog::read_all`]).
fn parse_lines(
    file: &Path,
    bytes: &[u8],
    out: &mut Vec<AuditRecord>,
    skipped: &mut Vec<SkippedLine>,
) {
    for (i, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let line = i + 1;
        let mut skip = |reason: String| {
            skipped.push(SkippedLine {
                file: file.to_path_buf(),
                line,
                reason,
            })
        };
        if raw.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        if raw.contains(&0) {
            skip("NUL bytes (left by a crash)".into());
            continue;
        }
        let Ok(text) = std::str::from_utf8(raw) else {
            skip("not UTF-8 (a line cut short in a character, or damaged)".into());
            continue;
        };
        match serde_json::from_str(text) {
            Ok(r) => out.push(r),
            Err(e) if e.classify() == serde_json::error::Category::Eof => {
                skip("cut short (foresight stopped while writing it)".into());
            }
            Err(e) if e.classify() == serde_json::error::Category::Data => {
                skip(format!("not a record this version knows ({e})"));
            }
            Err(e) => skip(format!("not a record ({e})")),
        }
    }
}

/// A line of the audit log that is not a record.
#[derive(Debug, Clone, PartialEq)]
pub struct SkippedLine {
    /// The segment it is in (the live file or a rotated one).
    pub file: PathBuf,
    /// 1-based line number within that file; 0 for a whole rotated
    /// segment that could not be read.
    pub line: usize,
    /// Why it was skipped.
    pub reason: String,
}

/// An incident with everything logged about it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IncidentSummary {
    /// The incident as opened.
    pub incident: Incident,
    /// Actions, in order: when each started, and its finish if logged.
    pub actions: Vec<ActionTrail>,
    /// Pages sent: when, and the error if paging failed.
    pub pages: Vec<(DateTime<Utc>, Option<String>)>,
}

/// One action's start and finish.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionTrail {
    /// The action.
    pub action: Action,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it finished and how; `None` if foresight stopped mid-action.
    pub finished: Option<(DateTime<Utc>, ActionOutcome)>,
}

impl IncidentSummary {
    /// `interrupted` when an action started and never finished, else the
    /// last action's result, else the verdict.
    pub fn status(&self) -> String {
        match self.actions.last() {
            Some(ActionTrail { finished: None, .. }) => "interrupted".into(),
            Some(ActionTrail {
                finished: Some((_, outcome)),
                ..
            }) => match outcome {
                ActionOutcome::Done { .. } => "done",
                ActionOutcome::Skipped { .. } => "skipped",
                ActionOutcome::Refused { .. } => "refused",
                ActionOutcome::DryRun { .. } => "dryRun",
                ActionOutcome::Failed { .. } => "failed",
            }
            .into(),
            None => match &self.incident.verdict {
                super::Verdict::Execute { .. } => "pending",
                super::Verdict::DryRun { .. } => "dryRun",
                super::Verdict::PageOnly {
                    reason: super::PageReason::NotLeader,
                } => "notLeader",
                super::Verdict::PageOnly { .. } => "paged",
                super::Verdict::Escalate { .. } => "escalated",
            }
            .into(),
        }
    }
}

/// The incidents that have records (an action, a page) but no `opened`
/// record: it was in a segment rotation deleted, or on a damaged line.
/// [`summarize`] cannot list them, so a reader says how many there are
/// rather than show a log that looks emptier than it is.
pub fn orphaned(records: &[AuditRecord]) -> Vec<String> {
    let opened: std::collections::BTreeSet<&str> = records
        .iter()
        .filter(|r| matches!(r, AuditRecord::Opened { .. }))
        .map(AuditRecord::incident_id)
        .collect();
    let mut out: Vec<String> = records
        .iter()
        .map(AuditRecord::incident_id)
        .filter(|id| !opened.contains(id))
        .map(str::to_string)
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Groups records by incident, in the order incidents were opened.
/// Records of an incident whose `opened` line is missing are dropped (see
/// [`orphaned`]).
pub fn summarize(records: &[AuditRecord]) -> Vec<IncidentSummary> {
    let mut out: Vec<IncidentSummary> = Vec::new();
    for r in records {
        if let AuditRecord::Opened { incident, .. } = r {
            out.push(IncidentSummary {
                incident: (**incident).clone(),
                actions: vec![],
                pages: vec![],
            });
            continue;
        }
        let Some(s) = out
            .iter_mut()
            .rev()
            .find(|s| s.incident.id == r.incident_id())
        else {
            continue;
        };
        match r {
            AuditRecord::ActionStarted { at, action, .. } => s.actions.push(ActionTrail {
                action: action.clone(),
                started_at: *at,
                finished: None,
            }),
            AuditRecord::ActionFinished {
                at,
                action,
                outcome,
                ..
            } => match s
                .actions
                .iter_mut()
                .rev()
                .find(|a| a.action == *action && a.finished.is_none())
            {
                Some(a) => a.finished = Some((*at, outcome.clone())),
                None => s.actions.push(ActionTrail {
                    action: action.clone(),
                    started_at: *at,
                    finished: Some((*at, outcome.clone())),
                }),
            },
            AuditRecord::Paged { at, error, .. } => s.pages.push((*at, error.clone())),
            AuditRecord::Opened { .. } => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remediation::{Cause, Diagnosis, Target, Verdict};

    fn incident(id: &str) -> Incident {
        Incident {
            id: id.into(),
            opened_at: DateTime::from_timestamp(1_790_000_000, 0).unwrap(),
            target: Target {
                namespace: "shop".into(),
                scaled_object: "web".into(),
                deployment: "web".into(),
            },
            signal: None,
            diagnosis: Diagnosis {
                cause: Cause::BadDeploy,
                confidence: 0.9,
                evidence: vec![],
                action: None,
            },
            verdict: Verdict::Execute { action: restart() },
        }
    }

    fn restart() -> Action {
        Action::Restart {
            namespace: "shop".into(),
            deployment: "web".into(),
        }
    }

    #[test]
    fn a_crash_mid_action_leaves_a_started_record_and_a_torn_line_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::new(dir.path().join("audit.jsonl"));
        let at = DateTime::from_timestamp(1_790_000_000, 0).unwrap();
        log.append(&AuditRecord::Opened {
            at,
            incident: Box::new(incident("i1")),
        })
        .unwrap();
        log.append(&AuditRecord::ActionStarted {
            at,
            incident_id: "i1".into(),
            action: restart(),
        })
        .unwrap();
        // The process died while writing the next line.
        let mut f = OpenOptions::new().append(true).open(log.path()).unwrap();
        f.write_all(b"{\"record\":\"actionFini").unwrap();
        let records = log.read().unwrap();
        assert_eq!(records.len(), 2);
        // Restarted, foresight appends again: the torn line stays on its
        // own, and neither it nor the new record is lost to the reader.
        log.append(&AuditRecord::Paged {
            at,
            incident_id: "i1".into(),
            error: None,
        })
        .unwrap();
        let after = log.read().unwrap();
        assert_eq!(after.len(), 3, "{after:?}");
        assert!(matches!(after[2], AuditRecord::Paged { .. }));
        let text = std::fs::read_to_string(log.path()).unwrap();
        assert_eq!(text.lines().count(), 4);
        // Other damage costs its own line only: a record of a kind this
        // version does not know, a character cut in two, a crash's NUL
        // padding. Each made the whole log an error.
        let mut f = OpenOptions::new().append(true).open(log.path()).unwrap();
        f.write_all(
            b"{\"record\":\"nonsense\"}\n{\"record\":\"paged\",\"note\":\"\xc3\n\0\0\0\0\n",
        )
        .unwrap();
        log.append(&AuditRecord::Paged {
            at,
            incident_id: "i1".into(),
            error: None,
        })
        .unwrap();
        let (records, skipped) = log.read_all().unwrap();
        assert_eq!(records.len(), 4, "{records:?}");
        let lines: Vec<usize> = skipped.iter().map(|s| s.line).collect();
        assert_eq!(lines, vec![3, 5, 6, 7], "{skipped:?}");
        assert!(skipped[2].reason.contains("not UTF-8"), "{skipped:?}");
        assert!(skipped[3].reason.contains("NUL"), "{skipped:?}");
        assert!(skipped[1].reason.contains("this version"), "{skipped:?}");
        let records = log.read().unwrap()[..2].to_vec();
        assert!(orphaned(&records).is_empty());
        // Without its `opened` record (rotated away), the incident's other
        // records are orphans, named rather than silently dropped.
        assert_eq!(orphaned(&records[1..]), vec!["i1".to_string()]);
        assert!(summarize(&records[1..]).is_empty());
        let s = summarize(&records);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].status(), "interrupted");
        assert!(s[0].actions[0].finished.is_none());
    }

    fn paged(i: u32) -> AuditRecord {
        AuditRecord::Paged {
            at: DateTime::from_timestamp(1_790_000_000, 0).unwrap(),
            incident_id: format!("i{i}"),
            error: None,
        }
    }

    fn ids(records: &[AuditRecord]) -> Vec<String> {
        records
            .iter()
            .map(|r| r.incident_id().to_string())
            .collect()
    }

    #[test]
    fn the_log_rotates_by_size_and_keeps_what_it_is_told() {
        let dir = tempfile::tempdir().unwrap();
        let line = serde_json::to_vec(&paged(10)).unwrap().len() as u64 + 1;
        // Three records of this size per segment, two segments kept.
        let log = AuditLog::new(dir.path().join("audit.jsonl")).with_rotation(Some(Rotation {
            max_bytes: 3 * line,
            keep: 2,
        }));
        for i in 10..17 {
            log.append(&paged(i)).unwrap();
        }
        // 7 records: live [16], .1 [13 14 15], .2 [10 11 12].
        let (records, skipped) = log.read_all().unwrap();
        assert!(skipped.is_empty(), "{skipped:?}");
        assert_eq!(
            ids(&records),
            ["i10", "i11", "i12", "i13", "i14", "i15", "i16"]
        );
        let lines = |p: PathBuf| std::fs::read_to_string(p).unwrap().lines().count();
        assert_eq!(lines(log.segment(2)), 3);
        assert_eq!(lines(log.segment(1)), 3);
        assert_eq!(lines(log.path().to_path_buf()), 1);
        // Three more: the oldest segment beyond the two kept goes.
        for i in 17..20 {
            log.append(&paged(i)).unwrap();
        }
        let (records, _) = log.read_all().unwrap();
        assert_eq!(
            ids(&records),
            ["i13", "i14", "i15", "i16", "i17", "i18", "i19"]
        );
        assert!(!log.segment(3).exists());
        // Read by a log that no longer rotates (or keeps fewer): every
        // segment on disk is still read, as `foresight incidents` does.
        let plain = AuditLog::new(log.path()).with_rotation(None);
        assert_eq!(plain.read_all().unwrap().0.len(), 7);
        // A damaged line in a rotated segment is reported with that file.
        let mut text = std::fs::read_to_string(log.segment(2)).unwrap();
        text.insert_str(0, "junk\n");
        std::fs::write(log.segment(2), text).unwrap();
        let (records, skipped) = log.read_all().unwrap();
        assert_eq!(records.len(), 7);
        assert_eq!(skipped.len(), 1);
        assert_eq!(
            (skipped[0].file.clone(), skipped[0].line),
            (log.segment(2), 1)
        );
        // Only rotate's own names are segments: not an operator's dated
        // copy, nor a name that merely parses as a number.
        for other in [
            "audit.jsonl.20250101",
            "audit.jsonl.2025",
            "audit.jsonl.+1",
            "audit.jsonl.01",
            "audit.jsonl.lock",
        ] {
            std::fs::write(dir.path().join(other), b"{\"record\":\"paged\"}\n").unwrap();
        }
        let (records, _) = log.read_all().unwrap();
        assert_eq!(records.len(), 7);
        // Three more rotate once, deleting the oldest segment: the others
        // are left alone.
        for i in 20..23 {
            log.append(&paged(i)).unwrap();
        }
        let (records, _) = log.read_all().unwrap();
        assert_eq!(
            ids(&records),
            ["i16", "i17", "i18", "i19", "i20", "i21", "i22"]
        );
        for other in [
            "audit.jsonl.20250101",
            "audit.jsonl.2025",
            "audit.jsonl.+1",
            "audit.jsonl.01",
        ] {
            assert!(dir.path().join(other).exists(), "{other}");
        }
        // Reading from a time skips the segments last written before it,
        // and an unreadable rotated segment costs that segment only.
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
        let (recent, _) = log.read_since(Some(later)).unwrap();
        assert_eq!(ids(&recent), ["i22"], "only the live file");
        // A segment last written a day ago is skipped, a newer one read.
        let day_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(86_400);
        std::fs::File::options()
            .write(true)
            .open(log.segment(2))
            .unwrap()
            .set_modified(day_ago)
            .unwrap();
        let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        let (recent, _) = log.read_since(Some(hour_ago)).unwrap();
        assert_eq!(ids(&recent), ["i19", "i20", "i21", "i22"]);
        std::fs::remove_file(log.segment(2)).unwrap();
        std::fs::create_dir(log.segment(2)).unwrap();
        let (records, skipped) = log.read_all().unwrap();
        assert_eq!(ids(&records), ["i19", "i20", "i21", "i22"]);
        assert!(
            skipped
                .iter()
                .any(|s| s.file == log.segment(2) && s.line == 0),
            "{skipped:?}"
        );
        // A record larger than the limit still lands whole, alone.
        let small = AuditLog::new(dir.path().join("small.jsonl")).with_rotation(Some(Rotation {
            max_bytes: 10,
            keep: 1,
        }));
        small.append(&paged(1)).unwrap();
        small.append(&paged(2)).unwrap();
        assert_eq!(ids(&small.read_all().unwrap().0), ["i1", "i2"]);
    }

    #[test]
    fn concurrent_appenders_lose_nothing_across_rotations() {
        // Two replicas appending to one log on a shared volume (here two
        // threads): the lock keeps a rotation from moving the file while
        // the other appends, or both rotating at once.
        let dir = tempfile::tempdir().unwrap();
        let line = serde_json::to_vec(&paged(1000)).unwrap().len() as u64 + 1;
        let log = AuditLog::new(dir.path().join("audit.jsonl")).with_rotation(Some(Rotation {
            max_bytes: 5 * line,
            keep: 1000,
        }));
        std::thread::scope(|s| {
            for t in 0..2u32 {
                let log = log.clone();
                s.spawn(move || {
                    for k in 0..100u32 {
                        log.append(&paged(1000 + t * 100 + k)).unwrap();
                    }
                });
            }
        });
        let (records, skipped) = log.read_all().unwrap();
        assert!(skipped.is_empty(), "{skipped:?}");
        let mut got = ids(&records);
        got.sort();
        let mut want: Vec<String> = (1000..1200).map(|i| format!("i{i}")).collect();
        want.sort();
        assert_eq!(got, want);
        // Every segment is within the limit.
        for (_, p) in log.rotated().unwrap() {
            assert!(
                std::fs::metadata(&p).unwrap().len() <= 5 * line,
                "{}",
                p.display()
            );
        }
    }

    #[test]
    fn finished_actions_close_their_start() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::new(dir.path().join("audit.jsonl"));
        let at = DateTime::from_timestamp(1_790_000_000, 0).unwrap();
        for r in [
            AuditRecord::Opened {
                at,
                incident: Box::new(incident("i1")),
            },
            AuditRecord::ActionStarted {
                at,
                incident_id: "i1".into(),
                action: restart(),
            },
            AuditRecord::ActionFinished {
                at,
                incident_id: "i1".into(),
                action: restart(),
                outcome: ActionOutcome::Done {
                    message: "restarted".into(),
                },
            },
            AuditRecord::Paged {
                at,
                incident_id: "i1".into(),
                error: None,
            },
        ] {
            log.append(&r).unwrap();
        }
        let s = summarize(&log.read().unwrap());
        assert_eq!(s[0].status(), "done");
        assert_eq!(s[0].pages.len(), 1);
        // A bad line in the middle is skipped and reported, not fatal: the
        // records after it still count.
        let text = std::fs::read_to_string(log.path()).unwrap();
        std::fs::write(log.path(), format!("garbage\n{text}")).unwrap();
        let (records, skipped) = log.read_all().unwrap();
        assert_eq!(summarize(&records)[0].status(), "done");
        assert_eq!(skipped.len(), 1);
        assert_eq!(skipped[0].line, 1);
        assert!(skipped[0].reason.starts_with("not a record"), "{skipped:?}");
    }
}
