// Batched matrix multiply C[b] = op(A[b]) · op(B[b]) (+ bias), op = optional transpose.
//
// Register-blocked: every invocation computes a TM × TN block of C (TN a multiple of 4) from
// fragments of 4 k-values, read as vec4 wherever the layout allows (VEC_A / VEC_B, chosen by
// the host from the shapes), otherwise as bounds-checked scalars. No workgroup memory: on
// lavapipe barriers cost more than they save, and the tile sizes are `override` constants so
// each adapter gets its own variant (see `MatmulTiles` in src/ops/matmul.rs).
//
// A is [M, K] (or [K, M] with TRANS_A), B is [K, N] (or [N, K] with TRANS_B), C is [M, N],
// all row-major; `sa`, `sb`, `sc` are the element strides between batches (0 broadcasts).

override TM: u32 = 8u;        // rows per invocation: 4 or 8
override TN: u32 = 8u;        // columns per invocation: 4 or 8
override WG_X: u32 = 8u;      // invocations along N
override WG_Y: u32 = 8u;      // invocations along M
override TRANS_A: bool = false;
override TRANS_B: bool = false;
override VEC_A: bool = false; // K % 4 == 0 and (TRANS_A implies M % 4 == 0)
override VEC_B: bool = false; // K % 4 == 0 and (!TRANS_B implies N % 4 == 0)
override HAS_BIAS: bool = false;

struct Params {
    M: u32,
    N: u32,
    K: u32,
    pad0: u32,
    sa: u32,
    sb: u32,
    sc: u32,
    pad1: u32,
}
var<immediate> p: Params;

@group(0) @binding(0) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bias: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> c: array<vec4<f32>>;

fn a_at(base: u32, r: u32, k: u32) -> f32 {
    if (r >= p.M || k >= p.K) {
        return 0.0;
    }
    var i: u32;
    if (TRANS_A) {
        i = base + k * p.M + r;
    } else {
        i = base + r * p.K + k;
    }
    return a[i >> 2u][i & 3u];
}

fn b_at(base: u32, k: u32, n: u32) -> f32 {
    if (k >= p.K || n >= p.N) {
        return 0.0;
    }
    var i: u32;
    if (TRANS_B) {
        i = base + n * p.K + k;
    } else {
        i = base + k * p.N + n;
    }
    return b[i >> 2u][i & 3u];
}

fn bias_at(n: u32) -> f32 {
    if (n >= p.N) {
        return 0.0;
    }
    return bias[n >> 2u][n & 3u];
}

@compute @workgroup_size(WG_X, WG_Y, 1)
fn matmul(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r0 = (wg.y * WG_Y + lid.y) * TM;
    let c0 = (wg.x * WG_X + lid.x) * TN;
    let abase = wg.z * p.sa;
    let bbase = wg.z * p.sb;
    let cbase = wg.z * p.sc;
    let TN4 = TN / 4u;

    var acc: array<vec4<f32>, 16>; // [TM][TN4], zero-initialised
    let nk4 = (p.K + 3u) / 4u;
    for (var kq = 0u; kq < nk4; kq++) {
        let k = kq * 4u;
        var af: array<vec4<f32>, 8>; // af[i] = A[r0 + i, k .. k + 4]
        var bf: array<vec4<f32>, 8>; // bf[kk * TN4 + j] = B[k + kk, c0 + 4j .. c0 + 4j + 4]

        if (VEC_A && !TRANS_A) {
            for (var i = 0u; i < TM; i++) {
                let r = min(r0 + i, p.M - 1u);
                af[i] = a[(abase + r * p.K + k) / 4u];
            }
        } else if (VEC_A && TRANS_A) {
            for (var q = 0u; q < TM / 4u; q++) {
                let r = min(r0 + 4u * q, p.M - 4u);
                let v0 = a[(abase + k * p.M + r) / 4u];
                let v1 = a[(abase + (k + 1u) * p.M + r) / 4u];
                let v2 = a[(abase + (k + 2u) * p.M + r) / 4u];
                let v3 = a[(abase + (k + 3u) * p.M + r) / 4u];
                af[4u * q] = vec4<f32>(v0.x, v1.x, v2.x, v3.x);
                af[4u * q + 1u] = vec4<f32>(v0.y, v1.y, v2.y, v3.y);
                af[4u * q + 2u] = vec4<f32>(v0.z, v1.z, v2.z, v3.z);
                af[4u * q + 3u] = vec4<f32>(v0.w, v1.w, v2.w, v3.w);
            }
        } else {
            for (var i = 0u; i < TM; i++) {
                let r = r0 + i;
                af[i] = vec4<f32>(a_at(abase, r, k), a_at(abase, r, k + 1u), a_at(abase, r, k + 2u), a_at(abase, r, k + 3u));
            }
        }

        if (VEC_B && !TRANS_B) {
            for (var j = 0u; j < TN4; j++) {
                let n = min(c0 + 4u * j, p.N - 4u);
                for (var kk = 0u; kk < 4u; kk++) {
                    bf[kk * TN4 + j] = b[(bbase + (k + kk) * p.N + n) / 4u];
                }
            }
        } else if (VEC_B && TRANS_B) {
            for (var j = 0u; j < TN4; j++) {
                let n = c0 + 4u * j;
                let w0 = b[(bbase + min(n, p.N - 1u) * p.K + k) / 4u];
                let w1 = b[(bbase + min(n + 1u, p.N - 1u) * p.K + k) / 4u];
                let w2 = b[(bbase + min(n + 2u, p.N - 1u) * p.K + k) / 4u];
                let w3 = b[(bbase + min(n + 3u, p.N - 1u) * p.K + k) / 4u];
                bf[j] = vec4<f32>(w0.x, w1.x, w2.x, w3.x);
                bf[TN4 + j] = vec4<f32>(w0.y, w1.y, w2.y, w3.y);
                bf[2u * TN4 + j] = vec4<f32>(w0.z, w1.z, w2.z, w3.z);
                bf[3u * TN4 + j] = vec4<f32>(w0.w, w1.w, w2.w, w3.w);
            }
        } else {
            for (var j = 0u; j < TN4; j++) {
                let n = c0 + 4u * j;
                for (var kk = 0u; kk < 4u; kk++) {
                    bf[kk * TN4 + j] = vec4<f32>(b_at(bbase, k + kk, n), b_at(bbase, k + kk, n + 1u),
                                                 b_at(bbase, k + kk, n + 2u), b_at(bbase, k + kk, n + 3u));
                }
            }
        }

        for (var i = 0u; i < TM; i++) {
            let av = af[i];
            for (var j = 0u; j < TN4; j++) {
                let o = i * TN4 + j;
                acc[o] = fma(vec4<f32>(av.x), bf[j],
                         fma(vec4<f32>(av.y), bf[TN4 + j],
                         fma(vec4<f32>(av.z), bf[2u * TN4 + j],
                         fma(vec4<f32>(av.w), bf[3u * TN4 + j], acc[o]))));
            }
        }
    }

    for (var i = 0u; i < TM; i++) {
        let r = r0 + i;
        if (r >= p.M) {
            break;
        }
        for (var j = 0u; j < TN4; j++) {
            let n = c0 + 4u * j;
            if (n >= p.N) {
                break;
            }
            var v = acc[i * TN4 + j];
            if (HAS_BIAS) {
                v += vec4<f32>(bias_at(n), bias_at(n + 1u), bias_at(n + 2u), bias_at(n + 3u));
            }
            let idx = cbase + r * p.N + n;
            if (n + 4u <= p.N && (idx & 3u) == 0u) {
                c[idx / 4u] = v;
            } else {
                for (var t = 0u; t < 4u; t++) {
                    if (n + t < p.N) {
                        let e = idx + t;
                        c[e >> 2u][e & 3u] = v[t];
                    }
                }
            }
        }
    }
}
