// SwiGLU on a [rows, 2H] view: y = silu(a) ⊙ b with a = x[:, :H], b = x[:, H:]. Backward:
// da = dy ⊙ b ⊙ silu'(a), db = dy ⊙ silu(a).

struct Params {
    n: u32,   // rows · H
    h: u32,
}
var<immediate> p: Params;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

fn id(wg: vec3<u32>, nwg: vec3<u32>, li: u32) -> u32 {
    return (wg.y * nwg.x + wg.x) * 256u + li;
}

fn sigmoid(v: f32) -> f32 {
    return 1.0 / (1.0 + exp(-v));
}

@compute @workgroup_size(256)
fn swiglu_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) li: u32) {
    let i = id(wg, nwg, li);
    if (i >= p.n) {
        return;
    }
    let r = i / p.h;
    let j = i % p.h;
    let a = x[r * 2u * p.h + j];
    let b = x[r * 2u * p.h + p.h + j];
    y[i] = a * sigmoid(a) * b;
}

@compute @workgroup_size(256)
fn swiglu_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) li: u32) {
    let i = id(wg, nwg, li);
    if (i >= p.n) {
        return;
    }
    let r = i / p.h;
    let j = i % p.h;
    let ia = r * 2u * p.h + j;
    let a = x[ia];
    let b = x[ia + p.h];
    let s = sigmoid(a);
    dx[ia] = dy[i] * b * s * (1.0 + a * (1.0 - s));
    dx[ia + p.h] = dy[i] * a * s;
}
