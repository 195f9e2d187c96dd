use enma::Tensor;
use enma::ops::{RowIndex, gather_rows, scatter_add_rows};

use crate::common::{check_grads, gpu, rand_vec};

#[test]
fn gather_and_scatter_forward_and_backward() {
    let g = gpu();
    // repeats and rows never picked; a second, larger index of 300 rows
    let big: Vec<u32> = (0..500u32).map(|i| (i * 7919) % 300).collect();
    for (rows, c, idx) in [(7usize, 5usize, vec![3u32, 0, 3, 6, 1, 3, 0]), (300, 3, big)] {
        let index = RowIndex::new(&g, &idx, rows).unwrap();
        let idx2 = idx.clone();
        check_grads(
            "gather_rows",
            &g,
            &[(rand_vec(rows * c, 61, -1.0, 1.0), vec![rows, c])],
            |v| v[0].gather_rows(&index),
            move |x| idx2.iter().flat_map(|&r| x[0][r as usize * c..(r as usize + 1) * c].to_vec()).collect(),
            2e-3,
        );
        let idx3 = idx.clone();
        check_grads(
            "scatter_add_rows",
            &g,
            &[(rand_vec(idx.len() * c, 62, -1.0, 1.0), vec![idx.len(), c])],
            |v| v[0].scatter_add_rows(&index),
            move |x| {
                let mut out = vec![0.0; rows * c];
                for (i, &r) in idx3.iter().enumerate() {
                    for k in 0..c {
                        out[r as usize * c + k] += x[0][i * c + k];
                    }
                }
                out
            },
            2e-3,
        );
    }
    // 3-D rows ([rows, 2, 3]) gather whole sub-blocks
    let x = Tensor::from_slice(&g, &rand_vec(4 * 6, 63, -1.0, 1.0), &[4, 2, 3]).unwrap();
    let i2 = RowIndex::new(&g, &[2, 2, 0], 4).unwrap();
    let y = gather_rows(&x, &i2).unwrap();
    assert_eq!(y.shape(), &[3, 2, 3]);
    let xv = x.to_vec().unwrap();
    assert_eq!(y.to_vec().unwrap(), [&xv[12..18], &xv[12..18], &xv[0..6]].concat());
    let s = scatter_add_rows(&y, &i2).unwrap().to_vec().unwrap();
    assert_eq!(&s[6..12], &[0.0; 6]);
}

#[test]
fn out_of_range_indices_are_refused() {
    let g = gpu();
    let e = RowIndex::new(&g, &[0, 5, 1], 5).unwrap_err().to_string();
    assert!(e.contains("index 1 is 5") && e.contains("5 rows"), "{e}");
}

#[test]
fn embedding_lookup_trains_only_the_rows_it_used() {
    let g = gpu();
    let mut store = enma::ParamStore::new(&g, 5);
    let emb = enma::nn::Embedding::new(&mut store, "emb", 6, 4, 0.02).unwrap();
    let tape = enma::Tape::new(&g);
    let idx = RowIndex::new(&g, &[1, 4, 1], 6).unwrap();
    let rows = emb.lookup(&tape, &store, &idx).unwrap();
    assert_eq!(rows.shape(), &[3, 4]);
    let grads = rows.sum_all().unwrap().backward().unwrap();
    let gt = grads.param(&emb.table).unwrap().to_vec().unwrap();
    let want: Vec<f32> = (0..6)
        .flat_map(|r| {
            [match r {
                1 => 2.0,
                4 => 1.0,
                _ => 0.0,
            }; 4]
        })
        .collect();
    assert_eq!(gt, want);
}
