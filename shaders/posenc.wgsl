// Fixed sinusoidal position encodings: out[i, k·dd + 2j] = sin(pos[i, k] · ω_j) and
// out[i, k·dd + 2j + 1] = cos(pos[i, k] · ω_j), ω_j = 10000^(−2j/dd), for each coordinate k of
// `dims` (dd = d / dims channels per coordinate).

struct Params {
    n: u32,     // positions · d
    d: u32,
    dims: u32,
}
var<immediate> p: Params;

@group(0) @binding(0) var<storage, read> pos: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn sinusoidal(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) li: u32) {
    let i = (wg.y * nwg.x + wg.x) * 256u + li;
    if (i >= p.n) {
        return;
    }
    let row = i / p.d;
    let ch = i % p.d;
    let dd = p.d / p.dims;
    let k = ch / dd;
    let within = ch % dd;
    let j = within / 2u;
    let w = pow(10000.0, -2.0 * f32(j) / f32(dd));
    let a = pos[row * p.dims + k] * w;
    out[i] = select(cos(a), sin(a), within % 2u == 0u);
}
