// AdamW over every parameter of a store in one dispatch. The parameters, their gradients and
// the moments are flat buffers with the same layout; `decay` holds one flag per 64-element
// block (every parameter starts on a block boundary). The gradient is scaled by the global-norm
// clip factor read from `norm[0]` (written by clip.wgsl in the same submission).

struct Params {
    n: u32,          // elements in use
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    bc1: f32,        // 1 - beta1^t
    bc2: f32,        // 1 - beta2^t
    max_norm: f32,   // <= 0: no clipping
}
var<immediate> p: Params;

@group(0) @binding(0) var<storage, read_write> param: array<f32>;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
@group(0) @binding(4) var<storage, read> decay: array<u32>;
@group(0) @binding(5) var<storage, read> norm: array<f32>;

@compute @workgroup_size(256)
fn adamw(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) li: u32) {
    let i = (wg.y * nwg.x + wg.x) * 256u + li;
    if (i >= p.n) {
        return;
    }
    var scale = 1.0;
    if (p.max_norm > 0.0) {
        scale = min(1.0, p.max_norm / (norm[0] + 1e-6));
    }
    let g = grad[i] * scale;
    let mi = p.beta1 * m[i] + (1.0 - p.beta1) * g;
    let vi = p.beta2 * v[i] + (1.0 - p.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    let update = (mi / p.bc1) / (sqrt(vi / p.bc2) + p.eps);
    let wd = select(0.0, p.weight_decay, decay[i / 64u] != 0u);
    param[i] = param[i] - p.lr * (update + wd * param[i]);
}
