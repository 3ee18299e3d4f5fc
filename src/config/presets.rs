//! Named forecasting presets from `models/`, compiled in: a ScaledObject's
//! `model` key fills in the metadata keys it leaves unset.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use serde::Deserialize;

/// The shipped presets: name and TOML text. The name is the file's stem.
const SOURCES: &[(&str, &str)] = &[
    (
        "daily-short-retention",
        include_str!("../../models/daily-short-retention.toml"),
    ),
    (
        "noisy-cost-aware",
        include_str!("../../models/noisy-cost-aware.toml"),
    ),
    (
        "seasonal-cost-aware",
        include_str!("../../models/seasonal-cost-aware.toml"),
    ),
    (
        "web-daily-weekly",
        include_str!("../../models/web-daily-weekly.toml"),
    ),
];

/// One preset file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preset {
    /// One line for people.
    pub description: String,
    /// Metadata defaults, as a ScaledObject would write them.
    pub metadata: BTreeMap<String, String>,
}

/// Every shipped preset by name, or the first file that does not parse
/// (a build defect that `tests/metadata_table.rs` catches).
pub fn presets() -> Result<&'static BTreeMap<&'static str, Preset>, &'static str> {
    static PARSED: OnceLock<Result<BTreeMap<&'static str, Preset>, String>> = OnceLock::new();
    PARSED
        .get_or_init(|| {
            SOURCES
                .iter()
                .map(|(name, text)| {
                    toml::from_str::<Preset>(text)
                        .map(|p| (*name, p))
                        .map_err(|e| format!("models/{name}.toml: {e}"))
                })
                .collect()
        })
        .as_ref()
        .map_err(String::as_str)
}

/// The metadata with the named preset's values filled in where `meta` has
/// none; `meta` unchanged when it names no preset. The error is a KEDA-shaped
/// message naming the valid presets.
pub(crate) fn apply(meta: &HashMap<String, String>) -> Result<HashMap<String, String>, String> {
    let Some(name) = meta
        .get("model")
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
    else {
        return Ok(meta.clone());
    };
    let all = presets().map_err(str::to_string)?;
    let Some(preset) = all.get(name) else {
        let names: Vec<&str> = all.keys().copied().collect();
        return Err(format!(
            "parameter \"model\" value {name:?} must be one of [{}]",
            names.join(" ")
        ));
    };
    let mut out = meta.clone();
    for (k, v) in &preset.metadata {
        let unset = out.get(k).is_none_or(|v| v.trim().is_empty());
        if unset {
            out.insert(k.clone(), v.clone());
        }
    }
    Ok(out)
}
