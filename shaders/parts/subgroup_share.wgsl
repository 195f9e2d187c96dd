
// ---- shaders/parts/subgroup_share.wgsl, appended by src/gpu/kernels.rs to the subgroup kernels
// that hand rows of one operand from lane to lane (matmul_subgroup.wgsl, conv_causal_subgroup.wgsl,
// flash_attention_subgroup.wgsl).
// They define the overrides SG (lanes of a subgroup) and SGM = min(SG, 16).
//
// A block of 16 rows, row t held by lane t % SGM in slot t / SGM of `a` (slots 0..16/SGM - 1),
// reaches every lane through subgroupBroadcast, a register permute. The source lane must be a
// constant, hence one branch per subgroup size; 32 and 64 lanes use their first 16.
fn share16(a: array<vec4<f32>, 4>) -> array<vec4<f32>, 16> {
    var x: array<vec4<f32>, 16>;
    if (SG == 4u) {
        x[0] = subgroupBroadcast(a[0], 0u); x[1] = subgroupBroadcast(a[0], 1u);
        x[2] = subgroupBroadcast(a[0], 2u); x[3] = subgroupBroadcast(a[0], 3u);
        x[4] = subgroupBroadcast(a[1], 0u); x[5] = subgroupBroadcast(a[1], 1u);
        x[6] = subgroupBroadcast(a[1], 2u); x[7] = subgroupBroadcast(a[1], 3u);
        x[8] = subgroupBroadcast(a[2], 0u); x[9] = subgroupBroadcast(a[2], 1u);
        x[10] = subgroupBroadcast(a[2], 2u); x[11] = subgroupBroadcast(a[2], 3u);
        x[12] = subgroupBroadcast(a[3], 0u); x[13] = subgroupBroadcast(a[3], 1u);
        x[14] = subgroupBroadcast(a[3], 2u); x[15] = subgroupBroadcast(a[3], 3u);
    } else if (SG == 8u) {
        x[0] = subgroupBroadcast(a[0], 0u); x[1] = subgroupBroadcast(a[0], 1u);
        x[2] = subgroupBroadcast(a[0], 2u); x[3] = subgroupBroadcast(a[0], 3u);
        x[4] = subgroupBroadcast(a[0], 4u); x[5] = subgroupBroadcast(a[0], 5u);
        x[6] = subgroupBroadcast(a[0], 6u); x[7] = subgroupBroadcast(a[0], 7u);
        x[8] = subgroupBroadcast(a[1], 0u); x[9] = subgroupBroadcast(a[1], 1u);
        x[10] = subgroupBroadcast(a[1], 2u); x[11] = subgroupBroadcast(a[1], 3u);
        x[12] = subgroupBroadcast(a[1], 4u); x[13] = subgroupBroadcast(a[1], 5u);
        x[14] = subgroupBroadcast(a[1], 6u); x[15] = subgroupBroadcast(a[1], 7u);
    } else {
        x[0] = subgroupBroadcast(a[0], 0u); x[1] = subgroupBroadcast(a[0], 1u);
        x[2] = subgroupBroadcast(a[0], 2u); x[3] = subgroupBroadcast(a[0], 3u);
        x[4] = subgroupBroadcast(a[0], 4u); x[5] = subgroupBroadcast(a[0], 5u);
        x[6] = subgroupBroadcast(a[0], 6u); x[7] = subgroupBroadcast(a[0], 7u);
        x[8] = subgroupBroadcast(a[0], 8u); x[9] = subgroupBroadcast(a[0], 9u);
        x[10] = subgroupBroadcast(a[0], 10u); x[11] = subgroupBroadcast(a[0], 11u);
        x[12] = subgroupBroadcast(a[0], 12u); x[13] = subgroupBroadcast(a[0], 13u);
        x[14] = subgroupBroadcast(a[0], 14u); x[15] = subgroupBroadcast(a[0], 15u);
    }
    return x;
}
