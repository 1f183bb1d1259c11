//! The one error type of mirage-core: small, `Copy`, with `Display`.

use core::fmt;

/// Everything that can go wrong in mirage-core.
///
/// Variants that carry a `&'static str` name the parameter, tensor or section at fault.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Two slices that must have matching lengths do not (the name says which).
    LengthMismatch(&'static str),
    /// A caller buffer (output or scratch) is too small.
    BufferTooSmall(&'static str),
    /// A configuration value is out of its documented range (the name says which).
    InvalidParameter(&'static str),
    /// A step or timestep index outside the schedule.
    StepOutOfRange,
    /// A non-finite value where a finite one is required (the name says where).
    NonFinite(&'static str),
    /// A dimension, width or count above a compile-time capacity.
    CapacityExceeded(&'static str),
    /// The operation is not offered by this denoiser or detector.
    Unsupported(&'static str),
    /// Model file: fewer bytes than the header or a section needs.
    Truncated,
    /// Model file: the first bytes are not the `.mrg` magic.
    BadMagic,
    /// Model file: a format version this build does not read.
    UnsupportedVersion,
    /// Model file: a model kind this build does not read.
    UnknownKind,
    /// Model file: the CRC-32 does not match the contents.
    BadCrc,
    /// Model file: a section is not 4-byte aligned in memory or in the file.
    Misaligned,
    /// A tensor, table or parameter slice has the wrong shape for its network shape or model
    /// header (the name says which).
    ShapeMismatch(&'static str),
    /// Model file: a weight or table entry is NaN or infinite (the name says which tensor).
    NonFiniteWeight(&'static str),
    /// A dimension of a network shape or model header is zero or absurdly large (the name says
    /// which).
    BadDimension(&'static str),
    /// A schedule table the operation reads is not in the schedule (the model file stores a
    /// subset of the tables; the name says which).
    MissingTable(&'static str),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LengthMismatch(what) => write!(f, "length mismatch: {what}"),
            Self::BufferTooSmall(what) => write!(f, "buffer too small: {what}"),
            Self::InvalidParameter(what) => write!(f, "invalid parameter: {what}"),
            Self::StepOutOfRange => f.write_str("step index outside the schedule"),
            Self::NonFinite(what) => write!(f, "non-finite value in {what}"),
            Self::CapacityExceeded(what) => write!(f, "capacity exceeded: {what}"),
            Self::Unsupported(what) => write!(f, "unsupported: {what}"),
            Self::Truncated => f.write_str("model file truncated"),
            Self::BadMagic => f.write_str("not a mirage model file (bad magic)"),
            Self::UnsupportedVersion => f.write_str("unsupported model file version"),
            Self::UnknownKind => f.write_str("unknown model kind in model file"),
            Self::BadCrc => f.write_str("model file CRC-32 mismatch (corrupt file)"),
            Self::Misaligned => f.write_str("model file data not 4-byte aligned"),
            Self::ShapeMismatch(what) => write!(f, "shape mismatch: {what}"),
            Self::NonFiniteWeight(what) => write!(f, "NaN or infinite weight in tensor {what}"),
            Self::BadDimension(what) => write!(f, "zero or oversized dimension: {what}"),
            Self::MissingTable(what) => write!(
                f,
                "{what} is needed but absent (the model file stores a subset of the tables)"
            ),
        }
    }
}

impl core::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_problem() {
        let cases: &[(Error, &str)] = &[
            (Error::BadCrc, "CRC-32"),
            (Error::NonFiniteWeight("in_fc.weight"), "in_fc.weight"),
            (Error::InvalidParameter("eta"), "eta"),
            (Error::BadDimension("width"), "width"),
            (Error::MissingTable("schedule table EpsCoef"), "EpsCoef"),
        ];
        for (err, needle) in cases {
            let text = std::format!("{err}");
            assert!(text.contains(needle), "{text:?} lacks {needle:?}");
        }
    }

    #[test]
    fn shape_errors_do_not_assume_a_model_file() {
        // MlpShape::validate and Mlp::new also judge CLI flags (`mirage train --width 0`);
        // model-file context is added where a file is read.
        for err in [Error::BadDimension("width"), Error::ShapeMismatch("params")] {
            let text = std::format!("{err}");
            assert!(!text.contains("model file"), "{text:?}");
        }
    }
}
