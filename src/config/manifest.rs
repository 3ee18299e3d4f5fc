//! KEDA ScaledObject manifests: the metadata of the trigger that points at
//! foresight, read for `backtest --metadata FILE` and written back with the
//! setting a sweep picked (`backtest --write-pick`).
//!
//! Only the first trigger of type `external` or `external-push` is read or
//! changed: that is the one KEDA sends to foresight. A file may hold other
//! documents beside the ScaledObject (`---`-separated, as a Deployment is
//! often kept with its scaler); they are carried over. Everything else is
//! carried over as it was parsed (comments are not: YAML libraries drop
//! them).

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
    /// Of several documents, none is a ScaledObject.
    #[error("holds no KEDA ScaledObject (its documents are of kind {0})")]
    NoScaledObject(String),
    /// Of several documents, more than one is a ScaledObject, and which one
    /// is meant is not for foresight to guess.
    #[error("holds {0} ScaledObjects; give a file with one of them")]
    SeveralScaledObjects(usize),
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
    let mut docs = documents(text)?;
    let meta = trigger_metadata(scaled_object(&mut docs)?)?;
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
    let mut docs = documents(text)?;
    let meta = trigger_metadata(scaled_object(&mut docs)?)?;
    for (k, v) in meta.iter_mut() {
        let key = k.as_str().ok_or(ManifestError::KeyNotString)?;
        let text = scalar(v).ok_or_else(|| ManifestError::ValueNotString(key.to_string()))?;
        *v = Value::String(text);
    }
    for (k, v) in set {
        meta.insert(Value::String(k.clone()), Value::String(v.clone()));
    }
    let mut out = Vec::new();
    for d in &docs {
        out.push(serde_yaml::to_string(d)?);
    }
    Ok(out.join("---\n"))
}

/// The file's documents, empty ones (a leading or trailing `---`) left out.
fn documents(text: &str) -> Result<Vec<Value>, ManifestError> {
    use serde::Deserialize as _;
    let mut docs = Vec::new();
    for d in serde_yaml::Deserializer::from_str(text) {
        let v = Value::deserialize(d)?;
        if !v.is_null() {
            docs.push(v);
        }
    }
    Ok(docs)
}

/// The one ScaledObject among `docs`. A file of one document that is
/// something else is named by its kind, as before files could hold several.
fn scaled_object(docs: &mut [Value]) -> Result<&mut Value, ManifestError> {
    let kind = |d: &Value| {
        d.get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let found: Vec<usize> = (0..docs.len())
        .filter(|&i| kind(&docs[i]) == "ScaledObject")
        .collect();
    match (found.as_slice(), docs.len()) {
        ([i], _) => Ok(&mut docs[*i]),
        ([], 0) => Err(ManifestError::NotScaledObject(String::new())),
        ([], 1) => Err(ManifestError::NotScaledObject(kind(&docs[0]))),
        ([], _) => Err(ManifestError::NoScaledObject(
            docs.iter().map(kind).collect::<Vec<_>>().join(", "),
        )),
        (several, _) => Err(ManifestError::SeveralScaledObjects(several.len())),
    }
}

/// The metadata mapping of a ScaledObject's first external trigger.
fn trigger_metadata(doc: &mut Value) -> Result<&mut Mapping, ManifestError> {
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

    #[test]
    fn the_scaled_object_is_found_among_other_documents_which_are_kept() {
        let file = format!(
            "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: api}}\n---\n{SO}---\n"
        );
        assert_eq!(
            external_metadata(&file).unwrap(),
            external_metadata(SO).unwrap()
        );
        let out = with_external_metadata(&file, &map(&[("forecastQuantile", "0.6")])).unwrap();
        let docs = documents(&out).unwrap();
        assert_eq!(docs.len(), 2, "{out}");
        assert_eq!(docs[0], documents(&file).unwrap()[0]);
        assert_eq!(external_metadata(&out).unwrap()["forecastQuantile"], "0.6");
        // None, or more than one, is refused with what the file holds.
        let none = "kind: Deployment\n---\nkind: Service\n";
        assert_eq!(
            external_metadata(none).unwrap_err().to_string(),
            "holds no KEDA ScaledObject (its documents are of kind Deployment, Service)"
        );
        let two = format!("{SO}---\n{SO}");
        assert_eq!(
            external_metadata(&two).unwrap_err().to_string(),
            "holds 2 ScaledObjects; give a file with one of them"
        );
        assert_eq!(
            external_metadata("").unwrap_err().to_string(),
            "has kind \"\"; expected a KEDA ScaledObject"
        );
    }
}
