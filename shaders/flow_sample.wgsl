// Fused flow-matching sampler: the whole midpoint ODE of the adaLN MLP head (src/model/flow.rs)
// for a tile of T tokens in one workgroup, one dispatch for all 2·steps head evaluations.
// Activations live in workgroup memory; the head's weights are read from the parameter store's
// flat buffer (offsets in `offs`, 16-byte aligned), each weight once per tile per evaluation.
// Everything moves as vec4s: an invocation owns a quad of output channels and walks the inputs
// four at a time, so 4 weight loads (a 4 × 4 block) and T activation loads feed 16·T
// multiply-adds.
//
// Per evaluation (condition y = SiLU(cy + temb[row])):
//   x = z·W_in + b_in
//   per block: h = LN(x)(1 + scale(y)) + shift(y); x += gate(y) ⊙ fc2(SiLU(fc1(h)))
//   v = out(LN(x)(1 + scale_f(y)) + shift_f(y))
// Midpoint step: z_mid = z + h/2·v(z, r); z += h·v(z_mid, r + h/2).

struct Params {
    n: u32,          // tokens
    dim: u32,        // token dimension D
    width: u32,      // head width W
    depth: u32,      // residual blocks
    steps: u32,      // ODE steps
    temperature: f32,
    eps: f32,        // LayerNorm epsilon
}
var<immediate> p: Params;

@group(0) @binding(0) var<storage, read> w: array<vec4<f32>>; // the parameter store's flat buffer
@group(0) @binding(1) var<storage, read> offs: array<u32>;     // weight offsets in floats (flow_sample.rs)
@group(0) @binding(2) var<storage, read> cy: array<f32>;       // [N, W] condition projections
@group(0) @binding(3) var<storage, read> temb: array<f32>;     // [2·steps, W] time embeddings
@group(0) @binding(4) var<storage, read> noise: array<f32>;    // [N, D] standard normal draws
@group(0) @binding(5) var<storage, read_write> out: array<f32>; // [N, D] samples

override T: u32 = 4u;           // tokens per workgroup (≤ TMAX, T·W ≤ 4·ACT4, T·D ≤ ZCAP)
override WG: u32 = 32u;         // invocations per workgroup
const TMAX: u32 = 8u;
const ACT4: u32 = 192u; // T·W/4

const ZCAP: u32 = 256u;

var<workgroup> ys: array<vec4<f32>, ACT4>; // [T, W/4]: activations as channel quads
var<workgroup> xs: array<vec4<f32>, ACT4>;
var<workgroup> hs: array<vec4<f32>, ACT4>;
var<workgroup> us: array<vec4<f32>, ACT4>;
var<workgroup> zs: array<f32, ZCAP>;
var<workgroup> zm: array<f32, ZCAP>;
var<workgroup> stats: array<f32, 16>; // mean, 1/std per token

fn silu(v: vec4<f32>) -> vec4<f32> {
    return v / (1.0 + exp(-v));
}

// Offset `i` of the table, in vec4s.
fn o4(i: u32) -> u32 {
    return offs[i] >> 2u;
}

// The 4 × 4 block of weight rows 4·k4..4·k4 + 3, channel quad q, of a matrix at vec4 offset m
// with W4 quads per row: M·a = Σ_i a[i]·row(4·k4 + i).
fn block(m: u32, k4: u32, W4: u32, q: u32) -> mat4x4<f32> {
    let r = m + 4u * k4 * W4 + q;
    return mat4x4<f32>(w[r], w[r + W4], w[r + 2u * W4], w[r + 3u * W4]);
}

// Mean and 1/std of each token's x (one invocation per token).
fn layer_stats(lid: u32) {
    if (lid < T) {
        let W4 = p.width / 4u;
        var s = vec4(0.0);
        for (var k = 0u; k < W4; k++) { s += xs[lid * W4 + k]; }
        let mean = (s.x + s.y + s.z + s.w) / f32(p.width);
        var q = vec4(0.0);
        for (var k = 0u; k < W4; k++) {
            let d = xs[lid * W4 + k] - mean;
            q += d * d;
        }
        stats[2u * lid] = mean;
        stats[2u * lid + 1u] = inverseSqrt((q.x + q.y + q.z + q.w) / f32(p.width) + p.eps);
    }
}

// hs = LN(xs)·(1 + scale(ys)) + shift(ys); table entries o.. = shift w, b, scale w, b.
fn modulate(lid: u32, o: u32) {
    let W4 = p.width / 4u;
    let sw = o4(o);
    let cw = o4(o + 2u);
    for (var q = lid; q < W4; q += WG) {
        var sh: array<vec4<f32>, TMAX>;
        var sc: array<vec4<f32>, TMAX>;
        for (var t = 0u; t < T; t++) { sh[t] = w[o4(o + 1u) + q]; sc[t] = w[o4(o + 3u) + q]; }
        for (var k4 = 0u; k4 < W4; k4++) {
            let a = block(sw, k4, W4, q);
            let b = block(cw, k4, W4, q);
            for (var t = 0u; t < T; t++) {
                let yv = ys[t * W4 + k4];
                sh[t] += a * yv;
                sc[t] += b * yv;
            }
        }
        for (var t = 0u; t < T; t++) {
            let i = t * W4 + q;
            hs[i] = (xs[i] - stats[2u * t]) * stats[2u * t + 1u] * (1.0 + sc[t]) + sh[t];
        }
    }
}

// One evaluation of the head at the points in zs (mid = false) or zm (mid = true), embedding
// row `row`. Returns with hs = the modulated final features; the caller applies `out`.
fn features(lid: u32, t0: u32, mid: bool, row: u32) {
    let W4 = p.width / 4u;
    let D = p.dim;
    for (var i = lid; i < T * W4; i += WG) {
        let t = i / W4;
        let j = 4u * (i % W4);
        let c = min(t0 + t, p.n - 1u) * p.width + j;
        let e = row * p.width + j;
        ys[i] = silu(vec4(cy[c], cy[c + 1u], cy[c + 2u], cy[c + 3u]) + vec4(temb[e], temb[e + 1u], temb[e + 2u], temb[e + 3u]));
    }
    // input layer (D rows)
    let iw = o4(0u);
    for (var q = lid; q < W4; q += WG) {
        var acc: array<vec4<f32>, TMAX>;
        for (var t = 0u; t < T; t++) { acc[t] = w[o4(1u) + q]; }
        for (var k = 0u; k < D; k++) {
            let a = w[iw + k * W4 + q];
            for (var t = 0u; t < T; t++) {
                acc[t] += select(zs[t * D + k], zm[t * D + k], mid) * a;
            }
        }
        for (var t = 0u; t < T; t++) { xs[t * W4 + q] = acc[t]; }
    }
    workgroupBarrier();
    for (var b = 0u; b < p.depth; b++) {
        let o = 8u + 10u * b;
        layer_stats(lid);
        workgroupBarrier();
        modulate(lid, o);
        workgroupBarrier();
        // fc1 + SiLU
        let f1w = o4(o + 6u);
        for (var q = lid; q < W4; q += WG) {
            var acc: array<vec4<f32>, TMAX>;
            for (var t = 0u; t < T; t++) { acc[t] = w[o4(o + 7u) + q]; }
            for (var k4 = 0u; k4 < W4; k4++) {
                let a = block(f1w, k4, W4, q);
                for (var t = 0u; t < T; t++) { acc[t] += a * hs[t * W4 + k4]; }
            }
            for (var t = 0u; t < T; t++) { us[t * W4 + q] = silu(acc[t]); }
        }
        workgroupBarrier();
        // x += gate(y) ⊙ fc2(u)
        let gw = o4(o + 4u);
        let f2w = o4(o + 8u);
        for (var q = lid; q < W4; q += WG) {
            var g: array<vec4<f32>, TMAX>;
            var acc: array<vec4<f32>, TMAX>;
            for (var t = 0u; t < T; t++) { g[t] = w[o4(o + 5u) + q]; acc[t] = w[o4(o + 9u) + q]; }
            for (var k4 = 0u; k4 < W4; k4++) {
                let a = block(gw, k4, W4, q);
                let c = block(f2w, k4, W4, q);
                for (var t = 0u; t < T; t++) {
                    g[t] += a * ys[t * W4 + k4];
                    acc[t] += c * us[t * W4 + k4];
                }
            }
            for (var t = 0u; t < T; t++) { xs[t * W4 + q] += g[t] * acc[t]; }
        }
        workgroupBarrier();
    }
    layer_stats(lid);
    workgroupBarrier();
    modulate(lid, 2u);
    workgroupBarrier();
}

// v for this invocation's (token, channel quad) pairs, then the midpoint update.
fn velocity_update(lid: u32, mid: bool, h: f32) {
    let W4 = p.width / 4u;
    let D = p.dim;
    let D4 = D / 4u;
    let ow = o4(6u);
    for (var i = lid; i < T * D4; i += WG) {
        let t = i / D4;
        let q = i % D4;
        var v = w[o4(7u) + q];
        for (var k4 = 0u; k4 < W4; k4++) { v += block(ow, k4, D4, q) * hs[t * W4 + k4]; }
        for (var c = 0u; c < 4u; c++) {
            let e = t * D + 4u * q + c;
            if (mid) {
                zs[e] += h * v[c];
            } else {
                zm[e] = zs[e] + 0.5 * h * v[c];
            }
        }
    }
    workgroupBarrier();
}

@compute @workgroup_size(WG)
fn sample(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let t0 = wid.x * T;
    let D = p.dim;
    for (var i = lid; i < T * D; i += WG) {
        let tok = t0 + i / D;
        zs[i] = select(0.0, p.temperature * noise[min(tok, p.n - 1u) * D + i % D], tok < p.n);
    }
    workgroupBarrier();
    let h = 1.0 / f32(p.steps);
    for (var s = 0u; s < p.steps; s++) {
        features(lid, t0, false, 2u * s);
        velocity_update(lid, false, h);
        features(lid, t0, true, 2u * s + 1u);
        velocity_update(lid, true, h);
    }
    for (var i = lid; i < T * D; i += WG) {
        let tok = t0 + i / D;
        if (tok < p.n) { out[tok * D + i % D] = zs[i]; }
    }
}
