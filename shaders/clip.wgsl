// Global L2 norm of a flat gradient buffer, deterministic (fixed tree order, no atomics):
// `sumsq_partial` writes one sum of squares per workgroup of CHUNK elements, `sumsq_final`
// reduces the partials in one workgroup and writes sqrt(total) to out[0].

const WG: u32 = 256u;
const PER_THREAD: u32 = 16u;
const CHUNK: u32 = WG * PER_THREAD;

struct Params {
    n: u32,  // elements (partial) or partial sums (final)
}
var<immediate> p: Params;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

var<workgroup> tree: array<f32, WG>;

fn tree_sum(li: u32, v: f32) -> f32 {
    tree[li] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (li < s) {
            tree[li] = tree[li] + tree[li + s];
        }
        workgroupBarrier();
    }
    return tree[0];
}

@compute @workgroup_size(256)
fn sumsq_partial(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) li: u32) {
    let block = wg.y * nwg.x + wg.x;
    var acc = 0.0;
    for (var j = 0u; j < PER_THREAD; j++) {
        let i = block * CHUNK + j * WG + li;
        if (i < p.n) {
            acc += x[i] * x[i];
        }
    }
    let total = tree_sum(li, acc);
    if (li == 0u) {
        out[block] = total;
    }
}

@compute @workgroup_size(256)
fn sumsq_final(@builtin(local_invocation_index) li: u32) {
    var acc = 0.0;
    for (var i = li; i < p.n; i += WG) {
        acc += x[i];
    }
    let total = tree_sum(li, acc);
    if (li == 0u) {
        out[0] = sqrt(total);
    }
}
