// RMSNorm and LayerNorm over the last axis of a [rows, C] view, one invocation per row.
//   RMSNorm:   y = x · r ⊙ γ,            r = 1 / sqrt(mean(x²) + eps)
//   LayerNorm: y = (x − μ) · r ⊙ γ + β,  r = 1 / sqrt(var(x) + eps)
// Forward saves (μ, r) per row in `stats`. Backward (x̂ = normalised x, g = dy ⊙ γ):
//   RMSNorm:   dx = r · (g − x̂ · mean(g ⊙ x̂))
//   LayerNorm: dx = r · (g − mean(g) − x̂ · mean(g ⊙ x̂))
// and writes dy ⊙ x̂ per element to `dgx`, which the host sums over rows for dγ.

override LAYER: bool = false;   // LayerNorm (true) or RMSNorm (false)
override AFFINE: bool = true;   // with γ (and β for LayerNorm)

struct Params {
    rows: u32,
    c: u32,
    eps: f32,
}
var<immediate> p: Params;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> gamma: array<f32>;
@group(0) @binding(2) var<storage, read> beta: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read_write> stats: array<f32>;
@group(0) @binding(5) var<storage, read> stats_in: array<f32>;
@group(0) @binding(6) var<storage, read> dy: array<f32>;
@group(0) @binding(7) var<storage, read_write> dx: array<f32>;
@group(0) @binding(8) var<storage, read_write> dgx: array<f32>;

fn row(wg: vec3<u32>, nwg: vec3<u32>, li: u32) -> u32 {
    return (wg.y * nwg.x + wg.x) * 256u + li;
}

fn g_at(k: u32) -> f32 {
    if (AFFINE) {
        return gamma[k];
    }
    return 1.0;
}

@compute @workgroup_size(256)
fn norm_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) li: u32) {
    let r = row(wg, nwg, li);
    if (r >= p.rows) {
        return;
    }
    let base = r * p.c;
    var mu = 0.0;
    if (LAYER) {
        for (var k = 0u; k < p.c; k++) {
            mu += x[base + k];
        }
        mu = mu / f32(p.c);
    }
    var ss = 0.0;
    for (var k = 0u; k < p.c; k++) {
        let d = x[base + k] - mu;
        ss += d * d;
    }
    let rs = inverseSqrt(ss / f32(p.c) + p.eps);
    stats[2u * r] = mu;
    stats[2u * r + 1u] = rs;
    for (var k = 0u; k < p.c; k++) {
        var v = (x[base + k] - mu) * rs * g_at(k);
        if (LAYER && AFFINE) {
            v += beta[k];
        }
        y[base + k] = v;
    }
}

@compute @workgroup_size(256)
fn norm_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) li: u32) {
    let r = row(wg, nwg, li);
    if (r >= p.rows) {
        return;
    }
    let base = r * p.c;
    let mu = stats_in[2u * r];
    let rs = stats_in[2u * r + 1u];
    var mean_g = 0.0;
    var mean_gx = 0.0;
    for (var k = 0u; k < p.c; k++) {
        let xh = (x[base + k] - mu) * rs;
        let g = dy[base + k] * g_at(k);
        mean_g += g;
        mean_gx += g * xh;
    }
    mean_g = mean_g / f32(p.c);
    mean_gx = mean_gx / f32(p.c);
    if (!LAYER) {
        mean_g = 0.0;
    }
    for (var k = 0u; k < p.c; k++) {
        let xh = (x[base + k] - mu) * rs;
        let g = dy[base + k] * g_at(k);
        dx[base + k] = rs * (g - mean_g - xh * mean_gx);
        if (AFFINE) {
            dgx[base + k] = dy[base + k] * xh;
        }
    }
}

// ---- The same for C % 4 == 0, four channels per vector load (on CPU adapters every lane's
// scalar load is a separate access: a quarter of them). Sums run in four lanes of a vector,
// added at the end.

@group(0) @binding(9) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(10) var<storage, read> gamma4: array<vec4<f32>>;
@group(0) @binding(11) var<storage, read> beta4: array<vec4<f32>>;
@group(0) @binding(12) var<storage, read_write> y4: array<vec4<f32>>;
@group(0) @binding(13) var<storage, read> dy4: array<vec4<f32>>;
@group(0) @binding(14) var<storage, read_write> dx4: array<vec4<f32>>;
@group(0) @binding(15) var<storage, read_write> dgx4: array<vec4<f32>>;

fn g4_at(k: u32) -> vec4<f32> {
    if (AFFINE) {
        return gamma4[k];
    }
    return vec4<f32>(1.0);
}

fn hsum(v: vec4<f32>) -> f32 {
    return (v.x + v.y) + (v.z + v.w);
}

@compute @workgroup_size(256)
fn norm_forward4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) li: u32) {
    let r = row(wg, nwg, li);
    if (r >= p.rows) {
        return;
    }
    let c4 = p.c / 4u;
    let base = r * c4;
    var mu = 0.0;
    if (LAYER) {
        var s = vec4<f32>(0.0);
        for (var k = 0u; k < c4; k++) {
            s += x4[base + k];
        }
        mu = hsum(s) / f32(p.c);
    }
    var ss = vec4<f32>(0.0);
    for (var k = 0u; k < c4; k++) {
        let d = x4[base + k] - vec4<f32>(mu);
        ss += d * d;
    }
    let rs = inverseSqrt(hsum(ss) / f32(p.c) + p.eps);
    stats[2u * r] = mu;
    stats[2u * r + 1u] = rs;
    for (var k = 0u; k < c4; k++) {
        var v = (x4[base + k] - vec4<f32>(mu)) * rs * g4_at(k);
        if (LAYER && AFFINE) {
            v += beta4[k];
        }
        y4[base + k] = v;
    }
}

@compute @workgroup_size(256)
fn norm_backward4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) li: u32) {
    let r = row(wg, nwg, li);
    if (r >= p.rows) {
        return;
    }
    let c4 = p.c / 4u;
    let base = r * c4;
    let mu = stats_in[2u * r];
    let rs = stats_in[2u * r + 1u];
    var sg = vec4<f32>(0.0);
    var sgx = vec4<f32>(0.0);
    for (var k = 0u; k < c4; k++) {
        let xh = (x4[base + k] - vec4<f32>(mu)) * rs;
        let g = dy4[base + k] * g4_at(k);
        sg += g;
        sgx += g * xh;
    }
    var mean_g = hsum(sg) / f32(p.c);
    let mean_gx = hsum(sgx) / f32(p.c);
    if (!LAYER) {
        mean_g = 0.0;
    }
    for (var k = 0u; k < c4; k++) {
        let xh = (x4[base + k] - vec4<f32>(mu)) * rs;
        let d = dy4[base + k];
        dx4[base + k] = rs * (d * g4_at(k) - vec4<f32>(mean_g) - xh * mean_gx);
        if (AFFINE) {
            dgx4[base + k] = d * xh;
        }
    }
}
