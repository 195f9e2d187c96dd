// Batched matrix multiply C[b] = op(A[b]) · op(B[b]) (+ bias), op = optional transpose.
//
// Register-blocked: every invocation computes a TM × TN block of C (TN a multiple of 4) from
// fragments of 4 k-values, read as vec4 wherever the layout allows (VEC_A / VEC_B, chosen by
// the host from the shapes), otherwise as bounds-checked scalars. No workgroup memory: on
// lavapipe barriers cost more than they save, and the tile sizes are `override` constants so
// each adapter gets its own variant (see `MatmulTiles` in src/ops/matmul.rs).
//
// A is [M, K] (or [K, M] with TRANS_A), B is [K, N] (or [N, K] with TRANS_B), C is [M, N],
// all row-major; `sa`, `sb`, `sc` are the element strides between batches (0 broadcasts).

override TM: u32 = 8u;        // rows per invocation: 4 or 8
override TN: u32 = 8u;        // columns per invocation: 4 or 8
override WG_X: u32 = 8u;      // invocations along N
override WG_Y: u32 = 8u;      // invocations along M
override TRANS_A: bool = false;
override TRANS_B: bool = false;
override VEC_A: bool = false; // K % 4 == 0 and (TRANS_A implies M % 4 == 0)
override VEC_B: bool = false; // K % 4 == 0 and (!TRANS_B implies N % 4 == 0)
override HAS_BIAS: bool = false;

struct Params {
    M: u32,
    N: u32,
    K: u32,
    pad0: u32,
    sa: u32,
    sb: u32,
    sc: u32,
    pad1: u32,
}
var<immediate> p: Params;

@group(0) @binding(0) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bias: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> c: array<vec4<f32>>;

fn a_at(base: u32, r: u32, k: u32) -> f32 {
    if (r >= p.M || k >= p.K) {
        return 0.0;
    }
    var i: u32;
    if (TRANS_A) {
        i = base + k * p.M + r;
    } else {
        i = base + r * p.K + k;
    }
    return a[i >> 2u][i & 3u];
}

fn b_at(base: u32, k: u32, n: u32) -> f32 {
    if (k >= p.K || n >= p.N) {
        return 0.0;
    }
    var i: u32;
    if (TRANS_B) {
        i = base + n * p.K + k;
    } else {
        i = base + k * p.N + n;
    }
    return b[i >> 2u][i & 3u];
}

fn bias_at(n: u32) -> f32 {
    if (n >= p.N) {
        return 0.0;
    }
    return bias[n >> 2u][n & 3u];
}

// Four rows of four values: a 4 × 4 block of A (rows r..r+3, k..k+3) or of B (k-rows, 4 columns).
struct Quad {
    r0: vec4<f32>,
    r1: vec4<f32>,
    r2: vec4<f32>,
    r3: vec4<f32>,
}

fn transpose4(v0: vec4<f32>, v1: vec4<f32>, v2: vec4<f32>, v3: vec4<f32>) -> Quad {
    return Quad(vec4<f32>(v0.x, v1.x, v2.x, v3.x), vec4<f32>(v0.y, v1.y, v2.y, v3.y),
                vec4<f32>(v0.z, v1.z, v2.z, v3.z), vec4<f32>(v0.w, v1.w, v2.w, v3.w));
}

// A[r .. r+4, k .. k+4] (rows beyond M read clamped or zero rows; their results are dropped).
fn load_a(abase: u32, r: u32, k: u32) -> Quad {
    if (VEC_A && !TRANS_A) {
        return Quad(a[(abase + min(r, p.M - 1u) * p.K + k) / 4u],
                    a[(abase + min(r + 1u, p.M - 1u) * p.K + k) / 4u],
                    a[(abase + min(r + 2u, p.M - 1u) * p.K + k) / 4u],
                    a[(abase + min(r + 3u, p.M - 1u) * p.K + k) / 4u]);
    }
    if (VEC_A && TRANS_A) {
        // A is stored [K, M] with M % 4 == 0: each k-row holds the 4 rows contiguously.
        let rr = min(r, p.M - 4u);
        return transpose4(a[(abase + k * p.M + rr) / 4u], a[(abase + (k + 1u) * p.M + rr) / 4u],
                          a[(abase + (k + 2u) * p.M + rr) / 4u], a[(abase + (k + 3u) * p.M + rr) / 4u]);
    }
    var q: array<vec4<f32>, 4>;
    for (var i = 0u; i < 4u; i++) {
        q[i] = vec4<f32>(a_at(abase, r + i, k), a_at(abase, r + i, k + 1u), a_at(abase, r + i, k + 2u),
                         a_at(abase, r + i, k + 3u));
    }
    return Quad(q[0], q[1], q[2], q[3]);
}

// B[k .. k+4, n .. n+4]: row kk of the quad is k-row k + kk.
fn load_b(bbase: u32, k: u32, n: u32) -> Quad {
    if (VEC_B && !TRANS_B) {
        let nn = min(n, p.N - 4u);
        return Quad(b[(bbase + k * p.N + nn) / 4u], b[(bbase + (k + 1u) * p.N + nn) / 4u],
                    b[(bbase + (k + 2u) * p.N + nn) / 4u], b[(bbase + (k + 3u) * p.N + nn) / 4u]);
    }
    if (VEC_B && TRANS_B) {
        // B is stored [N, K] with K % 4 == 0: each column holds its 4 k-values contiguously.
        return transpose4(b[(bbase + min(n, p.N - 1u) * p.K + k) / 4u],
                          b[(bbase + min(n + 1u, p.N - 1u) * p.K + k) / 4u],
                          b[(bbase + min(n + 2u, p.N - 1u) * p.K + k) / 4u],
                          b[(bbase + min(n + 3u, p.N - 1u) * p.K + k) / 4u]);
    }
    var q: array<vec4<f32>, 4>;
    for (var kk = 0u; kk < 4u; kk++) {
        q[kk] = vec4<f32>(b_at(bbase, k + kk, n), b_at(bbase, k + kk, n + 1u), b_at(bbase, k + kk, n + 2u),
                          b_at(bbase, k + kk, n + 3u));
    }
    return Quad(q[0], q[1], q[2], q[3]);
}

// acc + a.x·b.r0 + a.y·b.r1 + a.z·b.r2 + a.w·b.r3: one row of A times a 4 × 4 block of B.
fn mm_row(av: vec4<f32>, bq: Quad, acc: vec4<f32>) -> vec4<f32> {
    return fma(vec4<f32>(av.x), bq.r0, fma(vec4<f32>(av.y), bq.r1, fma(vec4<f32>(av.z), bq.r2,
           fma(vec4<f32>(av.w), bq.r3, acc))));
}

@compute @workgroup_size(WG_X, WG_Y, 1)
fn matmul(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r0 = (wg.y * WG_Y + lid.y) * TM;
    let c0 = (wg.x * WG_X + lid.x) * TN;
    let abase = wg.z * p.sa;
    let bbase = wg.z * p.sb;
    let cbase = wg.z * p.sc;
    let TN4 = TN / 4u;

    // acc[row * 2 + j]: rows r0 .. r0 + TM, column quads j < TN4.
    var acc: array<vec4<f32>, 16>;
    let nk4 = (p.K + 3u) / 4u;
    for (var kq = 0u; kq < nk4; kq++) {
        let k = kq * 4u;
        let b0 = load_b(bbase, k, c0);
        var b1 = b0;
        if (TN4 == 2u) {
            b1 = load_b(bbase, k, c0 + 4u);
        }
        for (var q = 0u; q < TM / 4u; q++) {
            let aq = load_a(abase, r0 + 4u * q, k);
            let o = 8u * q;
            acc[o] = mm_row(aq.r0, b0, acc[o]);
            acc[o + 2u] = mm_row(aq.r1, b0, acc[o + 2u]);
            acc[o + 4u] = mm_row(aq.r2, b0, acc[o + 4u]);
            acc[o + 6u] = mm_row(aq.r3, b0, acc[o + 6u]);
            if (TN4 == 2u) {
                acc[o + 1u] = mm_row(aq.r0, b1, acc[o + 1u]);
                acc[o + 3u] = mm_row(aq.r1, b1, acc[o + 3u]);
                acc[o + 5u] = mm_row(aq.r2, b1, acc[o + 5u]);
                acc[o + 7u] = mm_row(aq.r3, b1, acc[o + 7u]);
            }
        }
    }

    for (var i = 0u; i < TM; i++) {
        let r = r0 + i;
        if (r >= p.M) {
            break;
        }
        for (var j = 0u; j < TN4; j++) {
            let n = c0 + 4u * j;
            if (n >= p.N) {
                break;
            }
            var v = acc[i * 2u + j];
            if (HAS_BIAS) {
                v += vec4<f32>(bias_at(n), bias_at(n + 1u), bias_at(n + 2u), bias_at(n + 3u));
            }
            let idx = cbase + r * p.N + n;
            if (n + 4u <= p.N && (idx & 3u) == 0u) {
                c[idx / 4u] = v;
            } else {
                for (var t = 0u; t < 4u; t++) {
                    if (n + t < p.N) {
                        let e = idx + t;
                        c[e >> 2u][e & 3u] = v[t];
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Workgroup-memory variant for GPUs: a 16 × 16 workgroup computes a 128 × 128 block of C, 8 × 8
// per invocation, staging 128 × 8 slices of A and B in workgroup memory. Every invocation
// stages 4 values of each slice per step, as one vec4 load where the layout allows (VEC_A,
// VEC_B; consecutive invocations read consecutive vectors, so a warp's loads coalesce), then
// does 8 steps of 2 + 2 vec4 workgroup reads and 64 FMAs. Double buffered: the next slices are
// loaded into registers before the current ones are multiplied and stored into the other half
// of workgroup memory after, so global latency hides behind the FMAs and one barrier per slice
// suffices (16 KiB, WebGPU's guaranteed minimum). Any shape and transpose: out-of-range
// elements load as zero. On CPU adapters barriers are expensive and `matmul_sg` / `matmul`
// are used instead.

const SM_BM: u32 = 128u;
const SM_BN: u32 = 128u;
const SM_BK: u32 = 8u;
const SM_HALF: u32 = 256u; // vec4s of one slice: [SM_BK][SM_BM / 4]

var<workgroup> sm_a: array<vec4<f32>, 512>; // two slices [SM_BK][SM_BM], A transposed: k-major
var<workgroup> sm_b: array<vec4<f32>, 512>; // two slices [SM_BK][SM_BN]

// The 4 values of A's slice at k-offset kt that invocation t stages: transposed, k-row
// kt + t / 32 at rows 4(t % 32) .. + 3; otherwise row t / 2 at k = kt + 4(t % 2) .. + 3.
fn smem_fetch_a(abase: u32, row0: u32, kt: u32, t: u32) -> vec4<f32> {
    if (TRANS_A) {
        let k = kt + (t >> 5u);
        let m = row0 + (t & 31u) * 4u;
        if (VEC_A && k < p.K && m + 3u < p.M) {
            return a[(abase + k * p.M + m) >> 2u];
        }
        return vec4<f32>(a_at(abase, m, k), a_at(abase, m + 1u, k), a_at(abase, m + 2u, k), a_at(abase, m + 3u, k));
    }
    let m = row0 + (t >> 1u);
    let k = kt + (t & 1u) * 4u;
    if (VEC_A && m < p.M && k + 3u < p.K) {
        return a[(abase + m * p.K + k) >> 2u];
    }
    return vec4<f32>(a_at(abase, m, k), a_at(abase, m, k + 1u), a_at(abase, m, k + 2u), a_at(abase, m, k + 3u));
}

// The same for B's slice: not transposed, k-row kt + t / 32 at columns 4(t % 32) .. + 3;
// transposed, column t / 2 at k = kt + 4(t % 2) .. + 3.
fn smem_fetch_b(bbase: u32, col0: u32, kt: u32, t: u32) -> vec4<f32> {
    if (!TRANS_B) {
        let k = kt + (t >> 5u);
        let n = col0 + (t & 31u) * 4u;
        if (VEC_B && k < p.K && n + 3u < p.N) {
            return b[(bbase + k * p.N + n) >> 2u];
        }
        return vec4<f32>(b_at(bbase, k, n), b_at(bbase, k, n + 1u), b_at(bbase, k, n + 2u), b_at(bbase, k, n + 3u));
    }
    let n = col0 + (t >> 1u);
    let k = kt + (t & 1u) * 4u;
    if (VEC_B && n < p.N && k + 3u < p.K) {
        return b[(bbase + n * p.K + k) >> 2u];
    }
    return vec4<f32>(b_at(bbase, k, n), b_at(bbase, k + 1u, n), b_at(bbase, k + 2u, n), b_at(bbase, k + 3u, n));
}

// Stores what `smem_fetch_a` / `smem_fetch_b` returned into slice buffer `half` (0 or 1).
fn smem_put(half: u32, t: u32, va: vec4<f32>, vb: vec4<f32>) {
    let o = half * SM_HALF;
    if (TRANS_A) {
        sm_a[o + (t >> 5u) * 32u + (t & 31u)] = va;
    } else {
        // four k-rows of one row m
        let m = t >> 1u;
        let k = (t & 1u) * 4u;
        sm_a[o + k * 32u + (m >> 2u)][m & 3u] = va.x;
        sm_a[o + (k + 1u) * 32u + (m >> 2u)][m & 3u] = va.y;
        sm_a[o + (k + 2u) * 32u + (m >> 2u)][m & 3u] = va.z;
        sm_a[o + (k + 3u) * 32u + (m >> 2u)][m & 3u] = va.w;
    }
    if (!TRANS_B) {
        sm_b[o + (t >> 5u) * 32u + (t & 31u)] = vb;
    } else {
        let n = t >> 1u;
        let k = (t & 1u) * 4u;
        sm_b[o + k * 32u + (n >> 2u)][n & 3u] = vb.x;
        sm_b[o + (k + 1u) * 32u + (n >> 2u)][n & 3u] = vb.y;
        sm_b[o + (k + 2u) * 32u + (n >> 2u)][n & 3u] = vb.z;
        sm_b[o + (k + 3u) * 32u + (n >> 2u)][n & 3u] = vb.w;
    }
}

@compute @workgroup_size(16, 16, 1)
fn matmul_smem(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
               @builtin(local_invocation_index) t: u32) {
    let row0 = wg.y * SM_BM;
    let col0 = wg.x * SM_BN;
    let abase = wg.z * p.sa;
    let bbase = wg.z * p.sb;
    let cbase = wg.z * p.sc;
    let slices = (p.K + SM_BK - 1u) / SM_BK;

    var acc: array<vec4<f32>, 16>; // acc[i * 2 + j]: row ty*8 + i, columns tx*8 + 4j .. +4
    smem_put(0u, t, smem_fetch_a(abase, row0, 0u, t), smem_fetch_b(bbase, col0, 0u, t));
    workgroupBarrier();
    for (var s = 0u; s < slices; s++) {
        let o = (s & 1u) * SM_HALF;
        // the next slices, in flight while this one is multiplied
        let more = s + 1u < slices;
        var va = vec4<f32>(0.0);
        var vb = vec4<f32>(0.0);
        if (more) {
            va = smem_fetch_a(abase, row0, (s + 1u) * SM_BK, t);
            vb = smem_fetch_b(bbase, col0, (s + 1u) * SM_BK, t);
        }
        for (var k = 0u; k < SM_BK; k++) {
            let a0 = sm_a[o + k * 32u + lid.y * 2u];
            let a1 = sm_a[o + k * 32u + lid.y * 2u + 1u];
            let b0 = sm_b[o + k * 32u + lid.x * 2u];
            let b1 = sm_b[o + k * 32u + lid.x * 2u + 1u];
            for (var i = 0u; i < 4u; i++) {
                acc[i * 2u] = fma(vec4<f32>(a0[i]), b0, acc[i * 2u]);
                acc[i * 2u + 1u] = fma(vec4<f32>(a0[i]), b1, acc[i * 2u + 1u]);
                acc[8u + i * 2u] = fma(vec4<f32>(a1[i]), b0, acc[8u + i * 2u]);
                acc[8u + i * 2u + 1u] = fma(vec4<f32>(a1[i]), b1, acc[8u + i * 2u + 1u]);
            }
        }
        // the other half was last read in the previous step, which ended with a barrier
        if (more) {
            smem_put(1u - (s & 1u), t, va, vb);
        }
        workgroupBarrier();
    }

    for (var i = 0u; i < 8u; i++) {
        let r = row0 + lid.y * 8u + i;
        if (r >= p.M) {
            break;
        }
        for (var j = 0u; j < 2u; j++) {
            let n = col0 + lid.x * 8u + 4u * j;
            if (n >= p.N) {
                break;
            }
            var v = acc[i * 2u + j];
            if (HAS_BIAS) {
                v += vec4<f32>(bias_at(n), bias_at(n + 1u), bias_at(n + 2u), bias_at(n + 3u));
            }
            let idx = cbase + r * p.N + n;
            if (n + 4u <= p.N && (idx & 3u) == 0u) {
                c[idx / 4u] = v;
            } else {
                for (var u = 0u; u < 4u; u++) {
                    if (n + u < p.N) {
                        let e = idx + u;
                        c[e >> 2u][e & 3u] = v[u];
                    }
                }
            }
        }
    }
}
