// Strided copy: dst[dst_off + Σ c_d·ds_d] = src[src_off + Σ c_d·ss_d] for every coordinate c of
// `shape` (rank <= 8). One kernel serves permute/transpose (permuted source strides), expand
// (stride 0), slice (source offset) and concat or slice-backward (destination offset/strides).

struct Params {
    n: u32,        // elements of `shape`
    rank: u32,
    src_off: u32,
    dst_off: u32,
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
    var rem = i;
    var si = p.src_off;
    var di = p.dst_off;
    for (var d = i32(p.rank) - 1; d >= 0; d--) {
        let du = u32(d);
        let extent = p.shape[du / 4u][du % 4u];
        let c = rem % extent;
        rem = rem / extent;
        si += c * p.ss[du / 4u][du % 4u];
        di += c * p.ds[du / 4u][du % 4u];
    }
    dst[di] = src[si];
}
