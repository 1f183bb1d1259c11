//! CSV for f32 matrices: a header row of column names, then one row of comma-separated
//! numbers per matrix row. Values are written in Rust's shortest round-trip form, so a
//! write–read round trip is bit-exact; ±∞ and NaN are written `inf`, `-inf`, `NaN`.
//! No quoting: names may not contain commas, quotes or line breaks.

use std::path::Path;

use anyhow::{Context, Result, bail, ensure};

use super::atomic::write_atomic;
use super::matrix::{Matrix, NonFinite};

/// A CSV file read back: its column names and values.
#[derive(Clone, Debug, PartialEq)]
pub struct Csv {
    /// Column names from the header row.
    pub columns: Vec<String>,
    /// The values.
    pub matrix: Matrix,
}

fn check_name(name: &str, c: usize) -> Result<()> {
    // A byte-order mark counts as empty: a header made of a second BOM parsed, but its
    // encoding was then stripped as a BOM and did not parse again (found by fuzzing).
    ensure!(
        !name
            .trim_matches(|ch: char| ch.is_whitespace() || ch == '\u{feff}')
            .is_empty(),
        "column {c} has an empty name"
    );
    ensure!(
        !name.starts_with('\u{feff}'),
        "column {c} name starts with a byte-order mark"
    );
    ensure!(
        !name.contains([',', '"', '\n', '\r']),
        "column {c} name {name:?} contains a comma, quote or line break"
    );
    Ok(())
}

/// Encodes `matrix` with `columns` as its header (bytes of the whole file).
///
/// # Errors
/// `columns.len() != matrix.cols()`, or a name that is empty or contains `,` `"` or a
/// line break.
pub fn encode_csv(columns: &[&str], matrix: &Matrix) -> Result<String> {
    ensure!(
        columns.len() == matrix.cols(),
        "{} column names for a matrix of {} columns",
        columns.len(),
        matrix.cols()
    );
    for (c, name) in columns.iter().enumerate() {
        check_name(name, c)?;
    }
    let mut out = columns.join(",");
    out.push('\n');
    for r in 0..matrix.rows() {
        for (c, v) in matrix.row(r).iter().enumerate() {
            if c > 0 {
                out.push(',');
            }
            out.push_str(&v.to_string());
        }
        out.push('\n');
    }
    Ok(out)
}

/// Writes `matrix` as CSV to `path` atomically.
///
/// # Errors
/// As [`encode_csv`], or the file cannot be written.
pub fn write_csv(path: &Path, columns: &[&str], matrix: &Matrix) -> Result<()> {
    let text =
        encode_csv(columns, matrix).with_context(|| format!("cannot encode {}", path.display()))?;
    write_atomic(path, text.as_bytes())
}

/// Parses CSV text (see the module docs). Lines may end in `\n` or `\r\n`; blank lines
/// at the end are ignored.
///
/// # Errors
/// Empty text, a bad header (empty or duplicate names, or a first row that is all
/// numbers — the header is missing), a row with the wrong number of fields, a field
/// that is not a number, or (with [`NonFinite::Reject`]) a non-finite value; each
/// names the row (0-based data row and 1-based line) and column.
pub fn parse_csv(text: &str, policy: NonFinite) -> Result<Csv> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    while lines.last().is_some_and(|l| l.trim().is_empty()) {
        lines.pop();
    }
    let Some((header, rows)) = lines.split_first() else {
        bail!("empty CSV: expected a header row")
    };
    let columns: Vec<String> = header.split(',').map(|s| s.trim().to_owned()).collect();
    for (c, name) in columns.iter().enumerate() {
        check_name(name, c).context("bad header row")?;
        if let Some(first) = columns.iter().position(|n| n == name)
            && first != c
        {
            bail!("bad header row: columns {first} and {c} are both named {name:?}");
        }
    }
    if columns.iter().all(|n| n.parse::<f64>().is_ok()) {
        bail!("bad header row: {header:?} is all numbers; the first line must name the columns");
    }
    let cols = columns.len();
    let mut data = Vec::with_capacity(rows.len() * cols);
    for (r, line) in rows.iter().enumerate() {
        let fields: Vec<&str> = line.split(',').collect();
        ensure!(
            fields.len() == cols,
            "row {r} (line {}): {} fields, the header has {cols}",
            r + 2,
            fields.len()
        );
        for (c, field) in fields.iter().enumerate() {
            let v: f32 = field.trim().parse().map_err(|_| {
                anyhow::anyhow!(
                    "row {r} (line {}), column {c} {:?}: {:?} is not a number",
                    r + 2,
                    columns[c],
                    field.trim()
                )
            })?;
            if policy == NonFinite::Reject && !v.is_finite() {
                bail!(
                    "row {r} (line {}), column {c} {:?}: non-finite value {v}",
                    r + 2,
                    columns[c]
                );
            }
            data.push(v);
        }
    }
    Ok(Csv {
        matrix: Matrix::new(rows.len(), cols, data)?,
        columns,
    })
}

/// Reads a CSV file written by [`write_csv`] (or any header-first numeric CSV).
///
/// # Errors
/// Unreadable or non-UTF-8 file, or anything [`parse_csv`] rejects; the message names
/// the path.
pub fn read_csv(path: &Path, policy: NonFinite) -> Result<Csv> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_csv(&text, policy).with_context(|| format!("in {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_is_bit_exact_through_a_file() {
        let values = vec![
            0.1f32,
            -2.5e-8,
            3.0,
            f32::MAX,
            f32::MIN_POSITIVE,
            1.0 / 3.0,
            -0.0,
            7.0,
        ];
        let m = Matrix::new(4, 2, values.clone()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pts.csv");
        write_csv(&path, &["x", "y"], &m).unwrap();
        let back = read_csv(&path, NonFinite::Reject).unwrap();
        assert_eq!(back.columns, vec!["x", "y"]);
        assert_eq!((back.matrix.rows(), back.matrix.cols()), (4, 2));
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(back.matrix.data()), bits(&values));
        // Header only: zero rows.
        let empty = parse_csv("a,b\n", NonFinite::Reject).unwrap();
        assert_eq!((empty.matrix.rows(), empty.matrix.cols()), (0, 2));
    }

    #[test]
    fn non_finite_values_round_trip_only_when_allowed() {
        let m = Matrix::new(2, 1, vec![f32::INFINITY, 1.0]).unwrap();
        let text = encode_csv(&["hal"], &m).unwrap();
        assert_eq!(text, "hal\ninf\n1\n");
        assert_eq!(parse_csv(&text, NonFinite::Allow).unwrap().matrix, m);
        let err = format!("{:#}", parse_csv(&text, NonFinite::Reject).unwrap_err());
        assert!(
            err.contains("row 0 (line 2), column 0 \"hal\": non-finite value inf"),
            "{err}"
        );
        assert!(
            parse_csv("a\n1\nNaN\n", NonFinite::Reject)
                .unwrap_err()
                .to_string()
                .contains("row 1 (line 3)")
        );
    }

    #[test]
    fn reader_accepts_crlf_bom_spaces_and_trailing_blank_lines() {
        let c = parse_csv("\u{feff}x, y\r\n1, 2\r\n3,4\r\n\r\n\n", NonFinite::Reject).unwrap();
        assert_eq!(c.columns, vec!["x", "y"]);
        assert_eq!(c.matrix.data(), &[1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn reader_errors_name_the_problem() {
        let cases: &[(&str, &str)] = &[
            ("", "empty CSV"),
            ("\n\n", "empty CSV"),
            ("x,,z\n1,2,3\n", "column 1 has an empty name"),
            ("x,x\n1,2\n", "columns 0 and 1 are both named \"x\""),
            ("1,2\n3,4\n", "is all numbers"),
            (
                "x,y\n1,2\n3\n",
                "row 1 (line 3): 1 fields, the header has 2",
            ),
            ("x,y\n1,2,3\n", "row 0 (line 2): 3 fields"),
            (
                "x,y\n1,abc\n",
                "row 0 (line 2), column 1 \"y\": \"abc\" is not a number",
            ),
            ("x,y\n1,\n", "column 1 \"y\": \"\" is not a number"),
            (
                "x\n1\n\n2\n",
                "row 1 (line 3), column 0 \"x\": \"\" is not a number",
            ),
            ("x\n1e39\n", "non-finite value inf"),
        ];
        for (text, needle) in cases {
            let err = format!("{:#}", parse_csv(text, NonFinite::Reject).unwrap_err());
            assert!(err.contains(needle), "{text:?}: {err}");
        }
        let m = Matrix::new(1, 2, vec![1.0, 2.0]).unwrap();
        assert!(
            encode_csv(&["a"], &m)
                .unwrap_err()
                .to_string()
                .contains("1 column names")
        );
        assert!(
            encode_csv(&["a", "b,c"], &m)
                .unwrap_err()
                .to_string()
                .contains("comma")
        );
        let err = format!(
            "{:#}",
            read_csv(Path::new("/nonexistent/x.csv"), NonFinite::Reject).unwrap_err()
        );
        assert!(err.contains("/nonexistent/x.csv"), "{err}");
    }
}
