//! The audit trail: one JSON object per line, appended and fsync'd before
//! `append` returns. Every action is bracketed by an `actionStarted` and an
//! `actionFinished` record, so a crash mid-action leaves a started record
//! with no finish, which `foresight incidents` shows as interrupted.

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

/// The append-only, fsync'd JSON-lines audit log.
#[derive(Debug, Clone)]
pub struct AuditLog {
    path: PathBuf,
}

impl AuditLog {
    /// The log at `path` (created on first append).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// Where the log is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the log for appending (creating it, empty, if missing), so
    /// a path that cannot be written is found at start-up rather than at
    /// the first incident, when it would stop every action.
    pub fn check_writable(&self) -> Result<(), RemediationError> {
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
        let created = !self.path.exists();
        let mut line =
            serde_json::to_vec(record).map_err(|e| write_err(std::io::Error::other(e)))?;
        line.push(b'\n');
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
            // A new file's directory entry is durable only once the
            // directory is synced.
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
            tracing::warn!(path = %self.path.display(), line = s.line, reason = %s.reason, "audit log line skipped");
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
    pub fn read_all(&self) -> Result<(Vec<AuditRecord>, Vec<SkippedLine>), RemediationError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((vec![], vec![])),
            Err(source) => {
                return Err(RemediationError::AuditRead {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        let mut out = Vec::new();
        let mut skipped = Vec::new();
        for (i, raw) in bytes.split(|b| *b == b'\n').enumerate() {
            let line = i + 1;
            let mut skip = |reason: String| skipped.push(SkippedLine { line, reason });
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
        Ok((out, skipped))
    }
}

/// A line of the audit log that is not a record.
#[derive(Debug, Clone, PartialEq)]
pub struct SkippedLine {
    /// 1-based line number.
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

/// Groups records by incident, in the order incidents were opened.
/// Records of an incident whose `opened` line is missing are dropped.
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
        let s = summarize(&records);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].status(), "interrupted");
        assert!(s[0].actions[0].finished.is_none());
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
