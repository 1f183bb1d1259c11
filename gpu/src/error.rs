//! The one error type of the GPU path.

use std::fmt;

/// Everything that can go wrong on the GPU path; every variant says what to check or try.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum GpuError {
    /// No adapter was found at all, or none matched `MIRAGE_GPU_ADAPTER`.
    NoAdapter {
        /// The `MIRAGE_GPU_ADAPTER` substring asked for, if any.
        requested: Option<String>,
        /// The adapters that were found (name, backend, driver).
        available: Vec<String>,
    },
    /// The adapter refused to create a device.
    RequestDevice(String),
    /// A buffer the model or batch needs is larger than the device allows.
    TooLarge {
        /// Which buffer.
        what: &'static str,
        /// Bytes needed.
        bytes: u64,
        /// The device's limit in bytes.
        limit: u64,
    },
    /// `sample` or a debug entry point was asked for zero samples.
    EmptyBatch,
    /// The sample indices `first .. first + n` do not fit the u32 noise counter.
    SampleIndexOverflow {
        /// First sample index.
        first: u32,
        /// Number of samples.
        n: usize,
    },
    /// A caller-supplied argument is wrong (named in the message).
    InvalidInput(&'static str),
    /// Core rejected the model, schedule or configuration.
    Core(mirage_core::Error),
    /// The device reported an error (validation, out of memory, lost device, map failure).
    Device(String),
    /// The GPU returned a non-finite value where none may be (e.g. a debug forward pass).
    NonFinite {
        /// What was read back.
        what: &'static str,
        /// The flat index of the first non-finite value.
        index: usize,
    },
}

impl fmt::Display for GpuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoAdapter {
                requested: Some(want),
                available,
            } => write!(
                f,
                "no GPU adapter matches MIRAGE_GPU_ADAPTER={want:?}; available: [{}] (unset the variable or pick one of these)",
                available.join("; ")
            ),
            Self::NoAdapter {
                requested: None, ..
            } => write!(
                f,
                "no GPU adapter found (install a Vulkan driver, e.g. mesa-vulkan-drivers for lavapipe, and libvulkan1)"
            ),
            Self::RequestDevice(msg) => {
                write!(f, "the GPU adapter refused to create a device: {msg}")
            }
            Self::TooLarge { what, bytes, limit } => write!(
                f,
                "{what} needs {bytes} bytes but the device allows at most {limit} per buffer (use a smaller model or a larger GPU)"
            ),
            Self::EmptyBatch => write!(f, "batch size 0: ask for at least one sample"),
            Self::SampleIndexOverflow { first, n } => write!(
                f,
                "sample indices {first} .. {first} + {n} exceed the u32 noise counter (use a smaller first index or batch)"
            ),
            Self::InvalidInput(msg) => write!(f, "invalid input: {msg}"),
            Self::Core(e) => write!(f, "{e}"),
            Self::Device(msg) => write!(f, "GPU device error: {msg}"),
            Self::NonFinite { what, index } => {
                write!(
                    f,
                    "the GPU returned a non-finite value in {what} at index {index}"
                )
            }
        }
    }
}

impl std::error::Error for GpuError {}

impl From<mirage_core::Error> for GpuError {
    fn from(e: mirage_core::Error) -> Self {
        Self::Core(e)
    }
}
