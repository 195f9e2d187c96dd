// Reductions along one axis. The input is viewed as [outer, len, inner] and the output as
// [outer, inner]. Deterministic: a fixed summation order, no atomics.
// Op codes match `enma::ops::ReduceOp` (src/ops/reduce.rs): 0 sum, 1 mean, 2 max, 3 min.

override OP: u32 = 0u;

struct Params {
    outer: u32,
    len: u32,
    inner: u32,
    n: u32,       // the count a mean divides by: len, or (reduce_cols after reduce_cols_chunks) the rows
}
var<immediate> p: Params;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;

const WG: u32 = 256u;
var<workgroup> partial: array<f32, WG>;

fn identity() -> f32 {
    switch OP {
        case 2u: { return -3.402823466e38; }
        case 3u: { return 3.402823466e38; }
        default: { return 0.0; }
    }
}

fn combine(a: f32, b: f32) -> f32 {
    switch OP {
        case 2u: { return max(a, b); }
        case 3u: { return min(a, b); }
        default: { return a + b; }
    }
}

fn finish(v: f32) -> f32 {
    if (OP == 1u) {
        return v / f32(p.n);
    }
    return v;
}

// Combines `count` elements x[base + k * stride] in blocks (64 per block, 64 blocks per
// super-block) so a long f32 sum keeps about 1e-6 relative accuracy without relying on
// compensated arithmetic, which fast-math compilers may optimise away.
fn blocked(base: u32, stride: u32, count: u32) -> f32 {
    var total = identity();
    var mid = identity();
    var part = identity();
    var part_n = 0u;
    var mid_n = 0u;
    for (var k = 0u; k < count; k++) {
        part = combine(part, x[base + k * stride]);
        part_n += 1u;
        if (part_n == 64u) {
            mid = combine(mid, part);
            part = identity();
            part_n = 0u;
            mid_n += 1u;
            if (mid_n == 64u) {
                total = combine(total, mid);
                mid = identity();
                mid_n = 0u;
            }
        }
    }
    return combine(total, combine(mid, part));
}

// One thread per output element; walks the axis with stride `inner` (coalesced across threads).
@compute @workgroup_size(256)
fn reduce_cols(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) li: u32) {
    let idx = (wg.y * nwg.x + wg.x) * WG + li;
    if (idx >= p.outer * p.inner) {
        return;
    }
    let o = idx / p.inner;
    let i = idx % p.inner;
    y[idx] = finish(blocked(o * p.len * p.inner + i, p.inner, p.len));
}

// The first pass of a column reduction with few outputs (one invocation per output would leave
// most of the device idle): one invocation per (outer, chunk of 64 rows, column) combines its
// chunk in order, as the `part` level of `blocked` does, so reduce_cols over the chunk results
// gives the same bits as reduce_cols over the whole axis (axes under 64³ rows).
// With VEC (inner % 4 == 0) an invocation takes 4 adjacent columns as one vector load.
override VEC: bool = false;
@group(0) @binding(2) var<storage, read> x4: array<vec4<f32>>;   // x again, as vectors (VEC)

fn combine4(a: vec4<f32>, b: vec4<f32>) -> vec4<f32> {
    switch OP {
        case 2u: { return max(a, b); }
        case 3u: { return min(a, b); }
        default: { return a + b; }
    }
}

@compute @workgroup_size(256)
fn reduce_cols_chunks(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) li: u32) {
    let chunks = (p.len + 63u) / 64u;
    let w = select(1u, 4u, VEC);          // columns per invocation
    let cols = p.inner / w;
    let idx = (wg.y * nwg.x + wg.x) * WG + li;
    if (idx >= p.outer * chunks * cols) {
        return;
    }
    let i = (idx % cols) * w;
    let c = (idx / cols) % chunks;
    let o = idx / (cols * chunks);
    let k0 = c * 64u;
    let base = (o * p.len + k0) * p.inner + i;
    let out = (o * chunks + c) * p.inner + i;
    let count = min(64u, p.len - k0);
    if (VEC) {
        var part = vec4<f32>(identity());
        for (var k = 0u; k < count; k++) {
            part = combine4(part, x4[(base + k * p.inner) / 4u]);
        }
        y[out] = part.x;
        y[out + 1u] = part.y;
        y[out + 2u] = part.z;
        y[out + 3u] = part.w;
        return;
    }
    var part = identity();
    for (var k = 0u; k < count; k++) {
        part = combine(part, x[base + k * p.inner]);
    }
    y[out] = part;
}

// One workgroup per row (inner == 1): strided partial results, then a tree in shared memory.
@compute @workgroup_size(256)
fn reduce_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) li: u32) {
    let row = wg.y * nwg.x + wg.x;
    if (row >= p.outer) {
        return;
    }
    var count = 0u;
    if (li < p.len) {
        count = (p.len - li + WG - 1u) / WG;
    }
    partial[li] = blocked(row * p.len + li, WG, count);
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (li < s) {
            partial[li] = combine(partial[li], partial[li + s]);
        }
        workgroupBarrier();
    }
    if (li == 0u) {
        y[row] = finish(partial[0]);
    }
}
