// Causal space-time convolution as an implicit GEMM for adapters with subgroups of one fixed
// size, 8 to 64 lanes (the workgroup is one subgroup; written for 4 too, but SwiftShader, the
// 4-lane adapter here, takes minutes to compile it), launched by src/ops/conv_causal.rs next to
// conv_causal.wgsl. Separate file because it needs the SUBGROUP feature, which conv_causal.wgsl
// must not require.
//
// No im2col matrix is built: every lane gathers the values it needs straight from the
// channels-last tensor, tap by tap, and shares them with the other lanes through
// subgroupBroadcast (a register permute), the scheme of matmul_subgroup.wgsl: a block of 8·RB
// rows is spread over SGM = min(SG, 16) lanes, NA rows per lane, and `share16` (appended from
// shaders/parts/subgroup_share.wgsl) hands every lane all of them; the columns are split over
// the SG lanes. The index arithmetic of a tap is done once per tap, not once per element.
//
// Geometry, tap order and weights as in conv_causal.wgsl: x [B, T, S0, S1, C_in] (S1 = 1 with
// one spatial axis), y [B, To, O0, O1, C_out], w[(tap·C_in + ci), co] with
// tap = (dt·KS + d0)·KS1 + d1; time padded on the past only, space "same".
//
// Three products, each C = A·B with an inner dimension of taps × CG gathered channels:
//   conv_rows   rows = positions, columns = channels (4·CN per lane, for ≥ max(16, 2·SG) out):
//               forward y = im2col(x)·w, or with DX the input gradient dx = gather(dy)·w'
//               where gather(dy) lists, for each input position and tap, the output position
//               that read it through that tap (zero where none did) and w'[(tap, co), ci] =
//               w[(tap, ci), co]
//   conv_cols   the same products with rows = channels and columns = positions (4·CN per
//               lane), for outputs with few channels
//   conv_wgrad_rows  dw = im2col(x)ᵀ·dy: rows = (tap, input channel), columns = C_out (4·CN
//               per lane, for C_out ≥ max(16, 2·SG)), the sum over the positions of a range of `split`
//               outer rows (frames, and the first spatial axis in 2D); one partial sum per
//               workgroup z, added by the host in a fixed order
//   conv_wgrad  the same with rows = C_out and columns = (tap, 4 input channels), for few
//               output channels
// CG (gathered channels per position) must be a multiple of 4; conv_rows and conv_wgrad_rows
// also need the result's channels to be.
//
// Measured on lavapipe at 8 lanes: broadcasting the gathered operand and giving each lane columns of the
// dense one (conv_rows, conv_wgrad_rows) beats the other way round: 1.9× for the weight
// gradient of a 64-channel 3×3 convolution, 1.3× for the forward of a 16-channel one although
// half the lanes then hold no column. So the other layouts serve only results of fewer than
// max(16, 2·SG) channels (at 16 lanes the positions layout wins for 16 channels: 146 against
// 222 ms for the forward and backward of a 3×3 layer).

override KT: u32 = 3u;
override KS: u32 = 3u;
override ST: u32 = 1u;
override SS: u32 = 1u;
override NS: u32 = 1u;
override CG: u32 = 16u;
override DX: bool = false;
// vec4 column groups per lane (1 or 2) and row blocks of 8 per subgroup (1 or 2)
override CN: u32 = 2u;
override RB: u32 = 2u;
override SG: u32 = 8u;                      // lanes of a subgroup
override SGM: u32 = min(SG, 16u);           // lanes that hold distinct rows
override NA: u32 = max(1u, 8u * RB / SGM);  // rows each of them holds
override HAS_BIAS: bool = false;

// Params and the immediates `p`: shaders/parts/conv_taps.wgsl.

@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;   // the gathered tensor
@group(0) @binding(1) var<storage, read> w4: array<vec4<f32>>;    // weights
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> out4: array<vec4<f32>>;  // conv_rows
@group(0) @binding(4) var<storage, read> w1: array<f32>;          // the weights again, as scalars
@group(0) @binding(5) var<storage, read_write> out1: array<f32>;  // conv_cols, conv_wgrad
@group(0) @binding(6) var<storage, read> dy1: array<f32>;         // conv_wgrad: dy [positions, C_out]

// ks1, pad, Pos, decompose and tap_source: appended from shaders/parts/conv_taps.wgsl.

// Channels 4cq .. 4cq + 3 of gathered position s (zero for padding).
fn gather4(s: i32, cq: u32) -> vec4<f32> {
    let v = src[u32(max(s, 0)) * (CG / 4u) + cq];
    return select(vec4<f32>(0.0), v, s >= 0);
}

// Four consecutive k-rows of B restricted to 4 columns.
struct B4 {
    k0: vec4<f32>,
    k1: vec4<f32>,
    k2: vec4<f32>,
    k3: vec4<f32>,
}

fn transposed(v0: vec4<f32>, v1: vec4<f32>, v2: vec4<f32>, v3: vec4<f32>) -> B4 {
    return B4(vec4<f32>(v0.x, v1.x, v2.x, v3.x), vec4<f32>(v0.y, v1.y, v2.y, v3.y),
              vec4<f32>(v0.z, v1.z, v2.z, v3.z), vec4<f32>(v0.w, v1.w, v2.w, v3.w));
}

fn mm_row(a: vec4<f32>, b: B4, acc: vec4<f32>) -> vec4<f32> {
    return fma(vec4<f32>(a.x), b.k0, fma(vec4<f32>(a.y), b.k1, fma(vec4<f32>(a.z), b.k2, fma(vec4<f32>(a.w), b.k3, acc))));
}

// Row i of a block: acc[i] += x·b0 and, with CN = 2, acc[16 + i] += x·b1.
fn row_step(acc: ptr<function, array<vec4<f32>, 32>>, x: vec4<f32>, b0: B4, b1: B4, i: u32) {
    (*acc)[i] = mm_row(x, b0, (*acc)[i]);
    if (CN == 2u) {
        (*acc)[16u + i] = mm_row(x, b1, (*acc)[16u + i]);
    }
}

// The step shared by every kernel: for the 8·RB rows of a block, row t held by lane t % SGM in
// slot t / SGM of `a`, acc[t] += (row t)·b0 and acc[16 + t] += (row t)·b1.
fn rows(acc: ptr<function, array<vec4<f32>, 32>>, a: array<vec4<f32>, 4>, b0: B4, b1: B4) {
    let x = share16(a);
    row_step(acc, x[0], b0, b1, 0u);
    row_step(acc, x[1], b0, b1, 1u);
    row_step(acc, x[2], b0, b1, 2u);
    row_step(acc, x[3], b0, b1, 3u);
    row_step(acc, x[4], b0, b1, 4u);
    row_step(acc, x[5], b0, b1, 5u);
    row_step(acc, x[6], b0, b1, 6u);
    row_step(acc, x[7], b0, b1, 7u);
    if (RB == 2u) {
        row_step(acc, x[8], b0, b1, 8u);
        row_step(acc, x[9], b0, b1, 9u);
        row_step(acc, x[10], b0, b1, 10u);
        row_step(acc, x[11], b0, b1, 11u);
        row_step(acc, x[12], b0, b1, 12u);
        row_step(acc, x[13], b0, b1, 13u);
        row_step(acc, x[14], b0, b1, 14u);
        row_step(acc, x[15], b0, b1, 15u);
    }
}

// conv_rows: k-rows (tap, 4cq .. 4cq + 3) of the weights at result-channel group q.
fn weight_cols(tap: u32, cq: u32, q: u32) -> B4 {
    if (DX) {
        // w'[(tap, co), ci] = w[(tap·C_in + ci), co]: rows of w along co, transposed
        let r = (tap * p.n + 4u * q) * (CG / 4u) + cq;
        let s = CG / 4u;
        return transposed(w4[r], w4[r + s], w4[r + 2u * s], w4[r + 3u * s]);
    }
    let n4 = p.n / 4u;
    let k = (tap * CG + 4u * cq) * n4 + q;
    return B4(w4[k], w4[k + n4], w4[k + 2u * n4], w4[k + 3u * n4]);
}

// conv_cols: result channel `ch` at k-rows (tap, 4cq .. 4cq + 3), as one vector.
fn weight_row(tap: u32, cq: u32, ch: u32) -> vec4<f32> {
    if (DX) {
        return w4[(tap * p.n + ch) * (CG / 4u) + cq];
    }
    let k = (tap * CG + 4u * cq) * p.n + ch;
    return vec4<f32>(w1[k], w1[k + p.n], w1[k + 2u * p.n], w1[k + 3u * p.n]);
}

// The index of a subgroup's block along the long axis (y, continued in z past 65535 blocks).
fn long_block(wg: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wg.z * nwg.y + wg.y;
}

@compute @workgroup_size(SG, 1, 1)
fn conv_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
    let n4 = p.n / 4u;
    let cg4 = CG / 4u;
    let r0 = long_block(wg, nwg) * 8u * RB;
    let q0 = min(gid.x * CN, n4 - 1u);
    let q1 = min(gid.x * CN + 1u, n4 - 1u);
    // the positions whose taps this lane gathers: rows r0 + lane % SGM + j·SGM, j < NA
    let rl = r0 + lane % SGM;
    let last = p.m - 1u;
    let pos0 = decompose(min(rl, last));
    let pos1 = decompose(min(rl + SGM, last));
    let pos2 = decompose(min(rl + 2u * SGM, last));
    let pos3 = decompose(min(rl + 3u * SGM, last));
    var acc: array<vec4<f32>, 32>;
    var tap = 0u;
    for (var dt = 0u; dt < KT; dt++) {
        for (var d0 = 0u; d0 < KS; d0++) {
            for (var d1 = 0u; d1 < ks1(); d1++) {
                let s0 = tap_source(pos0, dt, d0, d1);
                var s1 = -1;
                var s2 = -1;
                var s3 = -1;
                if (NA > 1u) {
                    s1 = tap_source(pos1, dt, d0, d1);
                }
                if (NA > 2u) {
                    s2 = tap_source(pos2, dt, d0, d1);
                    s3 = tap_source(pos3, dt, d0, d1);
                }
                for (var cq = 0u; cq < cg4; cq++) {
                    let b0 = weight_cols(tap, cq, q0);
                    var b1 = b0;
                    if (CN == 2u) {
                        b1 = weight_cols(tap, cq, q1);
                    }
                    var a: array<vec4<f32>, 4>;
                    a[0] = gather4(s0, cq);
                    if (NA > 1u) {
                        a[1] = gather4(s1, cq);
                    }
                    if (NA > 2u) {
                        a[2] = gather4(s2, cq);
                        a[3] = gather4(s3, cq);
                    }
                    rows(&acc, a, b0, b1);
                }
                tap++;
            }
        }
    }
    for (var j = 0u; j < CN; j++) {
        let q = gid.x * CN + j;
        if (q < n4) {
            var bv = vec4<f32>(0.0);
            if (HAS_BIAS) {
                bv = vec4<f32>(bias[4u * q], bias[4u * q + 1u], bias[4u * q + 2u], bias[4u * q + 3u]);
            }
            for (var i = 0u; i < 8u * RB; i++) {
                let r = r0 + i;
                if (r < p.m) {
                    out4[r * n4 + q] = acc[j * 16u + i] + bv;
                }
            }
        }
    }
}

// Tap sources of four consecutive result positions.
fn sources4(q0: Pos, q1: Pos, q2: Pos, q3: Pos, dt: u32, d0: u32, d1: u32) -> vec4<i32> {
    return vec4<i32>(tap_source(q0, dt, d0, d1), tap_source(q1, dt, d0, d1), tap_source(q2, dt, d0, d1),
                     tap_source(q3, dt, d0, d1));
}

// conv_cols: k-rows (4 gathered channels) × 4 positions.
fn gather_b4(s: vec4<i32>, cq: u32) -> B4 {
    return transposed(gather4(s.x, cq), gather4(s.y, cq), gather4(s.z, cq), gather4(s.w, cq));
}

@compute @workgroup_size(SG, 1, 1)
fn conv_cols(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(subgroup_invocation_id) lane: u32) {
    let cg4 = CG / 4u;
    let r0 = wg.x * 8u * RB;
    // the channels (rows) this lane holds: r0 + lane % SGM + j·SGM, j < NA
    let cl = r0 + lane % SGM;
    let ch0 = min(cl, p.n - 1u);
    let ch1 = min(cl + SGM, p.n - 1u);
    let ch2 = min(cl + 2u * SGM, p.n - 1u);
    let ch3 = min(cl + 3u * SGM, p.n - 1u);
    // this lane's positions: CN groups of 4
    let m0 = (long_block(wg, nwg) * SG + lane) * 4u * CN;
    let last = p.m - 1u;
    let e0 = decompose(min(m0, last));
    let e1 = decompose(min(m0 + 1u, last));
    let e2 = decompose(min(m0 + 2u, last));
    let e3 = decompose(min(m0 + 3u, last));
    let e4 = decompose(min(m0 + 4u, last));
    let e5 = decompose(min(m0 + 5u, last));
    let e6 = decompose(min(m0 + 6u, last));
    let e7 = decompose(min(m0 + 7u, last));
    var acc: array<vec4<f32>, 32>;
    var tap = 0u;
    for (var dt = 0u; dt < KT; dt++) {
        for (var d0 = 0u; d0 < KS; d0++) {
            for (var d1 = 0u; d1 < ks1(); d1++) {
                let sa = sources4(e0, e1, e2, e3, dt, d0, d1);
                var sb = sa;
                if (CN == 2u) {
                    sb = sources4(e4, e5, e6, e7, dt, d0, d1);
                }
                for (var cq = 0u; cq < cg4; cq++) {
                    let b0 = gather_b4(sa, cq);
                    var b1 = b0;
                    if (CN == 2u) {
                        b1 = gather_b4(sb, cq);
                    }
                    var a: array<vec4<f32>, 4>;
                    a[0] = weight_row(tap, cq, ch0);
                    if (NA > 1u) {
                        a[1] = weight_row(tap, cq, ch1);
                    }
                    if (NA > 2u) {
                        a[2] = weight_row(tap, cq, ch2);
                        a[3] = weight_row(tap, cq, ch3);
                    }
                    rows(&acc, a, b0, b1);
                }
                tap++;
            }
        }
    }
    // acc[16j + i] holds channel r0 + i at positions m0 + 4j .. m0 + 4j + 3
    for (var i = 0u; i < 8u * RB; i++) {
        let ch = r0 + i;
        if (ch < p.n) {
            var bv = 0.0;
            if (HAS_BIAS) {
                bv = bias[ch];
            }
            for (var j = 0u; j < CN; j++) {
                for (var e = 0u; e < 4u; e++) {
                    let m = m0 + 4u * j + e;
                    if (m < p.m) {
                        out1[m * p.n + ch] = acc[j * 16u + i][e] + bv;
                    }
                }
            }
        }
    }
}

// conv_wgrad: dy at 4 positions of one outer row for channel `co`, zero past the row's end.
fn dy1_at(row: u32, i: u32, inner: u32, co: u32) -> f32 {
    let ok = i < inner;
    return select(0.0, dy1[select(row, row + i, ok) * p.n + co], ok);
}

fn dy4(row: u32, iq: u32, inner: u32, co: u32) -> vec4<f32> {
    return vec4<f32>(dy1_at(row, iq, inner, co), dy1_at(row, iq + 1u, inner, co), dy1_at(row, iq + 2u, inner, co),
                     dy1_at(row, iq + 3u, inner, co));
}

// conv_wgrad: channels 4cq .. 4cq + 3 at inner coordinate i of an outer row, for a tap whose
// outer part is `ok`/`base` and whose inner offset is `di`.
fn wgrad_at(ok: bool, base: u32, di: u32, cq: u32, i: u32, inner: u32, s_inner: u32) -> vec4<f32> {
    let xi = i32(i * SS + di) - pad();
    let valid = ok && i < inner && xi >= 0 && xi < i32(s_inner);
    return gather4(select(-1, i32(base + u32(max(xi, 0))), valid), cq);
}

// conv_wgrad: positions iq .. iq + 3 of an outer row (k-rows) × 4 input channels.
fn wgrad_b4(ok: bool, base: u32, di: u32, cq: u32, iq: u32, inner: u32, s_inner: u32) -> B4 {
    return B4(wgrad_at(ok, base, di, cq, iq, inner, s_inner), wgrad_at(ok, base, di, cq, iq + 1u, inner, s_inner),
              wgrad_at(ok, base, di, cq, iq + 2u, inner, s_inner), wgrad_at(ok, base, di, cq, iq + 3u, inner, s_inner));
}

// The outer part of a tap in outer row (bi, to, x0o): validity and the gathered index of inner
// coordinate 0.
struct Outer {
    ok: bool,
    base: u32,
    di: u32,
}

fn outer_part(tap: u32, bi: u32, to: u32, x0o: u32) -> Outer {
    let d1 = tap % ks1();
    let d0 = (tap / ks1()) % KS;
    let dt = tap / (ks1() * KS);
    let ti = i32(to * ST + dt) - i32(KT - 1u);
    if (NS == 2u) {
        let x0 = i32(x0o * SS + d0) - pad();
        let ok = ti >= 0 && x0 >= 0 && x0 < i32(p.s0);
        return Outer(ok, ((bi * p.t + u32(max(ti, 0))) * p.s0 + u32(max(x0, 0))) * p.s1, d1);
    }
    return Outer(ti >= 0, (bi * p.t + u32(max(ti, 0))) * p.s0, d0);
}

@compute @workgroup_size(SG, 1, 1)
fn conv_wgrad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>,
              @builtin(subgroup_invocation_id) lane: u32) {
    let cg4 = CG / 4u;
    let kq = KT * KS * ks1() * cg4;   // column groups: (tap, 4 input channels)
    let r0 = wg.y * 8u * RB;
    // the output channels (rows) this lane holds: r0 + lane % SGM + j·SGM, j < NA
    let cl = r0 + lane % SGM;
    let co0 = min(cl, p.n - 1u);
    let co1 = min(cl + SGM, p.n - 1u);
    let co2 = min(cl + 2u * SGM, p.n - 1u);
    let co3 = min(cl + 3u * SGM, p.n - 1u);
    let c0 = min(gid.x * CN, kq - 1u);
    let c1 = min(gid.x * CN + 1u, kq - 1u);
    let inner = select(p.o0, p.o1, NS == 2u);
    let s_inner = select(p.s0, p.s1, NS == 2u);
    let outer_rows = p.b * p.to * select(1u, p.o0, NS == 2u);
    let first = wg.z * p.split;
    let end = min(first + p.split, outer_rows);
    var acc: array<vec4<f32>, 32>;
    for (var orow = first; orow < end; orow++) {
        var f = orow;
        var x0o = 0u;
        if (NS == 2u) {
            x0o = f % p.o0;
            f = f / p.o0;
        }
        let oa = outer_part(c0 / cg4, f / p.to, f % p.to, x0o);
        let ob = outer_part(c1 / cg4, f / p.to, f % p.to, x0o);
        let row = orow * inner;
        for (var iq = 0u; iq < inner; iq += 4u) {
            let b0 = wgrad_b4(oa.ok, oa.base, oa.di, c0 % cg4, iq, inner, s_inner);
            var b1 = b0;
            if (CN == 2u) {
                b1 = wgrad_b4(ob.ok, ob.base, ob.di, c1 % cg4, iq, inner, s_inner);
            }
            var a: array<vec4<f32>, 4>;
            a[0] = dy4(row, iq, inner, co0);
            if (NA > 1u) {
                a[1] = dy4(row, iq, inner, co1);
            }
            if (NA > 2u) {
                a[2] = dy4(row, iq, inner, co2);
                a[3] = dy4(row, iq, inner, co3);
            }
            rows(&acc, a, b0, b1);
        }
    }
    // acc[16j + i] holds dw rows 4·(column group j) .. + 3 of output channel r0 + i
    let kr = 4u * kq;
    let zbase = wg.z * kr * p.n;
    for (var j = 0u; j < CN; j++) {
        let c = gid.x * CN + j;
        if (c < kq) {
            for (var i = 0u; i < 8u * RB; i++) {
                let co = r0 + i;
                if (co < p.n) {
                    for (var e = 0u; e < 4u; e++) {
                        out1[zbase + (4u * c + e) * p.n + co] = acc[j * 16u + i][e];
                    }
                }
            }
        }
    }
}

// ---- conv_wgrad_rows: the weight gradient with rows = (tap, input channel) and columns =
// output channels (4·CN per lane), for C_out a multiple of 4 and at least max(16, 2·SG): each lane gathers
// one input channel of x at 4 positions per step and broadcasts it; dy rows are read as vectors.

@group(0) @binding(7) var<storage, read> src1: array<f32>;     // x again, as scalars
@group(0) @binding(8) var<storage, read> dy4v: array<vec4<f32>>; // dy as vectors

// Input channel `ci` at inner coordinate i of an outer row (zero for padding and past the end).
fn x_at(o: Outer, ci: u32, i: u32, inner: u32, s_inner: u32) -> f32 {
    let xi = i32(i * SS + o.di) - pad();
    let valid = o.ok && i < inner && xi >= 0 && xi < i32(s_inner);
    return select(0.0, src1[(o.base + u32(max(xi, 0))) * CG + ci], valid);
}

// Input channel `ci` at inner coordinates i .. i + 3.
fn x4(o: Outer, ci: u32, i: u32, inner: u32, s_inner: u32) -> vec4<f32> {
    return vec4<f32>(x_at(o, ci, i, inner, s_inner), x_at(o, ci, i + 1u, inner, s_inner), x_at(o, ci, i + 2u, inner, s_inner),
                     x_at(o, ci, i + 3u, inner, s_inner));
}

fn dy_row(row: u32, i: u32, inner: u32, q: u32) -> vec4<f32> {
    let ok = i < inner;
    return select(vec4<f32>(0.0), dy4v[select(row, row + i, ok) * (p.n / 4u) + q], ok);
}

@compute @workgroup_size(SG, 1, 1)
fn conv_wgrad_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>,
                   @builtin(subgroup_invocation_id) lane: u32) {
    let n4 = p.n / 4u;
    let kr = KT * KS * ks1() * CG;
    let r0 = wg.y * 16u;
    // the rows (tap, input channel) this lane gathers: r0 + lane % SGM + j·SGM, j < NA
    let rl = r0 + lane % SGM;
    let ra = min(rl, kr - 1u);
    let rb = min(rl + SGM, kr - 1u);
    let rc = min(rl + 2u * SGM, kr - 1u);
    let rd = min(rl + 3u * SGM, kr - 1u);
    let q0 = min(gid.x * CN, n4 - 1u);
    let q1 = min(gid.x * CN + 1u, n4 - 1u);
    let inner = select(p.o0, p.o1, NS == 2u);
    let s_inner = select(p.s0, p.s1, NS == 2u);
    let outer_rows = p.b * p.to * select(1u, p.o0, NS == 2u);
    let first = wg.z * p.split;
    let end = min(first + p.split, outer_rows);
    var acc: array<vec4<f32>, 32>;
    for (var orow = first; orow < end; orow++) {
        var f = orow;
        var x0o = 0u;
        if (NS == 2u) {
            x0o = f % p.o0;
            f = f / p.o0;
        }
        let oa = outer_part(ra / CG, f / p.to, f % p.to, x0o);
        let ob = outer_part(rb / CG, f / p.to, f % p.to, x0o);
        let oc = outer_part(rc / CG, f / p.to, f % p.to, x0o);
        let od = outer_part(rd / CG, f / p.to, f % p.to, x0o);
        let row = orow * inner;
        for (var iq = 0u; iq < inner; iq += 4u) {
            let b0 = B4(dy_row(row, iq, inner, q0), dy_row(row, iq + 1u, inner, q0), dy_row(row, iq + 2u, inner, q0),
                        dy_row(row, iq + 3u, inner, q0));
            var b1 = b0;
            if (CN == 2u) {
                b1 = B4(dy_row(row, iq, inner, q1), dy_row(row, iq + 1u, inner, q1), dy_row(row, iq + 2u, inner, q1),
                        dy_row(row, iq + 3u, inner, q1));
            }
            var a: array<vec4<f32>, 4>;
            a[0] = x4(oa, ra % CG, iq, inner, s_inner);
            if (NA > 1u) {
                a[1] = x4(ob, rb % CG, iq, inner, s_inner);
            }
            if (NA > 2u) {
                a[2] = x4(oc, rc % CG, iq, inner, s_inner);
                a[3] = x4(od, rd % CG, iq, inner, s_inner);
            }
            rows(&acc, a, b0, b1);
        }
    }
    // acc[16j + i] holds dw row r0 + i at output channels 4·(gid.x·CN + j) .. + 3
    let zbase = wg.z * kr * n4;
    for (var j = 0u; j < CN; j++) {
        let q = gid.x * CN + j;
        if (q < n4) {
            for (var i = 0u; i < 16u; i++) {
                if (r0 + i < kr) {
                    out4[zbase + (r0 + i) * n4 + q] = acc[j * 16u + i];
                }
            }
        }
    }
}
