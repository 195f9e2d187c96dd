// Element-wise unary ops. `OP` selects the function at pipeline creation; `alpha`/`beta` are
// the op's scalar parameters. Op codes match `enma::ops::UnaryOp` (src/ops/unary.rs).

override OP: u32 = 0u;

struct Params {
    n: u32,       // elements (scalar entry) or vec4s (vec4 entry)
    alpha: f32,
    beta: f32,
}
var<immediate> p: Params;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> dy: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;

fn tanh_safe(v: f32) -> f32 {
    // tanh saturates to ±1 long before 15; clamping avoids inf/inf in exp-based lowerings.
    return tanh(clamp(v, -15.0, 15.0));
}

fn apply(v: f32) -> f32 {
    switch OP {
        case 0u: { return -v; }                                  // neg
        case 1u: { return abs(v); }                              // abs
        case 2u: { return exp(v); }                              // exp
        case 3u: { return log(v); }                              // log
        case 4u: { return sqrt(v); }                             // sqrt
        case 5u: { return inverseSqrt(v); }                      // rsqrt
        case 6u: { return 1.0 / v; }                             // recip
        case 7u: { return v * v; }                               // square
        case 8u: { return 1.0 / (1.0 + exp(-v)); }               // sigmoid
        case 9u: { return tanh_safe(v); }                        // tanh
        case 10u: { return max(v, 0.0); }                        // relu
        case 11u: { return v / (1.0 + exp(-v)); }                // silu
        case 12u: {                                              // gelu (tanh form)
            let c = 0.7978845608028654; // sqrt(2/pi)
            return 0.5 * v * (1.0 + tanh_safe(c * (v + 0.044715 * v * v * v)));
        }
        case 13u: { return sin(v); }                             // sin
        case 14u: { return cos(v); }                             // cos
        case 15u: { return p.alpha * v + p.beta; }               // affine
        case 16u: { return select(p.alpha * v, v, v >= 0.0); }   // leaky relu
        case 17u: { return select(p.alpha * (exp(v) - 1.0), v, v > 0.0); } // elu
        case 18u: { return clamp(v, p.alpha, p.beta); }          // clamp
        default: { return v; }
    }
}

fn sigmoid(v: f32) -> f32 {
    return 1.0 / (1.0 + exp(-v));
}

// d apply(v) / dv.
fn derivative(v: f32) -> f32 {
    switch OP {
        case 0u: { return -1.0; }
        case 1u: { return sign(v); }
        case 2u: { return exp(v); }
        case 3u: { return 1.0 / v; }
        case 4u: { return 0.5 * inverseSqrt(v); }
        case 5u: { return -0.5 * inverseSqrt(v) / v; }
        case 6u: { return -1.0 / (v * v); }
        case 7u: { return 2.0 * v; }
        case 8u: { let s = sigmoid(v); return s * (1.0 - s); }
        case 9u: { let t = tanh_safe(v); return 1.0 - t * t; }
        case 10u: { return select(0.0, 1.0, v > 0.0); }
        case 11u: { let s = sigmoid(v); return s * (1.0 + v * (1.0 - s)); }
        case 12u: {
            let c = 0.7978845608028654;
            let t = tanh_safe(c * (v + 0.044715 * v * v * v));
            return 0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * c * (1.0 + 3.0 * 0.044715 * v * v);
        }
        case 13u: { return cos(v); }
        case 14u: { return -sin(v); }
        case 15u: { return p.alpha; }
        case 16u: { return select(p.alpha, 1.0, v >= 0.0); }
        case 17u: { return select(p.alpha * exp(v), 1.0, v > 0.0); }
        case 18u: { return select(0.0, 1.0, v >= p.alpha && v <= p.beta); }
        default: { return 1.0; }
    }
}

fn linear_id(wg: vec3<u32>, nwg: vec3<u32>, li: u32) -> u32 {
    return (wg.y * nwg.x + wg.x) * 256u + li;
}

@compute @workgroup_size(256)
fn unary(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) li: u32) {
    let i = linear_id(wg, nwg, li);
    if (i < p.n) {
        y[i] = apply(x[i]);
    }
}

@compute @workgroup_size(256)
fn unary_vec4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) li: u32) {
    let i = linear_id(wg, nwg, li);
    if (i < p.n) {
        let v = x4[i];
        y4[i] = vec4<f32>(apply(v.x), apply(v.y), apply(v.z), apply(v.w));
    }
}

// dx = dy · f'(x).
@compute @workgroup_size(256)
fn unary_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) li: u32) {
    let i = linear_id(wg, nwg, li);
    if (i < p.n) {
        dx[i] = dy[i] * derivative(x[i]);
    }
}
