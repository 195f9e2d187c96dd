// Element-wise binary ops with NumPy broadcasting (rank <= 8). Op codes match
// `enma::ops::BinaryOp` (src/ops/binary.rs).

override OP: u32 = 0u;
override SIDE: u32 = 0u;   // binary_grad: 0 = gradient for a, 1 = for b
override SA: u32 = 0u;     // binary_2d4: a on the [R, K] output: 0 full, 1 a column [R], 2 a row
                           // [K], 3 a row per batch of p.pad1 rows ([B, K] on [B, M, K])
override SB: u32 = 0u;

struct Params {
    n: u32,                       // output elements (or vec4s for `binary_vec4`)
    rank: u32,
    pad0: u32,
    pad1: u32,
    shape: array<vec4<u32>, 2>,   // output shape, dims 0..rank
    sa: array<vec4<u32>, 2>,      // element strides of a per output dim (0 = broadcast)
    sb: array<vec4<u32>, 2>,
}
var<immediate> p: Params;

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> b4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> y4: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read> dy: array<f32>;
@group(0) @binding(7) var<storage, read> c4: array<vec4<f32>>;

fn op(u: f32, v: f32) -> f32 {
    switch OP {
        case 0u: { return u + v; }
        case 1u: { return u - v; }
        case 2u: { return u * v; }
        case 3u: { return u / v; }
        case 4u: { return max(u, v); }
        case 5u: { return min(u, v); }
        case 6u: { return pow(u, v); }
        default: { return u; }
    }
}

fn op4(u: vec4<f32>, v: vec4<f32>) -> vec4<f32> {
    switch OP {
        case 0u: { return u + v; }
        case 1u: { return u - v; }
        case 2u: { return u * v; }
        case 3u: { return u / v; }
        case 4u: { return max(u, v); }
        case 5u: { return min(u, v); }
        case 6u: { return pow(u, v); }
        default: { return u; }
    }
}

fn linear_id(wg: vec3<u32>, nwg: vec3<u32>, li: u32) -> u32 {
    return (wg.y * nwg.x + wg.x) * 256u + li;
}

// Same shapes, contiguous, n % 4 == 0.
@compute @workgroup_size(256)
fn binary_vec4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) li: u32) {
    let i = linear_id(wg, nwg, li);
    if (i < p.n) {
        y4[i] = op4(a4[i], b4[i]);
    }
}

// Operands on an [R, K] output (K % 4 == 0, p.pad0 = K / 4), each full, a column [R] (one
// value per row: a mask), a row [K] or a row per batch of p.pad1 rows (a [B, 1, K] gate on
// [B, M, K]): the broadcasts that collapse to two or three dimensions, four outputs per
// invocation and one division per four, where binary_bcast walks every dimension of every
// element. a and b are bound twice (scalar and vec4 views).
fn a_at(i: u32, r: u32, k4: u32) -> vec4<f32> {
    switch SA {
        case 1u: { return vec4<f32>(a[r]); }
        case 2u: { return a4[k4]; }
        case 3u: { return a4[(r / p.pad1) * p.pad0 + k4]; }
        default: { return a4[i]; }
    }
}

fn b_at(i: u32, r: u32, k4: u32) -> vec4<f32> {
    switch SB {
        case 1u: { return vec4<f32>(b[r]); }
        case 2u: { return b4[k4]; }
        case 3u: { return b4[(r / p.pad1) * p.pad0 + k4]; }
        default: { return b4[i]; }
    }
}

@compute @workgroup_size(256)
fn binary_2d4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) li: u32) {
    let i = linear_id(wg, nwg, li);
    if (i < p.n) {
        let r = i / p.pad0;
        let k4 = i - r * p.pad0;
        y4[i] = op4(a_at(i, r, k4), b_at(i, r, k4));
    }
}

// adaLN modulation in one pass, same shapes, contiguous, n % 4 == 0: y = a·(1 + b) + c.
@compute @workgroup_size(256)
fn modulate_vec4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) li: u32) {
    let i = linear_id(wg, nwg, li);
    if (i < p.n) {
        y4[i] = fma(a4[i], b4[i], a4[i]) + c4[i];
    }
}

// Its gradient for a: y = a·(1 + b) (a = dy, b = the scale).
@compute @workgroup_size(256)
fn scale1p_vec4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) li: u32) {
    let i = linear_id(wg, nwg, li);
    if (i < p.n) {
        y4[i] = fma(a4[i], b4[i], a4[i]);
    }
}

// One operand full, the other a vector repeated along the rows (a bias, an additive mask): y
// [R, K] = op(a, b) with a [R, K] and b [K] (SIDE 0), or a [K] and b [R, K] (SIDE 1); K % 4 == 0
// and p.pad0 = K / 4. One division per 4 elements instead of one per element and axis.
@compute @workgroup_size(256)
fn binary_rowvec(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) li: u32) {
    let i = linear_id(wg, nwg, li);
    if (i < p.n) {
        let j = i % p.pad0;
        if (SIDE == 0u) {
            y4[i] = op4(a4[i], b4[j]);
        } else {
            y4[i] = op4(a4[j], b4[i]);
        }
    }
}

// Offsets of a and b for output element i (broadcast strides).
fn offsets(i: u32) -> vec2<u32> {
    var rem = i;
    var ia = 0u;
    var ib = 0u;
    for (var d = i32(p.rank) - 1; d >= 0; d--) {
        let du = u32(d);
        let extent = p.shape[du / 4u][du % 4u];
        let coord = rem % extent;
        rem = rem / extent;
        ia += coord * p.sa[du / 4u][du % 4u];
        ib += coord * p.sb[du / 4u][du % 4u];
    }
    return vec2<u32>(ia, ib);
}

// ∂op(u, v)/∂u (SIDE 0) or ∂/∂v (SIDE 1). Ties of max/min go to a.
fn partial(u: f32, v: f32) -> f32 {
    if (SIDE == 0u) {
        switch OP {
            case 0u, 1u: { return 1.0; }
            case 2u: { return v; }
            case 3u: { return 1.0 / v; }
            case 4u: { return select(0.0, 1.0, u >= v); }
            case 5u: { return select(0.0, 1.0, u <= v); }
            case 6u: { return v * pow(u, v - 1.0); }
            default: { return 0.0; }
        }
    }
    switch OP {
        case 0u: { return 1.0; }
        case 1u: { return -1.0; }
        case 2u: { return u; }
        case 3u: { return -u / (v * v); }
        case 4u: { return select(1.0, 0.0, u >= v); }
        case 5u: { return select(1.0, 0.0, u <= v); }
        case 6u: { return pow(u, v) * log(u); }
        default: { return 0.0; }
    }
}

// y = dy · ∂op/∂(side), in the output's (broadcast) shape; the host sums it down to the side's shape.
@compute @workgroup_size(256)
fn binary_grad(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) li: u32) {
    let i = linear_id(wg, nwg, li);
    if (i >= p.n) {
        return;
    }
    let o = offsets(i);
    y[i] = dy[i] * partial(a[o.x], b[o.y]);
}

@compute @workgroup_size(256)
fn binary_bcast(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) li: u32) {
    let i = linear_id(wg, nwg, li);
    if (i >= p.n) {
        return;
    }
    let o = offsets(i);
    y[i] = op(a[o.x], b[o.y]);
}
