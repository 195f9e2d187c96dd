//! The attention layer and the transformer block against an f64 CPU reference (forward and
//! finite-difference backward with respect to the input).

use enma::nn::{AttentionPath, MultiHeadAttention, TransformerBlock};
use enma::{ParamStore, Tensor};

use crate::common::{check_grads, gpu, rand_vec};

fn p64(store: &ParamStore, name: &str) -> Vec<f64> {
    let p = store.get(name).unwrap_or_else(|| panic!("no parameter {name}"));
    store.tensor(&p).unwrap().to_vec().unwrap().iter().map(|&v| v as f64).collect()
}

fn linear(x: &[f64], rows: usize, w: &[f64], b: &[f64], din: usize, dout: usize) -> Vec<f64> {
    let mut y = vec![0.0; rows * dout];
    for r in 0..rows {
        for j in 0..dout {
            y[r * dout + j] = b[j] + (0..din).map(|k| x[r * din + k] * w[k * dout + j]).sum::<f64>();
        }
    }
    y
}

fn rms(x: &[f64], c: usize, g: &[f64], eps: f64) -> Vec<f64> {
    x.chunks(c)
        .flat_map(|row| {
            let r = 1.0 / (row.iter().map(|v| v * v).sum::<f64>() / c as f64 + eps).sqrt();
            (0..c).map(move |k| row[k] * r * g[k]).collect::<Vec<_>>()
        })
        .collect()
}

/// f64 reference of `MultiHeadAttention::forward` with QK-RMSNorm and an additive mask [T, T].
#[allow(clippy::too_many_arguments)]
fn attention_ref(
    store: &ParamStore,
    name: &str,
    x: &[f64],
    b: usize,
    t: usize,
    d: usize,
    h: usize,
    mask: &[f64],
) -> Vec<f64> {
    let hd = d / h;
    let qkv = linear(
        x,
        b * t,
        &p64(store, &format!("{name}.qkv.weight")),
        &p64(store, &format!("{name}.qkv.bias")),
        d,
        3 * d,
    );
    let (gq, gk) = (p64(store, &format!("{name}.q_norm.weight")), p64(store, &format!("{name}.k_norm.weight")));
    let mut o = vec![0.0; b * t * d];
    for bi in 0..b {
        for hi in 0..h {
            let get = |which: usize, ti: usize| -> Vec<f64> {
                (0..hd).map(|e| qkv[(bi * t + ti) * 3 * d + which * d + hi * hd + e]).collect()
            };
            let q: Vec<Vec<f64>> = (0..t).map(|ti| rms(&get(0, ti), hd, &gq, 1e-6)).collect();
            let k: Vec<Vec<f64>> = (0..t).map(|ti| rms(&get(1, ti), hd, &gk, 1e-6)).collect();
            let v: Vec<Vec<f64>> = (0..t).map(|ti| get(2, ti)).collect();
            for i in 0..t {
                let s: Vec<f64> = (0..t)
                    .map(|j| (0..hd).map(|e| q[i][e] * k[j][e]).sum::<f64>() / (hd as f64).sqrt() + mask[i * t + j])
                    .collect();
                let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = s.iter().map(|v| (v - m).exp()).sum();
                for e in 0..hd {
                    o[(bi * t + i) * d + hi * hd + e] = (0..t).map(|j| (s[j] - m).exp() / z * v[j][e]).sum();
                }
            }
        }
    }
    linear(&o, b * t, &p64(store, &format!("{name}.out.weight")), &p64(store, &format!("{name}.out.bias")), d, d)
}

#[test]
fn attention_with_mask_and_qk_norm_matches_the_cpu() {
    let g = gpu();
    let mut store = ParamStore::new(&g, 3);
    let (b, t, d, h) = (2, 5, 8, 2);
    let attn = MultiHeadAttention::new(&mut store, "attn", d, h, true).unwrap();
    // a causal mask: −1e9 above the diagonal
    let mask: Vec<f32> = (0..t * t).map(|i| if i % t > i / t { -1e9 } else { 0.0 }).collect();
    let mask64: Vec<f64> = mask.iter().map(|&v| v as f64).collect();
    check_grads(
        "attention",
        &g,
        &[(rand_vec(b * t * d, 81, -1.0, 1.0), vec![b, t, d])],
        |v| {
            let m = v[0].tape().constant(Tensor::from_slice(v[0].gpu(), &mask, &[t, t]).unwrap());
            attn.forward(v[0].tape(), &store, &v[0], Some(&m))
        },
        |x| attention_ref(&store, "attn", &x[0], b, t, d, h, &mask64),
        3e-3,
    );
}

#[test]
fn transformer_block_gradients_reach_every_parameter() {
    let g = gpu();
    let mut store = ParamStore::new(&g, 4);
    let block = TransformerBlock::new(&mut store, "blk", 16, 4, 2).unwrap();
    let tape = enma::Tape::new(&g);
    let x = tape.constant(Tensor::from_slice(&g, &rand_vec(2 * 6 * 16, 82, -1.0, 1.0), &[2, 6, 16]).unwrap());
    let y = block.forward(&tape, &store, &x, None).unwrap();
    assert_eq!(y.shape(), &[2, 6, 16]);
    let grads = y.square().unwrap().mean_all().unwrap().backward().unwrap();
    for p in store.params() {
        let gr = grads.param(&p).unwrap_or_else(|| panic!("no gradient for {}", store.name(&p).unwrap()));
        let v = gr.to_vec().unwrap();
        assert!(v.iter().all(|x| x.is_finite()));
        assert!(v.iter().any(|x| *x != 0.0), "zero gradient for {}", store.name(&p).unwrap());
    }
}

#[test]
fn attention_on_the_flash_kernel_matches_the_cpu() {
    use enma::ops::flash_attention::AttentionOptions;
    let g = gpu();
    let mut store = ParamStore::new(&g, 3);
    let (b, t, d, h) = (2, 6, 8, 2);
    let mut attn = MultiHeadAttention::new(&mut store, "attn", d, h, true).unwrap();
    // block-causal with blocks of 2 tokens as an additive mask for the reference
    let mask64: Vec<f64> = (0..t * t).map(|i| if (i % t) / 2 > (i / t) / 2 { -1e9 } else { 0.0 }).collect();
    let opts = AttentionOptions::new(1).block_causal(2);
    for path in [AttentionPath::Flash, AttentionPath::Plain, AttentionPath::Auto] {
        attn.path = path;
        check_grads(
            &format!("attention layer ({path:?})"),
            &g,
            &[(rand_vec(b * t * d, 83, -1.0, 1.0), vec![b, t, d])],
            |v| attn.forward_flash(v[0].tape(), &store, &v[0], &opts),
            |x| attention_ref(&store, "attn", &x[0], b, t, d, h, &mask64),
            3e-3,
        );
    }
}
