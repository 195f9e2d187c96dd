//! `Tensor`: a pooled GPU buffer with a shape and a dtype.
//!
//! Tensors are row-major and contiguous. Clones and reshapes share the same storage; the buffer
//! returns to the pool when the last of them is dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use super::context::Gpu;
use super::pool::PooledBuffer;
use crate::error::{Error, Result};

/// Element type of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum DType {
    F32,
    /// Half precision storage; needs the adapter feature `SHADER_F16`.
    F16,
    /// Unsigned integers (indices, masks).
    U32,
}

impl DType {
    pub fn size(self) -> usize {
        match self {
            DType::F32 | DType::U32 => 4,
            DType::F16 => 2,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::U32 => "u32",
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The GPU memory behind one or more tensors.
pub(crate) struct Storage {
    pub(crate) gpu: Gpu,
    pub(crate) buf: Option<PooledBuffer>,
    /// Serial of the last submission that reads or writes this storage.
    pub(crate) last_use: AtomicU64,
}

impl Storage {
    pub(crate) fn buffer(&self) -> &wgpu::Buffer {
        // Only `Drop` takes the buffer out.
        &self.buf.as_ref().expect("storage buffer present until drop").buffer
    }

    pub(crate) fn mark_used(&self, serial: u64) {
        self.last_use.fetch_max(serial, Ordering::AcqRel);
    }

    fn capacity(&self) -> u64 {
        self.buf.as_ref().map(|b| b.size).unwrap_or(0)
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        if let Some(buf) = self.buf.take() {
            let completed = self.gpu.completed_serial();
            if let Ok(mut st) = self.gpu.inner.state.lock() {
                st.pool.release(buf, self.last_use.load(Ordering::Acquire), completed);
            }
        }
    }
}

/// A row-major tensor on the GPU.
#[derive(Clone)]
pub struct Tensor {
    pub(crate) storage: Arc<Storage>,
    /// Byte offset into the storage (a multiple of the device's storage offset alignment).
    pub(crate) offset: u64,
    shape: Vec<usize>,
    dtype: DType,
}

pub(crate) fn numel_of(shape: &[usize]) -> usize {
    shape.iter().product()
}

fn checked_bytes(shape: &[usize], dtype: DType, op: &str) -> Result<u64> {
    let mut n: u64 = 1;
    for &d in shape {
        n = n
            .checked_mul(d as u64)
            .ok_or_else(|| Error::invalid(op, format!("shape {shape:?} has more elements than fit in 64 bits")))?;
    }
    n.checked_mul(dtype.size() as u64).ok_or_else(|| Error::invalid(op, format!("shape {shape:?} is too large")))
}

impl Tensor {
    /// An uninitialised tensor (recycled memory may hold old values).
    pub fn empty(gpu: &Gpu, shape: &[usize], dtype: DType) -> Result<Tensor> {
        if dtype == DType::F16 && !gpu.has_f16() {
            return Err(Error::Dtype {
                op: "Tensor::empty".into(),
                dtype: "f16".into(),
                message: format!("the adapter `{}` has no SHADER_F16 feature; use f32", gpu.adapter().name),
            });
        }
        let bytes = checked_bytes(shape, dtype, "Tensor::empty")?;
        let what = format!("a {dtype} tensor of shape {shape:?}");
        let buf = gpu.acquire_buffer(bytes, &what)?;
        Ok(Tensor {
            storage: Arc::new(Storage { gpu: gpu.clone(), buf: Some(buf), last_use: AtomicU64::new(0) }),
            offset: 0,
            shape: shape.to_vec(),
            dtype,
        })
    }

    /// A tensor of zeros.
    pub fn zeros(gpu: &Gpu, shape: &[usize], dtype: DType) -> Result<Tensor> {
        let t = Tensor::empty(gpu, shape, dtype)?;
        crate::ops::fill::fill_bits(&t, 0)?;
        Ok(t)
    }

    /// Uploads `data` as an f32 tensor of `shape`.
    pub fn from_slice(gpu: &Gpu, data: &[f32], shape: &[usize]) -> Result<Tensor> {
        Self::upload(gpu, bytemuck::cast_slice(data), data.len(), shape, DType::F32)
    }

    /// Uploads `data` (converted to half precision) as an f16 tensor of `shape`.
    pub fn from_slice_f16(gpu: &Gpu, data: &[f32], shape: &[usize]) -> Result<Tensor> {
        let h: Vec<half::f16> = data.iter().map(|&x| half::f16::from_f32(x)).collect();
        Self::upload(gpu, bytemuck::cast_slice(&h), data.len(), shape, DType::F16)
    }

    /// Uploads `data` as a u32 tensor of `shape`.
    pub fn from_u32(gpu: &Gpu, data: &[u32], shape: &[usize]) -> Result<Tensor> {
        Self::upload(gpu, bytemuck::cast_slice(data), data.len(), shape, DType::U32)
    }

    fn upload(gpu: &Gpu, bytes: &[u8], len: usize, shape: &[usize], dtype: DType) -> Result<Tensor> {
        if numel_of(shape) != len {
            return Err(Error::invalid(
                "Tensor upload",
                format!("{len} values do not fill shape {shape:?} ({} elements)", numel_of(shape)),
            ));
        }
        let t = Tensor::empty(gpu, shape, dtype)?;
        t.write_bytes(bytes)?;
        Ok(t)
    }

    /// Overwrites the tensor with `data` (f32 tensors, or f16 tensors after conversion).
    pub fn write(&self, data: &[f32]) -> Result<()> {
        if data.len() != self.numel() {
            return Err(Error::invalid(
                "Tensor::write",
                format!("{} values for a tensor of shape {:?} ({} elements)", data.len(), self.shape, self.numel()),
            ));
        }
        match self.dtype {
            DType::F32 => self.write_bytes(bytemuck::cast_slice(data)),
            DType::F16 => {
                let h: Vec<half::f16> = data.iter().map(|&x| half::f16::from_f32(x)).collect();
                self.write_bytes(bytemuck::cast_slice(&h))
            }
            DType::U32 => Err(self.dtype_error("Tensor::write", "write u32 tensors with write_u32")),
        }
    }

    /// Overwrites a u32 tensor.
    pub fn write_u32(&self, data: &[u32]) -> Result<()> {
        if self.dtype != DType::U32 {
            return Err(self.dtype_error("Tensor::write_u32", "the tensor is not u32"));
        }
        if data.len() != self.numel() {
            return Err(Error::invalid(
                "Tensor::write_u32",
                format!("{} values for shape {:?}", data.len(), self.shape),
            ));
        }
        self.write_bytes(bytemuck::cast_slice(data))
    }

    fn write_bytes(&self, bytes: &[u8]) -> Result<()> {
        self.storage.gpu.write_storage(&self.storage, self.offset, bytes)
    }

    /// Downloads the tensor as f32 values (f16 is widened). Waits for pending work.
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        let bytes = self.storage.gpu.read_storage(&self.storage, self.offset, self.bytes())?;
        match self.dtype {
            DType::F32 => Ok(bytemuck::pod_collect_to_vec(&bytes[..self.numel() * 4])),
            DType::F16 => {
                let h: Vec<half::f16> = bytemuck::pod_collect_to_vec(&bytes[..self.numel() * 2]);
                Ok(h.into_iter().map(f32::from).collect())
            }
            DType::U32 => Err(self.dtype_error("Tensor::to_vec", "download u32 tensors with to_vec_u32")),
        }
    }

    /// Downloads a u32 tensor.
    pub fn to_vec_u32(&self) -> Result<Vec<u32>> {
        if self.dtype != DType::U32 {
            return Err(self.dtype_error("Tensor::to_vec_u32", "the tensor is not u32"));
        }
        let bytes = self.storage.gpu.read_storage(&self.storage, self.offset, self.bytes())?;
        Ok(bytemuck::pod_collect_to_vec(&bytes[..self.numel() * 4]))
    }

    /// The same data with another shape of the same number of elements (no copy).
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        if numel_of(shape) != self.numel() {
            return Err(Error::shape("reshape", &self.shape, shape, "element counts differ"));
        }
        Ok(Tensor { storage: self.storage.clone(), offset: self.offset, shape: shape.to_vec(), dtype: self.dtype })
    }

    /// A tensor of `shape` over the same storage, starting `elem_offset` elements after this
    /// one's start. The byte offset must meet the device's storage-offset alignment.
    pub(crate) fn view(&self, elem_offset: usize, shape: &[usize]) -> Result<Tensor> {
        let offset = self.offset + (elem_offset * self.dtype.size()) as u64;
        let align = self.storage.gpu.inner.limits.min_storage_buffer_offset_alignment as u64;
        let end = offset + checked_bytes(shape, self.dtype, "view")?;
        if !offset.is_multiple_of(align) || end > self.storage.capacity() {
            return Err(Error::invalid(
                "view",
                format!(
                    "a view at byte {offset} of shape {shape:?} is misaligned (alignment {align}) or out of bounds"
                ),
            ));
        }
        Ok(Tensor { storage: self.storage.clone(), offset, shape: shape.to_vec(), dtype: self.dtype })
    }

    /// Bytes to bind: the data rounded up to 16 (kernels may read vec4), within the buffer.
    pub(crate) fn binding_size(&self) -> u64 {
        let room = self.storage.capacity() - self.offset;
        self.bytes().max(16).div_ceil(16).saturating_mul(16).min(room)
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn numel(&self) -> usize {
        numel_of(&self.shape)
    }

    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// Bytes of data (not counting the pool's rounding).
    pub fn bytes(&self) -> u64 {
        (self.numel() * self.dtype.size()) as u64
    }

    /// The wgpu buffer holding this tensor, with the byte offset and byte size of its values,
    /// for a host's own passes (embedding: bind it as a storage buffer range).
    ///
    /// Call [`Gpu::flush`] first so that enma's recorded work writing the tensor is submitted
    /// before yours (one queue runs submissions in order), and keep the tensor alive until your
    /// work has finished: when the last handle is dropped its memory returns to enma's pool.
    pub fn raw_buffer(&self) -> (&wgpu::Buffer, u64, u64) {
        (self.storage.buffer(), self.offset, self.bytes())
    }

    pub fn gpu(&self) -> &Gpu {
        &self.storage.gpu
    }

    /// Whether two tensors share storage (views of one buffer included).
    pub fn same_storage(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.storage, &other.storage)
    }

    /// Fails unless the tensor has dtype `want`.
    pub fn expect_dtype(&self, op: &str, want: DType) -> Result<()> {
        if self.dtype != want {
            return Err(self.dtype_error(op, &format!("expected {want}")));
        }
        Ok(())
    }

    fn dtype_error(&self, op: &str, message: &str) -> Error {
        Error::Dtype { op: op.to_string(), dtype: self.dtype.to_string(), message: message.to_string() }
    }
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor({:?}, {})", self.shape, self.dtype)
    }
}
