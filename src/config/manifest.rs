//! KEDA ScaledObject manifests: the metadata of the trigger that points at
//! foresight, read for `backtest --metadata FILE` and written back with the
//! setting a sweep picked (`backtest --write-pick`).
//!
//! Only the first trigger of type `external` or `external-push` is read or
//! changed: that is the one KEDA sends to foresight. Everything else in the
//! manifest is carried over as it was parsed (comments are not: YAML
//! libraries drop them).

use std::collections::BTreeMap;

use serde_yaml::{Mapping, Value};

/// A manifest could not be read as a ScaledObject with an external trigger.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Parsing or re-serialising the text failed.
    #[error("not valid YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
    /// The document's `kind` is not `ScaledObject`.
    #[error("has kind {0:?}; expected a KEDA ScaledObject")]
    NotScaledObject(String),
    /// The ScaledObject has no `spec.triggers` list.
    #[error("has no spec.triggers")]
    NoTriggers,
    /// None of its triggers is of type `external` or `external-push`.
    #[error("has no trigger of type external or external-push")]
    NoExternalTrigger,
    /// The external trigger has no `metadata` mapping.
    #[error("the external trigger has no metadata")]
    NoMetadata,
    /// A metadata key is a number, a list or a mapping.
    #[error("a metadata key is not a string")]
    KeyNotString,
    /// A metadata value is a list, a mapping or null.
    #[error("metadata {0:?} must be a string (KEDA's metadata is a map of strings)")]
    ValueNotString(String),
}

/// The metadata of the manifest's external trigger, every value as the
/// string KEDA would pass (`40` and `"40"` alike).
pub fn external_metadata(text: &str) -> Result<BTreeMap<String, String>, ManifestError> {
    let mut doc: Value = serde_yaml::from_str(text)?;
    let meta = trigger_metadata(&mut doc)?;
    let mut out = BTreeMap::new();
    for (k, v) in meta.iter() {
        let key = k.as_str().ok_or(ManifestError::KeyNotString)?;
        let value = scalar(v).ok_or_else(|| ManifestError::ValueNotString(key.to_string()))?;
        out.insert(key.to_string(), value);
    }
    Ok(out)
}

/// The manifest with its external trigger's metadata updated by `set`:
/// keys already there keep their place, new keys come last, and every
/// value is written as a string. KEDA's metadata is a map of strings, so a
/// `40` that [`external_metadata`] read as `"40"` would be refused by the
/// API server as it stands. The rest of the manifest is unchanged.
pub fn with_external_metadata(
    text: &str,
    set: &BTreeMap<String, String>,
) -> Result<String, ManifestError> {
    let mut doc: Value = serde_yaml::from_str(text)?;
    let meta = trigger_metadata(&mut doc)?;
    for (k, v) in meta.iter_mut() {
        let key = k.as_str().ok_or(ManifestError::KeyNotString)?;
        let text = scalar(v).ok_or_else(|| ManifestError::ValueNotString(key.to_string()))?;
        *v = Value::String(text);
    }
    for (k, v) in set {
        meta.insert(Value::String(k.clone()), Value::String(v.clone()));
    }
    Ok(serde_yaml::to_string(&doc)?)
}

/// The metadata mapping of the first external trigger, checked to be a
/// ScaledObject's.
fn trigger_metadata(doc: &mut Value) -> Result<&mut Mapping, ManifestError> {
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
    if kind != "ScaledObject" {
        return Err(ManifestError::NotScaledObject(kind.to_string()));
    }
    let triggers = doc
        .get_mut("spec")
        .and_then(|s| s.get_mut("triggers"))
        .and_then(Value::as_sequence_mut)
        .ok_or(ManifestError::NoTriggers)?;
    let trigger = triggers
        .iter_mut()
        .find(|t| {
            matches!(
                t.get("type").and_then(Value::as_str),
                Some("external" | "external-push")
            )
        })
        .ok_or(ManifestError::NoExternalTrigger)?;
    trigger
        .get_mut("metadata")
        .and_then(Value::as_mapping_mut)
        .ok_or(ManifestError::NoMetadata)
}

/// A scalar's text as KEDA reads it; `None` for anything else.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SO: &str = r#"apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: api, namespace: shop}
spec:
  scaleTargetRef: {name: api}
  triggers:
    - type: cpu
      metadata: {value: "50"}
    - type: external
      metadata:
        scalerAddress: foresight.keda:9090
        queueDepthTarget: 40
        forecastQuantile: "0.9"
"#;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_external_triggers_metadata_is_read_as_strings() {
        let m = external_metadata(SO).unwrap();
        assert_eq!(
            m,
            map(&[
                ("scalerAddress", "foresight.keda:9090"),
                ("queueDepthTarget", "40"),
                ("forecastQuantile", "0.9"),
            ])
        );
    }

    #[test]
    fn writing_changes_only_the_external_triggers_metadata() {
        let set = map(&[
            ("forecastQuantile", "0.6"),
            ("scaleDownStabilization", "60s"),
        ]);
        let out = with_external_metadata(SO, &set).unwrap();
        let doc: Value = serde_yaml::from_str(&out).unwrap();
        let before: Value = serde_yaml::from_str(SO).unwrap();
        assert_eq!(doc["metadata"], before["metadata"]);
        assert_eq!(
            doc["spec"]["scaleTargetRef"],
            before["spec"]["scaleTargetRef"]
        );
        assert_eq!(doc["spec"]["triggers"][0], before["spec"]["triggers"][0]);
        let meta = doc["spec"]["triggers"][1]["metadata"].as_mapping().unwrap();
        let keys: Vec<&str> = meta.keys().map(|k| k.as_str().unwrap()).collect();
        // Existing keys keep their place; the new one comes last.
        assert_eq!(
            keys,
            [
                "scalerAddress",
                "queueDepthTarget",
                "forecastQuantile",
                "scaleDownStabilization"
            ]
        );
        // Every value is a string, as KEDA's API requires: the number 40
        // too, which was not set.
        assert_eq!(meta["queueDepthTarget"], Value::String("40".into()));
        assert_eq!(meta["forecastQuantile"], Value::String("0.6".into()));
        assert_eq!(meta["scaleDownStabilization"], Value::String("60s".into()));
        // And it reads back as what was set, over what was there.
        let mut expected = external_metadata(SO).unwrap();
        expected.extend(set);
        assert_eq!(external_metadata(&out).unwrap(), expected);
    }

    #[test]
    fn what_is_not_a_scaled_object_with_an_external_trigger_is_named() {
        let cases = [
            (
                "kind: Deployment\n",
                "has kind \"Deployment\"; expected a KEDA ScaledObject",
            ),
            ("kind: ScaledObject\nspec: {}\n", "has no spec.triggers"),
            (
                "kind: ScaledObject\nspec: {triggers: [{type: cpu, metadata: {}}]}\n",
                "has no trigger of type external or external-push",
            ),
            (
                "kind: ScaledObject\nspec: {triggers: [{type: external}]}\n",
                "the external trigger has no metadata",
            ),
            (
                "kind: ScaledObject\nspec: {triggers: [{type: external-push, metadata: {a: [1]}}]}\n",
                "metadata \"a\" must be a string (KEDA's metadata is a map of strings)",
            ),
            (
                "kind: ScaledObject\nspec: {triggers: [{type: external, metadata: {1: x}}]}\n",
                "a metadata key is not a string",
            ),
            ("kind: [\n", "not valid YAML"),
        ];
        for (text, message) in cases {
            let e = external_metadata(text).unwrap_err().to_string();
            assert!(e.starts_with(message), "{text:?}: {e}");
        }
        let e = with_external_metadata("kind: Deployment\n", &BTreeMap::new()).unwrap_err();
        assert!(matches!(e, ManifestError::NotScaledObject(_)), "{e}");
    }
}
