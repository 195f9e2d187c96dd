//! The one error type of the library. Every variant says what went wrong and what to do.

use std::fmt;

/// Result alias used across enma.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in enma. None of these are panics: user input (shapes, sizes,
/// files, a host's device) always ends up here.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No usable adapter was found.
    #[error(
        "no GPU adapter found{detail}.\n  To fix: install a GPU driver with Vulkan, Metal or DX12 support, \
         or the software Vulkan driver (Debian/Ubuntu: `apt-get install mesa-vulkan-drivers libvulkan1`). \
         `WGPU_BACKEND` (vulkan, metal, dx12, gl) and `WGPU_ADAPTER_NAME` narrow the choice."
    )]
    NoAdapter { detail: String },

    /// A device (ours or the host's) lacks features or limits enma needs.
    #[error("the GPU device `{adapter}` cannot run enma; missing: {}.\n  To fix: request these when creating the device (see `enma::gpu::required_features()` and `required_limits()`), or use another adapter", .missing.join(", "))]
    DeviceUnsupported { adapter: String, missing: Vec<String> },

    /// `request_device` failed.
    #[error("could not create a device on `{adapter}`: {message}")]
    RequestDevice { adapter: String, message: String },

    /// A buffer or binding larger than the device allows.
    #[error(
        "{what} needs {bytes} bytes but the device allows at most {limit} ({limit_name}).\n  To fix: use smaller shapes or batches, or a GPU with a larger `{limit_name}`"
    )]
    TooLarge { what: String, bytes: u64, limit: u64, limit_name: &'static str },

    /// Shapes that do not fit together.
    #[error("{op}: shape mismatch: {detail} (got {lhs} and {rhs})")]
    Shape { op: String, lhs: Shape, rhs: Shape, detail: String },

    /// A bad argument that is not a shape pair (axis out of range, wrong data length, ...).
    #[error("{op}: {message}")]
    Invalid { op: String, message: String },

    /// A data type the op or the device cannot handle.
    #[error("{op}: unsupported dtype {dtype}: {message}")]
    Dtype { op: String, dtype: String, message: String },

    /// A WGSL shader that does not parse or validate. `message` carries file:line:column.
    #[error("shader {file} failed to compile:\n{message}")]
    Shader { file: String, message: String },

    /// wgpu reported an error (validation, out of memory, internal) for an operation.
    #[error("GPU error during {context}: {message}")]
    Gpu { context: String, message: String },

    /// The device was lost (driver reset, GPU removed, out of memory on the device).
    #[error(
        "the GPU device was lost: {reason}.\n  To fix: create a new `Gpu`; work recorded on the lost device is gone"
    )]
    DeviceLost { reason: String },

    /// Reading a buffer back to the host failed.
    #[error("reading back from the GPU failed: {0}")]
    Readback(String),

    /// A loss, gradient norm or value that is NaN or infinite.
    #[error(
        "{what} is {value} at step {step}.\n  To fix: lower the learning rate, enable gradient clipping, or check the data for NaN/Inf"
    )]
    NonFinite { what: String, value: f32, step: u64 },

    /// File system errors, with the path.
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
}

impl Error {
    pub fn invalid(op: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid { op: op.into(), message: message.into() }
    }

    pub fn shape(op: impl Into<String>, lhs: &[usize], rhs: &[usize], detail: impl Into<String>) -> Self {
        Error::Shape { op: op.into(), lhs: Shape(lhs.to_vec()), rhs: Shape(rhs.to_vec()), detail: detail.into() }
    }
}

/// A shape printed as `[2, 3, 4]` inside error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape(pub Vec<usize>);

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}
