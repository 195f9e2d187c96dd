// Row gather and deterministic row scatter-add on [rows, C] views.
//   gather_rows:  y[i, c] = x[idx[i], c]
//   scatter_rows: y[r, c] = Σ_{j in off[r] .. off[r+1]} src[items[j], c]
// The scatter reads a CSR inverse of the index (built on the host when the index is made), so
// every sum has a fixed order and no atomics are needed.

struct Params {
    n: u32,      // output elements
    c: u32,      // columns
}
var<immediate> p: Params;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> idx: array<u32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read> off: array<u32>;
@group(0) @binding(4) var<storage, read> items: array<u32>;

fn id(wg: vec3<u32>, nwg: vec3<u32>, li: u32) -> u32 {
    return (wg.y * nwg.x + wg.x) * 256u + li;
}

@compute @workgroup_size(256)
fn gather_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) li: u32) {
    let i = id(wg, nwg, li);
    if (i >= p.n) {
        return;
    }
    let r = i / p.c;
    let c = i % p.c;
    y[i] = x[idx[r] * p.c + c];
}

@compute @workgroup_size(256)
fn scatter_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) li: u32) {
    let i = id(wg, nwg, li);
    if (i >= p.n) {
        return;
    }
    let r = i / p.c;
    let c = i % p.c;
    var acc = 0.0;
    for (var j = off[r]; j < off[r + 1u]; j++) {
        acc += x[items[j] * p.c + c];
    }
    y[i] = acc;
}
