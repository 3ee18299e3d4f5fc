//! Prometheus range-query exports: the JSON body of `/api/v1/query_range`,
//! as saved by `curl`, read as series for offline replay.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::SourceError;
use super::file::{FileData, LoadReport, regularise};

/// The envelope Prometheus wraps every API answer in.
#[derive(Deserialize)]
struct Envelope {
    /// `success` or `error`.
    status: String,
    /// Present on success.
    data: Option<Data>,
    /// Present on error.
    error: Option<String>,
}

/// The `data` of a query answer.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Data {
    /// `matrix` for a range query.
    result_type: String,
    /// One entry per series.
    result: Vec<RangeSeries>,
}

/// One series of a matrix result.
#[derive(Deserialize)]
struct RangeSeries {
    /// Its label set, which becomes the series id.
    #[serde(default)]
    metric: BTreeMap<String, String>,
    /// `[unix seconds, "value"]` pairs.
    #[serde(default)]
    values: Vec<(f64, String)>,
}

/// The id a series of an export gets: its labels in PromQL selector syntax,
/// e.g. `{__name__="up",job="api"}`; `{}` for an aggregate without labels.
pub fn series_id(labels: &BTreeMap<String, String>) -> String {
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(","))
}

/// Reads a saved `/api/v1/query_range` answer. Samples that are `NaN` or
/// infinite (Prometheus' stale markers and divisions by zero) become missing
/// samples and are counted in the report.
pub fn load_range_export(path: &Path) -> Result<(FileData, LoadReport), SourceError> {
    let bad = |message: String| SourceError::FileContent {
        path: path.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| SourceError::FileRead {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let env: Envelope = serde_json::from_str(&text).map_err(|e| {
        bad(format!(
            "not a Prometheus query_range answer ({e}); save one with curl -s 'URL/api/v1/query_range?query=...&start=...&end=...&step=...'"
        ))
    })?;
    if env.status != "success" {
        return Err(bad(format!(
            "the export records a failed query: {}",
            env.error
                .unwrap_or_else(|| format!("status {:?}", env.status))
        )));
    }
    let data = env
        .data
        .ok_or_else(|| bad("the export has no \"data\" field".into()))?;
    if data.result_type != "matrix" {
        return Err(bad(format!(
            "resultType is {:?}; export a range query (/api/v1/query_range), which returns a matrix",
            data.result_type
        )));
    }
    if data.result.iter().all(|s| s.values.is_empty()) {
        return Err(bad(
            "the export holds no samples: the query matched nothing in that time range".into(),
        ));
    }
    let mut report = LoadReport::default();
    let mut series = BTreeMap::new();
    for s in data.result {
        let id = series_id(&s.metric);
        let mut rows = Vec::with_capacity(s.values.len());
        let mut dropped = 0;
        for (i, (t, v)) in s.values.iter().enumerate() {
            let v: f64 = v.trim().parse().map_err(|_| {
                bad(format!(
                    "series {id}: sample {} has value {v:?}, which is not a number",
                    i + 1
                ))
            })?;
            let v = if v.is_finite() {
                Some(v)
            } else {
                dropped += 1;
                None
            };
            rows.push((t.floor() as i64, v, i + 1));
        }
        report.rows += rows.len();
        let (regular, irregular, missing) =
            regularise(&id, &rows).map_err(|e| bad(e.replace("row ", "sample ")))?;
        if irregular > 0 {
            report.irregular_gaps.insert(id.clone(), irregular);
        }
        if missing + dropped > 0 {
            report
                .missing_values
                .insert(id.clone(), missing.max(dropped));
        }
        series.insert(id, regular);
    }
    Ok((
        FileData::from_map(path.display().to_string(), series),
        report,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(body: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("export.json");
        std::fs::write(&p, body).unwrap();
        (dir, p)
    }

    #[test]
    fn reads_a_matrix_with_nan_as_missing() {
        let (_d, p) = write(
            r#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"job":"api"},"values":[[60,"1"],[120,"NaN"],[180,"3"]]}]}}"#,
        );
        let (data, report) = load_range_export(&p).unwrap();
        assert_eq!(data.series_ids(), vec![r#"{job="api"}"#]);
        let s = data.series(r#"{job="api"}"#).unwrap();
        assert_eq!(s.start.timestamp(), 60);
        assert_eq!(s.values[0], 1.0);
        assert!(s.values[1].is_nan());
        assert_eq!(s.values[2], 3.0);
        assert_eq!(report.missing_values.values().sum::<usize>(), 1);
    }

    #[test]
    fn refuses_vectors_errors_and_empty_results() {
        for (body, needle) in [
            (
                r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#,
                "resultType",
            ),
            (
                r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#,
                "parse error",
            ),
            (
                r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#,
                "no samples",
            ),
            ("", "not a Prometheus"),
        ] {
            let (_d, p) = write(body);
            let e = load_range_export(&p).unwrap_err().to_string();
            assert!(e.contains(needle), "{e}");
        }
    }
}
