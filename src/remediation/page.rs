//! Paging a human: a POST of the incident summary to a webhook, either
//! Slack-compatible (`{"text": ...}`) or generic JSON (the summary plus the
//! whole incident).

use std::time::Duration;

use serde_json::json;

use super::error::RemediationError;
use super::guardrails::{PageReason, Verdict};
use super::incident::{ActionOutcome, Incident};

/// Body shapes the webhook accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PageFormat {
    /// `{"text": "..."}`: Slack, Mattermost, Google Chat and most chat
    /// incoming webhooks.
    #[default]
    Slack,
    /// `{"text", "incident", "outcome"}`: for receivers that parse fields.
    Generic,
}

/// Sends pages to one webhook.
#[derive(Debug, Clone)]
pub struct Pager {
    url: String,
    format: PageFormat,
    client: reqwest::Client,
}

impl Pager {
    /// A pager for `url`; every POST is bounded by `timeout`.
    pub fn new(url: impl Into<String>, format: PageFormat, timeout: Duration) -> Self {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            // Building fails only if the TLS backend cannot initialise;
            // the default client then fails each request with a clear error.
            .unwrap_or_default();
        Self {
            url: url.into(),
            format,
            client,
        }
    }

    /// The webhook without its path: chat webhooks carry their secret in
    /// the path, so only scheme and host are ever logged.
    pub fn describe(&self) -> String {
        match reqwest::Url::parse(&self.url) {
            Ok(u) => format!("{}://{}/…", u.scheme(), u.host_str().unwrap_or("")),
            Err(_) => "(invalid webhook URL)".into(),
        }
    }

    /// Pages about an incident, with the action's outcome if one ran.
    pub async fn page(
        &self,
        incident: &Incident,
        outcome: Option<&ActionOutcome>,
    ) -> Result<(), RemediationError> {
        let text = summary(incident, outcome);
        let body = match self.format {
            PageFormat::Slack => json!({ "text": text }),
            PageFormat::Generic => {
                json!({ "text": text, "incident": incident, "outcome": outcome })
            }
        };
        let response = self
            .client
            .post(&self.url)
            .json(&body)
            .send()
            .await
            .map_err(|source| RemediationError::PageSend {
                url: self.describe(),
                source: source.without_url(),
            })?;
        let status = response.status();
        if !status.is_success() {
            return Err(RemediationError::PageRefused {
                url: self.describe(),
                status: status.as_u16(),
            });
        }
        Ok(())
    }
}

/// One paragraph for a person: what, why, how sure, what was done.
pub(crate) fn summary(incident: &Incident, outcome: Option<&ActionOutcome>) -> String {
    let d = &incident.diagnosis;
    let what = match &incident.verdict {
        Verdict::Execute { action } => format!("Action taken: {action}."),
        Verdict::DryRun { action } => format!("Dry run: would {action}."),
        Verdict::Escalate { action, attempts } => format!(
            "ESCALATION: {action} already ran {attempts} times within the hour; not repeating it. A human is needed."
        ),
        Verdict::PageOnly { reason } => match reason {
            PageReason::NoAction => "No automated action applies.".to_string(),
            PageReason::LowConfidence {
                confidence,
                threshold,
            } => format!(
                "Not acting: confidence {confidence:.2} is below the threshold {threshold:.2}."
            ),
            PageReason::NamespaceNotAllowed { namespace } => {
                format!("Not acting: namespace {namespace} is not on the remediation allow-list.")
            }
            PageReason::BlastRadius { touched, limit, .. } => format!(
                "Not acting: {touched} targets were already touched in the blast-radius window (limit {limit})."
            ),
            PageReason::NotLeader => "Not acting: this replica is not the leader.".to_string(),
            PageReason::AuditUnwritable { error } => format!(
                "Not acting: the audit log cannot be written ({error}), and nothing is done unrecorded. Fix the log's volume."
            ),
        },
    };
    let mut text = format!(
        "[foresight] {} on {}: {:?} (confidence {:.2}). {what}",
        incident.id, incident.target, d.cause, d.confidence
    );
    if let Some(o) = outcome {
        text.push_str(&format!(" Result: {}.", o.message()));
    }
    for e in d.evidence.iter().take(5) {
        text.push_str(&format!("\n• {}", e.detail));
    }
    text
}
