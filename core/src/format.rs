//! The `.mrg` model file, version 1: header, schedule tables, weights, CRC-32.
//!
//! One file carries everything a sampler needs on any target: the network's sizes and
//! parameters, the training schedule (its parameters and the f32 tables of the full T steps,
//! [`compute_tables`] with [`Spacing::Linspace`] and steps = T, so τ_i = i), what the network
//! predicts, and the Hal threshold τ calibrated on the host (papers.md §7 D5: "τ is a
//! constant calibrated on the host and shipped with the weights").
//!
//! A file may store only some of the 18 tables (the header's `tables` mask, a [`TableSet`]):
//! `mirage quantize --tables sampler` keeps the five that the paper's sampler reads
//! ([`crate::SamplerConfig::tables`]; Hal reads none), 20 KB instead of 72 KB at T = 1000,
//! which is what lets the int8 2D model fit a 128 KB flash. Mask 0 means all tables, so
//! files written before the mask existed read as before; the sampler refuses a
//! configuration that needs an absent table ([`Error::MissingTable`]).
//!
//! All integers and floats are little-endian; every section starts 4-byte aligned (the f64
//! β section 8-byte aligned). [`ModelFile::parse`] borrows the bytes (zero copy: the tables
//! and weights are `&[f32]` views into the buffer), validates every length, count, code and
//! float, and returns a distinct [`Error`] per corruption class; it never panics and never
//! reads out of bounds. [`write_model`] writes into a caller buffer of [`encoded_len`] bytes.
//!
//! # Layout (v1)
//!
//! | offset | size | field | value |
//! |---|---|---|---|
//! | 0 | 8 | magic | `89 4D 49 52 41 47 45 0A` (`\x89MIRAGE\n`, PNG-style: catches 7-bit and newline mangling) |
//! | 8 | 4 | version u32 | 1 ([`VERSION`]) |
//! | 12 | 4 | kind u32 | 1 = f32 residual MLP ([`ModelKind::MlpF32`]); 2 = q8 MLP ([`ModelKind::MlpQ8`]); 3 = q16 MLP ([`ModelKind::MlpQ16`]) |
//! | 16 | 4 | file_len u32 | total bytes including the CRC; must equal [`encoded_len`] of the header |
//! | 20 | 4 | dim u32 | data dimension D, 1 ..= [`MlpShape::MAX_DIM`] |
//! | 24 | 4 | width u32 | W, 1 ..= [`MlpShape::MAX_WIDTH`] |
//! | 28 | 4 | blocks u32 | tied residual blocks, 1 ..= [`MlpShape::MAX_BLOCKS`] |
//! | 32 | 4 | temb_dim u32 | E, even, 4 ..= [`MlpShape::MAX_WIDTH`] |
//! | 36 | 4 | train_steps u32 | T, 1 ..= [`MAX_TRAIN_STEPS`] |
//! | 40 | 4 | prediction u32 | 1 = ε, 2 = x0, 3 = v |
//! | 44 | 4 | beta_kind u32 | 1 = linear, 2 = scaled linear, 3 = cosine, 4 = custom list |
//! | 48 | 8 | beta_p0 f64 | linear/scaled: β start; cosine: max β; custom: 0 |
//! | 56 | 8 | beta_p1 f64 | linear/scaled: β end; otherwise 0 |
//! | 64 | 4 | hal_threshold f32 | τ; NaN = none calibrated; else finite ≥ 0 |
//! | 68 | 4 | hal_window u32 | the window K τ was calibrated for; 0 iff τ is NaN |
//! | 72 | 4 | tables u32 | which schedule tables are stored: 0 = all 18; otherwise bit k set stores [`Table::ALL`]`[k]` (bits 0..18 only, not all 18 set) |
//! | 76 | 52 | reserved | 13 u32 words, all 0 in v1 |
//! | 128 | 8·T | custom β (f64) | only if beta_kind = 4: β_0 … β_{T−1}, each in (0, 1) |
//! | ↑ | 4·n·T | schedule tables (f32) | the n stored tables of the [`compute_tables`] layout, table-major in table order, T entries each (n = 18 when `tables` is 0) |
//! | ↑ | kind-specific | weights | kind 1: P f32 in the [`MlpShape::tensors`] layout; kinds 2, 3: [`crate::quant::section`] |
//! | file_len − 4 | 4 | crc32 u32 | IEEE CRC-32 ([`crate::crc32`]) of bytes 0 .. file_len − 4 |
//!
//! Bytes after `file_len` are ignored (a flash region may be larger than the file).
//!
//! # Alignment
//! The buffer must start 4-byte aligned ([`Error::Misaligned`] otherwise); a file with a custom
//! β list must start 8-byte aligned, since that section is borrowed as `&[f64]`. Host code can
//! load into a `Vec<u64>` and view it as bytes.
//!
//! # Validation
//! Checked, in this order: magic ([`Error::BadMagic`]), version ([`Error::UnsupportedVersion`]),
//! kind ([`Error::UnknownKind`]), alignment ([`Error::Misaligned`]), header fields (sizes:
//! [`Error::BadDimension`]; codes, β parameters, τ, the table mask, reserved words:
//! [`Error::InvalidParameter`]), file_len against the header ([`Error::ShapeMismatch`]),
//! buffer length ([`Error::Truncated`]), CRC ([`Error::BadCrc`]), then the sections: every
//! float finite ([`Error::NonFiniteWeight`] naming the table or tensor), custom β in (0, 1),
//! ModelT = 0, 1, …, T−1 (when stored) and the other [`Schedule::from_table_subset`] checks.
//! Re-deriving the tables from the β parameters is left to the host (too costly on a
//! microcontroller).
//!
//! Extending: a new kind adds a [`ModelKind`] variant, its weight-section length in
//! [`ModelKind::weights_len`] and its parser in [`parse_weights`]; the rest is shared.

use crate::crc32::{Crc32, crc32};
use crate::error::Error;
use crate::mlp::{Mlp, MlpShape};
use crate::quant::{QuantKind, QuantMlp, section};
use crate::sampler::Prediction;
use crate::schedule::{BetaSchedule, Schedule, Spacing, Table, TableSet, compute_tables};

/// The first eight bytes of every `.mrg` file.
pub const MAGIC: [u8; 8] = *b"\x89MIRAGE\n";
/// The format version this build reads and writes.
pub const VERSION: u32 = 1;
/// Bytes in the fixed header.
pub const HEADER_LEN: usize = 128;
/// Largest accepted training-step count T (the tables then take 7.2 MB).
pub const MAX_TRAIN_STEPS: usize = 100_000;

const OFF_VERSION: usize = 8;
const OFF_KIND: usize = 12;
const OFF_FILE_LEN: usize = 16;
const OFF_DIM: usize = 20;
const OFF_WIDTH: usize = 24;
const OFF_BLOCKS: usize = 28;
const OFF_TEMB_DIM: usize = 32;
const OFF_TRAIN_STEPS: usize = 36;
const OFF_PREDICTION: usize = 40;
const OFF_BETA_KIND: usize = 44;
const OFF_BETA_P0: usize = 48;
const OFF_BETA_P1: usize = 56;
const OFF_HAL_THRESHOLD: usize = 64;
const OFF_HAL_WINDOW: usize = 68;
const OFF_TABLES: usize = 72;
const OFF_RESERVED: usize = 76;
const CRC_LEN: usize = 4;

/// What the weight section holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelKind {
    /// Kind 1: the tied residual MLP ([`Mlp`]) with f32 parameters.
    MlpF32,
    /// Kind 2: the MLP with i8 weights and i16 activations ([`QuantMlp`], [`QuantKind::Q8`]).
    MlpQ8,
    /// Kind 3: the MLP with i16 weights and i16 activations ([`QuantMlp`], [`QuantKind::Q16`]).
    MlpQ16,
}

impl ModelKind {
    /// The u32 stored in the header.
    pub const fn code(self) -> u32 {
        match self {
            Self::MlpF32 => 1,
            Self::MlpQ8 => 2,
            Self::MlpQ16 => 3,
        }
    }

    /// The kind stored as `code`.
    ///
    /// # Errors
    /// [`Error::UnknownKind`] for any code other than 1, 2, 3.
    pub const fn from_code(code: u32) -> Result<Self, Error> {
        match code {
            1 => Ok(Self::MlpF32),
            2 => Ok(Self::MlpQ8),
            3 => Ok(Self::MlpQ16),
            _ => Err(Error::UnknownKind),
        }
    }

    /// Bytes of the weight section for `shape` (shape already validated).
    pub fn weights_len(self, shape: &MlpShape) -> usize {
        match self {
            Self::MlpF32 => shape.param_count().saturating_mul(4),
            Self::MlpQ8 => section::section_len(shape, QuantKind::Q8),
            Self::MlpQ16 => section::section_len(shape, QuantKind::Q16),
        }
    }

    /// The fixed-point weight type of a quantised kind; `None` for f32.
    pub const fn quant_kind(self) -> Option<QuantKind> {
        match self {
            Self::MlpF32 => None,
            Self::MlpQ8 => Some(QuantKind::Q8),
            Self::MlpQ16 => Some(QuantKind::Q16),
        }
    }
}

/// The parsed weight section, one variant per [`ModelKind`].
// The fixed-point variant borrows ~30 slices; without alloc it cannot be boxed, and the value
// is built once per parse, so the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
#[non_exhaustive]
#[derive(Clone, Copy, Debug)]
pub enum ModelWeights<'a> {
    /// Kind 1: the f32 MLP, borrowing the file's bytes, with the header's prediction type.
    MlpF32(Mlp<'a>),
    /// Kinds 2 and 3: the fixed-point MLP, borrowing the file's bytes.
    MlpQuant(QuantMlp<'a>),
}

/// Everything in the header except the on-disk bookkeeping (magic, version, file_len, CRC).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ModelHeader<'a> {
    /// The weight format.
    pub kind: ModelKind,
    /// The network's sizes (D, W, blocks, E).
    pub shape: MlpShape,
    /// T, the number of training steps; the tables cover all of them.
    pub train_steps: usize,
    /// The training β schedule (a custom list is stored as its own f64 section).
    pub beta: BetaSchedule<'a>,
    /// What the network outputs.
    pub prediction: Prediction,
    /// The Hal threshold τ calibrated on the host (papers.md §7 D5); NaN = none.
    pub hal_threshold: f32,
    /// The window K that `hal_threshold` was calibrated for; 0 exactly when τ is NaN.
    pub hal_window: u32,
    /// The schedule tables the file stores ([`TableSet::ALL`] unless a writer keeps only
    /// what its sampler reads, e.g. [`crate::SamplerConfig::tables`]); never empty.
    pub tables: TableSet,
}

impl<'a> ModelHeader<'a> {
    /// An f32-MLP header with no Hal threshold calibrated yet.
    pub fn new(
        shape: MlpShape,
        train_steps: usize,
        beta: BetaSchedule<'a>,
        prediction: Prediction,
    ) -> Self {
        Self {
            kind: ModelKind::MlpF32,
            shape,
            train_steps,
            beta,
            prediction,
            hal_threshold: f32::NAN,
            hal_window: 0,
            tables: TableSet::ALL,
        }
    }

    /// The same header storing only the schedule tables of `tables`.
    pub fn with_tables(self, tables: TableSet) -> Self {
        Self { tables, ..self }
    }

    /// The same header carrying the calibrated threshold τ for window K = `window`.
    pub fn with_hal_threshold(self, threshold: f32, window: u32) -> Self {
        Self {
            hal_threshold: threshold,
            hal_window: window,
            ..self
        }
    }

    /// Checks every field: sizes, T, β parameters, τ and K.
    ///
    /// # Errors
    /// [`Error::BadDimension`] naming a size out of range (including T);
    /// [`Error::InvalidParameter`] / [`Error::LengthMismatch`] from
    /// [`BetaSchedule::validate`]; [`Error::InvalidParameter`] for a τ that is ±∞ or negative,
    /// a `hal_window` that is 0 with τ set (or non-zero without), or an empty table set.
    pub fn validate(&self) -> Result<(), Error> {
        self.shape.validate()?;
        if self.train_steps == 0 || self.train_steps > MAX_TRAIN_STEPS {
            return Err(Error::BadDimension("train_steps"));
        }
        self.beta.validate(self.train_steps)?;
        let tau = self.hal_threshold;
        if !(tau.is_nan() || (tau.is_finite() && tau >= 0.0)) {
            return Err(Error::InvalidParameter(
                "hal_threshold must be NaN (none) or finite and ≥ 0",
            ));
        }
        if tau.is_nan() != (self.hal_window == 0) {
            return Err(Error::InvalidParameter(
                "hal_window must be ≥ 1 exactly when hal_threshold is set",
            ));
        }
        if self.tables.is_empty() {
            return Err(Error::InvalidParameter(
                "tables: a file stores at least one schedule table",
            ));
        }
        Ok(())
    }

    /// The β schedule's code and its two stored parameters.
    fn beta_fields(&self) -> (u32, f64, f64) {
        match self.beta {
            BetaSchedule::Linear { start, end } => (1, start, end),
            BetaSchedule::ScaledLinear { start, end } => (2, start, end),
            BetaSchedule::Cosine { max_beta } => (3, max_beta, 0.0),
            BetaSchedule::Custom(_) => (4, 0.0, 0.0),
        }
    }
}

/// The byte ranges of a file's sections, from a validated header.
#[derive(Clone, Debug)]
struct Layout {
    betas: core::ops::Range<usize>,
    tables: core::ops::Range<usize>,
    weights: core::ops::Range<usize>,
    total: usize,
}

impl Layout {
    fn of(header: &ModelHeader) -> Result<Self, Error> {
        let t = header.train_steps;
        let beta_bytes = if matches!(header.beta, BetaSchedule::Custom(_)) {
            t.checked_mul(8)
        } else {
            Some(0)
        };
        let too_big = Error::BadDimension("file larger than 4 GiB");
        let beta_bytes = beta_bytes.ok_or(too_big)?;
        let table_bytes = header
            .tables
            .len()
            .checked_mul(t)
            .and_then(|n| n.checked_mul(4))
            .ok_or(too_big)?;
        let weight_bytes = header.kind.weights_len(&header.shape);
        let betas = HEADER_LEN..HEADER_LEN.checked_add(beta_bytes).ok_or(too_big)?;
        let tables = betas.end..betas.end.checked_add(table_bytes).ok_or(too_big)?;
        let weights = tables.end..tables.end.checked_add(weight_bytes).ok_or(too_big)?;
        let total = weights.end.checked_add(CRC_LEN).ok_or(too_big)?;
        if u32::try_from(total).is_err() {
            return Err(too_big);
        }
        Ok(Self {
            betas,
            tables,
            weights,
            total,
        })
    }
}

/// The size in bytes of the file [`write_model`] writes for `header`.
///
/// # Errors
/// As [`ModelHeader::validate`].
pub fn encoded_len(header: &ModelHeader) -> Result<usize, Error> {
    header.validate()?;
    Ok(Layout::of(header)?.total)
}

/// A parsed, validated model file borrowing its bytes.
#[derive(Clone, Copy, Debug)]
pub struct ModelFile<'a> {
    header: ModelHeader<'a>,
    schedule: Schedule<'a>,
    weights: ModelWeights<'a>,
    file_len: usize,
}

impl<'a> ModelFile<'a> {
    /// Parses and validates a `.mrg` file at the start of `bytes` (see the module docs for
    /// the layout and the order of the checks).
    ///
    /// # Errors
    /// One variant per corruption class: [`Error::BadMagic`], [`Error::UnsupportedVersion`],
    /// [`Error::UnknownKind`], [`Error::Misaligned`], [`Error::BadDimension`],
    /// [`Error::InvalidParameter`], [`Error::ShapeMismatch`], [`Error::Truncated`],
    /// [`Error::BadCrc`], [`Error::NonFiniteWeight`]; [`Error::Unsupported`] on a big-endian
    /// target.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, Error> {
        let Some(head) = bytes.first_chunk::<HEADER_LEN>() else {
            let shown = MAGIC.get(..bytes.len()).unwrap_or(&MAGIC);
            return Err(if bytes.get(..shown.len()) == Some(shown) {
                Error::Truncated
            } else {
                Error::BadMagic
            });
        };
        if head.first_chunk::<8>() != Some(&MAGIC) {
            return Err(Error::BadMagic);
        }
        if read_u32(head, OFF_VERSION) != VERSION {
            return Err(Error::UnsupportedVersion);
        }
        let kind = ModelKind::from_code(read_u32(head, OFF_KIND))?;
        if cfg!(target_endian = "big") {
            return Err(Error::Unsupported("model files on big-endian targets"));
        }
        if bytes.as_ptr().align_offset(4) != 0 {
            return Err(Error::Misaligned);
        }
        let header = decode_header(head, kind)?;
        let layout = Layout::of(&header)?;
        let file_len = read_u32(head, OFF_FILE_LEN) as usize;
        if file_len != layout.total {
            return Err(Error::ShapeMismatch("file_len vs the header's sizes"));
        }
        let file = bytes.get(..file_len).ok_or(Error::Truncated)?;
        let (body, stored_crc) = file.split_last_chunk::<CRC_LEN>().ok_or(Error::Truncated)?;
        if crc32(body) != u32::from_le_bytes(*stored_crc) {
            return Err(Error::BadCrc);
        }
        let header = attach_custom_betas(header, section(body, &layout.betas)?)?;
        let tables = cast_f32(section(body, &layout.tables)?)?;
        let schedule = validate_tables(tables, header.train_steps, header.tables)?;
        let weights = parse_weights(&header, section(body, &layout.weights)?)?;
        Ok(Self {
            header,
            schedule,
            weights,
            file_len,
        })
    }

    /// The header.
    pub fn header(&self) -> &ModelHeader<'a> {
        &self.header
    }

    /// The full training schedule (T steps, τ_i = i), borrowing the file's tables: all of
    /// them, or the subset `header().tables` names.
    pub fn schedule(&self) -> Schedule<'a> {
        self.schedule
    }

    /// The parsed weight section.
    pub fn weights(&self) -> ModelWeights<'a> {
        self.weights
    }

    /// The network of an f32-MLP file, with the header's prediction type.
    ///
    /// # Errors
    /// [`Error::Unsupported`] for a fixed-point kind (use [`ModelFile::quant_mlp`]).
    pub fn mlp(&self) -> Result<Mlp<'a>, Error> {
        match self.weights {
            ModelWeights::MlpF32(mlp) => Ok(mlp),
            ModelWeights::MlpQuant(_) => {
                Err(Error::Unsupported("fixed-point model: use quant_mlp()"))
            }
        }
    }

    /// The network of a q8/q16 file, with the header's prediction type.
    ///
    /// # Errors
    /// [`Error::Unsupported`] for an f32 file (use [`ModelFile::mlp`]).
    pub fn quant_mlp(&self) -> Result<QuantMlp<'a>, Error> {
        match self.weights {
            ModelWeights::MlpQuant(q) => Ok(q),
            ModelWeights::MlpF32(_) => Err(Error::Unsupported("f32 model: use mlp()")),
        }
    }

    /// The file's length in bytes (the header's file_len, including the CRC).
    pub fn file_len(&self) -> usize {
        self.file_len
    }
}

/// Writes `header`, the full-T `tables` ([`compute_tables`] with [`Spacing::Linspace`],
/// steps = T; only the tables of `header.tables`, table-major in table order, as
/// [`Schedule::data`] holds them) and the weights `params` as a `.mrg` file into `out[..n]`,
/// returning n = [`encoded_len`]`(header)`. Everything [`ModelFile::parse`] checks is
/// checked first, so a written file always parses.
///
/// # Errors
/// As [`ModelHeader::validate`]; [`Error::LengthMismatch`] if `tables` or `params` has the
/// wrong length; [`Error::NonFiniteWeight`] naming the table or tensor with a NaN or ±∞;
/// [`Error::InvalidParameter`] from the table checks; [`Error::BufferTooSmall`] if `out` is
/// shorter than n.
pub fn write_model(
    header: &ModelHeader,
    tables: &[f32],
    params: &[f32],
    out: &mut [u8],
) -> Result<usize, Error> {
    write_sections(header, tables, WeightsIn::F32(params), out)
}

/// As [`write_model`] for the fixed-point kinds (2 = q8, 3 = q16): `section` is the weight
/// section written by [`crate::quant::quantize_into`] (validated here, byte-wise).
///
/// # Errors
/// As [`write_model`]; [`Error::InvalidParameter`] if `header.kind` is not a fixed-point
/// kind; whatever [`section::validate`] rejects.
pub fn write_quant_model(
    header: &ModelHeader,
    tables: &[f32],
    section: &[u8],
    out: &mut [u8],
) -> Result<usize, Error> {
    write_sections(header, tables, WeightsIn::Bytes(section), out)
}

/// The weight section handed to [`write_sections`].
#[derive(Clone, Copy)]
enum WeightsIn<'a> {
    F32(&'a [f32]),
    Bytes(&'a [u8]),
}

fn write_sections(
    header: &ModelHeader,
    tables: &[f32],
    weights: WeightsIn<'_>,
    out: &mut [u8],
) -> Result<usize, Error> {
    header.validate()?;
    let layout = Layout::of(header)?;
    if Some(tables.len()) != header.tables.len().checked_mul(header.train_steps) {
        return Err(Error::LengthMismatch(
            "tables vs the header's table count · train_steps",
        ));
    }
    validate_tables(tables, header.train_steps, header.tables)?;
    match (header.kind.quant_kind(), weights) {
        (None, WeightsIn::F32(params)) => {
            if params.len() != header.shape.param_count() {
                return Err(Error::LengthMismatch("params vs the shape's param_count"));
            }
            Mlp::new(header.shape, params)?;
        }
        (Some(kind), WeightsIn::Bytes(bytes)) => section::validate(&header.shape, kind, bytes)?,
        (None, WeightsIn::Bytes(_)) => {
            return Err(Error::InvalidParameter(
                "write_quant_model needs a q8/q16 header kind",
            ));
        }
        (Some(_), WeightsIn::F32(_)) => {
            return Err(Error::InvalidParameter(
                "write_model writes f32 kinds; use write_quant_model for q8/q16",
            ));
        }
    }
    let file = out
        .get_mut(..layout.total)
        .ok_or(Error::BufferTooSmall("model file output (see encoded_len)"))?;
    let (body, crc_out) = file
        .split_last_chunk_mut::<CRC_LEN>()
        .ok_or(Error::BufferTooSmall("model file output (see encoded_len)"))?;
    let (head, sections) = body
        .split_first_chunk_mut::<HEADER_LEN>()
        .ok_or(Error::BufferTooSmall("model file output (see encoded_len)"))?;
    encode_header(header, layout.total, head);
    let custom: &[f64] = match header.beta {
        BetaSchedule::Custom(betas) => betas,
        _ => &[],
    };
    let (beta_out, rest) = sections
        .split_at_mut_checked(layout.betas.len())
        .ok_or(Error::BufferTooSmall("model file output (see encoded_len)"))?;
    for (dst, &beta) in beta_out.chunks_exact_mut(8).zip(custom) {
        dst.copy_from_slice(&beta.to_le_bytes());
    }
    let (table_out, weight_out) = rest
        .split_at_mut_checked(layout.tables.len())
        .ok_or(Error::BufferTooSmall("model file output (see encoded_len)"))?;
    write_f32s(table_out, tables);
    match weights {
        WeightsIn::F32(params) => write_f32s(weight_out, params),
        WeightsIn::Bytes(bytes) => weight_out.iter_mut().zip(bytes).for_each(|(o, &b)| *o = b),
    }
    let mut crc = Crc32::new();
    crc.update(head);
    crc.update(sections);
    crc_out.copy_from_slice(&crc.finish().to_le_bytes());
    Ok(layout.total)
}

/// Parses the weight section of `header.kind` (the one place a new kind plugs in).
///
/// # Errors
/// [`Error::Misaligned`] if the section cannot be viewed as its element type;
/// [`Error::ShapeMismatch`] / [`Error::NonFiniteWeight`] from the kind's constructor.
pub fn parse_weights<'a>(header: &ModelHeader, bytes: &'a [u8]) -> Result<ModelWeights<'a>, Error> {
    match header.kind {
        ModelKind::MlpF32 => {
            let params = cast_f32(bytes)?;
            let mlp = Mlp::new(header.shape, params)?.with_prediction(header.prediction);
            Ok(ModelWeights::MlpF32(mlp))
        }
        ModelKind::MlpQ8 | ModelKind::MlpQ16 => {
            let kind = header.kind.quant_kind().ok_or(Error::UnknownKind)?;
            let q = QuantMlp::new(header.shape, kind, header.prediction, bytes)?;
            Ok(ModelWeights::MlpQuant(q))
        }
    }
}

/// Checks the stored full-T tables of `set`: every entry finite (naming the table),
/// ModelT = 0, 1, …, T−1 if stored, and the remaining [`Schedule::from_table_subset`] checks.
fn validate_tables(
    tables: &[f32],
    train_steps: usize,
    set: TableSet,
) -> Result<Schedule<'_>, Error> {
    if Some(tables.len()) != set.len().checked_mul(train_steps) {
        return Err(Error::ShapeMismatch("schedule tables vs train_steps"));
    }
    let stored = Table::ALL.iter().filter(|&&which| set.contains(which));
    for (which, table) in stored.zip(tables.chunks_exact(train_steps)) {
        if !table.iter().all(|v| v.is_finite()) {
            return Err(Error::NonFiniteWeight(which.name()));
        }
    }
    let schedule = Schedule::from_table_subset(tables, train_steps, set)?;
    let model_t = schedule.table(Table::ModelT);
    if !model_t.iter().enumerate().all(|(i, &t)| t == i as f32) {
        return Err(Error::InvalidParameter(
            "ModelT table must be 0, 1, …, T−1 (full training schedule)",
        ));
    }
    Ok(schedule)
}

/// Decodes and validates the header fields (not file_len; custom β attached later).
fn decode_header(head: &[u8; HEADER_LEN], kind: ModelKind) -> Result<ModelHeader<'static>, Error> {
    let field = |offset, name| -> Result<usize, Error> {
        usize::try_from(read_u32(head, offset)).map_err(|_| Error::BadDimension(name))
    };
    let shape = MlpShape {
        dim: field(OFF_DIM, "dim")?,
        width: field(OFF_WIDTH, "width")?,
        blocks: field(OFF_BLOCKS, "blocks")?,
        temb_dim: field(OFF_TEMB_DIM, "temb_dim")?,
    };
    shape.validate()?;
    let train_steps = field(OFF_TRAIN_STEPS, "train_steps")?;
    if train_steps == 0 || train_steps > MAX_TRAIN_STEPS {
        return Err(Error::BadDimension("train_steps"));
    }
    let prediction = match read_u32(head, OFF_PREDICTION) {
        1 => Prediction::Epsilon,
        2 => Prediction::Sample,
        3 => Prediction::Velocity,
        _ => {
            return Err(Error::InvalidParameter(
                "prediction code must be 1 (ε), 2 (x0) or 3 (v)",
            ));
        }
    };
    let (p0, p1) = (read_f64(head, OFF_BETA_P0), read_f64(head, OFF_BETA_P1));
    let unused_zero = |p: f64| p.to_bits() == 0;
    let beta = match read_u32(head, OFF_BETA_KIND) {
        1 => BetaSchedule::Linear { start: p0, end: p1 },
        2 => BetaSchedule::ScaledLinear { start: p0, end: p1 },
        3 if unused_zero(p1) => BetaSchedule::Cosine { max_beta: p0 },
        // The list is attached (and validated) once the CRC has been checked.
        4 if unused_zero(p0) && unused_zero(p1) => BetaSchedule::Custom(&[]),
        3 | 4 => return Err(Error::InvalidParameter("unused beta parameters must be 0")),
        _ => {
            return Err(Error::InvalidParameter(
                "beta_kind must be 1 (linear), 2 (scaled), 3 (cosine) or 4 (custom)",
            ));
        }
    };
    let tables = match read_u32(head, OFF_TABLES) {
        0 => TableSet::ALL,
        bits if bits == TableSet::ALL.bits() => {
            return Err(Error::InvalidParameter(
                "tables mask: all 18 tables are written as 0",
            ));
        }
        bits => TableSet::from_bits(bits)?,
    };
    let reserved = head.get(OFF_RESERVED..).unwrap_or(&[]);
    if reserved.iter().any(|&b| b != 0) {
        return Err(Error::InvalidParameter(
            "reserved header words must be 0 in version 1",
        ));
    }
    let header = ModelHeader {
        kind,
        shape,
        train_steps,
        beta,
        prediction,
        hal_threshold: f32::from_bits(read_u32(head, OFF_HAL_THRESHOLD)),
        hal_window: read_u32(head, OFF_HAL_WINDOW),
        tables,
    };
    if !matches!(beta, BetaSchedule::Custom(_)) {
        header.validate()?;
    }
    Ok(header)
}

/// For a custom schedule, borrows the f64 β section into the header and validates it.
fn attach_custom_betas<'a>(
    header: ModelHeader<'a>,
    section: &'a [u8],
) -> Result<ModelHeader<'a>, Error> {
    if !matches!(header.beta, BetaSchedule::Custom(_)) {
        return Ok(header);
    }
    let betas: &'a [f64] = bytemuck::try_cast_slice(section).map_err(|_| Error::Misaligned)?;
    if !betas.iter().all(|b| b.is_finite()) {
        return Err(Error::NonFiniteWeight("custom betas"));
    }
    let header = ModelHeader {
        beta: BetaSchedule::Custom(betas),
        ..header
    };
    header.validate()?;
    Ok(header)
}

fn encode_header(header: &ModelHeader, file_len: usize, head: &mut [u8; HEADER_LEN]) {
    let (beta_kind, p0, p1) = header.beta_fields();
    head.fill(0);
    put(head, 0, &MAGIC);
    put(head, OFF_VERSION, &VERSION.to_le_bytes());
    put(head, OFF_KIND, &header.kind.code().to_le_bytes());
    // Every size below was validated to fit in u32 (Layout::of, MlpShape::validate).
    let as_u32 = |v: usize| u32::try_from(v).unwrap_or(u32::MAX).to_le_bytes();
    put(head, OFF_FILE_LEN, &as_u32(file_len));
    put(head, OFF_DIM, &as_u32(header.shape.dim));
    put(head, OFF_WIDTH, &as_u32(header.shape.width));
    put(head, OFF_BLOCKS, &as_u32(header.shape.blocks));
    put(head, OFF_TEMB_DIM, &as_u32(header.shape.temb_dim));
    put(head, OFF_TRAIN_STEPS, &as_u32(header.train_steps));
    let prediction: u32 = match header.prediction {
        Prediction::Epsilon => 1,
        Prediction::Sample => 2,
        Prediction::Velocity => 3,
    };
    put(head, OFF_PREDICTION, &prediction.to_le_bytes());
    put(head, OFF_BETA_KIND, &beta_kind.to_le_bytes());
    put(head, OFF_BETA_P0, &p0.to_le_bytes());
    put(head, OFF_BETA_P1, &p1.to_le_bytes());
    put(head, OFF_HAL_THRESHOLD, &header.hal_threshold.to_le_bytes());
    put(head, OFF_HAL_WINDOW, &header.hal_window.to_le_bytes());
    let tables = if header.tables == TableSet::ALL {
        0
    } else {
        header.tables.bits()
    };
    put(head, OFF_TABLES, &tables.to_le_bytes());
}

/// Copies `bytes` into `head` at `offset` (offsets are constants inside the header).
fn put(head: &mut [u8; HEADER_LEN], offset: usize, bytes: &[u8]) {
    if let Some(dst) = head.get_mut(offset..offset + bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

fn read_u32(head: &[u8; HEADER_LEN], offset: usize) -> u32 {
    head.get(offset..offset + 4)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}

fn read_f64(head: &[u8; HEADER_LEN], offset: usize) -> f64 {
    head.get(offset..offset + 8)
        .and_then(|s| s.try_into().ok())
        .map_or(f64::NAN, f64::from_le_bytes)
}

fn section<'a>(body: &'a [u8], range: &core::ops::Range<usize>) -> Result<&'a [u8], Error> {
    body.get(range.clone()).ok_or(Error::Truncated)
}

fn cast_f32(bytes: &[u8]) -> Result<&[f32], Error> {
    bytemuck::try_cast_slice(bytes).map_err(|_| Error::Misaligned)
}

fn write_f32s(out: &mut [u8], values: &[f32]) {
    for (dst, &v) in out.chunks_exact_mut(4).zip(values) {
        dst.copy_from_slice(&v.to_le_bytes());
    }
}

/// The full-T tables a model file stores: [`compute_tables`] with [`Spacing::Linspace`] and
/// steps = T (τ_i = i), into `out` (length [`crate::schedule::table_len`]`(train_steps)`).
///
/// # Errors
/// As [`compute_tables`].
pub fn full_tables(beta: &BetaSchedule, train_steps: usize, out: &mut [f32]) -> Result<(), Error> {
    compute_tables(beta, train_steps, &Spacing::Linspace, train_steps, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::denoiser::Denoiser;
    use crate::schedule::table_len;
    use std::vec;
    use std::vec::Vec;

    /// A byte buffer that starts 8-byte aligned (a `Vec<u8>` promises only 1).
    struct Aligned {
        words: Vec<u64>,
        len: usize,
    }

    impl Aligned {
        fn zeroed(len: usize) -> Self {
            Self {
                words: vec![0; len.div_ceil(8) + 1],
                len,
            }
        }
        fn from_bytes(bytes: &[u8]) -> Self {
            let mut a = Self::zeroed(bytes.len());
            a.bytes_mut().copy_from_slice(bytes);
            a
        }
        fn bytes(&self) -> &[u8] {
            &bytemuck::cast_slice::<u64, u8>(&self.words)[..self.len]
        }
        fn bytes_mut(&mut self) -> &mut [u8] {
            let len = self.len;
            &mut bytemuck::cast_slice_mut::<u64, u8>(&mut self.words)[..len]
        }
    }

    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            self.0 >> 11
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn symmetric(&mut self) -> f32 {
            (self.next() as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32
        }
    }

    const SMALL: MlpShape = MlpShape {
        dim: 2,
        width: 8,
        blocks: 2,
        temb_dim: 4,
    };

    struct Model {
        header: ModelHeader<'static>,
        tables: Vec<f32>,
        params: Vec<f32>,
    }

    fn model(shape: MlpShape, train_steps: usize, beta: BetaSchedule<'static>, seed: u64) -> Model {
        let mut rng = Lcg(seed);
        let mut tables = vec![0.0f32; table_len(train_steps)];
        full_tables(&beta, train_steps, &mut tables).unwrap();
        let params = (0..shape.param_count())
            .map(|_| 0.5 * rng.symmetric())
            .collect();
        Model {
            header: ModelHeader::new(shape, train_steps, beta, Prediction::Epsilon),
            tables,
            params,
        }
    }

    fn encode(m: &Model) -> Aligned {
        let n = encoded_len(&m.header).unwrap();
        let mut out = Aligned::zeroed(n);
        assert_eq!(
            write_model(&m.header, &m.tables, &m.params, out.bytes_mut()).unwrap(),
            n
        );
        out
    }

    fn fix_crc(bytes: &mut [u8]) {
        let n = bytes.len();
        let crc = crc32(&bytes[..n - 4]);
        bytes[n - 4..].copy_from_slice(&crc.to_le_bytes());
    }

    fn set_u32(bytes: &mut [u8], offset: usize, value: u32) {
        bytes[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
    }

    fn small() -> (Model, Aligned) {
        let m = model(SMALL, 20, BetaSchedule::PAPER, 1);
        let file = encode(&m);
        (m, file)
    }

    fn same_header(a: &ModelHeader, b: &ModelHeader) {
        assert_eq!(a.kind, b.kind);
        assert_eq!(a.shape, b.shape);
        assert_eq!(a.train_steps, b.train_steps);
        assert_eq!(a.beta, b.beta);
        assert_eq!(a.prediction, b.prediction);
        assert_eq!(a.hal_threshold.to_bits(), b.hal_threshold.to_bits());
        assert_eq!(a.hal_window, b.hal_window);
        assert_eq!(a.tables, b.tables);
    }

    #[test]
    fn round_trip_is_identical() {
        static CUSTOM: [f64; 30] = {
            let mut b = [0.0; 30];
            let mut i = 0;
            while i < 30 {
                b[i] = 0.001 + 0.01 * i as f64;
                i += 1;
            }
            b
        };
        let cases: [(BetaSchedule<'static>, Prediction, usize); 4] = [
            (BetaSchedule::PAPER, Prediction::Epsilon, 1000),
            (
                BetaSchedule::ScaledLinear {
                    start: 1e-4,
                    end: 0.02,
                },
                Prediction::Sample,
                40,
            ),
            (BetaSchedule::COSINE, Prediction::Velocity, 64),
            (BetaSchedule::Custom(&CUSTOM), Prediction::Epsilon, 30),
        ];
        for (k, (beta, prediction, train_steps)) in cases.into_iter().enumerate() {
            let mut m = model(MlpShape::PAPER_2D, train_steps, beta, k as u64);
            m.header.prediction = prediction;
            if k % 2 == 0 {
                m.header = m.header.with_hal_threshold(3.24e-3, 10);
            }
            let file = encode(&m);
            let parsed = ModelFile::parse(file.bytes()).unwrap();
            same_header(parsed.header(), &m.header);
            assert_eq!(parsed.file_len(), file.bytes().len());
            let tables = parsed.schedule().data();
            assert_eq!(tables.len(), m.tables.len());
            assert!(
                tables
                    .iter()
                    .zip(&m.tables)
                    .all(|(a, b)| a.to_bits() == b.to_bits())
            );
            assert_eq!(parsed.schedule().steps(), train_steps);
            let mlp = parsed.mlp().unwrap();
            assert!(
                mlp.params()
                    .iter()
                    .zip(&m.params)
                    .all(|(a, b)| a.to_bits() == b.to_bits())
            );
            assert_eq!(mlp.prediction(), prediction);
            assert!(matches!(parsed.weights(), ModelWeights::MlpF32(_)));
            // Zero copy: the views point into the file's bytes.
            let range = file.bytes().as_ptr_range();
            assert!(range.contains(&(mlp.params().as_ptr() as *const u8)));
            assert!(range.contains(&(tables.as_ptr() as *const u8)));
            // The parsed network computes exactly what the original does.
            let reference = Mlp::new(m.header.shape, &m.params).unwrap();
            let x = [0.3f32, -1.2, 2.0, 0.7];
            let mut scratch = vec![0.0f32; reference.scratch_len()];
            for t in [0u32, 9, 17] {
                let (mut a, mut b) = ([0.0f32; 4], [0.0f32; 4]);
                reference.predict(t, &x, &mut a, &mut scratch).unwrap();
                mlp.predict(t, &x, &mut b, &mut scratch).unwrap();
                assert_eq!(a.map(f32::to_bits), b.map(f32::to_bits));
                assert!(a.iter().all(|v| v.is_finite()));
            }
            // Bytes after file_len are ignored.
            let mut longer = Aligned::zeroed(file.bytes().len() + 12);
            longer.bytes_mut()[..file.bytes().len()].copy_from_slice(file.bytes());
            same_header(
                ModelFile::parse(longer.bytes()).unwrap().header(),
                &m.header,
            );
        }
    }

    /// The tables of `set` out of the full buffer `tables` (T entries each), in table order.
    fn subset_of(tables: &[f32], train_steps: usize, set: TableSet) -> Vec<f32> {
        Table::ALL
            .iter()
            .zip(tables.chunks_exact(train_steps))
            .filter(|(which, _)| set.contains(**which))
            .flat_map(|(_, table)| table.iter().copied())
            .collect()
    }

    /// `m` rewritten to store only the tables of `set`.
    fn with_subset(m: &Model, set: TableSet) -> Model {
        Model {
            header: m.header.with_tables(set),
            tables: subset_of(&m.tables, m.header.train_steps, set),
            params: m.params.clone(),
        }
    }

    /// The paper sampler's tables (five; τ_i = i is implied in a file).
    fn sampler_set() -> TableSet {
        crate::SamplerConfig::PAPER.tables()
    }

    #[test]
    fn table_subset_round_trips() {
        let full = model(MlpShape::PAPER_2D, 1000, BetaSchedule::PAPER, 3);
        let cases = [
            sampler_set(),
            sampler_set().with(Table::ModelT),
            TableSet::of(&[Table::OneMinusAlphaBarPrev]),
            TableSet::of(&[Table::ModelT]),
        ];
        for set in cases {
            let m = with_subset(&full, set);
            let file = encode(&m);
            // 128 header + 4·n·T tables + 4·P weights + 4 CRC.
            assert_eq!(
                file.bytes().len(),
                128 + 4 * set.len() * 1000 + 4 * m.params.len() + 4
            );
            assert_eq!(
                u32::from_le_bytes(file.bytes()[OFF_TABLES..][..4].try_into().unwrap()),
                set.bits()
            );
            let parsed = ModelFile::parse(file.bytes()).unwrap();
            same_header(parsed.header(), &m.header);
            let schedule = parsed.schedule();
            assert_eq!(schedule.tables(), set);
            for (k, which) in Table::ALL.into_iter().enumerate() {
                let want: &[f32] = if set.contains(which) {
                    &full.tables[k * 1000..][..1000]
                } else {
                    &[]
                };
                let got = schedule.table(which);
                assert_eq!(got.len(), want.len(), "{which:?}");
                assert!(
                    got.iter()
                        .zip(want)
                        .all(|(a, b)| a.to_bits() == b.to_bits())
                );
            }
            // τ_i = i whether or not ModelT is stored.
            for i in [0, 1, 500, 999] {
                assert_eq!(schedule.coefs(i).unwrap().model_t, i as u32);
            }
            // Re-encoding the parsed file gives the same bytes.
            let mut again = vec![0u8; file.bytes().len()];
            write_model(&m.header, schedule.data(), &m.params, &mut again).unwrap();
            assert_eq!(again, file.bytes());
        }
        // The full set is stored as mask 0, byte for byte the file written before the mask.
        let file = encode(&full);
        assert_eq!(&file.bytes()[OFF_TABLES..][..4], &[0; 4]);
        assert_eq!(
            ModelFile::parse(file.bytes()).unwrap().schedule().tables(),
            TableSet::ALL
        );
    }

    #[test]
    fn paper_sampler_subset_size() {
        let header = ModelHeader::new(
            MlpShape::PAPER_2D,
            1000,
            BetaSchedule::PAPER,
            Prediction::Epsilon,
        )
        .with_tables(sampler_set());
        assert_eq!(sampler_set().len(), 5);
        assert_eq!(encoded_len(&header).unwrap(), 128 + 20_000 + 268_296 + 4);
    }

    #[test]
    fn subset_and_full_files_sample_identical_trajectories() {
        use crate::detector::HalSingle;
        use crate::sampler::{Method, SamplerConfig, Variance};
        use crate::trajectory::{sample_trajectory, trajectory_scratch_len};
        let full = model(SMALL, 1000, BetaSchedule::PAPER, 9);
        let (full_file, subset_file) = (encode(&full), encode(&with_subset(&full, sampler_set())));
        let run = |bytes: &[u8], cfg: &SamplerConfig, sample: u32| {
            let file = ModelFile::parse(bytes).unwrap();
            let mlp = file.mlp().unwrap();
            let mut scratch = vec![0.0f32; trajectory_scratch_len(mlp.scratch_len(), 2)];
            let mut hal = HalSingle::<2>::new(10).unwrap();
            let (mut x, mut x0) = ([0.0f32; 2], [0.0f32; 2]);
            sample_trajectory(
                &mlp,
                &file.schedule(),
                cfg,
                42,
                sample,
                &mut x,
                &mut x0,
                &mut hal,
                &mut scratch,
            )?;
            let bits = |v: [f32; 2]| v.map(f32::to_bits);
            Ok::<_, Error>((bits(x), bits(x0), hal.score()?.to_bits()))
        };
        for sample in 0..4 {
            let a = run(full_file.bytes(), &SamplerConfig::PAPER, sample).unwrap();
            let b = run(subset_file.bytes(), &SamplerConfig::PAPER, sample).unwrap();
            assert_eq!(a, b, "sample {sample}");
        }
        // A sampler that reads a table the subset lacks is refused, naming the table.
        let small_variance = SamplerConfig {
            method: Method::Ddpm(Variance::FixedSmall),
            ..SamplerConfig::PAPER
        };
        assert!(run(full_file.bytes(), &small_variance, 0).is_ok());
        assert_eq!(
            run(subset_file.bytes(), &small_variance, 0),
            Err(Error::MissingTable(Table::SigmaSmall.name()))
        );
    }

    #[test]
    fn table_mask_corruption_is_rejected() {
        let (full, _) = small();
        let m = with_subset(&full, sampler_set());
        let file = encode(&m);
        // A mask naming other tables of the same count, without a matching CRC (bit 7,
        // InvSqrtAlphaBar, swapped for bit 6); one naming more tables fails on file_len first.
        let mut bad = Aligned::from_bytes(file.bytes());
        bad.bytes_mut()[OFF_TABLES] ^= 0xC0;
        assert_eq!(ModelFile::parse(bad.bytes()).unwrap_err(), Error::BadCrc);
        let mut bad = Aligned::from_bytes(file.bytes());
        bad.bytes_mut()[OFF_TABLES] ^= 0x04;
        assert!(matches!(
            ModelFile::parse(bad.bytes()).unwrap_err(),
            Error::ShapeMismatch(_)
        ));
        // With the CRC repaired: a mask of another size no longer fits file_len; unknown
        // table bits and the non-canonical all-tables mask are invalid.
        for (bits, shape) in [
            (sampler_set().with(Table::Beta).bits(), true),
            (TableSet::of(&[Table::EpsCoef]).bits(), true),
            (1 << 18, false),
            (0x8000_0000 | sampler_set().bits(), false),
            (TableSet::ALL.bits(), false),
        ] {
            let mut bad = Aligned::from_bytes(file.bytes());
            set_u32(bad.bytes_mut(), OFF_TABLES, bits);
            fix_crc(bad.bytes_mut());
            let err = ModelFile::parse(bad.bytes()).unwrap_err();
            if shape {
                assert!(matches!(err, Error::ShapeMismatch(_)), "{bits:#x}: {err:?}");
            } else {
                assert!(
                    matches!(err, Error::InvalidParameter(_)),
                    "{bits:#x}: {err:?}"
                );
            }
        }
        // A NaN in a stored table names that table.
        let mut bad = Aligned::from_bytes(file.bytes());
        let at = HEADER_LEN + 4 * (sampler_set().rank(Table::EpsCoef) * 20 + 3);
        bad.bytes_mut()[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
        fix_crc(bad.bytes_mut());
        assert_eq!(
            ModelFile::parse(bad.bytes()).unwrap_err(),
            Error::NonFiniteWeight(Table::EpsCoef.name())
        );
        // The writer: tables of the wrong count, and an empty set.
        let mut out = vec![0u8; file.bytes().len()];
        assert!(matches!(
            write_model(&m.header, &full.tables, &m.params, &mut out),
            Err(Error::LengthMismatch(_))
        ));
        let empty = m.header.with_tables(TableSet::EMPTY);
        assert!(matches!(
            encoded_len(&empty),
            Err(Error::InvalidParameter(_))
        ));
    }

    #[test]
    fn paper_model_size() {
        let header = ModelHeader::new(
            MlpShape::PAPER_2D,
            1000,
            BetaSchedule::PAPER,
            Prediction::Epsilon,
        );
        // 128 header + 18·1000·4 tables + 67,074·4 weights + 4 CRC.
        assert_eq!(encoded_len(&header).unwrap(), 128 + 72_000 + 268_296 + 4);
    }

    #[test]
    fn bad_magic() {
        let (_, mut file) = small();
        file.bytes_mut()[1] ^= 0x20;
        assert_eq!(ModelFile::parse(file.bytes()).unwrap_err(), Error::BadMagic);
        assert_eq!(
            ModelFile::parse(b"PK\x03\x04").unwrap_err(),
            Error::BadMagic
        );
    }

    #[test]
    fn unknown_version() {
        let (_, mut file) = small();
        set_u32(file.bytes_mut(), OFF_VERSION, 2);
        fix_crc(file.bytes_mut());
        assert_eq!(
            ModelFile::parse(file.bytes()).unwrap_err(),
            Error::UnsupportedVersion
        );
    }

    #[test]
    fn unknown_kind() {
        for kind in [0, 4, 99] {
            let (_, mut file) = small();
            set_u32(file.bytes_mut(), OFF_KIND, kind);
            fix_crc(file.bytes_mut());
            assert_eq!(
                ModelFile::parse(file.bytes()).unwrap_err(),
                Error::UnknownKind
            );
        }
    }

    #[test]
    fn wrong_crc() {
        let (m, mut file) = small();
        let n = file.bytes().len();
        // A byte inside the weights (the last tensor ends 4 bytes before the CRC).
        file.bytes_mut()[n - 4 - 4 * m.params.len() / 2] ^= 0x01;
        assert_eq!(ModelFile::parse(file.bytes()).unwrap_err(), Error::BadCrc);
        let (_, mut file) = small();
        file.bytes_mut()[n - 1] ^= 0x80;
        assert_eq!(ModelFile::parse(file.bytes()).unwrap_err(), Error::BadCrc);
    }

    #[test]
    fn truncation_and_every_prefix() {
        let (_, file) = small();
        let bytes = file.bytes();
        assert_eq!(
            ModelFile::parse(&bytes[..bytes.len() - 1]).unwrap_err(),
            Error::Truncated
        );
        for len in 0..bytes.len() {
            assert_eq!(
                ModelFile::parse(&bytes[..len]).unwrap_err(),
                Error::Truncated,
                "prefix {len}"
            );
        }
        assert!(ModelFile::parse(bytes).is_ok());
    }

    #[test]
    fn shape_mismatch() {
        // The header claims another width (a valid one), so the sections no longer fit.
        let (_, mut file) = small();
        set_u32(file.bytes_mut(), OFF_WIDTH, 16);
        fix_crc(file.bytes_mut());
        assert!(matches!(
            ModelFile::parse(file.bytes()).unwrap_err(),
            Error::ShapeMismatch(_)
        ));
        // So does a file_len that disagrees with the header.
        let (_, mut file) = small();
        let n = file.bytes().len() as u32;
        set_u32(file.bytes_mut(), OFF_FILE_LEN, n - 4);
        assert!(matches!(
            ModelFile::parse(file.bytes()).unwrap_err(),
            Error::ShapeMismatch(_)
        ));
    }

    #[test]
    fn nan_weight_with_valid_crc() {
        let (m, file) = small();
        for (k, spec) in m.header.shape.tensors().iter().enumerate() {
            let mut bad = Aligned::from_bytes(file.bytes());
            let n = bad.len;
            let weights_start = n - 4 - 4 * m.params.len();
            let index = spec.offset + (k % spec.elements());
            let at = weights_start + 4 * index;
            let value = if k % 2 == 0 {
                f32::NAN
            } else {
                f32::NEG_INFINITY
            };
            bad.bytes_mut()[at..at + 4].copy_from_slice(&value.to_le_bytes());
            fix_crc(bad.bytes_mut());
            assert_eq!(
                ModelFile::parse(bad.bytes()).unwrap_err(),
                Error::NonFiniteWeight(spec.name)
            );
        }
    }

    #[test]
    fn inf_in_tables_with_valid_crc() {
        let (m, file) = small();
        let t = m.header.train_steps;
        for which in [Table::Beta, Table::AlphaBar, Table::SigmaLarge] {
            let mut bad = Aligned::from_bytes(file.bytes());
            let at = HEADER_LEN + 4 * (which as usize * t + 3);
            bad.bytes_mut()[at..at + 4].copy_from_slice(&f32::INFINITY.to_le_bytes());
            fix_crc(bad.bytes_mut());
            assert_eq!(
                ModelFile::parse(bad.bytes()).unwrap_err(),
                Error::NonFiniteWeight(which.name())
            );
        }
        // A ModelT table that is not 0..T is refused as well.
        let mut bad = Aligned::from_bytes(file.bytes());
        bad.bytes_mut()[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&1.0f32.to_le_bytes());
        fix_crc(bad.bytes_mut());
        assert!(matches!(
            ModelFile::parse(bad.bytes()).unwrap_err(),
            Error::InvalidParameter(_)
        ));
    }

    #[test]
    fn oversized_dimensions_with_valid_crc() {
        for (offset, name, value) in [
            (OFF_WIDTH, "width", 1u32 << 30),
            (OFF_DIM, "dim", u32::MAX),
            (OFF_BLOCKS, "blocks", 0),
            (OFF_TEMB_DIM, "temb_dim", 1 << 20),
            (OFF_TRAIN_STEPS, "train_steps", 1 << 31),
            (OFF_TRAIN_STEPS, "train_steps", 0),
        ] {
            let (_, mut file) = small();
            set_u32(file.bytes_mut(), offset, value);
            fix_crc(file.bytes_mut());
            assert_eq!(
                ModelFile::parse(file.bytes()).unwrap_err(),
                Error::BadDimension(name)
            );
        }
    }

    #[test]
    fn bad_header_codes_with_valid_crc() {
        for (offset, value) in [
            (OFF_PREDICTION, 0u32),
            (OFF_PREDICTION, 4),
            (OFF_BETA_KIND, 9),
            (OFF_RESERVED + 8, 1),
            (OFF_HAL_WINDOW, 10), // a window without a threshold
            (OFF_HAL_THRESHOLD, f32::INFINITY.to_bits()),
            (OFF_BETA_P1 + 4, 0x7FF8_0000), // NaN β end
        ] {
            let (_, mut file) = small();
            set_u32(file.bytes_mut(), offset, value);
            fix_crc(file.bytes_mut());
            let err = ModelFile::parse(file.bytes()).unwrap_err();
            assert!(
                matches!(err, Error::InvalidParameter(_)),
                "offset {offset}: {err:?}"
            );
        }
    }

    #[test]
    fn misaligned_buffer() {
        let (_, file) = small();
        let bytes = file.bytes();
        let mut shifted = Aligned::zeroed(bytes.len() + 1);
        shifted.bytes_mut()[1..].copy_from_slice(bytes);
        assert_eq!(
            ModelFile::parse(&shifted.bytes()[1..]).unwrap_err(),
            Error::Misaligned
        );
        // A custom β list needs 8-byte alignment; 4 is not enough.
        let betas: &'static [f64] = std::vec![0.02; 16].leak();
        let m = model(SMALL, 16, BetaSchedule::Custom(betas), 5);
        let file = encode(&m);
        let mut shifted = Aligned::zeroed(file.bytes().len() + 4);
        shifted.bytes_mut()[4..].copy_from_slice(file.bytes());
        assert_eq!(
            ModelFile::parse(&shifted.bytes()[4..]).unwrap_err(),
            Error::Misaligned
        );
        assert!(ModelFile::parse(file.bytes()).is_ok());
    }

    #[test]
    fn no_panic_on_random_mutations() {
        let (_, file) = small();
        let mut rng = Lcg(2024);
        let n = file.bytes().len();
        let mut accepted_with_crc = 0;
        for trial in 0..4000 {
            let mut bad = Aligned::from_bytes(file.bytes());
            let flips = 1 + rng.below(4);
            // Half the trials aim at the header, where the parser branches most.
            let span = if trial % 2 == 0 { HEADER_LEN } else { n };
            for _ in 0..flips {
                let at = rng.below(span);
                bad.bytes_mut()[at] ^= 1 + rng.below(255) as u8;
            }
            assert!(
                ModelFile::parse(bad.bytes()).is_err(),
                "trial {trial}: corruption not detected"
            );
            // With the CRC repaired the deeper checks run; they may accept (a finite weight
            // changed into another) but never panic.
            fix_crc(bad.bytes_mut());
            if ModelFile::parse(bad.bytes()).is_ok() {
                accepted_with_crc += 1;
            }
            let cut = rng.below(n);
            let _ = ModelFile::parse(&bad.bytes()[..cut]);
        }
        assert!(accepted_with_crc < 4000);
    }

    #[test]
    fn writer_rejects_what_the_parser_would() {
        let (m, file) = small();
        let n = file.bytes().len();
        let mut out = vec![0u8; n];
        assert!(matches!(
            write_model(&m.header, &m.tables, &m.params, &mut out[..n - 1]),
            Err(Error::BufferTooSmall(_))
        ));
        assert!(matches!(
            write_model(&m.header, &m.tables[1..], &m.params, &mut out),
            Err(Error::LengthMismatch(_))
        ));
        assert!(matches!(
            write_model(&m.header, &m.tables, &m.params[1..], &mut out),
            Err(Error::LengthMismatch(_))
        ));
        let mut params = m.params.clone();
        params[3] = f32::NAN;
        assert_eq!(
            write_model(&m.header, &m.tables, &params, &mut out),
            Err(Error::NonFiniteWeight("t_proj.0.weight"))
        );
        let mut tables = m.tables.clone();
        tables[Table::EpsCoef as usize * 20 + 1] = f32::INFINITY;
        assert_eq!(
            write_model(&m.header, &tables, &m.params, &mut out),
            Err(Error::NonFiniteWeight(Table::EpsCoef.name()))
        );
        let header = ModelHeader {
            shape: MlpShape {
                width: 1 << 30,
                ..SMALL
            },
            ..m.header
        };
        assert_eq!(encoded_len(&header), Err(Error::BadDimension("width")));
        let header = m.header.with_hal_threshold(-1.0, 10);
        assert!(matches!(
            encoded_len(&header),
            Err(Error::InvalidParameter(_))
        ));
        let header = m.header.with_hal_threshold(1e-3, 0);
        assert!(matches!(
            encoded_len(&header),
            Err(Error::InvalidParameter(_))
        ));
        // The output is deterministic and what was written parses.
        let written = write_model(&m.header, &m.tables, &m.params, &mut out).unwrap();
        assert_eq!(&out[..written], file.bytes());
    }

    #[test]
    fn kind_codes_round_trip() {
        assert_eq!(
            ModelKind::from_code(ModelKind::MlpF32.code()),
            Ok(ModelKind::MlpF32)
        );
        assert_eq!(ModelKind::from_code(2), Ok(ModelKind::MlpQ8));
        assert_eq!(ModelKind::from_code(3), Ok(ModelKind::MlpQ16));
        assert_eq!(ModelKind::from_code(4), Err(Error::UnknownKind));
        assert_eq!(
            ModelKind::MlpF32.weights_len(&SMALL),
            4 * SMALL.param_count()
        );
    }
}
