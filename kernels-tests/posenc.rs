use enma::ops::posenc::{sinusoidal, sinusoidal_1d, sinusoidal_2d};

use crate::common::{WGSL_TRIG_ABS, assert_close, gpu};

fn reference(pos: &[f64], dims: usize, d: usize) -> Vec<f32> {
    let dd = d / dims;
    pos.chunks(dims)
        .flat_map(|p| {
            (0..d).map(move |ch| {
                let (k, within) = (ch / dd, ch % dd);
                let w = 10000f64.powf(-2.0 * (within / 2) as f64 / dd as f64);
                let a = p[k] * w;
                (if within % 2 == 0 { a.sin() } else { a.cos() }) as f32
            })
        })
        .collect()
}

#[test]
fn sinusoidal_encodings_match_the_cpu() {
    let g = gpu();
    let one = sinusoidal_1d(&g, 16, 32).unwrap();
    assert_eq!(one.shape(), &[16, 32]);
    let pos: Vec<f64> = (0..16).map(|i| i as f64).collect();
    // positions up to 15 rad: sin/cos to the WGSL bound (about 1e-6 on lavapipe, 2.4e-5 on
    // SwiftShader)
    assert_close("1d", &one.to_vec().unwrap(), &reference(&pos, 1, 32), WGSL_TRIG_ABS, 0.0);
    let two = sinusoidal_2d(&g, 4, 5, 16).unwrap();
    let pos2: Vec<f64> = (0..20).flat_map(|i| [(i / 5) as f64, (i % 5) as f64]).collect();
    assert_close("2d", &two.to_vec().unwrap(), &reference(&pos2, 2, 16), WGSL_TRIG_ABS, 0.0);
    assert!(sinusoidal(&g, &[0.0, 1.0], 1, 6).is_ok());
    assert!(sinusoidal(&g, &[0.0, 1.0], 2, 6).is_err(), "6 channels do not split into 2 sin/cos pairs");
}
