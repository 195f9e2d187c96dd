//! Random numbers: Philox 4x32-10 on the GPU (`shaders/random.wgsl`) and its CPU twin
//! [`Philox`], used for parameter initialisation and as the tests' reference.

use super::{Imm, launch};
use crate::error::{Error, Result};
use crate::gpu::kernels::RANDOM;
use crate::gpu::{DType, Gpu, Tensor};

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

/// One Philox 4x32-10 block: 4 random words for `counter` under `key`.
pub fn philox_block(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut c = counter;
    let mut k = key;
    for _ in 0..10 {
        let p0 = (M0 as u64) * (c[0] as u64);
        let p1 = (M1 as u64) * (c[2] as u64);
        c = [((p1 >> 32) as u32) ^ c[1] ^ k[0], p1 as u32, ((p0 >> 32) as u32) ^ c[3] ^ k[1], p0 as u32];
        k = [k[0].wrapping_add(W0), k[1].wrapping_add(W1)];
    }
    c
}

fn to_unit(x: u32) -> f32 {
    (x >> 8) as f32 * (1.0 / 16_777_216.0)
}

/// A sequential CPU stream over Philox blocks (counter = block index, `stream`).
pub struct Philox {
    key: [u32; 2],
    stream: u64,
    block: u32,
    buf: [u32; 4],
    pos: usize,
    spare: Option<f32>,
}

impl Philox {
    pub fn new(seed: u64, stream: u64) -> Philox {
        Philox { key: [seed as u32, (seed >> 32) as u32], stream, block: 0, buf: [0; 4], pos: 4, spare: None }
    }

    pub fn next_u32(&mut self) -> u32 {
        if self.pos == 4 {
            self.buf = philox_block([self.block, self.stream as u32, (self.stream >> 32) as u32, 0], self.key);
            self.block = self.block.wrapping_add(1);
            self.pos = 0;
        }
        self.pos += 1;
        self.buf[self.pos - 1]
    }

    /// Uniform in [0, 1) with 24 random bits.
    pub fn uniform(&mut self) -> f32 {
        to_unit(self.next_u32())
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f32 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        let u1 = ((self.next_u32() >> 8) + 1) as f64 / 16_777_216.0;
        let u2 = to_unit(self.next_u32()) as f64;
        let r = (-2.0 * u1.ln()).sqrt();
        let th = std::f64::consts::TAU * u2;
        self.spare = Some((r * th.sin()) as f32);
        (r * th.cos()) as f32
    }
}

fn draw(gpu: &Gpu, shape: &[usize], seed: u64, counter: u64, entry: &'static str) -> Result<Tensor> {
    let t = Tensor::empty(gpu, shape, DType::F32)?;
    let n = u32::try_from(t.numel()).map_err(|_| Error::invalid("random", format!("shape {shape:?} is too large")))?;
    let imm = Imm::default().u(n).u(seed as u32).u((seed >> 32) as u32).u(counter as u32).u((counter >> 32) as u32);
    launch(gpu, &RANDOM, entry, &[], &[(0, &t)], &imm, gpu.grid_1d(n.div_ceil(4) as u64, 256))?;
    Ok(t)
}

/// Uniform values in [0, 1). Element 4i + j is word j of Philox block (i, counter) under `seed`:
/// the same (seed, counter) gives the same numbers; use a new counter for every draw.
pub fn uniform(gpu: &Gpu, shape: &[usize], seed: u64, counter: u64) -> Result<Tensor> {
    draw(gpu, shape, seed, counter, "uniform")
}

/// Standard normal values (Box–Muller on the same blocks as [`uniform`]).
pub fn normal(gpu: &Gpu, shape: &[usize], seed: u64, counter: u64) -> Result<Tensor> {
    draw(gpu, shape, seed, counter, "normal")
}
