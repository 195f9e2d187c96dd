
// ---- shaders/parts/flash_rows.wgsl, appended by src/gpu/kernels.rs to both flash attention
// kernels (flash_attention.wgsl, flash_attention_subgroup.wgsl): where a (batch·head) slice
// and its rows start. Head-major tensors [B, H, N, DH] have RS = DH and `stride` elements
// between (batch·head) slices; token-major ones [B, N, H, DH] (what a [B, N, H·DH] projection
// is, so attention needs no head split or merge) have RS = H·DH and `stride` between batches.

override RS: u32 = DH;                      // elements between consecutive rows (tokens)

// First element of slice `bh` of a tensor with `stride` as above.
fn slice_base(bh: u32, stride: u32) -> u32 {
    if (RS == DH) {
        return bh * stride;
    }
    return (bh / p.h) * stride + (bh % p.h) * DH;
}
