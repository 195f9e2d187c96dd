// Conversions between f32 and f16 storage. Needs the SHADER_F16 feature.
enable f16;

struct Params {
    n: u32,  // number of elements
}
var<immediate> p: Params;

@group(0) @binding(0) var<storage, read> src32: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst16: array<vec2<f16>>;
@group(0) @binding(2) var<storage, read> src16: array<vec2<f16>>;
@group(0) @binding(3) var<storage, read_write> dst32: array<f32>;

fn linear_id(wg: vec3<u32>, nwg: vec3<u32>, li: u32) -> u32 {
    return (wg.y * nwg.x + wg.x) * 256u + li;
}

// One thread per pair of elements; an odd tail pads the last half with zero.
@compute @workgroup_size(256)
fn f32_to_f16(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) li: u32) {
    let i = linear_id(wg, nwg, li);
    let e = 2u * i;
    if (e < p.n) {
        var hi = 0.0;
        if (e + 1u < p.n) {
            hi = src32[e + 1u];
        }
        dst16[i] = vec2<f16>(f16(src32[e]), f16(hi));
    }
}

@compute @workgroup_size(256)
fn f16_to_f32(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) li: u32) {
    let i = linear_id(wg, nwg, li);
    let e = 2u * i;
    if (e < p.n) {
        let v = src16[i];
        dst32[e] = f32(v.x);
        if (e + 1u < p.n) {
            dst32[e + 1u] = f32(v.y);
        }
    }
}
