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

// ---- The same for H % 4 == 0, four columns per invocation as vector loads (on CPU adapters
// every lane's scalar load is a separate access). `p.n` still counts elements.

@group(0) @binding(4) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> y4: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read> dy4: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> dx4: array<vec4<f32>>;

fn sigmoid4(v: vec4<f32>) -> vec4<f32> {
    return 1.0 / (1.0 + exp(-v));
}

@compute @workgroup_size(256)
fn swiglu_forward4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) li: u32) {
    let i = id(wg, nwg, li);
    let h4 = p.h / 4u;
    if (i >= p.n / 4u) {
        return;
    }
    let ia = (i / h4) * 2u * h4 + i % h4;
    let a = x4[ia];
    y4[i] = a * sigmoid4(a) * x4[ia + h4];
}

@compute @workgroup_size(256)
fn swiglu_backward4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) li: u32) {
    let i = id(wg, nwg, li);
    let h4 = p.h / 4u;
    if (i >= p.n / 4u) {
        return;
    }
    let ia = (i / h4) * 2u * h4 + i % h4;
    let a = x4[ia];
    let b = x4[ia + h4];
    let s = sigmoid4(a);
    let g = dy4[i];
    dx4[ia] = g * b * s * (1.0 + a * (1.0 - s));
    dx4[ia + h4] = g * a * s;
}
