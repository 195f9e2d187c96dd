// Fused distance-biased cross-attention (MODEL.md §2):
//   s_ij = scale · q_i·k_j − m_h · ‖ξ_i − x_j‖,  o_i = Σ_j softmax_j(s_ij) v_j
// over keys j < nvalid[b] (key padding), with the minimum-image distance on the unit box when
// PERIODIC. Online softmax, one invocation per query (forward, dq, dξ, dm) or per key (dk, dv,
// dx): the N×M score matrix never exists in memory, and every sum has a fixed order.
//
// Buffers (packed so that no entry binds more than 8 storage buffers):
//   q [B, H, Nq, dh], k, v [B, H, Nk, dh], dO like q
//   coords = [ξ (Bq·Nq·D) | x (Bk·Nk·D)]       (Bq, Bk ∈ {1, B}: shared or per batch)
//   aux   = [slopes (H) | nvalid (B, as f32)]
//   stats  = [L (B·H·Nq) | Δ (B·H·Nq)]          (log-sum-exp; Δ_i = dO_i·O_i)
//   gq     = [dq (B·H·Nq·dh) | dm part (B·H·Nq) | dξ part (B·H·Nq·D)]
//   gkv    = [dk (B·H·Nk·dh) | dv (same) | dx part (B·H·Nk·D)]

override PERIODIC: bool = false;

struct Params {
    b: u32,
    h: u32,
    nq: u32,
    nk: u32,
    dh: u32,
    dim: u32,
    qc_stride: u32,   // elements between batches of ξ (0 = shared)
    kc_stride: u32,
    kc_off: u32,      // start of x in `coords`
    scale: f32,
}
var<immediate> p: Params;

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read> coords: array<f32>;
@group(0) @binding(4) var<storage, read> aux: array<f32>;
@group(0) @binding(5) var<storage, read_write> o: array<f32>;
@group(0) @binding(6) var<storage, read_write> stats: array<f32>;
@group(0) @binding(7) var<storage, read> dout: array<f32>;
@group(0) @binding(8) var<storage, read_write> gq: array<f32>;
@group(0) @binding(9) var<storage, read_write> gkv: array<f32>;
@group(0) @binding(10) var<storage, read> o_in: array<f32>;
@group(0) @binding(11) var<storage, read> stats_in: array<f32>;

const MAX_DH: u32 = 64u;

fn id(wg: vec3<u32>, nwg: vec3<u32>, li: u32) -> u32 {
    return (wg.y * nwg.x + wg.x) * 64u + li;
}

fn query_coord(bi: u32, i: u32) -> vec3<f32> {
    var c = vec3<f32>(0.0);
    for (var a = 0u; a < p.dim; a++) {
        c[a] = coords[bi * p.qc_stride + i * p.dim + a];
    }
    return c;
}

fn key_coord(bi: u32, j: u32) -> vec3<f32> {
    var c = vec3<f32>(0.0);
    for (var a = 0u; a < p.dim; a++) {
        c[a] = coords[p.kc_off + bi * p.kc_stride + j * p.dim + a];
    }
    return c;
}

// ξ − x (wrapped to [−½, ½) per coordinate when PERIODIC) in d; returns its norm. Unused
// coordinates are zero in both points.
fn separation(xi: vec3<f32>, x: vec3<f32>, d: ptr<function, vec3<f32>>) -> f32 {
    var e = xi - x;
    if (PERIODIC) {
        e = e - round(e);
    }
    *d = e;
    return length(e);
}

fn nvalid(bi: u32) -> u32 {
    return min(u32(aux[p.h + bi]), p.nk);
}

@compute @workgroup_size(64)
fn xattn_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) li: u32) {
    let t = id(wg, nwg, li);
    if (t >= p.b * p.h * p.nq) {
        return;
    }
    let i = t % p.nq;
    let bh = t / p.nq;
    let hi = bh % p.h;
    let bi = bh / p.h;
    var acc: array<f32, MAX_DH>;
    var qi: array<f32, MAX_DH>;
    for (var e = 0u; e < p.dh; e++) {
        qi[e] = q[t * p.dh + e] * p.scale;
    }
    let xi = query_coord(bi, i);
    let slope = aux[hi];
    var d: vec3<f32>;
    var mx = -3.402823466e38;
    var l = 0.0;
    for (var j = 0u; j < nvalid(bi); j++) {
        let ko = (bh * p.nk + j) * p.dh;
        var dot = 0.0;
        for (var e = 0u; e < p.dh; e++) {
            dot += qi[e] * k[ko + e];
        }
        let s = dot - slope * separation(xi, key_coord(bi, j), &d);
        let m_new = max(mx, s);
        let corr = exp(mx - m_new);
        let pj = exp(s - m_new);
        l = l * corr + pj;
        for (var e = 0u; e < p.dh; e++) {
            acc[e] = acc[e] * corr + pj * v[ko + e];
        }
        mx = m_new;
    }
    let oo = t * p.dh;
    let inv = select(0.0, 1.0 / l, l > 0.0);
    for (var e = 0u; e < p.dh; e++) {
        o[oo + e] = acc[e] * inv;
    }
    stats[t] = select(0.0, mx + log(l), l > 0.0);
}

// Δ_i = dO_i · O_i, written to the second half of `stats`.
@compute @workgroup_size(64)
fn xattn_backward_prep(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) li: u32) {
    let t = id(wg, nwg, li);
    let n = p.b * p.h * p.nq;
    if (t >= n) {
        return;
    }
    var s = 0.0;
    for (var e = 0u; e < p.dh; e++) {
        s += dout[t * p.dh + e] * o_in[t * p.dh + e];
    }
    stats[n + t] = s;
}

// One invocation per query: dq, the per-query part of dm, the per-query part of dξ.
@compute @workgroup_size(64)
fn xattn_backward_q(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) li: u32) {
    let t = id(wg, nwg, li);
    let n = p.b * p.h * p.nq;
    if (t >= n) {
        return;
    }
    let i = t % p.nq;
    let bh = t / p.nq;
    let hi = bh % p.h;
    let bi = bh / p.h;
    let lse = stats_in[t];
    let big_d = stats_in[n + t];
    var qi: array<f32, MAX_DH>;
    var gi: array<f32, MAX_DH>;
    for (var e = 0u; e < p.dh; e++) {
        qi[e] = q[t * p.dh + e] * p.scale;
        gi[e] = dout[t * p.dh + e];
    }
    let xi = query_coord(bi, i);
    let slope = aux[hi];
    var dq: array<f32, MAX_DH>;
    var dm = 0.0;
    var dxi = vec3<f32>(0.0);
    for (var j = 0u; j < nvalid(bi); j++) {
        let ko = (bh * p.nk + j) * p.dh;
        var dot = 0.0;
        var dp = 0.0;
        for (var e = 0u; e < p.dh; e++) {
            dot += qi[e] * k[ko + e];
            dp += gi[e] * v[ko + e];
        }
        var d: vec3<f32>;
        let dist = separation(xi, key_coord(bi, j), &d);
        let pij = exp(dot - slope * dist - lse);
        let ds = pij * (dp - big_d);
        for (var e = 0u; e < p.dh; e++) {
            dq[e] += ds * p.scale * k[ko + e];
        }
        dm -= ds * dist;
        if (dist > 0.0) {
            dxi -= ds * slope * d / dist;
        }
    }
    for (var e = 0u; e < p.dh; e++) {
        gq[t * p.dh + e] = dq[e];
    }
    gq[n * p.dh + t] = dm;
    for (var c = 0u; c < p.dim; c++) {
        gq[n * p.dh + n + t * p.dim + c] = dxi[c];
    }
}

// One invocation per key: dk, dv, the per-key part of dx.
@compute @workgroup_size(64)
fn xattn_backward_kv(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) li: u32) {
    let t = id(wg, nwg, li);
    let nkt = p.b * p.h * p.nk;
    if (t >= nkt) {
        return;
    }
    let j = t % p.nk;
    let bh = t / p.nk;
    let hi = bh % p.h;
    let bi = bh / p.h;
    let n = p.b * p.h * p.nq;
    var dk: array<f32, MAX_DH>;
    var dv: array<f32, MAX_DH>;
    var kj: array<f32, MAX_DH>;
    var vj: array<f32, MAX_DH>;
    var dxj = vec3<f32>(0.0);
    if (j < nvalid(bi)) {
        let vo = t * p.dh;
        for (var e = 0u; e < p.dh; e++) {
            kj[e] = k[vo + e] * p.scale;
            vj[e] = v[vo + e];
        }
        let xj = key_coord(bi, j);
        let slope = aux[hi];
        for (var i = 0u; i < p.nq; i++) {
            let qt = bh * p.nq + i;
            var dot = 0.0;
            var dp = 0.0;
            for (var e = 0u; e < p.dh; e++) {
                dot += q[qt * p.dh + e] * kj[e];
                dp += dout[qt * p.dh + e] * vj[e];
            }
            var d: vec3<f32>;
            let dist = separation(query_coord(bi, i), xj, &d);
            let pij = exp(dot - slope * dist - stats_in[qt]);
            let ds = pij * (dp - stats_in[n + qt]);
            for (var e = 0u; e < p.dh; e++) {
                dv[e] += pij * dout[qt * p.dh + e];
                dk[e] += ds * p.scale * q[qt * p.dh + e];
            }
            if (dist > 0.0) {
                dxj += ds * slope * d / dist;
            }
        }
    }
    for (var e = 0u; e < p.dh; e++) {
        gkv[t * p.dh + e] = dk[e];
        gkv[nkt * p.dh + t * p.dh + e] = dv[e];
    }
    for (var c = 0u; c < p.dim; c++) {
        gkv[2u * nkt * p.dh + t * p.dim + c] = dxj[c];
    }
}
