// Batched matrix multiply for adapters with subgroups of one fixed size (4 to 64 lanes), launched
// by src/ops/matmul.rs next to the register-blocked `matmul.wgsl`. Separate file because it
// needs the SUBGROUP feature, which `matmul.wgsl` must not require.
//
// On a CPU adapter each invocation is one SIMD lane and every lane's load is a separate memory
// access, so loads, not FMAs, bound the speed. Here each lane loads ONE row of A per block of 8
// rows and receives the other 7 rows from its neighbours through `subgroupBroadcast` (a register
// permute): per 4 k-steps a lane does 2 A loads + 4·CN B loads for 64·CN vector FMAs, against
// 16 loads for 64 FMAs in the register-blocked kernel. A lane owns 16 rows × 4·CN columns; the
// workgroup is one subgroup. Needs K % 4 == 0 and N % 4 == 0 (the host checks); M is free.
// Layouts and `Params` as in matmul.wgsl.

override CN: u32 = 2u;        // vec4 columns per lane: 1 or 2
override SG: u32 = 8u;        // lanes of a subgroup = invocations of a workgroup
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

@compute @workgroup_size(4, 1, 1)
fn matmul_sg4(@builtin(global_invocation_id) gid: vec3<u32>,
              @builtin(subgroup_invocation_id) lane: u32) {
    let K4 = p.K / 4u;
    let N4 = p.N / 4u;
    let r0 = gid.y * 16u;
    let q0 = min(gid.x * CN, N4 - 1u);
    let q1 = min(gid.x * CN + 1u, N4 - 1u);
    let abase = gid.z * p.sa;
    let bbase = gid.z * p.sb / 4u;
    let cbase = gid.z * p.sc / 4u;
    let ra0 = min(r0 + 0u + lane, p.M - 1u);
    let ra1 = min(r0 + 4u + lane, p.M - 1u);
    let ra2 = min(r0 + 8u + lane, p.M - 1u);
    let ra3 = min(r0 + 12u + lane, p.M - 1u);
    var acc: array<vec4<f32>, 32>;
    for (var kq = 0u; kq < K4; kq++) {
        let b0 = load_b4(bbase, kq, q0);
        var b1 = b0;
        if (CN == 2u) {
            b1 = load_b4(bbase, kq, q1);
        }
        let a0 = load_a4(abase, ra0, kq);
        let a1 = load_a4(abase, ra1, kq);
        let a2 = load_a4(abase, ra2, kq);
        let a3 = load_a4(abase, ra3, kq);
        { let x = subgroupBroadcast(a0, 0u); acc[0] = mm_row(x, b0.k0, b0.k1, b0.k2, b0.k3, acc[0]); if (CN == 2u) { acc[16] = mm_row(x, b1.k0, b1.k1, b1.k2, b1.k3, acc[16]); } }
        { let x = subgroupBroadcast(a0, 1u); acc[1] = mm_row(x, b0.k0, b0.k1, b0.k2, b0.k3, acc[1]); if (CN == 2u) { acc[17] = mm_row(x, b1.k0, b1.k1, b1.k2, b1.k3, acc[17]); } }
        { let x = subgroupBroadcast(a0, 2u); acc[2] = mm_row(x, b0.k0, b0.k1, b0.k2, b0.k3, acc[2]); if (CN == 2u) { acc[18] = mm_row(x, b1.k0, b1.k1, b1.k2, b1.k3, acc[18]); } }
        { let x = subgroupBroadcast(a0, 3u); acc[3] = mm_row(x, b0.k0, b0.k1, b0.k2, b0.k3, acc[3]); if (CN == 2u) { acc[19] = mm_row(x, b1.k0, b1.k1, b1.k2, b1.k3, acc[19]); } }
        { let x = subgroupBroadcast(a1, 0u); acc[4] = mm_row(x, b0.k0, b0.k1, b0.k2, b0.k3, acc[4]); if (CN == 2u) { acc[20] = mm_row(x, b1.k0, b1.k1, b1.k2, b1.k3, acc[20]); } }
        { let x = subgroupBroadcast(a1, 1u); acc[5] = mm_row(x, b0.k0, b0.k1, b0.k2, b0.k3, acc[5]); if (CN == 2u) { acc[21] = mm_row(x, b1.k0, b1.k1, b1.k2, b1.k3, acc[21]); } }
        { let x = subgroupBroadcast(a1, 2u); acc[6] = mm_row(x, b0.k0, b0.k1, b0.k2, b0.k3, acc[6]); if (CN == 2u) { acc[22] = mm_row(x, b1.k0, b1.k1, b1.k2, b1.k3, acc[22]); } }
        { let x = subgroupBroadcast(a1, 3u); acc[7] = mm_row(x, b0.k0, b0.k1, b0.k2, b0.k3, acc[7]); if (CN == 2u) { acc[23] = mm_row(x, b1.k0, b1.k1, b1.k2, b1.k3, acc[23]); } }
        { let x = subgroupBroadcast(a2, 0u); acc[8] = mm_row(x, b0.k0, b0.k1, b0.k2, b0.k3, acc[8]); if (CN == 2u) { acc[24] = mm_row(x, b1.k0, b1.k1, b1.k2, b1.k3, acc[24]); } }
        { let x = subgroupBroadcast(a2, 1u); acc[9] = mm_row(x, b0.k0, b0.k1, b0.k2, b0.k3, acc[9]); if (CN == 2u) { acc[25] = mm_row(x, b1.k0, b1.k1, b1.k2, b1.k3, acc[25]); } }
        { let x = subgroupBroadcast(a2, 2u); acc[10] = mm_row(x, b0.k0, b0.k1, b0.k2, b0.k3, acc[10]); if (CN == 2u) { acc[26] = mm_row(x, b1.k0, b1.k1, b1.k2, b1.k3, acc[26]); } }
        { let x = subgroupBroadcast(a2, 3u); acc[11] = mm_row(x, b0.k0, b0.k1, b0.k2, b0.k3, acc[11]); if (CN == 2u) { acc[27] = mm_row(x, b1.k0, b1.k1, b1.k2, b1.k3, acc[27]); } }
        { let x = subgroupBroadcast(a3, 0u); acc[12] = mm_row(x, b0.k0, b0.k1, b0.k2, b0.k3, acc[12]); if (CN == 2u) { acc[28] = mm_row(x, b1.k0, b1.k1, b1.k2, b1.k3, acc[28]); } }
        { let x = subgroupBroadcast(a3, 1u); acc[13] = mm_row(x, b0.k0, b0.k1, b0.k2, b0.k3, acc[13]); if (CN == 2u) { acc[29] = mm_row(x, b1.k0, b1.k1, b1.k2, b1.k3, acc[29]); } }
        { let x = subgroupBroadcast(a3, 2u); acc[14] = mm_row(x, b0.k0, b0.k1, b0.k2, b0.k3, acc[14]); if (CN == 2u) { acc[30] = mm_row(x, b1.k0, b1.k1, b1.k2, b1.k3, acc[30]); } }
        { let x = subgroupBroadcast(a3, 3u); acc[15] = mm_row(x, b0.k0, b0.k1, b0.k2, b0.k3, acc[15]); if (CN == 2u) { acc[31] = mm_row(x, b1.k0, b1.k1, b1.k2, b1.k3, acc[31]); } }
    }
    store(r0, cbase, gid.x, &acc);
}

@compute @workgroup_size(8, 1, 1)
fn matmul_sg8(@builtin(global_invocation_id) gid: vec3<u32>,
              @builtin(subgroup_invocation_id) lane: u32) {
    let K4 = p.K / 4u;
    let N4 = p.N / 4u;
    let r0 = gid.y * 16u;
    let q0 = min(gid.x * CN, N4 - 1u);
    let q1 = min(gid.x * CN + 1u, N4 - 1u);
    let abase = gid.z * p.sa;
    let bbase = gid.z * p.sb / 4u;
    let cbase = gid.z * p.sc / 4u;
    let ra0 = min(r0 + 0u + lane, p.M - 1u);
    let ra1 = min(r0 + 8u + lane, p.M - 1u);
    var acc: array<vec4<f32>, 32>;
    for (var kq = 0u; kq < K4; kq++) {
        let b0 = load_b4(bbase, kq, q0);
        var b1 = b0;
        if (CN == 2u) {
            b1 = load_b4(bbase, kq, q1);
        }
        let a0 = load_a4(abase, ra0, kq);
        let a1 = load_a4(abase, ra1, kq);
        { let x = subgroupBroadcast(a0, 0u); acc[0] = mm_row(x, b0.k0, b0.k1, b0.k2, b0.k3, acc[0]); if (CN == 2u) { acc[16] = mm_row(x, b1.k0, b1.k1, b1.k2, b1.k3, acc[16]); } }
        { let x = subgroupBroadcast(a0, 1u); acc[1] = mm_row(x, b0.k0, b0.k1, b0.k2, b0.k3, acc[1]); if (CN == 2u) { acc[17] = mm_row(x, b1.k0, b1.k1, b1.k2, b1.k3, acc[17]); } }
        { let x = subgroupBroadcast(a0, 2u); acc[2] = mm_row(x, b0.k0, b0.k1, b0.k2, b0.k3, acc[2]); if (CN == 2u) { acc[18] = mm_row(x, b1.k0, b1.k1, b1.k2, b1.k3, acc[18]); } }
        { let x = subgroupBroadcast(a0, 3u); acc[3] = mm_row(x, b0.k0, b0.k1, b0.k2, b0.k3, acc[3]); if (CN == 2u) { acc[19] = mm_row(x, b1.k0, b1.k1, b1.k2, b1.k3, acc[19]); } }
        { let x = subgroupBroadcast(a0, 4u); acc[4] = mm_row(x, b0.k0, b0.k1, b0.k2, b0.k3, acc[4]); if (CN == 2u) { acc[20] = mm_row(x, b1.k0, b1.k1, b1.k2, b1.k3, acc[20]); } }
        { let x = subgroupBroadcast(a0, 5u); acc[5] = mm_row(x, b0.k0, b0.k1, b0.k2, b0.k3, acc[5]); if (CN == 2u) { acc[21] = mm_row(x, b1.k0, b1.k1, b1.k2, b1.k3, acc[21]); } }
        { let x = subgroupBroadcast(a0, 6u); acc[6] = mm_row(x, b0.k0, b0.k1, b0.k2, b0.k3, acc[6]); if (CN == 2u) { acc[22] = mm_row(x, b1.k0, b1.k1, b1.k2, b1.k3, acc[22]); } }
        { let x = subgroupBroadcast(a0, 7u); acc[7] = mm_row(x, b0.k0, b0.k1, b0.k2, b0.k3, acc[7]); if (CN == 2u) { acc[23] = mm_row(x, b1.k0, b1.k1, b1.k2, b1.k3, acc[23]); } }
        { let x = subgroupBroadcast(a1, 0u); acc[8] = mm_row(x, b0.k0, b0.k1, b0.k2, b0.k3, acc[8]); if (CN == 2u) { acc[24] = mm_row(x, b1.k0, b1.k1, b1.k2, b1.k3, acc[24]); } }
        { let x = subgroupBroadcast(a1, 1u); acc[9] = mm_row(x, b0.k0, b0.k1, b0.k2, b0.k3, acc[9]); if (CN == 2u) { acc[25] = mm_row(x, b1.k0, b1.k1, b1.k2, b1.k3, acc[25]); } }
        { let x = subgroupBroadcast(a1, 2u); acc[10] = mm_row(x, b0.k0, b0.k1, b0.k2, b0.k3, acc[10]); if (CN == 2u) { acc[26] = mm_row(x, b1.k0, b1.k1, b1.k2, b1.k3, acc[26]); } }
        { let x = subgroupBroadcast(a1, 3u); acc[11] = mm_row(x, b0.k0, b0.k1, b0.k2, b0.k3, acc[11]); if (CN == 2u) { acc[27] = mm_row(x, b1.k0, b1.k1, b1.k2, b1.k3, acc[27]); } }
        { let x = subgroupBroadcast(a1, 4u); acc[12] = mm_row(x, b0.k0, b0.k1, b0.k2, b0.k3, acc[12]); if (CN == 2u) { acc[28] = mm_row(x, b1.k0, b1.k1, b1.k2, b1.k3, acc[28]); } }
        { let x = subgroupBroadcast(a1, 5u); acc[13] = mm_row(x, b0.k0, b0.k1, b0.k2, b0.k3, acc[13]); if (CN == 2u) { acc[29] = mm_row(x, b1.k0, b1.k1, b1.k2, b1.k3, acc[29]); } }
        { let x = subgroupBroadcast(a1, 6u); acc[14] = mm_row(x, b0.k0, b0.k1, b0.k2, b0.k3, acc[14]); if (CN == 2u) { acc[30] = mm_row(x, b1.k0, b1.k1, b1.k2, b1.k3, acc[30]); } }
        { let x = subgroupBroadcast(a1, 7u); acc[15] = mm_row(x, b0.k0, b0.k1, b0.k2, b0.k3, acc[15]); if (CN == 2u) { acc[31] = mm_row(x, b1.k0, b1.k1, b1.k2, b1.k3, acc[31]); } }
    }
    store(r0, cbase, gid.x, &acc);
}

@compute @workgroup_size(SG, 1, 1)
fn matmul_sg16(@builtin(global_invocation_id) gid: vec3<u32>,
               @builtin(subgroup_invocation_id) lane: u32) {
    let K4 = p.K / 4u;
    let N4 = p.N / 4u;
    let r0 = gid.y * 16u;
    let q0 = min(gid.x * CN, N4 - 1u);
    let q1 = min(gid.x * CN + 1u, N4 - 1u);
    let abase = gid.z * p.sa;
    let bbase = gid.z * p.sb / 4u;
    let cbase = gid.z * p.sc / 4u;
    let ra0 = min(r0 + 0u + lane % 16u, p.M - 1u);
    var acc: array<vec4<f32>, 32>;
    for (var kq = 0u; kq < K4; kq++) {
        let b0 = load_b4(bbase, kq, q0);
        var b1 = b0;
        if (CN == 2u) {
            b1 = load_b4(bbase, kq, q1);
        }
        let a0 = load_a4(abase, ra0, kq);
        { let x = subgroupBroadcast(a0, 0u); acc[0] = mm_row(x, b0.k0, b0.k1, b0.k2, b0.k3, acc[0]); if (CN == 2u) { acc[16] = mm_row(x, b1.k0, b1.k1, b1.k2, b1.k3, acc[16]); } }
        { let x = subgroupBroadcast(a0, 1u); acc[1] = mm_row(x, b0.k0, b0.k1, b0.k2, b0.k3, acc[1]); if (CN == 2u) { acc[17] = mm_row(x, b1.k0, b1.k1, b1.k2, b1.k3, acc[17]); } }
        { let x = subgroupBroadcast(a0, 2u); acc[2] = mm_row(x, b0.k0, b0.k1, b0.k2, b0.k3, acc[2]); if (CN == 2u) { acc[18] = mm_row(x, b1.k0, b1.k1, b1.k2, b1.k3, acc[18]); } }
        { let x = subgroupBroadcast(a0, 3u); acc[3] = mm_row(x, b0.k0, b0.k1, b0.k2, b0.k3, acc[3]); if (CN == 2u) { acc[19] = mm_row(x, b1.k0, b1.k1, b1.k2, b1.k3, acc[19]); } }
        { let x = subgroupBroadcast(a0, 4u); acc[4] = mm_row(x, b0.k0, b0.k1, b0.k2, b0.k3, acc[4]); if (CN == 2u) { acc[20] = mm_row(x, b1.k0, b1.k1, b1.k2, b1.k3, acc[20]); } }
        { let x = subgroupBroadcast(a0, 5u); acc[5] = mm_row(x, b0.k0, b0.k1, b0.k2, b0.k3, acc[5]); if (CN == 2u) { acc[21] = mm_row(x, b1.k0, b1.k1, b1.k2, b1.k3, acc[21]); } }
        { let x = subgroupBroadcast(a0, 6u); acc[6] = mm_row(x, b0.k0, b0.k1, b0.k2, b0.k3, acc[6]); if (CN == 2u) { acc[22] = mm_row(x, b1.k0, b1.k1, b1.k2, b1.k3, acc[22]); } }
        { let x = subgroupBroadcast(a0, 7u); acc[7] = mm_row(x, b0.k0, b0.k1, b0.k2, b0.k3, acc[7]); if (CN == 2u) { acc[23] = mm_row(x, b1.k0, b1.k1, b1.k2, b1.k3, acc[23]); } }
        { let x = subgroupBroadcast(a0, 8u); acc[8] = mm_row(x, b0.k0, b0.k1, b0.k2, b0.k3, acc[8]); if (CN == 2u) { acc[24] = mm_row(x, b1.k0, b1.k1, b1.k2, b1.k3, acc[24]); } }
        { let x = subgroupBroadcast(a0, 9u); acc[9] = mm_row(x, b0.k0, b0.k1, b0.k2, b0.k3, acc[9]); if (CN == 2u) { acc[25] = mm_row(x, b1.k0, b1.k1, b1.k2, b1.k3, acc[25]); } }
        { let x = subgroupBroadcast(a0, 10u); acc[10] = mm_row(x, b0.k0, b0.k1, b0.k2, b0.k3, acc[10]); if (CN == 2u) { acc[26] = mm_row(x, b1.k0, b1.k1, b1.k2, b1.k3, acc[26]); } }
        { let x = subgroupBroadcast(a0, 11u); acc[11] = mm_row(x, b0.k0, b0.k1, b0.k2, b0.k3, acc[11]); if (CN == 2u) { acc[27] = mm_row(x, b1.k0, b1.k1, b1.k2, b1.k3, acc[27]); } }
        { let x = subgroupBroadcast(a0, 12u); acc[12] = mm_row(x, b0.k0, b0.k1, b0.k2, b0.k3, acc[12]); if (CN == 2u) { acc[28] = mm_row(x, b1.k0, b1.k1, b1.k2, b1.k3, acc[28]); } }
        { let x = subgroupBroadcast(a0, 13u); acc[13] = mm_row(x, b0.k0, b0.k1, b0.k2, b0.k3, acc[13]); if (CN == 2u) { acc[29] = mm_row(x, b1.k0, b1.k1, b1.k2, b1.k3, acc[29]); } }
        { let x = subgroupBroadcast(a0, 14u); acc[14] = mm_row(x, b0.k0, b0.k1, b0.k2, b0.k3, acc[14]); if (CN == 2u) { acc[30] = mm_row(x, b1.k0, b1.k1, b1.k2, b1.k3, acc[30]); } }
        { let x = subgroupBroadcast(a0, 15u); acc[15] = mm_row(x, b0.k0, b0.k1, b0.k2, b0.k3, acc[15]); if (CN == 2u) { acc[31] = mm_row(x, b1.k0, b1.k1, b1.k2, b1.k3, acc[31]); } }
    }
    store(r0, cbase, gid.x, &acc);
}
