// Strided copy: dst[dst_off + Σ c_d·ds_d] = src[src_off + Σ c_d·ss_d] for every coordinate c of
// `shape` (rank <= 8). One kernel serves permute/transpose (permuted source strides), expand
// (stride 0), slice (source offset) and concat or slice-backward (destination offset/strides).

// The host merges axes that both sides step through contiguously and drops size-1 axes, and
// each invocation copies up to CHUNK consecutive elements of the innermost axis, so the
// coordinate arithmetic (integer division, slow on CPU adapters) runs once per chunk.

const CHUNK: u32 = 16u;

struct Params {
    n: u32,        // invocations: rows of the innermost axis × chunks per row
    rank: u32,
    src_off: u32,
    dst_off: u32,
    chunks: u32,   // chunks per row of the innermost axis
    pad0: u32,
    pad1: u32,
    pad2: u32,
    shape: array<vec4<u32>, 2>,
    ss: array<vec4<u32>, 2>,
    ds: array<vec4<u32>, 2>,
}
var<immediate> p: Params;

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(256)
fn strided_copy(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) li: u32) {
    let i = (wg.y * nwg.x + wg.x) * 256u + li;
    if (i >= p.n) {
        return;
    }
    let last = p.rank - 1u;
    let inner = p.shape[last / 4u][last % 4u];
    let s_in = p.ss[last / 4u][last % 4u];
    let d_in = p.ds[last / 4u][last % 4u];
    let start = (i % p.chunks) * CHUNK;
    var rem = i / p.chunks;
    var si = p.src_off + start * s_in;
    var di = p.dst_off + start * d_in;
    for (var d = i32(last) - 1; d >= 0; d--) {
        let du = u32(d);
        let extent = p.shape[du / 4u][du % 4u];
        let c = rem % extent;
        rem = rem / extent;
        si += c * p.ss[du / 4u][du % 4u];
        di += c * p.ds[du / 4u][du % 4u];
    }
    let count = min(CHUNK, inner - start);
    for (var k = 0u; k < count; k++) {
        dst[di + k * d_in] = src[si + k * s_in];
    }
}
