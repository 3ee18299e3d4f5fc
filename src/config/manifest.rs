//! KEDA ScaledObject manifests: the metadata of the trigger that points at
//! foresight, read for `backtest --metadata FILE` and written back with the
//! setting a sweep picked (`backtest --write-pick`).
//!
//! Only foresight's trigger is read or changed: the one of type `external`
//! or `external-push`, or among several, the one naming a foresight signal
//! (that is the one KEDA sends to foresight). A file may hold other
//! documents beside the ScaledObject (`---`-separated, as a Deployment is
//! often kept with its scaler); they are carried over.
//!
//! Writing edits the text in place, so the operator's comments, quoting
//! and layout survive a round trip through a sweep: manifests live in Git,
//! and a rewrite that drops every comment is a diff nobody can review. The
//! edit is checked against a whole rewrite (serde_yaml, which validates
//! and keeps no comments) and is used only when the two read back the
//! same; otherwise the rewrite is, and the caller is told.

use std::collections::BTreeMap;

use serde_yaml::{Mapping, Value};

use crate::domain::MetricKind;

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
    /// Several external triggers, and not exactly one of them names a
    /// foresight signal (or those that do differ).
    #[error(
        "has {count} triggers of type external or external-push and {naming} of them name a foresight signal (a ...Query key such as queueDepthQuery); foresight's must be the only one that does, or all that do must carry the same metadata"
    )]
    SeveralExternalTriggers {
        /// External triggers.
        count: usize,
        /// Those with a foresight query key.
        naming: usize,
    },
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
    let (_, meta) = trigger_metadata(scaled_object(&mut docs)?)?;
    let mut out = BTreeMap::new();
    for (k, v) in meta.iter() {
        let key = k.as_str().ok_or(ManifestError::KeyNotString)?;
        let value = scalar(v).ok_or_else(|| ManifestError::ValueNotString(key.to_string()))?;
        out.insert(key.to_string(), value);
    }
    Ok(out)
}

/// A manifest with new metadata, as [`with_external_metadata`] wrote it.
#[derive(Debug)]
pub struct Updated {
    /// The manifest's new text.
    pub text: String,
    /// Whether `text` is the input edited in place, comments and layout
    /// kept; `false` when only a whole rewrite read back right (the caller
    /// says so, since the comments are gone).
    pub in_place: bool,
}

/// The manifest with its external trigger's metadata updated by `set`:
/// keys already there keep their place, new keys come last, and every
/// value is written as a string. KEDA's metadata is a map of strings, so a
/// `40` that [`external_metadata`] read as `"40"` would be refused by the
/// API server as it stands. The rest of the manifest is unchanged, down to
/// its comments when the in-place edit reads back as the rewrite does.
pub fn with_external_metadata(
    text: &str,
    set: &BTreeMap<String, String>,
) -> Result<Updated, ManifestError> {
    let mut docs = documents(text)?;
    let (indices, meta) = trigger_metadata(scaled_object(&mut docs)?)?;
    // What changes: a set value that differs, and any value that is not a
    // string yet (a `40` must be written `"40"`).
    let mut changes = BTreeMap::new();
    for (k, v) in meta.iter_mut() {
        let key = k.as_str().ok_or(ManifestError::KeyNotString)?;
        let text = scalar(v).ok_or_else(|| ManifestError::ValueNotString(key.to_string()))?;
        if !v.is_string() {
            changes.insert(key.to_string(), text.clone());
        }
        *v = Value::String(text);
    }
    for (k, v) in set {
        let old = meta.insert(Value::String(k.clone()), Value::String(v.clone()));
        if old.as_ref().and_then(Value::as_str) != Some(v.as_str()) {
            changes.insert(k.clone(), v.clone());
        }
    }
    let updated = Value::Mapping(meta.clone());
    let triggers = triggers_of(scaled_object(&mut docs)?)?;
    for &i in &indices[1..] {
        if let Some(m) = triggers[i].get_mut("metadata") {
            *m = updated.clone();
        }
    }
    if let Some(edited) = edited_in_place(text, &indices, &changes)
        && documents(&edited).ok().as_deref() == Some(docs.as_slice())
    {
        return Ok(Updated {
            text: edited,
            in_place: true,
        });
    }
    let mut out = Vec::new();
    for d in &docs {
        out.push(serde_yaml::to_string(d)?);
    }
    Ok(Updated {
        text: out.join("---\n"),
        in_place: false,
    })
}

/// `text` with `changes` set in the metadata of the triggers at `indices`
/// (foresight's) of its one ScaledObject, edited losslessly; `None` when the
/// lossless parser cannot find those mappings. Its result is trusted only after it
/// reads back as the rewrite: the parser is young, so a panic in it is
/// caught too and ends in the rewrite, never in a crash.
fn edited_in_place(
    text: &str,
    indices: &[usize],
    changes: &BTreeMap<String, String>,
) -> Option<String> {
    use std::str::FromStr as _;
    let edit = || {
        let file = yaml_edit::YamlFile::from_str(text).ok()?;
        let mut found = file
            .documents()
            .filter(|d| d.get_string("kind").as_deref() == Some("ScaledObject"));
        let (Some(doc), None) = (found.next(), found.next()) else {
            return None;
        };
        let triggers = doc.get_mapping("spec")?.get_sequence("triggers")?;
        for &index in indices {
            let trigger = triggers.values().nth(index)?.as_mapping().cloned()?;
            let meta = trigger.get_mapping("metadata")?;
            for (k, v) in changes {
                meta.set(k.as_str(), v.as_str());
            }
        }
        Some(file.to_string())
    };
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(edit))
        .ok()
        .flatten()
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

/// The metadata mapping of a ScaledObject's foresight trigger (see
/// [`foresight_triggers`]), and the indices of every trigger carrying it.
fn trigger_metadata(doc: &mut Value) -> Result<(Vec<usize>, &mut Mapping), ManifestError> {
    let triggers = triggers_of(doc)?;
    let all = foresight_triggers(triggers)?;
    triggers[all[0]]
        .get_mut("metadata")
        .and_then(Value::as_mapping_mut)
        .map(|m| (all, m))
        .ok_or(ManifestError::NoMetadata)
}

fn triggers_of(doc: &mut Value) -> Result<&mut Vec<Value>, ManifestError> {
    doc.get_mut("spec")
        .and_then(|s| s.get_mut("triggers"))
        .and_then(Value::as_sequence_mut)
        .ok_or(ManifestError::NoTriggers)
}

/// Which triggers point at foresight: the only one of type `external` or
/// `external-push`, or among several, the only one naming a foresight
/// signal (a `...Query` key), or all of those when they carry the same
/// metadata (then all are written alike: one left behind would send KEDA
/// two configurations for one ScaledObject). Taking the first blindly read another scaler's metadata
/// (its `queueName`) as foresight's.
fn foresight_triggers(triggers: &[Value]) -> Result<Vec<usize>, ManifestError> {
    let external: Vec<usize> = (0..triggers.len())
        .filter(|&i| {
            matches!(
                triggers[i].get("type").and_then(Value::as_str),
                Some("external" | "external-push")
            )
        })
        .collect();
    match external.as_slice() {
        [] => Err(ManifestError::NoExternalTrigger),
        [i] => Ok(vec![*i]),
        several => {
            let ours: Vec<usize> = several
                .iter()
                .copied()
                .filter(|&i| {
                    triggers[i]
                        .get("metadata")
                        .and_then(Value::as_mapping)
                        .is_some_and(|m| {
                            MetricKind::ALL
                                .iter()
                                .any(|k| m.contains_key(k.query_key()))
                        })
                })
                .collect();
            // `external` and `external-push` to foresight together (push
            // for activity, pull for the metric) carry the same metadata.
            let same =
                |i: &usize| triggers[*i].get("metadata") == triggers[ours[0]].get("metadata");
            match ours.as_slice() {
                [_] => Ok(ours),
                [_, ..] if ours.iter().all(same) => Ok(ours),
                _ => Err(ManifestError::SeveralExternalTriggers {
                    count: several.len(),
                    naming: ours.len(),
                }),
            }
        }
    }
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
    use proptest::strategy::Strategy as _;

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
        assert!(out.in_place);
        let out = out.text;
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
            (
                "kind: ScaledObject\nspec: {triggers: [{type: external, metadata: {queueName: a}}, {type: external, metadata: {queueName: b}}]}\n",
                "has 2 triggers of type external or external-push and 0 of them name a foresight signal",
            ),
            (
                "kind: ScaledObject\nspec: {triggers: [{type: external, metadata: {queueDepthQuery: a}}, {type: external, metadata: {connectionsQuery: b}}]}\n",
                "has 2 triggers of type external or external-push and 2 of them name a foresight signal",
            ),
        ];
        for (text, message) in cases {
            let e = external_metadata(text).unwrap_err().to_string();
            assert!(e.starts_with(message), "{text:?}: {e}");
        }
        let e = with_external_metadata("kind: Deployment\n", &BTreeMap::new()).unwrap_err();
        assert!(matches!(e, ManifestError::NotScaledObject(_)), "{e}");
    }

    #[test]
    fn among_several_external_triggers_foresights_is_the_one_naming_a_signal() {
        // Another external scaler first, then foresight's.
        let text = "kind: ScaledObject\nspec:\n  triggers:\n    - type: external\n      metadata: {scalerAddress: other:9090, queueName: orders}\n    - type: external\n      metadata: {scalerAddress: foresight:9090, connectionsQuery: q, connectionsTarget: \"20\"}\n";
        let m = external_metadata(text).unwrap();
        assert_eq!(m.get("connectionsTarget").map(String::as_str), Some("20"));
        assert!(!m.contains_key("queueName"));
        // Written into the same trigger, in place, the other one untouched.
        let out = with_external_metadata(text, &map(&[("forecastQuantile", "0.6")])).unwrap();
        assert!(out.in_place, "{}", out.text);
        assert_eq!(
            external_metadata(&out.text)
                .unwrap()
                .get("forecastQuantile")
                .map(String::as_str),
            Some("0.6")
        );
        assert!(
            out.text
                .contains("{scalerAddress: other:9090, queueName: orders}"),
            "{}",
            out.text
        );
    }

    #[test]
    fn foresights_pull_and_push_triggers_are_written_alike() {
        let text = "kind: ScaledObject\nspec:\n  triggers:\n    - type: external\n      metadata:\n        connectionsQuery: q\n        connectionsTarget: \"20\"\n    - type: external-push\n      metadata:\n        connectionsQuery: q\n        connectionsTarget: \"20\"\n";
        let out = with_external_metadata(text, &map(&[("forecastQuantile", "0.6")])).unwrap();
        assert!(out.in_place, "{}", out.text);
        assert_eq!(
            out.text.matches("forecastQuantile: '0.6'").count(),
            2,
            "{}",
            out.text
        );
        // And the result still reads as one foresight trigger.
        let m = external_metadata(&out.text).unwrap();
        assert_eq!(m.get("forecastQuantile").map(String::as_str), Some("0.6"));
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
        assert!(out.in_place, "{}", out.text);
        let out = out.text;
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

    /// A manifest as operators keep them: comments above, beside and
    /// inside the metadata, a flow mapping, quoting of both kinds.
    const COMMENTED: &str = r#"# The API's scaler; see the runbook.
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: api, namespace: shop}
spec:
  scaleTargetRef: {name: api}  # the Deployment
  triggers:
    - type: cpu
      metadata: {value: "50"}
    - type: external
      metadata:
        scalerAddress: foresight.keda:9090   # the Service
        # forty jobs per pod, from May's load test
        queueDepthTarget: 40
        forecastQuantile: "0.9"   # raise with care
        mode: 'predictive'
"#;

    #[test]
    fn comments_and_layout_are_kept_and_only_changed_lines_differ() {
        let set = map(&[
            ("forecastQuantile", "0.6"),
            ("mode", "predictive"),
            ("scaleDownStabilization", "60s"),
        ]);
        let out = with_external_metadata(COMMENTED, &set).unwrap();
        assert!(out.in_place, "{}", out.text);
        let before: Vec<&str> = COMMENTED.lines().collect();
        let after: Vec<&str> = out.text.lines().collect();
        // `mode` is already "predictive", so its line is left alone; the
        // number 40 becomes a string; the new key comes last.
        let changed: Vec<(usize, &str)> = before
            .iter()
            .zip(&after)
            .enumerate()
            .filter(|(_, (b, a))| b != a)
            .map(|(i, (_, a))| (i, *a))
            .collect();
        assert_eq!(
            changed,
            [
                (13, "        queueDepthTarget: '40'"),
                (14, "        forecastQuantile: '0.6'   # raise with care"),
            ],
            "{}",
            out.text
        );
        assert_eq!(after.len(), before.len() + 1);
        assert_eq!(after[before.len()], "        scaleDownStabilization: 60s");
        let mut expected = external_metadata(COMMENTED).unwrap();
        expected.extend(set);
        assert_eq!(external_metadata(&out.text).unwrap(), expected);
        // Nothing to change leaves the text as it was, byte for byte.
        let same = COMMENTED.replace("queueDepthTarget: 40", "queueDepthTarget: \"40\"");
        let again = with_external_metadata(&same, &map(&[("mode", "predictive")])).unwrap();
        assert_eq!((again.in_place, again.text.as_str()), (true, same.as_str()));
    }

    #[test]
    fn what_cannot_be_edited_in_place_is_rewritten_whole_and_says_so() {
        // The external trigger's metadata is an alias of the first
        // trigger's: editing it in place would change both, so the
        // in-place edit does not read back as the rewrite, which resolves
        // the alias and changes the external trigger's copy alone.
        let aliased = "kind: ScaledObject\nspec:\n  triggers:\n    - type: cpu\n      metadata: &m {value: \"50\"}\n    - type: external\n      metadata: *m\n";
        let out = with_external_metadata(aliased, &map(&[("value", "60")])).unwrap();
        assert!(!out.in_place, "{}", out.text);
        let doc: Value = serde_yaml::from_str(&out.text).unwrap();
        assert_eq!(doc["spec"]["triggers"][0]["metadata"]["value"], "50");
        assert_eq!(doc["spec"]["triggers"][1]["metadata"]["value"], "60");
    }

    proptest::proptest! {
        /// Whatever string a setting holds (YAML's indicators, what would
        /// read as a number, a bool or null, quotes, blanks, line breaks),
        /// the written manifest reads back with exactly that string, in
        /// place, with the comments kept.
        #[test]
        fn any_value_reads_back_as_written_in_place(
            key in "[a-zA-Z][a-zA-Z0-9]{0,12}",
            value in proptest::prop_oneof![
                "[ -~]{0,12}",
                proptest::sample::select(vec![
                    "", "~", "null", "true", "no", "0x10", "1e3", "-", "? x", "a: b", "#c",
                    "'", "\"", "x\ny", " lead", "trail ", "é", "*a", "&a", "!t", "%", "@",
                ]).prop_map(String::from),
            ],
        ) {
            let set = map(&[(key.as_str(), value.as_str())]);
            let out = with_external_metadata(COMMENTED, &set).unwrap();
            let mut expected = external_metadata(COMMENTED).unwrap();
            expected.extend(set);
            proptest::prop_assert_eq!(external_metadata(&out.text).unwrap(), expected);
            proptest::prop_assert!(out.in_place, "{}", out.text);
            proptest::prop_assert!(out.text.contains("# forty jobs per pod, from May's load test"));
        }
    }
}
