use enma::Tensor;
use enma::ops::{RowIndex, gather_rows, scatter_add_rows};

use crate::common::{check_grads, gpu, rand_vec};

#[test]
fn gather_and_scatter_forward_and_backward() {
    let g = gpu();
    let (rows, c) = (7usize, 5usize);
    // repeats and rows never picked
    let idx: Vec<u32> = vec![3, 0, 3, 6, 1, 3, 0];
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
