//! The IDX file format of MNIST (LeCun et al.): big-endian, magic `00 00 TT NN` with data
//! type TT (0x08 = u8 is the only one images and labels use) and NN dimensions, then NN
//! u32 sizes, then the data in row-major order. Gzipped files must be decompressed first.
//!
//! [`read_idx_u8`] validates every field and says what was wrong: short header, non-zero
//! magic prefix, unsupported type, zero or too many dimensions, size overflow, truncated or
//! trailing data.

use std::path::Path;

use anyhow::{Context, Result, bail, ensure};

/// A parsed u8 IDX tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxU8 {
    /// Sizes, outermost first (MNIST images: [n, 28, 28]; labels: [n]).
    pub dims: Vec<usize>,
    /// Row-major values.
    pub data: Vec<u8>,
}

/// Parses an IDX file of unsigned bytes.
///
/// # Errors
/// Every malformed field, named (see the module docs).
pub fn read_idx_u8(bytes: &[u8]) -> Result<IdxU8> {
    ensure!(
        bytes.len() >= 4,
        "IDX: file has {} bytes, shorter than the 4-byte magic",
        bytes.len()
    );
    ensure!(
        bytes[0] == 0 && bytes[1] == 0,
        "IDX: bad magic {:02x}{:02x}{:02x}{:02x} (must start 00 00; a gzipped file starts 1f 8b: decompress it first)",
        bytes[0],
        bytes[1],
        bytes[2],
        bytes[3]
    );
    let (kind, ndims) = (bytes[2], bytes[3] as usize);
    if kind != 0x08 {
        let name = match kind {
            0x09 => "i8",
            0x0B => "i16",
            0x0C => "i32",
            0x0D => "f32",
            0x0E => "f64",
            _ => "unknown",
        };
        bail!("IDX: data type 0x{kind:02x} ({name}) is not supported; only 0x08 (u8) is");
    }
    ensure!(
        (1..=4).contains(&ndims),
        "IDX: {ndims} dimensions; expected 1 to 4"
    );
    let header = 4 + 4 * ndims;
    ensure!(
        bytes.len() >= header,
        "IDX: header truncated ({} bytes, {ndims} dimensions need {header})",
        bytes.len()
    );
    let dims: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let count = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .context("IDX: dimension product overflows")?;
    let have = bytes.len() - header;
    ensure!(
        have >= count,
        "IDX: data truncated: dimensions {dims:?} need {count} bytes, file has {have}"
    );
    ensure!(
        have == count,
        "IDX: {} trailing bytes after the {count} data bytes of {dims:?}",
        have - count
    );
    Ok(IdxU8 {
        dims,
        data: bytes[header..].to_vec(),
    })
}

/// Reads an MNIST-style image file and its label file: images `[n][h·w]` on [−1, 1]
/// (p/127.5 − 1), labels, and the side.
///
/// # Errors
/// I/O (naming the path), IDX errors, images not `[n, h, w]` square, labels not `[n]`,
/// counts that differ, labels above 9.
pub fn read_mnist(images: &Path, labels: &Path) -> Result<(Vec<f32>, Vec<u8>, usize)> {
    let read = |p: &Path| std::fs::read(p).with_context(|| format!("cannot read {}", p.display()));
    let im = read_idx_u8(&read(images)?).with_context(|| format!("in {}", images.display()))?;
    let lb = read_idx_u8(&read(labels)?).with_context(|| format!("in {}", labels.display()))?;
    ensure!(
        im.dims.len() == 3 && im.dims[1] == im.dims[2],
        "{}: images must be [n, side, side], found {:?}",
        images.display(),
        im.dims
    );
    ensure!(
        lb.dims.len() == 1,
        "{}: labels must be [n], found {:?}",
        labels.display(),
        lb.dims
    );
    ensure!(
        im.dims[0] == lb.dims[0],
        "{} images but {} labels",
        im.dims[0],
        lb.dims[0]
    );
    if let Some(bad) = lb.data.iter().find(|&&l| l > 9) {
        bail!("{}: label {bad} is not a digit", labels.display());
    }
    Ok((
        im.data
            .iter()
            .map(|&p| (f64::from(p) / 127.5 - 1.0) as f32)
            .collect(),
        lb.data,
        im.dims[1],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(kind: u8, dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut v = vec![0, 0, kind, dims.len() as u8];
        for d in dims {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn parses_a_small_file() {
        let data: Vec<u8> = (0..2 * 3 * 3).collect();
        let t = read_idx_u8(&idx(8, &[2, 3, 3], &data)).unwrap();
        assert_eq!(t.dims, vec![2, 3, 3]);
        assert_eq!(t.data, data);
    }

    #[test]
    fn every_defect_is_named() {
        let err = |b: &[u8]| read_idx_u8(b).unwrap_err().to_string();
        assert!(err(&[0, 0]).contains("shorter"));
        assert!(err(&[0x1f, 0x8b, 8, 0]).contains("gzipped"));
        assert!(err(&idx(0x0D, &[1], &[0, 0, 0, 0])).contains("f32"));
        assert!(err(&idx(8, &[], &[])).contains("0 dimensions"));
        assert!(err(&idx(8, &[2, 3], &[0; 6])[..9]).contains("header truncated"));
        assert!(err(&idx(8, &[2, 3], &[0; 5])).contains("data truncated"));
        assert!(err(&idx(8, &[2, 3], &[0; 7])).contains("trailing"));
        assert!(err(&idx(8, &[u32::MAX, u32::MAX, u32::MAX, u32::MAX], &[])).contains("overflow"));
    }

    #[test]
    fn reads_an_image_and_label_pair() {
        let dir = tempfile::tempdir().unwrap();
        let (ip, lp) = (dir.path().join("i"), dir.path().join("l"));
        std::fs::write(&ip, idx(8, &[2, 2, 2], &[0, 255, 0, 255, 128, 0, 0, 0])).unwrap();
        std::fs::write(&lp, idx(8, &[2], &[3, 9])).unwrap();
        let (images, labels, side) = read_mnist(&ip, &lp).unwrap();
        assert_eq!((side, labels), (2, vec![3, 9]));
        assert_eq!(images[..2], [-1.0, 1.0]);
        std::fs::write(&lp, idx(8, &[2], &[3, 10])).unwrap();
        assert!(
            read_mnist(&ip, &lp)
                .unwrap_err()
                .to_string()
                .contains("not a digit")
        );
        std::fs::write(&lp, idx(8, &[3], &[3, 1, 2])).unwrap();
        assert!(
            read_mnist(&ip, &lp)
                .unwrap_err()
                .to_string()
                .contains("2 images but 3 labels")
        );
        assert!(
            read_mnist(&dir.path().join("missing"), &lp)
                .unwrap_err()
                .to_string()
                .contains("cannot read")
        );
    }
}
