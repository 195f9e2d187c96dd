//! The runtime: the only module that talks to wgpu directly.

pub mod context;
pub mod encoder;
pub mod kernels;
pub mod pool;
pub mod tensor;
pub mod timing;
pub mod tune;

pub use context::{
    AdapterDesc, Gpu, GpuOptions, IMMEDIATE_BYTES, LimitsDesc, optional_features, required_features, required_limits,
};
pub use encoder::RuntimeStats;
pub use kernels::{ALL_SHADERS, Shader, capabilities_for, validate_wgsl};
pub use pool::PoolStats;
pub use tensor::{DType, Tensor};
pub use timing::{ProfileEntry, TimingMethod};
pub use tune::{TuneChoice, TuneSettings};

/// Workgroups for `n` threads in groups of `wg`, folded into two dimensions when one would
/// exceed `max_per_dim`. Kernels recover the linear id as
/// `(workgroup_id.y * num_workgroups.x + workgroup_id.x) * wg + local_index`.
pub fn grid_1d(n: u64, wg: u32, max_per_dim: u32) -> [u32; 3] {
    let groups = n.div_ceil(wg as u64).max(1);
    let x = groups.min(max_per_dim as u64);
    let y = groups.div_ceil(x);
    [x as u32, y as u32, 1]
}

impl Gpu {
    /// `grid_1d` with this device's workgroup-count limit.
    pub(crate) fn grid_1d(&self, n: u64, wg: u32) -> [u32; 3] {
        grid_1d(n, wg, self.inner.limits.max_compute_workgroups_per_dimension)
    }
}
