// Causal space-time convolution as im2col + matmul. Data are channels-last [B, T, S.., C]
// with one or two spatial axes. Time is padded only on the past (kt − 1 frames), space with
// zeros on both sides ((ks − 1)/2, "same"); strides st (time) and ss (space). Output frame t'
// reads input frames t'·st − (kt − 1) .. t'·st, so it never sees a later frame.
//   im2col: col[(b, t', s'..), (dt, ds.., c)] = x[b, t'·st + dt − (kt − 1), s'·ss + ds − pad.., c]
//   col2im: the adjoint (dx += contribution of dcol), as a gather over the taps that read each
//           input element, so every sum has a fixed order.
// Both work on a chunk of output rows [row0, row0 + rows) so the im2col matrix stays small; the
// host visits the chunks in order and col2im accumulates into dx.

// Kernel shape and strides are pipeline constants: divisions by them compile to cheap
// arithmetic (integer division by a runtime value is slow on CPU adapters).
override KT: u32 = 3u;
override KS: u32 = 3u;
override ST: u32 = 1u;
override SS: u32 = 1u;
override NS: u32 = 1u;

struct Params {
    b: u32,
    t: u32,
    s0: u32,
    s1: u32,     // 1 for one spatial axis
    c: u32,
    kt: u32,
    ks: u32,
    st: u32,
    ss: u32,
    ns: u32,     // spatial axes: 1 or 2
    to: u32,     // output frames
    o0: u32,     // output spatial sizes
    o1: u32,
    row0: u32,   // first output row of this chunk
    rows: u32,   // output rows in this chunk
}
var<immediate> p: Params;

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;

fn id(wg: vec3<u32>, nwg: vec3<u32>, li: u32) -> u32 {
    return (wg.y * nwg.x + wg.x) * 256u + li;
}

fn ks1() -> u32 {
    return select(1u, KS, NS == 2u);
}

fn pad() -> u32 {
    return (KS - 1u) / 2u;
}

// One invocation per (output row, tap): the index arithmetic (slow integer division on CPU
// adapters) is done once and the C channels are copied in a row.
@compute @workgroup_size(256)
fn im2col(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) li: u32) {
    let i = id(wg, nwg, li);
    let taps = KT * KS * ks1();
    if (i >= p.rows * taps) {
        return;
    }
    let row = p.row0 + i / taps;
    var tap = i % taps;
    let d1 = tap % ks1();
    tap = tap / ks1();
    let d0 = tap % KS;
    let dt = tap / KS;
    let x1o = row % p.o1;
    let x0o = (row / p.o1) % p.o0;
    let to = (row / (p.o1 * p.o0)) % p.to;
    let bi = row / (p.o1 * p.o0 * p.to);
    // signed input positions
    let ti = i32(to * ST + dt) - i32(KT - 1u);
    let x0 = i32(x0o * SS + d0) - i32(pad());
    var x1 = 0;
    if (NS == 2u) {
        x1 = i32(x1o * SS + d1) - i32(pad());
    }
    let out = i * p.c;
    if (ti >= 0 && x0 >= 0 && x0 < i32(p.s0) && x1 >= 0 && x1 < i32(p.s1)) {
        let base = (((bi * p.t + u32(ti)) * p.s0 + u32(x0)) * p.s1 + u32(x1)) * p.c;
        for (var c = 0u; c < p.c; c++) {
            dst[out + c] = src[base + c];
        }
    } else {
        for (var c = 0u; c < p.c; c++) {
            dst[out + c] = 0.0;
        }
    }
}

// One invocation per input position (b, t, s..): for every tap that reads it from an output row
// of this chunk, add that row's C channels.
@compute @workgroup_size(256)
fn col2im(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) li: u32) {
    let i = id(wg, nwg, li);
    if (i >= p.b * p.t * p.s0 * p.s1) {
        return;
    }
    let x1 = i % p.s1;
    let x0 = (i / p.s1) % p.s0;
    let ti = (i / (p.s1 * p.s0)) % p.t;
    let bi = i / (p.s1 * p.s0 * p.t);
    let kcols = KT * KS * ks1() * p.c;
    let base = i * p.c;
    for (var dt = 0u; dt < KT; dt++) {
        let num_t = ti + KT - 1u - dt;   // = t'·st
        if (num_t % ST != 0u || num_t / ST >= p.to) {
            continue;
        }
        let to = num_t / ST;
        for (var d0 = 0u; d0 < KS; d0++) {
            let n0 = i32(x0 + pad()) - i32(d0);
            if (n0 < 0 || u32(n0) % SS != 0u || u32(n0) / SS >= p.o0) {
                continue;
            }
            let o0 = u32(n0) / SS;
            for (var d1 = 0u; d1 < ks1(); d1++) {
                var o1 = 0u;
                if (NS == 2u) {
                    let n1 = i32(x1 + pad()) - i32(d1);
                    if (n1 < 0 || u32(n1) % SS != 0u || u32(n1) / SS >= p.o1) {
                        continue;
                    }
                    o1 = u32(n1) / SS;
                }
                let row = ((bi * p.to + to) * p.o0 + o0) * p.o1 + o1;
                if (row < p.row0 || row >= p.row0 + p.rows) {
                    continue;
                }
                let src_base = (row - p.row0) * kcols + ((dt * KS + d0) * ks1() + d1) * p.c;
                for (var c = 0u; c < p.c; c++) {
                    dst[base + c] = dst[base + c] + src[src_base + c];
                }
            }
        }
    }
}

// ---- Direct convolution (no im2col matrix), for layers with few channels ----
// Weights w[(tap·C_in + ci), co] with tap = (dt·KS + d0)·ks1 + d1, the im2col column order.
// Each invocation owns up to 4 consecutive output (conv_fwd, conv_dw) or input (conv_dx)
// channels; the last group of a channel count that is not a multiple of 4 reads clamped
// indices and writes only its valid lanes.

@group(0) @binding(2) var<storage, read> wgt: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;

override HAS_BIAS: bool = false;

struct DirectParams {
    b: u32,
    t: u32,
    s0: u32,
    s1: u32,
    cin: u32,
    cout: u32,
    to: u32,
    o0: u32,
    o1: u32,
    frames_per_split: u32,   // conv_dw: output frames (b, t') summed by one invocation
    pad_: u32,
    pad__: u32,
}
var<immediate> q: DirectParams;

fn id64(wg: vec3<u32>, nwg: vec3<u32>, li: u32) -> u32 {
    return (wg.y * nwg.x + wg.x) * 64u + li;
}

// Offsets of lanes 1..3 within a group starting at `c0` of `n` channels, clamped to n − 1.
fn lane_offsets(c0: u32, n: u32) -> vec3<u32> {
    let last = n - 1u - c0;
    return min(vec3<u32>(1u, 2u, 3u), vec3<u32>(last));
}

// One invocation per (output position, group of 4 output channels).
@compute @workgroup_size(64)
fn conv_fwd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) li: u32) {
    let i = id64(wg, nwg, li);
    let groups = (q.cout + 3u) / 4u;
    let rows = q.b * q.to * q.o0 * q.o1;
    if (i >= rows * groups) {
        return;
    }
    let row = i / groups;
    let c0 = (i % groups) * 4u;
    let off = lane_offsets(c0, q.cout);
    let x1o = row % q.o1;
    let x0o = (row / q.o1) % q.o0;
    let to = (row / (q.o1 * q.o0)) % q.to;
    let bi = row / (q.o1 * q.o0 * q.to);
    var acc = vec4<f32>(0.0);
    for (var dt = 0u; dt < KT; dt++) {
        let ti = i32(to * ST + dt) - i32(KT - 1u);
        if (ti < 0) {
            continue;
        }
        for (var d0 = 0u; d0 < KS; d0++) {
            let x0 = i32(x0o * SS + d0) - i32(pad());
            if (x0 < 0 || x0 >= i32(q.s0)) {
                continue;
            }
            for (var d1 = 0u; d1 < ks1(); d1++) {
                var x1 = 0;
                if (NS == 2u) {
                    x1 = i32(x1o * SS + d1) - i32(pad());
                    if (x1 < 0 || x1 >= i32(q.s1)) {
                        continue;
                    }
                }
                let xb = (((bi * q.t + u32(ti)) * q.s0 + u32(x0)) * q.s1 + u32(x1)) * q.cin;
                var wr = (((dt * KS + d0) * ks1() + d1) * q.cin) * q.cout + c0;
                for (var c = 0u; c < q.cin; c++) {
                    let xv = src[xb + c];
                    acc += xv * vec4<f32>(wgt[wr], wgt[wr + off.x], wgt[wr + off.y], wgt[wr + off.z]);
                    wr += q.cout;
                }
            }
        }
    }
    if (HAS_BIAS) {
        acc += vec4<f32>(bias[c0], bias[c0 + off.x], bias[c0 + off.y], bias[c0 + off.z]);
    }
    let ob = row * q.cout + c0;
    let n = min(4u, q.cout - c0);
    for (var j = 0u; j < n; j++) {
        dst[ob + j] = acc[j];
    }
}

// dx: one invocation per (input position, group of 4 input channels); gathers dy over every
// (tap, output position) that read it, in a fixed order. src = dy, dst = dx.
@compute @workgroup_size(64)
fn conv_dx(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) li: u32) {
    let i = id64(wg, nwg, li);
    let groups = (q.cin + 3u) / 4u;
    let positions = q.b * q.t * q.s0 * q.s1;
    if (i >= positions * groups) {
        return;
    }
    let pos = i / groups;
    let c0 = (i % groups) * 4u;
    let off = lane_offsets(c0, q.cin) * q.cout;
    let x1 = pos % q.s1;
    let x0 = (pos / q.s1) % q.s0;
    let ti = (pos / (q.s1 * q.s0)) % q.t;
    let bi = pos / (q.s1 * q.s0 * q.t);
    var acc = vec4<f32>(0.0);
    for (var dt = 0u; dt < KT; dt++) {
        let num_t = ti + KT - 1u - dt;   // = t'·st
        if (num_t % ST != 0u || num_t / ST >= q.to) {
            continue;
        }
        let to = num_t / ST;
        for (var d0 = 0u; d0 < KS; d0++) {
            let n0 = i32(x0 + pad()) - i32(d0);
            if (n0 < 0 || u32(n0) % SS != 0u || u32(n0) / SS >= q.o0) {
                continue;
            }
            let o0 = u32(n0) / SS;
            for (var d1 = 0u; d1 < ks1(); d1++) {
                var o1 = 0u;
                if (NS == 2u) {
                    let n1 = i32(x1 + pad()) - i32(d1);
                    if (n1 < 0 || u32(n1) % SS != 0u || u32(n1) / SS >= q.o1) {
                        continue;
                    }
                    o1 = u32(n1) / SS;
                }
                let gb = (((bi * q.to + to) * q.o0 + o0) * q.o1 + o1) * q.cout;
                let wr = (((dt * KS + d0) * ks1() + d1) * q.cin + c0) * q.cout;
                for (var co = 0u; co < q.cout; co++) {
                    let g = src[gb + co];
                    acc += g * vec4<f32>(wgt[wr + co], wgt[wr + off.x + co], wgt[wr + off.y + co], wgt[wr + off.z + co]);
                }
            }
        }
    }
    let ob = pos * q.cin + c0;
    let n = min(4u, q.cin - c0);
    for (var j = 0u; j < n; j++) {
        dst[ob + j] = acc[j];
    }
}

// dw: one invocation per (split, weight row (tap, ci), group of 4 output channels) sums
// x·dy over its split's output frames; dst = [splits, taps·C_in, C_out] partial sums, added in
// a fixed order afterwards. src = x, wgt = dy.
@compute @workgroup_size(64)
fn conv_dw(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) li: u32) {
    let i = id64(wg, nwg, li);
    let groups = (q.cout + 3u) / 4u;
    let wrows = KT * KS * ks1() * q.cin;
    let frames = q.b * q.to;
    let splits = (frames + q.frames_per_split - 1u) / q.frames_per_split;
    if (i >= splits * wrows * groups) {
        return;
    }
    let c0 = (i % groups) * 4u;
    let wrow = (i / groups) % wrows;
    let split = i / (groups * wrows);
    let off = lane_offsets(c0, q.cout);
    let ci = wrow % q.cin;
    var tap = wrow / q.cin;
    let d1 = tap % ks1();
    tap = tap / ks1();
    let d0 = tap % KS;
    let dt = tap / KS;
    var acc = vec4<f32>(0.0);
    let f_end = min(frames, (split + 1u) * q.frames_per_split);
    for (var f = split * q.frames_per_split; f < f_end; f++) {
        let to = f % q.to;
        let bi = f / q.to;
        let ti = i32(to * ST + dt) - i32(KT - 1u);
        if (ti < 0) {
            continue;
        }
        let frame_in = (bi * q.t + u32(ti)) * q.s0;
        for (var x0o = 0u; x0o < q.o0; x0o++) {
            let x0 = i32(x0o * SS + d0) - i32(pad());
            if (x0 < 0 || x0 >= i32(q.s0)) {
                continue;
            }
            for (var x1o = 0u; x1o < q.o1; x1o++) {
                var x1 = 0;
                if (NS == 2u) {
                    x1 = i32(x1o * SS + d1) - i32(pad());
                    if (x1 < 0 || x1 >= i32(q.s1)) {
                        continue;
                    }
                }
                let xv = src[((frame_in + u32(x0)) * q.s1 + u32(x1)) * q.cin + ci];
                let gb = ((f * q.o0 + x0o) * q.o1 + x1o) * q.cout + c0;
                acc += xv * vec4<f32>(wgt[gb], wgt[gb + off.x], wgt[gb + off.y], wgt[gb + off.z]);
            }
        }
    }
    let ob = (split * wrows + wrow) * q.cout + c0;
    let n = min(4u, q.cout - c0);
    for (var j = 0u; j < n; j++) {
        dst[ob + j] = acc[j];
    }
}
