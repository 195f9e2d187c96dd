//! The tape: clear errors for misuse, no-grad mode, release of intermediates.

use enma::{DType, Tape, Tensor};

use crate::common::{gpu, rand_vec};

#[test]
fn backward_without_a_graph_or_twice_or_on_a_vector_is_an_error() {
    let g = gpu();
    let tape = Tape::new(&g);
    let c = tape.constant(Tensor::from_slice(&g, &[1.0, 2.0], &[2]).unwrap());
    let e = c.sum_all().unwrap().backward().unwrap_err().to_string();
    assert!(e.contains("no recorded graph"), "{e}");

    let x = tape.leaf(Tensor::from_slice(&g, &[1.0, 2.0], &[2]).unwrap());
    let e = x.square().unwrap().backward().unwrap_err().to_string();
    assert!(e.contains("scalar") && e.contains("[2]"), "{e}");

    let loss = x.square().unwrap().sum_all().unwrap();
    let grads = loss.backward().unwrap();
    assert_eq!(grads.of(&x).unwrap().to_vec().unwrap(), [2.0, 4.0]);
    let e = loss.backward().unwrap_err().to_string();
    assert!(e.contains("already ran"), "{e}");

    tape.clear();
    let e = loss.backward().unwrap_err().to_string();
    assert!(e.contains("cleared"), "{e}");
}

#[test]
fn no_grad_records_nothing() {
    let g = gpu();
    let tape = Tape::no_grad(&g);
    let x = tape.leaf(Tensor::from_slice(&g, &[1.0, 2.0], &[2]).unwrap());
    let y = x.square().unwrap().sum_all().unwrap();
    assert_eq!(tape.len(), 0);
    assert!(!y.requires_grad());
    assert_eq!(y.to_vec().unwrap(), [5.0]);
}

#[test]
fn a_variable_used_twice_accumulates_gradients() {
    let g = gpu();
    let tape = Tape::new(&g);
    let x = tape.leaf(Tensor::from_slice(&g, &[3.0], &[1]).unwrap());
    // f = x·x + 2x → f' = 2x + 2 = 8
    let f = x.mul(&x).unwrap().add(&x.scale(2.0).unwrap()).unwrap();
    assert_eq!(f.backward().unwrap().of(&x).unwrap().to_vec().unwrap(), [8.0]);
}

#[test]
fn clearing_the_tape_returns_intermediates_to_the_pool() {
    let g = gpu();
    let x = Tensor::from_slice(&g, &rand_vec(4096, 1, -1.0, 1.0), &[64, 64]).unwrap();
    let tape = Tape::new(&g);
    let xv = tape.leaf(x);
    let mut h = xv.clone();
    for _ in 0..5 {
        h = h.tanh().unwrap();
    }
    let out = h.sum_all().unwrap();
    out.to_vec().unwrap();
    let live_recorded = g.pool_stats().bytes_live;
    drop(h);
    drop(out);
    tape.clear();
    let live_cleared = g.pool_stats().bytes_live;
    assert!(live_cleared + 5 * 64 * 64 * 4 <= live_recorded, "{live_recorded} -> {live_cleared}");
    let _ = Tensor::zeros(&g, &[1], DType::F32).unwrap();
}
