// Softmax over the last axis of a [rows, len] view, and its backward
// dx = y ⊙ (dy − Σ dy ⊙ y). `*_thread` entries give one invocation per row (CPU adapters, short
// rows); `*_group` entries one workgroup of 256 per row with tree reductions (GPUs, long rows).

struct Params {
    rows: u32,
    len: u32,
}
var<immediate> p: Params;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read> ys: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;

const WG: u32 = 256u;
var<workgroup> tree: array<f32, WG>;

fn row_id(wg: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wg.y * nwg.x + wg.x;
}

@compute @workgroup_size(256)
fn softmax_thread(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) li: u32) {
    let r = row_id(wg, nwg) * WG + li;
    if (r >= p.rows) {
        return;
    }
    let base = r * p.len;
    var m = -3.402823466e38;
    for (var k = 0u; k < p.len; k++) {
        m = max(m, x[base + k]);
    }
    var s = 0.0;
    for (var k = 0u; k < p.len; k++) {
        s += exp(x[base + k] - m);
    }
    let inv = 1.0 / s;
    for (var k = 0u; k < p.len; k++) {
        y[base + k] = exp(x[base + k] - m) * inv;
    }
}

@compute @workgroup_size(256)
fn softmax_back_thread(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) li: u32) {
    let r = row_id(wg, nwg) * WG + li;
    if (r >= p.rows) {
        return;
    }
    let base = r * p.len;
    var d = 0.0;
    for (var k = 0u; k < p.len; k++) {
        d += dy[base + k] * ys[base + k];
    }
    for (var k = 0u; k < p.len; k++) {
        dx[base + k] = ys[base + k] * (dy[base + k] - d);
    }
}

// Tree reduction over the workgroup: max (is_max) or sum.
fn group_reduce(li: u32, v: f32, is_max: bool) -> f32 {
    workgroupBarrier();
    tree[li] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (li < s) {
            if (is_max) {
                tree[li] = max(tree[li], tree[li + s]);
            } else {
                tree[li] = tree[li] + tree[li + s];
            }
        }
        workgroupBarrier();
    }
    return tree[0];
}

@compute @workgroup_size(256)
fn softmax_group(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) li: u32) {
    let r = row_id(wg, nwg);
    if (r >= p.rows) {
        return;
    }
    let base = r * p.len;
    var m = -3.402823466e38;
    for (var k = li; k < p.len; k += WG) {
        m = max(m, x[base + k]);
    }
    m = group_reduce(li, m, true);
    var s = 0.0;
    for (var k = li; k < p.len; k += WG) {
        s += exp(x[base + k] - m);
    }
    s = group_reduce(li, s, false);
    let inv = 1.0 / s;
    for (var k = li; k < p.len; k += WG) {
        y[base + k] = exp(x[base + k] - m) * inv;
    }
}

@compute @workgroup_size(256)
fn softmax_back_group(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) li: u32) {
    let r = row_id(wg, nwg);
    if (r >= p.rows) {
        return;
    }
    let base = r * p.len;
    var d = 0.0;
    for (var k = li; k < p.len; k += WG) {
        d += dy[base + k] * ys[base + k];
    }
    d = group_reduce(li, d, false);
    for (var k = li; k < p.len; k += WG) {
        dx[base + k] = ys[base + k] * (dy[base + k] - d);
    }
}
