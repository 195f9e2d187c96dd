// Flash attention (FlashAttention-2 style): o_i = Σ_j softmax_j(scale · q_i·k_j) v_j over the
// keys query i may see, computed tile by tile with an online softmax; the log-sum-exp of every
// row is saved for the backward, and the Nq×Nk score matrix never exists in memory.
//
// Layouts: q, o, dO [BH, ·, DH] with `q_stride` elements between (batch·head) slices; k, v
// [BH, ·, DH] with `k_stride` between slices (a KV cache of capacity C has k_stride = C·DH).
// Or token-major, [B, ·, H, DH] with `q_stride` / `k_stride` between batches: see
// shaders/parts/flash_rows.wgsl (appended), which defines the row stride RS and slice_base.
// Keys visible to query i (position i + q_off in the key sequence) of batch b:
//   j < lens[b]                                          (key padding)
//   and, when MASK = 1 (block-causal), j / block ≤ (i + q_off) / block
//                                         (every token of its own frame and of earlier frames)
// stats = [lse (BH·Nq) | Δ (BH·Nq)], Δ_i = dO_i · o_i. A query that sees no key gets o = 0
// and lse = +∞, so its backward contributions vanish.
//
// Kernels: `forward` (one invocation per query, a workgroup per tile of 64 queries, key/value
// tiles staged in workgroup memory), `delta`, `backward_dq` (per query) and `backward_dkv`
// (per key, query tiles staged): no atomics, every sum in a fixed order.

override DH: u32 = 16u;
override MASK: u32 = 0u;

const BQ: u32 = 64u;        // queries (forward, dq) or keys (dkv) per workgroup
const BK: u32 = 16u;        // keys (forward, dq) or queries (dkv) per staged tile
const MAX_DH: u32 = 64u;
const NEG: f32 = -3.0e38;

struct Params {
    bh: u32,
    h: u32,
    nq: u32,
    nk: u32,
    q_stride: u32,
    k_stride: u32,
    block: u32,
    q_off: u32,
    scale: f32,
}
var<immediate> p: Params;

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read> lens: array<u32>;
@group(0) @binding(4) var<storage, read_write> o: array<f32>;
@group(0) @binding(5) var<storage, read_write> stats_out: array<f32>;
@group(0) @binding(6) var<storage, read> dout: array<f32>;
@group(0) @binding(7) var<storage, read> stats: array<f32>;
@group(0) @binding(8) var<storage, read_write> dq: array<f32>;
@group(0) @binding(9) var<storage, read_write> dk: array<f32>;
@group(0) @binding(10) var<storage, read_write> dv: array<f32>;
@group(0) @binding(11) var<storage, read> o_in: array<f32>;

var<workgroup> tile_a: array<f32, BK * MAX_DH>;
var<workgroup> tile_b: array<f32, BK * MAX_DH>;
var<workgroup> tile_s: array<f32, 2u * BK>;
var<workgroup> wg_len: u32;

fn visible(i: u32, j: u32, len: u32) -> bool {
    if (j >= len) {
        return false;
    }
    if (MASK == 1u) {
        return j / p.block <= (i + p.q_off) / p.block;
    }
    return true;
}

// Keys a tile of queries [i0, i1) can see at all: [0, end).
fn key_end(i1: u32, len: u32) -> u32 {
    var end = min(len, p.nk);
    if (MASK == 1u && i1 > 0u) {
        end = min(end, ((i1 - 1u + p.q_off) / p.block + 1u) * p.block);
    }
    return end;
}

// The number of valid keys of batch b, as a workgroup-uniform value.
fn uniform_len(bh: u32, li: u32) -> u32 {
    if (li == 0u) {
        wg_len = min(lens[bh / p.h], p.nk);
    }
    return workgroupUniformLoad(&wg_len);
}

// Stages rows [j0, j0 + BK) of k (into tile_a) and v (into tile_b), zero past `end`.
fn stage_kv(base: u32, j0: u32, end: u32, li: u32) {
    for (var e = li; e < BK * DH; e += BQ) {
        let j = j0 + e / DH;
        var kv = 0.0;
        var vv = 0.0;
        if (j < end) {
            kv = k[base + j * RS + e % DH];
            vv = v[base + j * RS + e % DH];
        }
        tile_a[e] = kv;
        tile_b[e] = vv;
    }
}

@compute @workgroup_size(64)
fn forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let bh = wg.y;
    let i0 = wg.x * BQ;
    let i = i0 + li;
    let live = i < p.nq;
    let len = uniform_len(bh, li);
    let end = key_end(min(i0 + BQ, p.nq), len);
    let qb = slice_base(bh, p.q_stride) + i * RS;
    let kb = slice_base(bh, p.k_stride);
    var qr: array<f32, MAX_DH>;
    var acc: array<f32, MAX_DH>;
    for (var d = 0u; d < DH; d++) {
        qr[d] = select(0.0, q[qb + d] * p.scale, live);
        acc[d] = 0.0;
    }
    var m = NEG;
    var l = 0.0;
    var s: array<f32, BK>;
    for (var j0 = 0u; j0 < end; j0 += BK) {
        workgroupBarrier();
        stage_kv(kb, j0, end, li);
        workgroupBarrier();
        var tmax = NEG;
        for (var jj = 0u; jj < BK; jj++) {
            s[jj] = NEG;
            if (live && visible(i, j0 + jj, end)) {
                var dot = 0.0;
                for (var d = 0u; d < DH; d++) {
                    dot += qr[d] * tile_a[jj * DH + d];
                }
                s[jj] = dot;
                tmax = max(tmax, dot);
            }
        }
        if (tmax > NEG) {
            let mn = max(m, tmax);
            let corr = exp(m - mn);
            l *= corr;
            for (var d = 0u; d < DH; d++) {
                acc[d] *= corr;
            }
            for (var jj = 0u; jj < BK; jj++) {
                if (s[jj] > NEG) {
                    let pj = exp(s[jj] - mn);
                    l += pj;
                    for (var d = 0u; d < DH; d++) {
                        acc[d] += pj * tile_b[jj * DH + d];
                    }
                }
            }
            m = mn;
        }
    }
    if (live) {
        let ob = slice_base(bh, p.q_stride) + i * RS;
        let inv = select(0.0, 1.0 / l, l > 0.0);
        for (var d = 0u; d < DH; d++) {
            o[ob + d] = acc[d] * inv;
        }
        // +∞ for a query that sees nothing: exp(s − lse) = 0 in the backward
        stats_out[bh * p.nq + i] = select(bitcast<f32>(0x7f800000u), m + log(l), l > 0.0);
    }
}

// Δ_i = dO_i · o_i into the second half of stats_out.
@compute @workgroup_size(64)
fn delta(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = gid.y * nwg.x * 64u + gid.x;
    if (r >= p.bh * p.nq) {
        return;
    }
    let b = slice_base(r / p.nq, p.q_stride) + (r % p.nq) * RS;
    var s = 0.0;
    for (var d = 0u; d < DH; d++) {
        s += dout[b + d] * o_in[b + d];
    }
    stats_out[p.bh * p.nq + r] = s;
}

@compute @workgroup_size(64)
fn backward_dq(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let bh = wg.y;
    let i0 = wg.x * BQ;
    let i = i0 + li;
    let live = i < p.nq;
    let len = uniform_len(bh, li);
    let end = key_end(min(i0 + BQ, p.nq), len);
    let qb = slice_base(bh, p.q_stride) + i * RS;
    let kb = slice_base(bh, p.k_stride);
    var qr: array<f32, MAX_DH>;
    var gr: array<f32, MAX_DH>;
    var acc: array<f32, MAX_DH>;
    for (var d = 0u; d < DH; d++) {
        qr[d] = select(0.0, q[qb + d] * p.scale, live);
        gr[d] = select(0.0, dout[qb + d], live);
        acc[d] = 0.0;
    }
    var lse = 0.0;
    var dl = 0.0;
    if (live) {
        lse = stats[bh * p.nq + i];
        dl = stats[p.bh * p.nq + bh * p.nq + i];
    }
    for (var j0 = 0u; j0 < end; j0 += BK) {
        workgroupBarrier();
        stage_kv(kb, j0, end, li);
        workgroupBarrier();
        for (var jj = 0u; jj < BK; jj++) {
            if (live && visible(i, j0 + jj, end)) {
                var dot = 0.0;
                var dp = 0.0;
                for (var d = 0u; d < DH; d++) {
                    dot += qr[d] * tile_a[jj * DH + d];
                    dp += gr[d] * tile_b[jj * DH + d];
                }
                let ds = exp(dot - lse) * (dp - dl);
                for (var d = 0u; d < DH; d++) {
                    acc[d] += ds * tile_a[jj * DH + d];
                }
            }
        }
    }
    if (live) {
        for (var d = 0u; d < DH; d++) {
            dq[qb + d] = acc[d] * p.scale;
        }
    }
}

@compute @workgroup_size(64)
fn backward_dkv(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let bh = wg.y;
    let j0 = wg.x * BQ;
    let j = j0 + li;
    let len = uniform_len(bh, li);
    let live = j < len;
    let kb = slice_base(bh, p.k_stride) + j * RS;
    var kr: array<f32, MAX_DH>;
    var vr: array<f32, MAX_DH>;
    var gk: array<f32, MAX_DH>;
    var gv: array<f32, MAX_DH>;
    for (var d = 0u; d < DH; d++) {
        kr[d] = select(0.0, k[kb + d], live);
        vr[d] = select(0.0, v[kb + d], live);
        gk[d] = 0.0;
        gv[d] = 0.0;
    }
    // the first query that can see key j0 (block-causal: the first query of its frame)
    var start = 0u;
    if (MASK == 1u) {
        let first = (j0 / p.block) * p.block;
        start = select(0u, first - p.q_off, first > p.q_off);
        start = start / BK * BK;
    }
    let qbase = slice_base(bh, p.q_stride);
    for (var i0 = start; i0 < p.nq; i0 += BK) {
        workgroupBarrier();
        for (var e = li; e < BK * DH; e += BQ) {
            let i = i0 + e / DH;
            var qv = 0.0;
            var gv0 = 0.0;
            if (i < p.nq) {
                qv = q[qbase + i * RS + e % DH] * p.scale;
                gv0 = dout[qbase + i * RS + e % DH];
            }
            tile_a[e] = qv;
            tile_b[e] = gv0;
        }
        if (li < BK) {
            let i = i0 + li;
            var lse = bitcast<f32>(0x7f800000u);
            var dl = 0.0;
            if (i < p.nq) {
                lse = stats[bh * p.nq + i];
                dl = stats[p.bh * p.nq + bh * p.nq + i];
            }
            tile_s[li] = lse;
            tile_s[BK + li] = dl;
        }
        workgroupBarrier();
        for (var ii = 0u; ii < BK; ii++) {
            let i = i0 + ii;
            if (live && i < p.nq && visible(i, j, len)) {
                var dot = 0.0;
                var dp = 0.0;
                for (var d = 0u; d < DH; d++) {
                    dot += tile_a[ii * DH + d] * kr[d];
                    dp += tile_b[ii * DH + d] * vr[d];
                }
                let pij = exp(dot - tile_s[ii]);
                let ds = pij * (dp - tile_s[BK + ii]);
                for (var d = 0u; d < DH; d++) {
                    gv[d] += pij * tile_b[ii * DH + d];
                    gk[d] += ds * tile_a[ii * DH + d];
                }
            }
        }
    }
    if (j < p.nk) {
        let ob = slice_base(bh, p.k_stride) + j * RS;
        for (var d = 0u; d < DH; d++) {
            dk[ob + d] = gk[d];
            dv[ob + d] = gv[d];
        }
    }
}
