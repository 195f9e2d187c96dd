// Batched matrix multiply for adapters with subgroups of one fixed size (4 to 64 lanes), launched
// by src/ops/matmul.rs next to the register-blocked `matmul.wgsl`. Separate file because it
// needs the SUBGROUP feature, which `matmul.wgsl` must not require.
//
// On a CPU adapter each invocation is one SIMD lane and every lane's load is a separate memory
// access, so loads, not FMAs, bound the speed. Here each lane loads ONE row of A per block of
// min(SG, 16) rows and receives the others from its neighbours through `subgroupBroadcast` (a
// register permute): at 8 lanes, per 4 k-steps a lane does 2 A loads + 4·CN B loads for 64·CN
// vector FMAs, against 16 loads for 64 FMAs in the register-blocked kernel. A lane owns 16 rows × 4·CN columns; the
// workgroup is one subgroup. Needs K % 4 == 0 and N % 4 == 0 (the host checks); M is free.
// Layouts and `Params` as in matmul.wgsl. `share16` is appended from shaders/parts/subgroup_share.wgsl.

override CN: u32 = 2u;        // vec4 columns per lane: 1 or 2
override SG: u32 = 8u;        // lanes of a subgroup = invocations of a workgroup
override SGM: u32 = min(SG, 16u);      // lanes that load distinct rows of A
override NR: u32 = 16u / min(SG, 16u); // rows of A each of them loads per k-quad
override TRANS_A: bool = false;
override TRANS_B: bool = false;
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

@group(0) @binding(4) var<storage, read> a_s: array<f32>;

fn mm_row(a: vec4<f32>, b0: vec4<f32>, b1: vec4<f32>, b2: vec4<f32>, b3: vec4<f32>, acc: vec4<f32>) -> vec4<f32> {
    return fma(vec4<f32>(a.x), b0, fma(vec4<f32>(a.y), b1, fma(vec4<f32>(a.z), b2, fma(vec4<f32>(a.w), b3, acc))));
}

// Four consecutive k-rows of B restricted to 4 columns.
struct B4 {
    k0: vec4<f32>,
    k1: vec4<f32>,
    k2: vec4<f32>,
    k3: vec4<f32>,
}

// Rows 4kq..4kq+3 of op(B) at column quad `q` (q < N/4). `bbase` is in vec4 units.
fn load_b4(bbase: u32, kq: u32, q: u32) -> B4 {
    if (TRANS_B) {
        // B is stored [N, K]: each of the 4 columns is a row holding its k-values contiguously.
        let K4 = p.K / 4u;
        let w0 = b[bbase + (4u * q) * K4 + kq];
        let w1 = b[bbase + (4u * q + 1u) * K4 + kq];
        let w2 = b[bbase + (4u * q + 2u) * K4 + kq];
        let w3 = b[bbase + (4u * q + 3u) * K4 + kq];
        return B4(vec4<f32>(w0.x, w1.x, w2.x, w3.x), vec4<f32>(w0.y, w1.y, w2.y, w3.y),
                  vec4<f32>(w0.z, w1.z, w2.z, w3.z), vec4<f32>(w0.w, w1.w, w2.w, w3.w));
    }
    let N4 = p.N / 4u;
    let kb = bbase + kq * 4u * N4;
    return B4(b[kb + q], b[kb + N4 + q], b[kb + 2u * N4 + q], b[kb + 3u * N4 + q]);
}

// A[r, 4kq .. 4kq + 4]. `abase` is in elements.
fn load_a4(abase: u32, r: u32, kq: u32) -> vec4<f32> {
    if (TRANS_A) {
        // A is stored [K, M].
        let k = 4u * kq;
        return vec4<f32>(a_s[abase + k * p.M + r], a_s[abase + (k + 1u) * p.M + r],
                         a_s[abase + (k + 2u) * p.M + r], a_s[abase + (k + 3u) * p.M + r]);
    }
    return a[(abase + r * p.K) / 4u + kq];
}

// Writes a lane's 16 rows × CN column quads (+ bias).
fn store(r0: u32, cbase: u32, gx: u32, acc: ptr<function, array<vec4<f32>, 32>>) {
    let N4 = p.N / 4u;
    for (var j = 0u; j < CN; j++) {
        let q = gx * CN + j;
        if (q < N4) {
            var bv = vec4<f32>(0.0);
            if (HAS_BIAS) {
                bv = bias[q];
            }
            for (var i = 0u; i < 16u; i++) {
                let r = r0 + i;
                if (r < p.M) {
                    c[cbase + r * N4 + q] = (*acc)[j * 16u + i] + bv;
                }
            }
        }
    }
}

// Rows r0 + t (t < 16) of A at k-quad kq for every lane: each lane loads 16 / min(SG, 16) of them
// (rows r0 + lane + j·SG) and the others arrive by broadcast (`share16`, shaders/parts/).
fn share_a(abase: u32, r0: u32, kq: u32, lane: u32) -> array<vec4<f32>, 16> {
    let rl = r0 + lane % SGM;
    var a: array<vec4<f32>, 4>;
    a[0] = load_a4(abase, min(rl, p.M - 1u), kq);
    if (NR > 1u) { a[1] = load_a4(abase, min(rl + SGM, p.M - 1u), kq); }
    if (NR > 2u) {
        a[2] = load_a4(abase, min(rl + 2u * SGM, p.M - 1u), kq);
        a[3] = load_a4(abase, min(rl + 3u * SGM, p.M - 1u), kq);
    }
    return share16(a);
}

// Row i of the lane's 16 rows: its column quads (one or two) += A[r0 + i, k-quad] · B.
fn row_step(x: vec4<f32>, b0: B4, b1: B4, i: u32, acc: ptr<function, array<vec4<f32>, 32>>) {
    (*acc)[i] = mm_row(x, b0.k0, b0.k1, b0.k2, b0.k3, (*acc)[i]);
    if (CN == 2u) {
        (*acc)[16u + i] = mm_row(x, b1.k0, b1.k1, b1.k2, b1.k3, (*acc)[16u + i]);
    }
}

@compute @workgroup_size(SG, 1, 1)
fn matmul_sg(@builtin(global_invocation_id) gid: vec3<u32>,
             @builtin(subgroup_invocation_id) lane: u32) {
    let K4 = p.K / 4u;
    let N4 = p.N / 4u;
    let r0 = gid.y * 16u;
    let q0 = min(gid.x * CN, N4 - 1u);
    let q1 = min(gid.x * CN + 1u, N4 - 1u);
    let abase = gid.z * p.sa;
    let bbase = gid.z * p.sb / 4u;
    let cbase = gid.z * p.sc / 4u;
    var acc: array<vec4<f32>, 32>;
    for (var kq = 0u; kq < K4; kq++) {
        let b0 = load_b4(bbase, kq, q0);
        var b1 = b0;
        if (CN == 2u) {
            b1 = load_b4(bbase, kq, q1);
        }
        let x = share_a(abase, r0, kq, lane);
        row_step(x[0], b0, b1, 0u, &acc);
        row_step(x[1], b0, b1, 1u, &acc);
        row_step(x[2], b0, b1, 2u, &acc);
        row_step(x[3], b0, b1, 3u, &acc);
        row_step(x[4], b0, b1, 4u, &acc);
        row_step(x[5], b0, b1, 5u, &acc);
        row_step(x[6], b0, b1, 6u, &acc);
        row_step(x[7], b0, b1, 7u, &acc);
        row_step(x[8], b0, b1, 8u, &acc);
        row_step(x[9], b0, b1, 9u, &acc);
        row_step(x[10], b0, b1, 10u, &acc);
        row_step(x[11], b0, b1, 11u, &acc);
        row_step(x[12], b0, b1, 12u, &acc);
        row_step(x[13], b0, b1, 13u, &acc);
        row_step(x[14], b0, b1, 14u, &acc);
        row_step(x[15], b0, b1, 15u, &acc);
    }
    store(r0, cbase, gid.x, &acc);
}
