
// ---- shaders/parts/conv_taps.wgsl, appended by src/gpu/kernels.rs to the implicit-GEMM
// convolutions (conv_causal_subgroup.wgsl, conv_causal_tiled.wgsl): their immediates and where
// each tap of a result position reads. They define the overrides KT, KS, ST, SS, NS (kernel,
// strides, spatial axes) and DX (the input-gradient product).

struct Params {
    b: u32,
    t: u32,       // the input grid
    s0: u32,
    s1: u32,      // 1 with one spatial axis
    to: u32,      // the output grid
    o0: u32,
    o1: u32,
    n: u32,       // columns of the product's result: C_out (forward, weight gradient), C_in (DX)
    m: u32,       // positions: the result's rows (forward, DX), the summed range (tiled WGRAD)
    split: u32,   // weight gradients: outer rows (subgroup) or positions (tiled) per workgroup z
    pad0: u32,
    pad1: u32,
}
var<immediate> p: Params;

fn ks1() -> u32 {
    return select(1u, KS, NS == 2u);
}

fn pad() -> i32 {
    return i32((KS - 1u) / 2u);
}

// A position of the product's result: batch, frame and spatial indices.
struct Pos {
    bi: u32,
    f: u32,
    a0: u32,
    a1: u32,
}

// Row r of the result grid: the convolution's output (forward) or input (DX).
fn decompose(r: u32) -> Pos {
    let g1 = select(p.o1, p.s1, DX);
    let g0 = select(p.o0, p.s0, DX);
    let gt = select(p.to, p.t, DX);
    return Pos(r / (g1 * g0 * gt), (r / (g1 * g0)) % gt, (r / g1) % g0, r % g1);
}

// The position (in units of CG channels) that tap (dt, d0, d1) of `q` reads in the gathered
// tensor, or −1 where it reads padding.
fn tap_source(q: Pos, dt: u32, d0: u32, d1: u32) -> i32 {
    if (!DX) {
        let ti = i32(q.f * ST + dt) - i32(KT - 1u);
        let x0 = i32(q.a0 * SS + d0) - pad();
        var x1 = 0;
        if (NS == 2u) {
            x1 = i32(q.a1 * SS + d1) - pad();
        }
        let ok = ti >= 0 && x0 >= 0 && x0 < i32(p.s0) && x1 >= 0 && x1 < i32(p.s1);
        let idx = ((q.bi * p.t + u32(max(ti, 0))) * p.s0 + u32(max(x0, 0))) * p.s1 + u32(max(x1, 0));
        return select(-1, i32(idx), ok);
    }
    // the output position whose tap (dt, d0, d1) reads input position q
    let nt = q.f + KT - 1u - dt;
    let n0 = i32(q.a0) + pad() - i32(d0);
    var n1 = 0;
    if (NS == 2u) {
        n1 = i32(q.a1) + pad() - i32(d1);
    }
    let ok = nt % ST == 0u && nt / ST < p.to && n0 >= 0 && u32(n0) % SS == 0u && u32(n0) / SS < p.o0
        && n1 >= 0 && u32(n1) % SS == 0u && u32(n1) / SS < p.o1;
    let idx = ((q.bi * p.to + nt / ST) * p.o0 + u32(max(n0, 0)) / SS) * p.o1 + u32(max(n1, 0)) / SS;
    return select(-1, i32(idx), ok);
}
