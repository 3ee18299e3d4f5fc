//! The M4 competition's wide CSV: one series per row.
//!
//! ```text
//! "V1","V2","V3",...
//! "H1","605","586",...,"",""
//! ```
//!
//! The first cell of a row is the series id and the rest are its values in
//! time order; shorter series are padded with empty cells at the end. The
//! files carry no timestamps, so every series gets a synthetic start (the
//! Unix epoch) and a one-hour step: evaluation only needs the order.

use std::path::Path;

use chrono::{DateTime, TimeDelta};

use super::SourceError;
use crate::domain::Series;

/// Reads a wide file. Series come back in file order.
pub(crate) fn load_wide(path: &Path) -> Result<Vec<(String, Series)>, SourceError> {
    let text = std::fs::read_to_string(path).map_err(|e| SourceError::FileRead {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    parse_wide(&text).map_err(|message| SourceError::FileContent {
        path: path.to_path_buf(),
        message,
    })
}

/// Parses wide CSV text; the error names the line, the series and the fix.
pub(crate) fn parse_wide(text: &str) -> Result<Vec<(String, Series)>, String> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((_, header)) = lines.next() else {
        return Err(
            "the file is empty; expected a header (\"V1\",\"V2\",...) and one series per row"
                .into(),
        );
    };
    let header = split_cells(header).map_err(|e| format!("line 1 (header): {e}"))?;
    if header.len() < 2 {
        return Err(format!(
            "line 1 (header): {} column(s); expected an id column and at least one value column, e.g. \"V1\",\"V2\",...",
            header.len()
        ));
    }
    let start = DateTime::UNIX_EPOCH;
    let mut out: Vec<(String, Series)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (line, row) in lines {
        let cells = split_cells(row).map_err(|e| format!("line {line}: {e}"))?;
        let id = cells[0].trim();
        if id.is_empty() {
            return Err(format!("line {line}: empty series id in the first column"));
        }
        if cells.len() > header.len() {
            return Err(format!(
                "line {line} (series {id:?}): {} cells but the header has {} columns",
                cells.len(),
                header.len()
            ));
        }
        if !seen.insert(id.to_string()) {
            return Err(format!(
                "line {line}: series {id:?} appears twice; ids must be unique"
            ));
        }
        // Padding is only at the end; an empty cell before the last value is
        // a missing sample, as in the long format.
        let used = cells
            .iter()
            .rposition(|c| !c.trim().is_empty())
            .unwrap_or(0);
        let values = cells[1..=used.max(1).min(cells.len() - 1)]
            .iter()
            .enumerate()
            .map(|(i, cell)| parse_value(cell, line, id, &header[i + 1]))
            .collect::<Result<Vec<f64>, String>>()?;
        if used == 0 || values.iter().all(|v| v.is_nan()) {
            return Err(format!("line {line}: series {id:?} has no values"));
        }
        out.push((
            id.to_string(),
            Series::new(start, TimeDelta::hours(1), values),
        ));
    }
    if out.is_empty() {
        return Err("the file has a header but no series rows".into());
    }
    Ok(out)
}

fn parse_value(cell: &str, line: usize, id: &str, column: &str) -> Result<f64, String> {
    let t = cell.trim();
    if t.is_empty() {
        return Ok(f64::NAN);
    }
    let at = || format!("line {line} (series {id:?}, column {column})");
    let v: f64 = t
        .parse()
        .map_err(|_| format!("{}: value {t:?} is not a number", at()))?;
    if !v.is_finite() {
        return Err(format!(
            "{}: value {v} is not a finite number; leave the cell empty to mark a missing sample",
            at()
        ));
    }
    if v < 0.0 {
        return Err(format!(
            "{}: value {v} is negative; queue depth, lag, connections and latency cannot be negative",
            at()
        ));
    }
    Ok(v)
}

/// Splits one line into cells, removing the double quotes M4 puts around
/// every cell. Quoted cells may not contain commas or quotes: M4's ids and
/// numbers never do, and refusing them beats mis-splitting silently.
fn split_cells(line: &str) -> Result<Vec<String>, String> {
    line.split(',')
        .enumerate()
        .map(|(i, raw)| {
            let t = raw.trim();
            let inner = match (t.strip_prefix('"'), t.ends_with('"') && t.len() >= 2) {
                (Some(rest), true) => &rest[..rest.len() - 1],
                (None, _) => t,
                (Some(_), false) => {
                    return Err(format!(
                        "cell {} ({t:?}) has an unbalanced quote; quoted cells may not contain commas",
                        i + 1
                    ));
                }
            };
            if inner.contains('"') {
                return Err(format!(
                    "cell {} ({t:?}) contains a quote inside it",
                    i + 1
                ));
            }
            Ok(inner.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_m4_rows_with_padding() {
        let text = "\"V1\",\"V2\",\"V3\",\"V4\"\r\n\"H1\",\"1\",\"2\",\"3\"\r\n\"H2\",4,,5\r\n\"H3\",\"6\",\"\",\"\"\r\n";
        let s = parse_wide(text).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].0, "H1");
        assert_eq!(s[0].1.values, vec![1.0, 2.0, 3.0]);
        assert_eq!(s[0].1.step, TimeDelta::hours(1));
        assert!(s[1].1.values[1].is_nan());
        assert_eq!(s[1].1.values.len(), 3);
        assert_eq!(s[2].1.values, vec![6.0]);
    }

    #[test]
    fn bad_rows_are_named() {
        let cases = [
            ("", "the file is empty"),
            ("\"V1\",\"V2\"\n", "no series rows"),
            ("\"V1\"\n\"H1\"\n", "expected an id column"),
            (
                "\"V1\",\"V2\"\n\"H1\",\"x\"\n",
                "line 2 (series \"H1\", column V2): value \"x\" is not a number",
            ),
            ("\"V1\",\"V2\"\n\"H1\",\"-1\"\n", "value -1 is negative"),
            ("\"V1\",\"V2\"\n\"H1\",NaN\n", "not a finite number"),
            (
                "\"V1\",\"V2\"\n\"H1\",1,2\n",
                "line 2 (series \"H1\"): 3 cells but the header has 2",
            ),
            (
                "\"V1\",\"V2\"\n\"H1\",1\n\"H1\",2\n",
                "line 3: series \"H1\" appears twice",
            ),
            (
                "\"V1\",\"V2\"\n\"H1\",\"\"\n",
                "line 2: series \"H1\" has no values",
            ),
            ("\"V1\",\"V2\"\n,1\n", "line 2: empty series id"),
            ("\"V1\",\"V2\"\n\"H1,1\n", "unbalanced quote"),
        ];
        for (text, want) in cases {
            let err = parse_wide(text).unwrap_err();
            assert!(err.contains(want), "{text:?}: got {err:?}, want {want:?}");
        }
    }
}
