use enma::ops;
use enma::{DType, Tensor};

use crate::common::{gpu, rand_vec};

#[test]
fn upload_download_round_trip() {
    let g = gpu();
    for n in [1usize, 2, 3, 4, 1000, 65537] {
        let data = rand_vec(n, n as u64, -10.0, 10.0);
        let t = Tensor::from_slice(&g, &data, &[n]).unwrap();
        assert_eq!(t.to_vec().unwrap(), data);
    }
    let u: Vec<u32> = (0..77).collect();
    assert_eq!(Tensor::from_u32(&g, &u, &[7, 11]).unwrap().to_vec_u32().unwrap(), u);
}

#[test]
fn writes_are_ordered_after_pending_reads() {
    let g = gpu();
    let a = Tensor::from_slice(&g, &[1.0, 2.0, 3.0, 4.0], &[4]).unwrap();
    let b = ops::copy(&a).unwrap(); // recorded, reads a
    a.write(&[9.0; 4]).unwrap(); // must not overtake the copy
    assert_eq!(b.to_vec().unwrap(), [1.0, 2.0, 3.0, 4.0]);
    assert_eq!(a.to_vec().unwrap(), [9.0; 4]);
}

#[test]
fn reshape_shares_storage_and_checks_counts() {
    let g = gpu();
    let t = Tensor::from_slice(&g, &rand_vec(24, 1, 0.0, 1.0), &[2, 3, 4]).unwrap();
    let r = t.reshape(&[6, 4]).unwrap();
    assert!(r.same_storage(&t));
    assert_eq!(r.to_vec().unwrap(), t.to_vec().unwrap());
    let e = t.reshape(&[5, 5]).unwrap_err().to_string();
    assert!(e.contains("[2, 3, 4]") && e.contains("[5, 5]"), "{e}");
}

#[test]
fn wrong_lengths_and_dtypes_are_errors() {
    let g = gpu();
    let e = Tensor::from_slice(&g, &[1.0; 5], &[2, 3]).unwrap_err().to_string();
    assert!(e.contains("5 values") && e.contains("[2, 3]"), "{e}");
    let t = Tensor::zeros(&g, &[4], DType::F32).unwrap();
    assert!(t.write(&[1.0; 3]).is_err());
    assert!(t.to_vec_u32().is_err());
    let u = Tensor::zeros(&g, &[4], DType::U32).unwrap();
    assert!(u.to_vec().is_err());
    assert!(ops::unary(&u, ops::UnaryOp::Exp).is_err());
}

#[test]
fn empty_tensors_work() {
    let g = gpu();
    let t = Tensor::from_slice(&g, &[], &[0, 3]).unwrap();
    assert_eq!(t.to_vec().unwrap(), Vec::<f32>::new());
    assert_eq!(ops::unary(&t, ops::UnaryOp::Exp).unwrap().shape(), &[0, 3]);
}
