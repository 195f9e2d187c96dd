// Causal space-time convolution as an implicit GEMM in workgroup memory, the GPU-class kernel
// (no subgroups needed), launched by src/ops/conv_causal.rs next to conv_causal.wgsl and
// conv_causal_subgroup.wgsl. Separate file because its immediates are those of the subgroup
// kernel (the tap geometry of shaders/parts/conv_taps.wgsl, appended), not conv_causal.wgsl's.
//
// One entry, three products (geometry, tap order and weights as in conv_causal.wgsl; the
// gathered value A[m, (tap, c)] is channel c of the position that tap `tap` of result position
// m reads, zero where it reads padding):
//   forward      y[m, co] = Σ_(tap, ci) A[m, (tap, ci)]·w[(tap, ci), co]       (A gathers x)
//   DX           dx[m, ci] = Σ_(tap, co) A[m, (tap, co)]·w[(tap, ci), co]      (A gathers dy)
//   WGRAD        dw[(tap, ci), co] = Σ_m A[m, (tap, ci)]·dy[m, co] over the output positions
//                of a range of `split` per workgroup z (partial sums, added by the host in
//                a fixed order)
// A 16 × 16 workgroup computes a 64 × 64 block of the result, 4 × 4 per invocation, staging
// 8-deep slices of both operands in workgroup memory, double buffered: the next slices load
// into registers while the current ones are multiplied, one barrier per slice. Consecutive
// invocations stage consecutive gathered channels and consecutive weight columns, so a warp's
// loads coalesce. Any channel counts. On CPU adapters barriers are expensive: the subgroup
// kernel serves them.

override KT: u32 = 3u;
override KS: u32 = 3u;
override ST: u32 = 1u;
override SS: u32 = 1u;
override NS: u32 = 1u;
override CG: u32 = 1u;        // gathered channels per position
override DX: bool = false;
override WGRAD: bool = false;
override HAS_BIAS: bool = false;

// Params and the immediates `p`: shaders/parts/conv_taps.wgsl.

@group(0) @binding(0) var<storage, read> src: array<f32>;     // the gathered tensor
@group(0) @binding(1) var<storage, read> rhs: array<f32>;     // weights; dy [positions, C_out] for WGRAD
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

const TB: u32 = 64u;          // rows and columns of a block
const TK: u32 = 8u;           // depth of a slice
const HALF: u32 = 512u;       // TK · TB: one slice

var<workgroup> sm_l: array<f32, 1024>;   // two slices [TK][TB] of the left operand
var<workgroup> sm_r: array<f32, 1024>;   // two slices [TK][TB] of the right operand

// (tap, channel) pairs: the inner dimension (forward, DX) or the rows (WGRAD).
fn tap_rows() -> u32 {
    return KT * KS * ks1() * CG;
}

// A[m, kk], zero out of range.
fn gathered(m: u32, kk: u32) -> f32 {
    if (m >= p.m || kk >= tap_rows()) {
        return 0.0;
    }
    let tap = kk / CG;
    let s = tap_source(decompose(m), tap / (ks1() * KS), (tap / ks1()) % KS, tap % ks1());
    if (s < 0) {
        return 0.0;
    }
    return src[u32(s) * CG + kk % CG];
}

// Left operand at (row r, inner k).
fn left(r: u32, k: u32) -> f32 {
    if (WGRAD) {
        return gathered(k, r);
    }
    return gathered(r, k);
}

// Right operand at (inner k, column n).
fn right(k: u32, n: u32) -> f32 {
    if (n >= p.n) {
        return 0.0;
    }
    if (WGRAD) {
        return rhs[k * p.n + n];
    }
    if (k >= tap_rows()) {
        return 0.0;
    }
    if (DX) {
        // k = (tap, co), n = ci: w[(tap·C_in + ci), co] with CG = C_out
        return rhs[((k / CG) * p.n + n) * CG + k % CG];
    }
    return rhs[k * p.n + n];
}

// The values invocation t stages from the slice at inner offset k0 (< end): elements t and
// t + 256 of each slice; left slices [k][r] with k fastest, right slices [k][n] with n fastest.
struct Staged {
    l0: f32,
    l1: f32,
    r0: f32,
    r1: f32,
}

fn fetch(row0: u32, col0: u32, k0: u32, end: u32, t: u32) -> Staged {
    var v = Staged(0.0, 0.0, 0.0, 0.0);
    let ka = k0 + (t % TK);
    if (ka < end) {
        v.l0 = left(row0 + t / TK, ka);
        v.l1 = left(row0 + (t + 256u) / TK, ka);
    }
    let kb = k0 + t / TB;
    if (kb < end) {
        v.r0 = right(kb, col0 + t % TB);
    }
    if (kb + 4u < end) {
        v.r1 = right(kb + 4u, col0 + t % TB);
    }
    return v;
}

fn put(half: u32, t: u32, v: Staged) {
    let o = half * HALF;
    sm_l[o + (t % TK) * TB + t / TK] = v.l0;
    sm_l[o + (t % TK) * TB + (t + 256u) / TK] = v.l1;
    sm_r[o + t] = v.r0;
    sm_r[o + t + 256u] = v.r1;
}

@compute @workgroup_size(16, 16, 1)
fn conv_tiled(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
              @builtin(local_invocation_index) t: u32) {
    let row0 = wg.y * TB;
    let col0 = wg.x * TB;
    var k0 = 0u;
    var end = tap_rows();
    var rows = p.m;
    if (WGRAD) {
        k0 = wg.z * p.split;
        end = min(k0 + p.split, p.m);
        rows = tap_rows();
    }
    let slices = (end - min(k0, end) + TK - 1u) / TK;
    var acc: array<vec4<f32>, 4>;   // acc[i]: row lid.y·4 + i, columns lid.x·4 .. + 3
    put(0u, t, fetch(row0, col0, k0, end, t));
    workgroupBarrier();
    for (var s = 0u; s < slices; s++) {
        let o = (s & 1u) * HALF;
        // the next slices, in flight while this one is multiplied
        let more = s + 1u < slices;
        var v = Staged(0.0, 0.0, 0.0, 0.0);
        if (more) {
            v = fetch(row0, col0, k0 + (s + 1u) * TK, end, t);
        }
        for (var k = 0u; k < TK; k++) {
            let lb = o + k * TB + lid.y * 4u;
            let rb = o + k * TB + lid.x * 4u;
            let b = vec4<f32>(sm_r[rb], sm_r[rb + 1u], sm_r[rb + 2u], sm_r[rb + 3u]);
            acc[0] = fma(vec4<f32>(sm_l[lb]), b, acc[0]);
            acc[1] = fma(vec4<f32>(sm_l[lb + 1u]), b, acc[1]);
            acc[2] = fma(vec4<f32>(sm_l[lb + 2u]), b, acc[2]);
            acc[3] = fma(vec4<f32>(sm_l[lb + 3u]), b, acc[3]);
        }
        // the other half was last read in the previous step, which ended with a barrier
        if (more) {
            put(1u - (s & 1u), t, v);
        }
        workgroupBarrier();
    }
    let zbase = select(0u, wg.z * rows * p.n, WGRAD);
    for (var i = 0u; i < 4u; i++) {
        let r = row0 + lid.y * 4u + i;
        for (var j = 0u; j < 4u; j++) {
            let n = col0 + lid.x * 4u + j;
            if (r < rows && n < p.n) {
                var v = acc[i][j];
                if (HAS_BIAS) {
                    v += bias[n];
                }
                out[zbase + r * p.n + n] = v;
            }
        }
    }
}
