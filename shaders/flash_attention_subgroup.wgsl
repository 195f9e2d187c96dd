// Flash attention for adapters with subgroups of one fixed size (4 to 64 lanes): the same
// algorithm, masks, layouts, bindings and `Params` as flash_attention.wgsl (read its header),
// laid out like the subgroup matmul (matmul_subgroup.wgsl) so that many lanes share every load.
//
// A workgroup is one subgroup. Each lane owns FOUR rows (queries in `forward` / `backward_dq`,
// keys in `backward_dkv`) as the components of vec4 registers: `qT[d]` holds element d of the
// lane's four query rows. The other operand is walked in tiles of 16 rows; per head-dimension
// quad each lane loads 16 / min(SG, 16) rows and `subgroupBroadcast` (a register permute) hands
// every row to every lane, so one vec4 load feeds 4·SG·4 lane-FMAs. The 16 × 4 score block of a
// lane stays in registers; softmax statistics are per component, so no cross-lane reduction is
// needed. Key tiles a block-causal mask hides from all of a workgroup's queries are never
// visited, and only tiles that straddle the mask or the key padding evaluate it.
//
// The backward is FlashAttention-2's: `backward_dq` recomputes P from the saved log-sum-exp and
// accumulates dQ over key tiles; `backward_dkv` does the same over query tiles for dK and dV,
// reading each dO row once for both dP and dV. No atomics; every sum runs in a fixed order.
// Needs the SUBGROUP feature (flash_attention.wgsl must not), hence a file of its own.

override DH: u32 = 16u;
override MASK: u32 = 0u;
override SG: u32 = 8u;                      // lanes of a subgroup = invocations of a workgroup
override D4: u32 = (DH + 3u) / 4u;          // head-dimension quads
override SGM: u32 = min(SG, 16u);           // lanes that load distinct rows of a 16-row tile
override NR: u32 = 16u / min(SG, 16u);      // rows each of those lanes loads per tile

const BK: u32 = 16u;
const MAX_DH: u32 = 64u;
const NEG: f32 = -3.0e38;
const INF: u32 = 0x7f800000u;

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

// Buffers by number (naga passes no storage pointers to functions); every entry point thus
// references every binding, and the host binds unused slots to buffers it already binds.
const SRC_Q: u32 = 0u;
const SRC_K: u32 = 1u;
const SRC_V: u32 = 2u;
const SRC_DO: u32 = 3u;
alias Src = u32;
alias Dst = u32;

fn ld(src: Src, at: u32) -> f32 {
    switch src {
        case 0u: { return q[at]; }
        case 1u: { return k[at]; }
        case 2u: { return v[at]; }
        default: { return dout[at]; }
    }
}

// Elements 4·d4 .. 4·d4 + 3 of the row starting at `row` (zero past DH).
fn quad(src: Src, row: u32, d4: u32) -> vec4<f32> {
    let d = 4u * d4;
    var r = vec4<f32>(ld(src, row + d), 0.0, 0.0, 0.0);
    if (d + 1u < DH) { r.y = ld(src, row + d + 1u); }
    if (d + 2u < DH) { r.z = ld(src, row + d + 2u); }
    if (d + 3u < DH) { r.w = ld(src, row + d + 3u); }
    return r;
}

// This lane's share of rows r0 .. r0 + 15 of `src` at quad d4 (rows ≥ limit read as zero).
fn load_tile(src: Src, base: u32, r0: u32, limit: u32, lane: u32, d4: u32) -> array<vec4<f32>, 4> {
    var a: array<vec4<f32>, 4>;
    let row = r0 + lane % SGM;
    if (row < limit) { a[0] = quad(src, base + row * RS, d4); }
    if (NR > 1u && row + SGM < limit) { a[1] = quad(src, base + (row + SGM) * RS, d4); }
    if (NR > 2u && row + 2u * SGM < limit) { a[2] = quad(src, base + (row + 2u * SGM) * RS, d4); }
    if (NR > 3u && row + 3u * SGM < limit) { a[3] = quad(src, base + (row + 3u * SGM) * RS, d4); }
    return a;
}

fn stat(base: u32, row: u32, limit: u32) -> vec4<f32> {
    if (row < limit) {
        return vec4<f32>(stats[base + row], stats[p.bh * p.nq + base + row], 0.0, 0.0);
    }
    return vec4<f32>(bitcast<f32>(INF), 0.0, 0.0, 0.0);
}

// The same for the saved statistics of query rows: (lse, Δ), lse = +∞ past the limit.
fn load_stats(base: u32, r0: u32, limit: u32, lane: u32) -> array<vec4<f32>, 4> {
    let row = r0 + lane % SGM;
    return array<vec4<f32>, 4>(stat(base, row, limit), stat(base, row + SGM, limit), stat(base, row + 2u * SGM, limit),
                               stat(base, row + 3u * SGM, limit));
}

// Every lane receives all 16 rows of a tile (x[t] is row r0 + t) by `share16`, appended from
// shaders/parts/subgroup_share.wgsl.

// Σ_c x.c · r[c] for four vec4 registers r (one dot product per component).
fn dot4(x: vec4<f32>, r0: vec4<f32>, r1: vec4<f32>, r2: vec4<f32>, r3: vec4<f32>, acc: vec4<f32>) -> vec4<f32> {
    return fma(vec4<f32>(x.x), r0, fma(vec4<f32>(x.y), r1, fma(vec4<f32>(x.z), r2, fma(vec4<f32>(x.w), r3, acc))));
}

// Head-dimension loops are written out (`d4 < D4` guards fold away when the pipeline is
// built): a loop index would make every register array an indexed memory array, which CPU
// drivers gather lane by lane. Each `*_step` is one quad of the head dimension.

// The lane's four rows, transposed: t[d] = (row0[d], row1[d], row2[d], row3[d]) · mul.
fn transpose_step(src: Src, base: u32, r: vec4<u32>, limit: u32, mul: f32, d4: u32, t: ptr<function, array<vec4<f32>, MAX_DH>>) {
    var w: array<vec4<f32>, 4>;
    if (r.x < limit) { w[0] = quad(src, base + r.x * RS, d4) * mul; }
    if (r.y < limit) { w[1] = quad(src, base + r.y * RS, d4) * mul; }
    if (r.z < limit) { w[2] = quad(src, base + r.z * RS, d4) * mul; }
    if (r.w < limit) { w[3] = quad(src, base + r.w * RS, d4) * mul; }
    (*t)[4u * d4] = vec4<f32>(w[0].x, w[1].x, w[2].x, w[3].x);
    (*t)[4u * d4 + 1u] = vec4<f32>(w[0].y, w[1].y, w[2].y, w[3].y);
    (*t)[4u * d4 + 2u] = vec4<f32>(w[0].z, w[1].z, w[2].z, w[3].z);
    (*t)[4u * d4 + 3u] = vec4<f32>(w[0].w, w[1].w, w[2].w, w[3].w);
}

fn transpose_rows(src: Src, base: u32, r: vec4<u32>, limit: u32, mul: f32) -> array<vec4<f32>, MAX_DH> {
    var t: array<vec4<f32>, MAX_DH>;
    transpose_step(src, base, r, limit, mul, 0u, &t);
    if (D4 > 1u) { transpose_step(src, base, r, limit, mul, 1u, &t); }
    if (D4 > 2u) { transpose_step(src, base, r, limit, mul, 2u, &t); }
    if (D4 > 3u) { transpose_step(src, base, r, limit, mul, 3u, &t); }
    if (D4 > 4u) { transpose_step(src, base, r, limit, mul, 4u, &t); }
    if (D4 > 5u) { transpose_step(src, base, r, limit, mul, 5u, &t); }
    if (D4 > 6u) { transpose_step(src, base, r, limit, mul, 6u, &t); }
    if (D4 > 7u) { transpose_step(src, base, r, limit, mul, 7u, &t); }
    if (D4 > 8u) { transpose_step(src, base, r, limit, mul, 8u, &t); }
    if (D4 > 9u) { transpose_step(src, base, r, limit, mul, 9u, &t); }
    if (D4 > 10u) { transpose_step(src, base, r, limit, mul, 10u, &t); }
    if (D4 > 11u) { transpose_step(src, base, r, limit, mul, 11u, &t); }
    if (D4 > 12u) { transpose_step(src, base, r, limit, mul, 12u, &t); }
    if (D4 > 13u) { transpose_step(src, base, r, limit, mul, 13u, &t); }
    if (D4 > 14u) { transpose_step(src, base, r, limit, mul, 14u, &t); }
    if (D4 > 15u) { transpose_step(src, base, r, limit, mul, 15u, &t); }
    return t;
}

// Keys a workgroup of queries [i0, i1) can see at all: [0, end).
fn key_end(i1: u32, len: u32) -> u32 {
    var end = min(len, p.nk);
    if (MASK == 1u && i1 > 0u) {
        end = min(end, ((i1 - 1u + p.q_off) / p.block + 1u) * p.block);
    }
    return end;
}

// Visibility of key j to the lane's four queries (frames `qf`), given `len` valid keys.
fn visible_q(j: u32, qf: vec4<u32>, len: u32) -> vec4<bool> {
    var vis = vec4<bool>(j < len);
    if (MASK == 1u) {
        vis = vis & (vec4<u32>(j / p.block) <= qf);
    }
    return vis;
}

// A 16 × 4 block of dot products: s[t] = Σ_d src[r0 + t][d] · T[d] (T: the lane's four rows,
// transposed), e.g. the scores of 16 keys for the lane's four (pre-scaled) queries.
fn dots(x: ptr<function, array<vec4<f32>, 16>>, T: ptr<function, array<vec4<f32>, MAX_DH>>, d4: u32,
        s: ptr<function, array<vec4<f32>, 16>>) {
    let t0 = (*T)[4u * d4];
    let t1 = (*T)[4u * d4 + 1u];
    let t2 = (*T)[4u * d4 + 2u];
    let t3 = (*T)[4u * d4 + 3u];
    (*s)[0] = dot4((*x)[0], t0, t1, t2, t3, (*s)[0]);
    (*s)[1] = dot4((*x)[1], t0, t1, t2, t3, (*s)[1]);
    (*s)[2] = dot4((*x)[2], t0, t1, t2, t3, (*s)[2]);
    (*s)[3] = dot4((*x)[3], t0, t1, t2, t3, (*s)[3]);
    (*s)[4] = dot4((*x)[4], t0, t1, t2, t3, (*s)[4]);
    (*s)[5] = dot4((*x)[5], t0, t1, t2, t3, (*s)[5]);
    (*s)[6] = dot4((*x)[6], t0, t1, t2, t3, (*s)[6]);
    (*s)[7] = dot4((*x)[7], t0, t1, t2, t3, (*s)[7]);
    (*s)[8] = dot4((*x)[8], t0, t1, t2, t3, (*s)[8]);
    (*s)[9] = dot4((*x)[9], t0, t1, t2, t3, (*s)[9]);
    (*s)[10] = dot4((*x)[10], t0, t1, t2, t3, (*s)[10]);
    (*s)[11] = dot4((*x)[11], t0, t1, t2, t3, (*s)[11]);
    (*s)[12] = dot4((*x)[12], t0, t1, t2, t3, (*s)[12]);
    (*s)[13] = dot4((*x)[13], t0, t1, t2, t3, (*s)[13]);
    (*s)[14] = dot4((*x)[14], t0, t1, t2, t3, (*s)[14]);
    (*s)[15] = dot4((*x)[15], t0, t1, t2, t3, (*s)[15]);
}

fn block_step(src: Src, base: u32, r0: u32, limit: u32, lane: u32, T: ptr<function, array<vec4<f32>, MAX_DH>>,
              d4: u32, s: ptr<function, array<vec4<f32>, 16>>) {
    var x = share16(load_tile(src, base, r0, limit, lane, d4));
    dots(&x, T, d4, s);
}

fn block(src: Src, base: u32, r0: u32, limit: u32, lane: u32, T: ptr<function, array<vec4<f32>, MAX_DH>>) -> array<vec4<f32>, 16> {
    var s: array<vec4<f32>, 16>;
    block_step(src, base, r0, limit, lane, T, 0u, &s);
    if (D4 > 1u) { block_step(src, base, r0, limit, lane, T, 1u, &s); }
    if (D4 > 2u) { block_step(src, base, r0, limit, lane, T, 2u, &s); }
    if (D4 > 3u) { block_step(src, base, r0, limit, lane, T, 3u, &s); }
    if (D4 > 4u) { block_step(src, base, r0, limit, lane, T, 4u, &s); }
    if (D4 > 5u) { block_step(src, base, r0, limit, lane, T, 5u, &s); }
    if (D4 > 6u) { block_step(src, base, r0, limit, lane, T, 6u, &s); }
    if (D4 > 7u) { block_step(src, base, r0, limit, lane, T, 7u, &s); }
    if (D4 > 8u) { block_step(src, base, r0, limit, lane, T, 8u, &s); }
    if (D4 > 9u) { block_step(src, base, r0, limit, lane, T, 9u, &s); }
    if (D4 > 10u) { block_step(src, base, r0, limit, lane, T, 10u, &s); }
    if (D4 > 11u) { block_step(src, base, r0, limit, lane, T, 11u, &s); }
    if (D4 > 12u) { block_step(src, base, r0, limit, lane, T, 12u, &s); }
    if (D4 > 13u) { block_step(src, base, r0, limit, lane, T, 13u, &s); }
    if (D4 > 14u) { block_step(src, base, r0, limit, lane, T, 14u, &s); }
    if (D4 > 15u) { block_step(src, base, r0, limit, lane, T, 15u, &s); }
    return s;
}

// a[e] += w · x.e: one row's contribution to one quad of four transposed rows.
fn axpy(w: vec4<f32>, x: vec4<f32>, a: ptr<function, array<vec4<f32>, 4>>) {
    (*a)[0] = fma(w, vec4<f32>(x.x), (*a)[0]);
    (*a)[1] = fma(w, vec4<f32>(x.y), (*a)[1]);
    (*a)[2] = fma(w, vec4<f32>(x.z), (*a)[2]);
    (*a)[3] = fma(w, vec4<f32>(x.w), (*a)[3]);
}

// acc[d] += Σ_t w[t] · x[t][d] for the 16 rows x of a tile: a 4 × 16 weight block times 16 rows.
fn weigh(x: ptr<function, array<vec4<f32>, 16>>, w: ptr<function, array<vec4<f32>, 16>>, d4: u32,
         acc: ptr<function, array<vec4<f32>, MAX_DH>>) {
    var a = array<vec4<f32>, 4>((*acc)[4u * d4], (*acc)[4u * d4 + 1u], (*acc)[4u * d4 + 2u], (*acc)[4u * d4 + 3u]);
    axpy((*w)[0], (*x)[0], &a);
    axpy((*w)[1], (*x)[1], &a);
    axpy((*w)[2], (*x)[2], &a);
    axpy((*w)[3], (*x)[3], &a);
    axpy((*w)[4], (*x)[4], &a);
    axpy((*w)[5], (*x)[5], &a);
    axpy((*w)[6], (*x)[6], &a);
    axpy((*w)[7], (*x)[7], &a);
    axpy((*w)[8], (*x)[8], &a);
    axpy((*w)[9], (*x)[9], &a);
    axpy((*w)[10], (*x)[10], &a);
    axpy((*w)[11], (*x)[11], &a);
    axpy((*w)[12], (*x)[12], &a);
    axpy((*w)[13], (*x)[13], &a);
    axpy((*w)[14], (*x)[14], &a);
    axpy((*w)[15], (*x)[15], &a);
    (*acc)[4u * d4] = a[0];
    (*acc)[4u * d4 + 1u] = a[1];
    (*acc)[4u * d4 + 2u] = a[2];
    (*acc)[4u * d4 + 3u] = a[3];
}

fn accumulate_step(src: Src, base: u32, r0: u32, limit: u32, lane: u32, w: ptr<function, array<vec4<f32>, 16>>,
                   acc: ptr<function, array<vec4<f32>, MAX_DH>>, d4: u32) {
    var x = share16(load_tile(src, base, r0, limit, lane, d4));
    weigh(&x, w, d4, acc);
}

// acc[d] += Σ_t w[t] · src[r0 + t][d].
fn accumulate(src: Src, base: u32, r0: u32, limit: u32, lane: u32, w: ptr<function, array<vec4<f32>, 16>>,
              acc: ptr<function, array<vec4<f32>, MAX_DH>>) {
    accumulate_step(src, base, r0, limit, lane, w, acc, 0u);
    if (D4 > 1u) { accumulate_step(src, base, r0, limit, lane, w, acc, 1u); }
    if (D4 > 2u) { accumulate_step(src, base, r0, limit, lane, w, acc, 2u); }
    if (D4 > 3u) { accumulate_step(src, base, r0, limit, lane, w, acc, 3u); }
    if (D4 > 4u) { accumulate_step(src, base, r0, limit, lane, w, acc, 4u); }
    if (D4 > 5u) { accumulate_step(src, base, r0, limit, lane, w, acc, 5u); }
    if (D4 > 6u) { accumulate_step(src, base, r0, limit, lane, w, acc, 6u); }
    if (D4 > 7u) { accumulate_step(src, base, r0, limit, lane, w, acc, 7u); }
    if (D4 > 8u) { accumulate_step(src, base, r0, limit, lane, w, acc, 8u); }
    if (D4 > 9u) { accumulate_step(src, base, r0, limit, lane, w, acc, 9u); }
    if (D4 > 10u) { accumulate_step(src, base, r0, limit, lane, w, acc, 10u); }
    if (D4 > 11u) { accumulate_step(src, base, r0, limit, lane, w, acc, 11u); }
    if (D4 > 12u) { accumulate_step(src, base, r0, limit, lane, w, acc, 12u); }
    if (D4 > 13u) { accumulate_step(src, base, r0, limit, lane, w, acc, 13u); }
    if (D4 > 14u) { accumulate_step(src, base, r0, limit, lane, w, acc, 14u); }
    if (D4 > 15u) { accumulate_step(src, base, r0, limit, lane, w, acc, 15u); }
}

// acc[d] *= f (one quad).
fn scale_step(acc: ptr<function, array<vec4<f32>, MAX_DH>>, f: vec4<f32>, d4: u32) {
    (*acc)[4u * d4] *= f;
    (*acc)[4u * d4 + 1u] *= f;
    (*acc)[4u * d4 + 2u] *= f;
    (*acc)[4u * d4 + 3u] *= f;
}

fn rescale(acc: ptr<function, array<vec4<f32>, MAX_DH>>, f: vec4<f32>) {
    scale_step(acc, f, 0u);
    if (D4 > 1u) { scale_step(acc, f, 1u); }
    if (D4 > 2u) { scale_step(acc, f, 2u); }
    if (D4 > 3u) { scale_step(acc, f, 3u); }
    if (D4 > 4u) { scale_step(acc, f, 4u); }
    if (D4 > 5u) { scale_step(acc, f, 5u); }
    if (D4 > 6u) { scale_step(acc, f, 6u); }
    if (D4 > 7u) { scale_step(acc, f, 7u); }
    if (D4 > 8u) { scale_step(acc, f, 8u); }
    if (D4 > 9u) { scale_step(acc, f, 9u); }
    if (D4 > 10u) { scale_step(acc, f, 10u); }
    if (D4 > 11u) { scale_step(acc, f, 11u); }
    if (D4 > 12u) { scale_step(acc, f, 12u); }
    if (D4 > 13u) { scale_step(acc, f, 13u); }
    if (D4 > 14u) { scale_step(acc, f, 14u); }
    if (D4 > 15u) { scale_step(acc, f, 15u); }
}

fn st1(dst: Dst, at: u32, x: f32) {
    switch dst {
        case 0u: { o[at] = x; }
        case 1u: { dq[at] = x; }
        case 2u: { dk[at] = x; }
        default: { dv[at] = x; }
    }
}

// Elements 4·d4 .. of the row at `row` (those below DH).
fn put(dst: Dst, row: u32, d4: u32, x: vec4<f32>) {
    let d = 4u * d4;
    st1(dst, row + d, x.x);
    if (d + 1u < DH) { st1(dst, row + d + 1u, x.y); }
    if (d + 2u < DH) { st1(dst, row + d + 2u, x.z); }
    if (d + 3u < DH) { st1(dst, row + d + 3u, x.w); }
}

// Writes quad d4 of the lane's four rows (transposed registers, times `mul` per row) to `dst`.
fn store_step(dst: Dst, base: u32, r: vec4<u32>, limit: u32, acc: ptr<function, array<vec4<f32>, MAX_DH>>,
              mul: vec4<f32>, d4: u32) {
    let x = array<vec4<f32>, 4>((*acc)[4u * d4] * mul, (*acc)[4u * d4 + 1u] * mul,
                                (*acc)[4u * d4 + 2u] * mul, (*acc)[4u * d4 + 3u] * mul);
    if (r.x < limit) { put(dst, base + r.x * RS, d4, vec4<f32>(x[0].x, x[1].x, x[2].x, x[3].x)); }
    if (r.y < limit) { put(dst, base + r.y * RS, d4, vec4<f32>(x[0].y, x[1].y, x[2].y, x[3].y)); }
    if (r.z < limit) { put(dst, base + r.z * RS, d4, vec4<f32>(x[0].z, x[1].z, x[2].z, x[3].z)); }
    if (r.w < limit) { put(dst, base + r.w * RS, d4, vec4<f32>(x[0].w, x[1].w, x[2].w, x[3].w)); }
}

fn store_rows(dst: Dst, base: u32, r: vec4<u32>, limit: u32, acc: ptr<function, array<vec4<f32>, MAX_DH>>, mul: vec4<f32>) {
    store_step(dst, base, r, limit, acc, mul, 0u);
    if (D4 > 1u) { store_step(dst, base, r, limit, acc, mul, 1u); }
    if (D4 > 2u) { store_step(dst, base, r, limit, acc, mul, 2u); }
    if (D4 > 3u) { store_step(dst, base, r, limit, acc, mul, 3u); }
    if (D4 > 4u) { store_step(dst, base, r, limit, acc, mul, 4u); }
    if (D4 > 5u) { store_step(dst, base, r, limit, acc, mul, 5u); }
    if (D4 > 6u) { store_step(dst, base, r, limit, acc, mul, 6u); }
    if (D4 > 7u) { store_step(dst, base, r, limit, acc, mul, 7u); }
    if (D4 > 8u) { store_step(dst, base, r, limit, acc, mul, 8u); }
    if (D4 > 9u) { store_step(dst, base, r, limit, acc, mul, 9u); }
    if (D4 > 10u) { store_step(dst, base, r, limit, acc, mul, 10u); }
    if (D4 > 11u) { store_step(dst, base, r, limit, acc, mul, 11u); }
    if (D4 > 12u) { store_step(dst, base, r, limit, acc, mul, 12u); }
    if (D4 > 13u) { store_step(dst, base, r, limit, acc, mul, 13u); }
    if (D4 > 14u) { store_step(dst, base, r, limit, acc, mul, 14u); }
    if (D4 > 15u) { store_step(dst, base, r, limit, acc, mul, 15u); }
}

// One pass over 16 dO rows for the dK/dV kernel: dp[t] = dO[i0 + t] · vT (the dP^T block) and
// gv[d] += Σ_t pt[t] · dO[i0 + t][d] (dV), so every dO row is loaded and shared once.
fn dp_dv_step(qb: u32, i0: u32, lane: u32, vT: ptr<function, array<vec4<f32>, MAX_DH>>, pt: ptr<function, array<vec4<f32>, 16>>,
              gv: ptr<function, array<vec4<f32>, MAX_DH>>, d4: u32, dp: ptr<function, array<vec4<f32>, 16>>) {
    var x = share16(load_tile(SRC_DO, qb, i0, p.nq, lane, d4));
    dots(&x, vT, d4, dp);
    weigh(&x, pt, d4, gv);
}

fn dp_dv(qb: u32, i0: u32, lane: u32, vT: ptr<function, array<vec4<f32>, MAX_DH>>, pt: ptr<function, array<vec4<f32>, 16>>,
         gv: ptr<function, array<vec4<f32>, MAX_DH>>) -> array<vec4<f32>, 16> {
    var dp: array<vec4<f32>, 16>;
    dp_dv_step(qb, i0, lane, vT, pt, gv, 0u, &dp);
    if (D4 > 1u) { dp_dv_step(qb, i0, lane, vT, pt, gv, 1u, &dp); }
    if (D4 > 2u) { dp_dv_step(qb, i0, lane, vT, pt, gv, 2u, &dp); }
    if (D4 > 3u) { dp_dv_step(qb, i0, lane, vT, pt, gv, 3u, &dp); }
    if (D4 > 4u) { dp_dv_step(qb, i0, lane, vT, pt, gv, 4u, &dp); }
    if (D4 > 5u) { dp_dv_step(qb, i0, lane, vT, pt, gv, 5u, &dp); }
    if (D4 > 6u) { dp_dv_step(qb, i0, lane, vT, pt, gv, 6u, &dp); }
    if (D4 > 7u) { dp_dv_step(qb, i0, lane, vT, pt, gv, 7u, &dp); }
    if (D4 > 8u) { dp_dv_step(qb, i0, lane, vT, pt, gv, 8u, &dp); }
    if (D4 > 9u) { dp_dv_step(qb, i0, lane, vT, pt, gv, 9u, &dp); }
    if (D4 > 10u) { dp_dv_step(qb, i0, lane, vT, pt, gv, 10u, &dp); }
    if (D4 > 11u) { dp_dv_step(qb, i0, lane, vT, pt, gv, 11u, &dp); }
    if (D4 > 12u) { dp_dv_step(qb, i0, lane, vT, pt, gv, 12u, &dp); }
    if (D4 > 13u) { dp_dv_step(qb, i0, lane, vT, pt, gv, 13u, &dp); }
    if (D4 > 14u) { dp_dv_step(qb, i0, lane, vT, pt, gv, 14u, &dp); }
    if (D4 > 15u) { dp_dv_step(qb, i0, lane, vT, pt, gv, 15u, &dp); }
    return dp;
}

// Where a workgroup of the forward or dQ pass stands: its (batch, head) slice `bh`, the lane's
// four query rows `r` and their frames `qf`, the keys any of its queries sees ([0, end)) and
// those all of them see ([0, full)), the offsets of the q and k slices.
struct QueryTile {
    bh: u32,
    r: vec4<u32>,
    end: u32,
    full: u32,
    qf: vec4<u32>,
    qb: u32,
    kb: u32,
}

fn query_tile(wg: vec3<u32>, lane: u32) -> QueryTile {
    let bh = wg.y;
    let i0 = wg.x * 4u * SG;
    let r = vec4<u32>(i0 + 4u * lane) + vec4<u32>(0u, 1u, 2u, 3u);
    let len = min(lens[bh / p.h], p.nk);
    return QueryTile(bh, r, key_end(min(i0 + 4u * SG, p.nq), len), key_end(i0 + 1u, len),
                     (r + vec4<u32>(p.q_off)) / vec4<u32>(p.block), slice_base(bh, p.q_stride), slice_base(bh, p.k_stride));
}

// exp(s − m) where s was not masked (0 where it was), added to the row sums l.
fn weight(s: vec4<f32>, m: vec4<f32>, l: ptr<function, vec4<f32>>) -> vec4<f32> {
    let w = select(vec4<f32>(0.0), exp(s - m), s > vec4<f32>(NEG));
    *l += w;
    return w;
}

@compute @workgroup_size(SG)
fn forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
    let tile = query_tile(wg, lane);
    var qT = transpose_rows(SRC_Q, tile.qb, tile.r, p.nq, p.scale);
    var acc: array<vec4<f32>, MAX_DH>;
    var m = vec4<f32>(NEG);
    var l = vec4<f32>(0.0);
    for (var j0 = 0u; j0 < tile.end; j0 += BK) {
        var s = block(SRC_K, tile.kb, j0, tile.end, lane, &qT);
        if (j0 + BK > tile.full) {
            s[0] = select(vec4<f32>(NEG), s[0], visible_q(j0 + 0u, tile.qf, tile.end));
            s[1] = select(vec4<f32>(NEG), s[1], visible_q(j0 + 1u, tile.qf, tile.end));
            s[2] = select(vec4<f32>(NEG), s[2], visible_q(j0 + 2u, tile.qf, tile.end));
            s[3] = select(vec4<f32>(NEG), s[3], visible_q(j0 + 3u, tile.qf, tile.end));
            s[4] = select(vec4<f32>(NEG), s[4], visible_q(j0 + 4u, tile.qf, tile.end));
            s[5] = select(vec4<f32>(NEG), s[5], visible_q(j0 + 5u, tile.qf, tile.end));
            s[6] = select(vec4<f32>(NEG), s[6], visible_q(j0 + 6u, tile.qf, tile.end));
            s[7] = select(vec4<f32>(NEG), s[7], visible_q(j0 + 7u, tile.qf, tile.end));
            s[8] = select(vec4<f32>(NEG), s[8], visible_q(j0 + 8u, tile.qf, tile.end));
            s[9] = select(vec4<f32>(NEG), s[9], visible_q(j0 + 9u, tile.qf, tile.end));
            s[10] = select(vec4<f32>(NEG), s[10], visible_q(j0 + 10u, tile.qf, tile.end));
            s[11] = select(vec4<f32>(NEG), s[11], visible_q(j0 + 11u, tile.qf, tile.end));
            s[12] = select(vec4<f32>(NEG), s[12], visible_q(j0 + 12u, tile.qf, tile.end));
            s[13] = select(vec4<f32>(NEG), s[13], visible_q(j0 + 13u, tile.qf, tile.end));
            s[14] = select(vec4<f32>(NEG), s[14], visible_q(j0 + 14u, tile.qf, tile.end));
            s[15] = select(vec4<f32>(NEG), s[15], visible_q(j0 + 15u, tile.qf, tile.end));
        }
        var tmax = s[0];
        tmax = max(tmax, s[1]);
        tmax = max(tmax, s[2]);
        tmax = max(tmax, s[3]);
        tmax = max(tmax, s[4]);
        tmax = max(tmax, s[5]);
        tmax = max(tmax, s[6]);
        tmax = max(tmax, s[7]);
        tmax = max(tmax, s[8]);
        tmax = max(tmax, s[9]);
        tmax = max(tmax, s[10]);
        tmax = max(tmax, s[11]);
        tmax = max(tmax, s[12]);
        tmax = max(tmax, s[13]);
        tmax = max(tmax, s[14]);
        tmax = max(tmax, s[15]);
        let mn = max(m, tmax);
        let corr = exp(m - mn);
        m = mn;
        l *= corr;
        rescale(&acc, corr);
        s[0] = weight(s[0], mn, &l);
        s[1] = weight(s[1], mn, &l);
        s[2] = weight(s[2], mn, &l);
        s[3] = weight(s[3], mn, &l);
        s[4] = weight(s[4], mn, &l);
        s[5] = weight(s[5], mn, &l);
        s[6] = weight(s[6], mn, &l);
        s[7] = weight(s[7], mn, &l);
        s[8] = weight(s[8], mn, &l);
        s[9] = weight(s[9], mn, &l);
        s[10] = weight(s[10], mn, &l);
        s[11] = weight(s[11], mn, &l);
        s[12] = weight(s[12], mn, &l);
        s[13] = weight(s[13], mn, &l);
        s[14] = weight(s[14], mn, &l);
        s[15] = weight(s[15], mn, &l);
        accumulate(SRC_V, tile.kb, j0, tile.end, lane, &s, &acc);
    }
    let inv = select(vec4<f32>(0.0), 1.0 / l, l > vec4<f32>(0.0));
    store_rows(0u, tile.qb, tile.r, p.nq, &acc, inv);
    for (var c = 0u; c < 4u; c++) {
        if (tile.r[c] < p.nq) {
            // +∞ for a query that sees nothing: exp(s − lse) = 0 in the backward
            stats_out[tile.bh * p.nq + tile.r[c]] = select(bitcast<f32>(INF), m[c] + log(l[c]), l[c] > 0.0);
        }
    }
}

// dS = P ∘ (dP − Δ) for one key and the lane's four queries, P = exp(s − lse) (0 if masked).
fn grad_q(s: vec4<f32>, dp: vec4<f32>, lse: vec4<f32>, dl: vec4<f32>, masked: bool, j: u32, qf: vec4<u32>, end: u32) -> vec4<f32> {
    var pt = exp(s - lse);
    if (masked) {
        pt = select(vec4<f32>(0.0), pt, visible_q(j, qf, end));
    }
    return pt * (dp - dl);
}

@compute @workgroup_size(SG)
fn backward_dq(@builtin(workgroup_id) wg: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
    let tile = query_tile(wg, lane);
    var qT = transpose_rows(SRC_Q, tile.qb, tile.r, p.nq, p.scale);
    var gT = transpose_rows(SRC_DO, tile.qb, tile.r, p.nq, 1.0);
    var lse = vec4<f32>(bitcast<f32>(INF));
    var dl = vec4<f32>(0.0);
    for (var c = 0u; c < 4u; c++) {
        if (tile.r[c] < p.nq) {
            lse[c] = stats[tile.bh * p.nq + tile.r[c]];
            dl[c] = stats[p.bh * p.nq + tile.bh * p.nq + tile.r[c]];
        }
    }
    var acc: array<vec4<f32>, MAX_DH>;
    for (var j0 = 0u; j0 < tile.end; j0 += BK) {
        var s = block(SRC_K, tile.kb, j0, tile.end, lane, &qT);
        // dP block: dp[t] = Σ_d v[j0 + t][d] · dO[d]
        var dp = block(SRC_V, tile.kb, j0, tile.end, lane, &gT);
        let masked = j0 + BK > tile.full;
        s[0] = grad_q(s[0], dp[0], lse, dl, masked, j0 + 0u, tile.qf, tile.end);
        s[1] = grad_q(s[1], dp[1], lse, dl, masked, j0 + 1u, tile.qf, tile.end);
        s[2] = grad_q(s[2], dp[2], lse, dl, masked, j0 + 2u, tile.qf, tile.end);
        s[3] = grad_q(s[3], dp[3], lse, dl, masked, j0 + 3u, tile.qf, tile.end);
        s[4] = grad_q(s[4], dp[4], lse, dl, masked, j0 + 4u, tile.qf, tile.end);
        s[5] = grad_q(s[5], dp[5], lse, dl, masked, j0 + 5u, tile.qf, tile.end);
        s[6] = grad_q(s[6], dp[6], lse, dl, masked, j0 + 6u, tile.qf, tile.end);
        s[7] = grad_q(s[7], dp[7], lse, dl, masked, j0 + 7u, tile.qf, tile.end);
        s[8] = grad_q(s[8], dp[8], lse, dl, masked, j0 + 8u, tile.qf, tile.end);
        s[9] = grad_q(s[9], dp[9], lse, dl, masked, j0 + 9u, tile.qf, tile.end);
        s[10] = grad_q(s[10], dp[10], lse, dl, masked, j0 + 10u, tile.qf, tile.end);
        s[11] = grad_q(s[11], dp[11], lse, dl, masked, j0 + 11u, tile.qf, tile.end);
        s[12] = grad_q(s[12], dp[12], lse, dl, masked, j0 + 12u, tile.qf, tile.end);
        s[13] = grad_q(s[13], dp[13], lse, dl, masked, j0 + 13u, tile.qf, tile.end);
        s[14] = grad_q(s[14], dp[14], lse, dl, masked, j0 + 14u, tile.qf, tile.end);
        s[15] = grad_q(s[15], dp[15], lse, dl, masked, j0 + 15u, tile.qf, tile.end);
        accumulate(SRC_K, tile.kb, j0, tile.end, lane, &s, &acc);
    }
    store_rows(1u, tile.qb, tile.r, p.nq, &acc, vec4<f32>(p.scale));
}

// P = exp(s − lse) of query i for the lane's four keys (frames kf), 0 where masked.
fn prob_k(s: vec4<f32>, lse: f32, masked: bool, i: u32, kf: vec4<u32>, live: vec4<bool>) -> vec4<f32> {
    var vis = live;
    if (masked) {
        vis = vis & (kf <= vec4<u32>((i + p.q_off) / p.block));
    }
    return select(vec4<f32>(0.0), exp(s - vec4<f32>(lse)), vis);
}

@compute @workgroup_size(SG)
fn backward_dkv(@builtin(workgroup_id) wg: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
    let bh = wg.y;
    let j0w = wg.x * 4u * SG;
    let r = vec4<u32>(j0w + 4u * lane) + vec4<u32>(0u, 1u, 2u, 3u);
    let len = min(lens[bh / p.h], p.nk);
    let qb = slice_base(bh, p.q_stride);
    let kb = slice_base(bh, p.k_stride);
    // k pre-scaled, so s = q · (scale k) and dK = scale · Σ dS q
    var kT = transpose_rows(SRC_K, kb, r, len, p.scale);
    var vT = transpose_rows(SRC_V, kb, r, len, 1.0);
    let kf = r / vec4<u32>(p.block);
    var gk: array<vec4<f32>, MAX_DH>;
    var gv: array<vec4<f32>, MAX_DH>;
    // the first query that can see key j0w (block-causal: the first query of its frame), and
    // the first from which every query sees all of the workgroup's valid keys
    var start = 0u;
    var full = 0u;
    if (MASK == 1u && j0w < len) {
        let first = (j0w / p.block) * p.block;
        start = select(0u, first - p.q_off, first > p.q_off) / BK * BK;
        let last = (min(j0w + 4u * SG, len) - 1u) / p.block * p.block;
        full = select(0u, last - p.q_off, last > p.q_off);
    }
    let nq = select(0u, p.nq, j0w < len);
    let live = r < vec4<u32>(len);
    for (var i0 = start; i0 < nq; i0 += BK) {
        // (lse, Δ) of the 16 queries, and S^T block st[t] = q[i0 + t] · kT
        let ls = share16(load_stats(bh * p.nq, i0, p.nq, lane));
        var st = block(SRC_Q, qb, i0, p.nq, lane, &kT);
        let masked = MASK == 1u && i0 < full;
        st[0] = prob_k(st[0], ls[0].x, masked, i0 + 0u, kf, live);
        st[1] = prob_k(st[1], ls[1].x, masked, i0 + 1u, kf, live);
        st[2] = prob_k(st[2], ls[2].x, masked, i0 + 2u, kf, live);
        st[3] = prob_k(st[3], ls[3].x, masked, i0 + 3u, kf, live);
        st[4] = prob_k(st[4], ls[4].x, masked, i0 + 4u, kf, live);
        st[5] = prob_k(st[5], ls[5].x, masked, i0 + 5u, kf, live);
        st[6] = prob_k(st[6], ls[6].x, masked, i0 + 6u, kf, live);
        st[7] = prob_k(st[7], ls[7].x, masked, i0 + 7u, kf, live);
        st[8] = prob_k(st[8], ls[8].x, masked, i0 + 8u, kf, live);
        st[9] = prob_k(st[9], ls[9].x, masked, i0 + 9u, kf, live);
        st[10] = prob_k(st[10], ls[10].x, masked, i0 + 10u, kf, live);
        st[11] = prob_k(st[11], ls[11].x, masked, i0 + 11u, kf, live);
        st[12] = prob_k(st[12], ls[12].x, masked, i0 + 12u, kf, live);
        st[13] = prob_k(st[13], ls[13].x, masked, i0 + 13u, kf, live);
        st[14] = prob_k(st[14], ls[14].x, masked, i0 + 14u, kf, live);
        st[15] = prob_k(st[15], ls[15].x, masked, i0 + 15u, kf, live);
        // dP^T and dV from one pass over the dO rows
        var dp = dp_dv(qb, i0, lane, &vT, &st, &gv);
        st[0] = st[0] * (dp[0] - vec4<f32>(ls[0].y));
        st[1] = st[1] * (dp[1] - vec4<f32>(ls[1].y));
        st[2] = st[2] * (dp[2] - vec4<f32>(ls[2].y));
        st[3] = st[3] * (dp[3] - vec4<f32>(ls[3].y));
        st[4] = st[4] * (dp[4] - vec4<f32>(ls[4].y));
        st[5] = st[5] * (dp[5] - vec4<f32>(ls[5].y));
        st[6] = st[6] * (dp[6] - vec4<f32>(ls[6].y));
        st[7] = st[7] * (dp[7] - vec4<f32>(ls[7].y));
        st[8] = st[8] * (dp[8] - vec4<f32>(ls[8].y));
        st[9] = st[9] * (dp[9] - vec4<f32>(ls[9].y));
        st[10] = st[10] * (dp[10] - vec4<f32>(ls[10].y));
        st[11] = st[11] * (dp[11] - vec4<f32>(ls[11].y));
        st[12] = st[12] * (dp[12] - vec4<f32>(ls[12].y));
        st[13] = st[13] * (dp[13] - vec4<f32>(ls[13].y));
        st[14] = st[14] * (dp[14] - vec4<f32>(ls[14].y));
        st[15] = st[15] * (dp[15] - vec4<f32>(ls[15].y));
        accumulate(SRC_Q, qb, i0, p.nq, lane, &st, &gk);
    }
    store_rows(2u, kb, r, p.nk, &gk, vec4<f32>(p.scale));
    store_rows(3u, kb, r, p.nk, &gv, vec4<f32>(1.0));
}
