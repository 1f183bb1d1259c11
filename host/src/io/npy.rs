//! NumPy `.npy` files of little-endian float32 (`'<f4'`), C order, 1-D or 2-D.
//!
//! Layout (format v1.0): magic `\x93NUMPY`, version bytes 1 0, a u16 little-endian header
//! length, an ASCII Python-dict header such as
//! `{'descr': '<f4', 'fortran_order': False, 'shape': (100, 2), }` padded with spaces and
//! a final `\n` so the data starts on a 64-byte boundary, then the raw values. The reader
//! also accepts v2.0/v3.0 (u32 header length) since NumPy switches to them for large
//! headers.

use std::path::Path;

use anyhow::{Context, Result, bail, ensure};

use super::atomic::write_atomic;
use super::matrix::{Matrix, NonFinite};

const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// An array read from a `.npy` file: 1-D arrays become one column.
#[derive(Clone, Debug, PartialEq)]
pub struct Npy {
    /// 1 or 2.
    pub ndim: usize,
    /// The values (rows × cols; a 1-D array of n is n × 1).
    pub matrix: Matrix,
}

fn encode(shape: &str, values: &[f32]) -> Vec<u8> {
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    let unpadded = MAGIC.len() + 2 + 2 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + 4 * values.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    // The header is at most a few hundred bytes, far below u16::MAX.
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Encodes a 2-D array of shape (rows, cols).
#[must_use]
pub fn encode_npy(matrix: &Matrix) -> Vec<u8> {
    encode(
        &format!("({}, {})", matrix.rows(), matrix.cols()),
        matrix.data(),
    )
}

/// Encodes a 1-D array of shape (n,).
#[must_use]
pub fn encode_npy_vector(values: &[f32]) -> Vec<u8> {
    encode(&format!("({},)", values.len()), values)
}

/// Writes `matrix` as a 2-D `.npy` file atomically.
///
/// # Errors
/// The file cannot be written.
pub fn write_npy(path: &Path, matrix: &Matrix) -> Result<()> {
    write_atomic(path, &encode_npy(matrix))
}

/// Writes `values` as a 1-D `.npy` file atomically.
///
/// # Errors
/// The file cannot be written.
pub fn write_npy_vector(path: &Path, values: &[f32]) -> Result<()> {
    write_atomic(path, &encode_npy_vector(values))
}

/// The value of `key` in a NumPy header dict: the text after `'key':` up to the next
/// top-level comma or closing brace.
fn header_value<'a>(header: &'a str, key: &str) -> Result<&'a str> {
    let needle = format!("'{key}':");
    let start = header
        .find(&needle)
        .with_context(|| format!("header has no '{key}' entry: {header:?}"))?
        + needle.len();
    let rest = header[start..].trim_start();
    let mut depth = 0usize;
    for (i, ch) in rest.char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' | '}' if depth == 0 => return Ok(rest[..i].trim()),
            _ => {}
        }
    }
    bail!("header entry '{key}' is not terminated: {header:?}")
}

fn parse_shape(text: &str) -> Result<Vec<usize>> {
    let inner = text
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .with_context(|| format!("shape {text} is not a tuple"))?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .with_context(|| format!("shape {text}: {s:?} is not a dimension"))
        })
        .collect()
}

/// Parses the bytes of a `.npy` file.
///
/// # Errors
/// Each problem gets its own message: too short for the preamble, bad magic, an
/// unsupported version, a truncated or non-ASCII header, a dtype other than `'<f4'`,
/// Fortran order, a shape that is 0-D or more than 2-D, data shorter or longer than the
/// shape says, or (with [`NonFinite::Reject`]) a non-finite value named by row and column.
pub fn parse_npy(bytes: &[u8], policy: NonFinite) -> Result<Npy> {
    ensure!(
        bytes.len() >= 10,
        "truncated: {} bytes, shorter than the 10-byte .npy preamble",
        bytes.len()
    );
    ensure!(
        bytes.starts_with(MAGIC),
        "not a .npy file: bad magic {:02x?}",
        &bytes[..6]
    );
    let (major, minor) = (bytes[6], bytes[7]);
    let (header_len, header_start) = match major {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 => {
            ensure!(
                bytes.len() >= 12,
                "truncated: {} bytes, shorter than the 12-byte .npy v{major} preamble",
                bytes.len()
            );
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        }
        _ => bail!("unsupported .npy version {major}.{minor} (expected 1.0, 2.0 or 3.0)"),
    };
    let data_start = header_start + header_len;
    let header_bytes = bytes.get(header_start..data_start).with_context(|| {
        format!(
            "truncated header: {header_len} bytes declared, {} present",
            bytes.len() - header_start
        )
    })?;
    let header = std::str::from_utf8(header_bytes)
        .ok()
        .filter(|h| h.is_ascii())
        .context("header is not ASCII text")?;

    let descr = header_value(header, "descr")?;
    ensure!(
        descr == "'<f4'",
        "dtype {descr} is not supported: expected '<f4' (little-endian float32); convert with arr.astype('<f4')"
    );
    let fortran = header_value(header, "fortran_order")?;
    let shape = parse_shape(header_value(header, "shape")?)?;
    match fortran {
        "False" => {}
        "True" if shape.iter().filter(|&&d| d > 1).count() <= 1 => {}
        "True" => bail!("Fortran-order arrays are not supported; save with np.ascontiguousarray"),
        other => bail!("fortran_order {other} is not True or False"),
    }
    let (rows, cols) = match shape[..] {
        [n] => (n, 1),
        [r, c] => (r, c),
        _ => bail!(
            "shape {shape:?} has {} dimensions; only 1-D and 2-D arrays are supported",
            shape.len()
        ),
    };
    ensure!(cols > 0, "shape {shape:?} has no columns");
    let count = rows
        .checked_mul(cols)
        .filter(|n| n.checked_mul(4).is_some())
        .context("shape is too large")?;
    let data = bytes.get(data_start..).unwrap_or(&[]);
    ensure!(
        data.len() >= count * 4,
        "truncated data: shape {shape:?} needs {} bytes, {} present",
        count * 4,
        data.len()
    );
    ensure!(
        data.len() == count * 4,
        "{} unexpected bytes after the data of shape {shape:?}",
        data.len() - count * 4
    );
    let values: Vec<f32> = data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let matrix = Matrix::new(rows, cols, values)?;
    matrix.check_finite(policy)?;
    Ok(Npy {
        ndim: shape.len(),
        matrix,
    })
}

/// Reads a `.npy` file.
///
/// # Errors
/// Unreadable file, or anything [`parse_npy`] rejects; the message names the path.
pub fn read_npy(path: &Path, policy: NonFinite) -> Result<Npy> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_npy(&bytes, policy).with_context(|| format!("in {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `np.save(f, np.array([[1, 2], [3, 4.5]], dtype='<f4'))` writes (NPY spec:
    /// v1.0, header padded with spaces so the data starts at byte 128).
    fn numpy_fixture() -> Vec<u8> {
        let dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }";
        let mut header = dict.to_owned();
        header.push_str(&" ".repeat(128 - 10 - dict.len() - 1));
        header.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        for v in [1.0f32, 2.0, 3.0, 4.5] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        bytes
    }

    #[test]
    fn encodes_like_numpy_and_round_trips() {
        let m = Matrix::new(2, 2, vec![1.0, 2.0, 3.0, 4.5]).unwrap();
        assert_eq!(encode_npy(&m), numpy_fixture());
        let back = parse_npy(&numpy_fixture(), NonFinite::Reject).unwrap();
        assert_eq!((back.ndim, back.matrix), (2, m));

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.npy");
        let values = vec![0.1f32, -3.5e-20, f32::MAX];
        write_npy_vector(&path, &values).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(
            (bytes.len() - 4 * values.len()) % 64,
            0,
            "data starts on a 64-byte boundary"
        );
        let v = read_npy(&path, NonFinite::Reject).unwrap();
        assert_eq!(v.ndim, 1);
        assert_eq!((v.matrix.rows(), v.matrix.cols()), (3, 1));
        assert_eq!(v.matrix.data(), values.as_slice());
        // Zero rows and a big 2-D array.
        let z = Matrix::new(0, 3, vec![]).unwrap();
        assert_eq!(
            parse_npy(&encode_npy(&z), NonFinite::Reject)
                .unwrap()
                .matrix,
            z
        );
        let big = Matrix::new(1000, 7, (0..7000).map(|i| i as f32 * 0.37).collect()).unwrap();
        let p2 = dir.path().join("big.npy");
        write_npy(&p2, &big).unwrap();
        assert_eq!(read_npy(&p2, NonFinite::Reject).unwrap().matrix, big);
    }

    #[test]
    fn reader_accepts_other_spacing_key_order_and_v2() {
        let dict = "{'shape': (3,), 'fortran_order': True, 'descr': '<f4'}";
        let mut bytes = b"\x93NUMPY\x02\x00".to_vec();
        bytes.extend_from_slice(&(dict.len() as u32 + 1).to_le_bytes());
        bytes.extend_from_slice(dict.as_bytes());
        bytes.push(b'\n');
        for v in [1.0f32, 2.0, 3.0] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        let r = parse_npy(&bytes, NonFinite::Reject).unwrap();
        assert_eq!(r.matrix.data(), &[1.0, 2.0, 3.0]);
    }

    fn with_header(dict: &str, data: &[u8]) -> Vec<u8> {
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(dict.len() as u16 + 1).to_le_bytes());
        bytes.extend_from_slice(dict.as_bytes());
        bytes.push(b'\n');
        bytes.extend_from_slice(data);
        bytes
    }

    #[test]
    fn reader_errors_name_the_problem() {
        let good = numpy_fixture();
        let mut bad_version = good.clone();
        bad_version[6] = 4;
        let mut nan = good.clone();
        let at = nan.len() - 8; // row 1, column 0
        nan[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
        let mut non_ascii = good.clone();
        non_ascii[20] = 0xff;
        let four = [0u8; 16];
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (good[..5].to_vec(), "shorter than the 10-byte"),
            (b"PK\x03\x04 not numpy at all".to_vec(), "bad magic"),
            (bad_version, "unsupported .npy version 4.0"),
            (good[..60].to_vec(), "truncated header"),
            (
                good[..good.len() - 3].to_vec(),
                "truncated data: shape [2, 2] needs 16 bytes, 13 present",
            ),
            ([good.clone(), vec![0; 5]].concat(), "5 unexpected bytes"),
            (nan, "non-finite value NaN at row 1, column 0"),
            (non_ascii, "not ASCII"),
            (
                with_header(
                    "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }",
                    &four,
                ),
                "dtype '<f8' is not supported",
            ),
            (
                with_header(
                    "{'descr': '>f4', 'fortran_order': False, 'shape': (4,), }",
                    &four,
                ),
                "dtype '>f4'",
            ),
            (
                with_header(
                    "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }",
                    &four,
                ),
                "Fortran-order",
            ),
            (
                with_header(
                    "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 1, 2), }",
                    &four,
                ),
                "3 dimensions",
            ),
            (
                with_header(
                    "{'descr': '<f4', 'fortran_order': False, 'shape': (), }",
                    &[],
                ),
                "0 dimensions",
            ),
            (
                with_header("{'descr': '<f4', 'fortran_order': False, }", &four),
                "no 'shape' entry",
            ),
            (
                with_header(
                    "{'descr': '<f4', 'fortran_order': False, 'shape': (2, x), }",
                    &four,
                ),
                "\"x\" is not a dimension",
            ),
            (
                with_header(
                    "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 0), }",
                    &[],
                ),
                "no columns",
            ),
            (
                with_header(
                    "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999, 999999), }",
                    &four,
                ),
                "too large",
            ),
        ];
        for (bytes, needle) in cases {
            let err = format!("{:#}", parse_npy(&bytes, NonFinite::Reject).unwrap_err());
            assert!(err.contains(needle), "{needle}: {err}");
        }
        assert!(
            parse_npy(
                &with_header(
                    "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }",
                    &f32::INFINITY.to_le_bytes()
                ),
                NonFinite::Allow
            )
            .is_ok()
        );
        // Every prefix of a valid file fails cleanly (no panic).
        for n in 0..good.len() {
            assert!(parse_npy(&good[..n], NonFinite::Reject).is_err());
        }
        let err = format!(
            "{:#}",
            read_npy(Path::new("/nonexistent/a.npy"), NonFinite::Reject).unwrap_err()
        );
        assert!(err.contains("/nonexistent/a.npy"), "{err}");
    }
}
