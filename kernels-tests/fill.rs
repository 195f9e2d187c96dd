use enma::{DType, Tensor, ops};

use crate::common::{gpu, rand_vec};

#[test]
fn fill_sets_every_element_including_odd_tails() {
    let g = gpu();
    for n in [1usize, 3, 257, 1000] {
        let t = Tensor::from_slice(&g, &rand_vec(n, 1, -1.0, 1.0), &[n]).unwrap();
        ops::fill(&t, 2.5).unwrap();
        assert_eq!(t.to_vec().unwrap(), vec![2.5; n]);
    }
    let u = Tensor::zeros(&g, &[5, 7], DType::U32).unwrap();
    assert_eq!(u.to_vec_u32().unwrap(), vec![0; 35]);
    ops::fill::fill_u32(&u, 7).unwrap();
    assert_eq!(u.to_vec_u32().unwrap(), vec![7; 35]);
}

#[test]
fn copy_is_exact_and_independent() {
    let g = gpu();
    let data = rand_vec(1031, 2, -5.0, 5.0);
    let a = Tensor::from_slice(&g, &data, &[1031]).unwrap();
    let b = ops::copy(&a).unwrap();
    ops::fill(&a, 0.0).unwrap();
    assert_eq!(b.to_vec().unwrap(), data);
    assert_eq!(a.to_vec().unwrap(), vec![0.0; 1031]);
}

#[test]
fn f16_round_trip_and_cast_kernels() {
    let g = gpu();
    if !g.has_f16() {
        eprintln!("adapter has no SHADER_F16: f16 storage not tested");
        return;
    }
    let data = rand_vec(1001, 3, -100.0, 100.0);
    let x = Tensor::from_slice(&g, &data, &[7, 143]).unwrap();
    let h = ops::to_f16(&x).unwrap();
    assert_eq!(h.dtype(), DType::F16);
    let want: Vec<f32> = data.iter().map(|&v| half::f16::from_f32(v).to_f32()).collect();
    // The GPU rounds to nearest like `half`: allow one f16 ulp at most (2^-10 relative).
    crate::common::assert_close("to_f16", &h.to_vec().unwrap(), &want, 0.0, 1.0 / 1024.0);
    let back = ops::to_f32(&h).unwrap();
    assert_eq!(back.to_vec().unwrap(), h.to_vec().unwrap());
    let uploaded = Tensor::from_slice_f16(&g, &data, &[1001]).unwrap();
    assert_eq!(uploaded.to_vec().unwrap(), want);
    ops::fill(&uploaded, 1.5).unwrap();
    assert_eq!(uploaded.to_vec().unwrap(), vec![1.5; 1001]);
}
