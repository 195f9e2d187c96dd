// Counter-based random numbers: Philox 4x32-10 (Salmon et al., SC'11). Thread i turns the
// counter (i, ctr_lo, ctr_hi, 0) under the key (seed_lo, seed_hi) into 4 random words, written
// to elements 4i .. 4i+3: uniform in [0, 1), or normal by Box–Muller on pairs. Same seed and
// counter → same numbers on any adapter (`Philox` in src/ops/random.rs is the CPU twin).

struct Params {
    n: u32,        // elements to write
    seed_lo: u32,
    seed_hi: u32,
    ctr_lo: u32,
    ctr_hi: u32,
}
var<immediate> p: Params;

@group(0) @binding(0) var<storage, read_write> out: array<f32>;

// (hi, lo) words of the 64-bit product a·b.
fn mulhilo(a: u32, b: u32) -> vec2<u32> {
    let a_lo = a & 0xffffu;
    let a_hi = a >> 16u;
    let b_lo = b & 0xffffu;
    let b_hi = b >> 16u;
    let ll = a_lo * b_lo;
    let lh = a_lo * b_hi;
    let hl = a_hi * b_lo;
    let hh = a_hi * b_hi;
    let mid = (ll >> 16u) + (lh & 0xffffu) + (hl & 0xffffu);
    let hi = hh + (lh >> 16u) + (hl >> 16u) + (mid >> 16u);
    let lo = a * b;
    return vec2<u32>(hi, lo);
}

fn philox(ctr_in: vec4<u32>, key_in: vec2<u32>) -> vec4<u32> {
    var c = ctr_in;
    var k = key_in;
    for (var r = 0u; r < 10u; r++) {
        let p0 = mulhilo(0xD2511F53u, c.x);
        let p1 = mulhilo(0xCD9E8D57u, c.z);
        c = vec4<u32>(p1.x ^ c.y ^ k.x, p1.y, p0.x ^ c.w ^ k.y, p0.y);
        k = k + vec2<u32>(0x9E3779B9u, 0xBB67AE85u);
    }
    return c;
}

// 24 random bits → [0, 1).
fn to_unit(x: u32) -> f32 {
    return f32(x >> 8u) * (1.0 / 16777216.0);
}

fn block(wg: vec3<u32>, nwg: vec3<u32>, li: u32) -> vec2<u32> {
    let i = (wg.y * nwg.x + wg.x) * 256u + li;
    return vec2<u32>(i, i * 4u);
}

@compute @workgroup_size(256)
fn uniform(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) li: u32) {
    let ie = block(wg, nwg, li);
    if (ie.y >= p.n) {
        return;
    }
    let r = philox(vec4<u32>(ie.x, p.ctr_lo, p.ctr_hi, 0u), vec2<u32>(p.seed_lo, p.seed_hi));
    for (var j = 0u; j < 4u; j++) {
        if (ie.y + j < p.n) {
            out[ie.y + j] = to_unit(r[j]);
        }
    }
}

@compute @workgroup_size(256)
fn normal(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) li: u32) {
    let ie = block(wg, nwg, li);
    if (ie.y >= p.n) {
        return;
    }
    let r = philox(vec4<u32>(ie.x, p.ctr_lo, p.ctr_hi, 0u), vec2<u32>(p.seed_lo, p.seed_hi));
    var z: array<f32, 4>;
    for (var j = 0u; j < 2u; j++) {
        // u1 in (0, 1] so the log is finite.
        let u1 = f32((r[2u * j] >> 8u) + 1u) * (1.0 / 16777216.0);
        let u2 = to_unit(r[2u * j + 1u]);
        let rad = sqrt(-2.0 * log(u1));
        let th = 6.283185307179586 * u2;
        z[2u * j] = rad * cos(th);
        z[2u * j + 1u] = rad * sin(th);
    }
    for (var j = 0u; j < 4u; j++) {
        if (ie.y + j < p.n) {
            out[ie.y + j] = z[j];
        }
    }
}
