//! Files and generation: determinism, environments, round trips, other layouts, bad files,
//! sharding.

use std::path::{Path, PathBuf};

use super::generate::{GenConfig, PdeName, Preset, generate_split, merge, write_split};
use super::hdf5::{self, Layout, read};
use super::pde::Split;
use hdf5_metno as h5;

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("enma-data-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn quiet() -> impl Fn() + Sync {
    || {}
}

#[test]
fn same_seed_gives_a_bit_identical_file_and_envs_group_trajectories() {
    let d = tmpdir("det");
    let cfg = GenConfig::new(PdeName::Combined, Preset::Tiny, 7);
    let a = write_split(&cfg, Split::InD, &d.join("a"), None, &quiet()).unwrap();
    let b = write_split(&cfg, Split::InD, &d.join("b"), None, &quiet()).unwrap();
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap(), "same seed, same bytes");
    let other =
        write_split(&GenConfig::new(PdeName::Combined, Preset::Tiny, 8), Split::InD, &d.join("c"), None, &quiet())
            .unwrap();
    assert_ne!(std::fs::read(&a).unwrap(), std::fs::read(&other).unwrap());

    let l = read(&a).unwrap();
    let (layout, t) = &l.splits["test"];
    assert_eq!(layout, &Layout::OneD { key: "pde_20-128".into() });
    assert_eq!(t.shape, vec![100, 20, 1, 128]);
    let alpha = &t.params["alpha"];
    for e in 0..10 {
        let block = &alpha[e * 10..(e + 1) * 10];
        assert!(block.iter().all(|&v| v == block[0]), "an environment shares its parameters");
        assert!(t.env[e * 10..(e + 1) * 10].iter().all(|&v| v == e as i64));
        // and its trajectories differ in their initial condition
        assert_ne!(t.trajectory(e * 10)[..128], t.trajectory(e * 10 + 1)[..128]);
        if e > 0 {
            assert_ne!(alpha[e * 10], alpha[(e - 1) * 10], "environments differ");
        }
    }
    assert!(!t.params.contains_key("delta"), "δ only out of distribution");
    let ood = generate_split(&cfg, Split::OutD, 0..1, &quiet()).unwrap();
    assert!(ood.params["delta"].iter().all(|&v| (0.5..=1.0).contains(&v)));
}

#[test]
fn round_trips_of_both_layouts_we_write() {
    let d = tmpdir("rt");
    for (name, group) in [(PdeName::Advection, "train"), (PdeName::Wave, "test"), (PdeName::GrayScott, "test")] {
        let cfg = GenConfig::new(name, Preset::Tiny, 1);
        let split = if group == "train" { Split::Train } else { Split::InD };
        let t = generate_split(&cfg, split, 0..1, &quiet()).unwrap();
        let path = d.join(format!("{}.h5", name.name()));
        hdf5::write(&path, group, &t, &super::generate::file_attrs(&cfg, split, 0..1)).unwrap();
        let l = read(&path).unwrap();
        let (_, back) = &l.splits[group];
        assert_eq!(back, &t, "{}", name.name());
        assert_eq!(l.attrs["dataset"], name.name());
        assert_eq!(l.t.as_ref().unwrap().len(), t.frames());
    }
}

fn write_fixture(path: &Path, f: impl FnOnce(&h5::File) -> h5::Result<()>) {
    let file = h5::File::create(path).unwrap();
    f(&file).unwrap();
}

#[test]
fn reads_the_authors_layouts_and_pdebench() {
    let d = tmpdir("layouts");
    // MP-PDE / Zebra 1D: `valid`, float64, parameters as attributes of the data set
    let p1 = d.join("mppde.h5");
    let data64: Vec<f64> = (0..3 * 5 * 8).map(|i| i as f64 * 0.5).collect();
    write_fixture(&p1, |f| {
        let g = f.create_group("valid")?;
        let ds = g.new_dataset::<f64>().shape([3, 5, 8]).create("pde_5-8")?;
        ds.write_raw(&data64)?;
        ds.new_attr::<f64>().shape([3]).create("beta")?.write_raw(&[0.1, 0.2, 0.3])?;
        Ok(())
    });
    let l = read(&p1).unwrap();
    let (layout, t) = &l.splits["valid"];
    assert_eq!(layout, &Layout::OneD { key: "pde_5-8".into() });
    assert_eq!(t.shape, vec![3, 5, 1, 8]);
    assert_eq!(t.data[17], 8.5);
    assert_eq!(t.params["beta"], vec![0.1, 0.2, 0.3]);
    assert_eq!(t.env, vec![0, 0, 0], "positional environments");

    // 2D: `val` with states (N, C, H, W, T) and `mu`
    let p2 = d.join("vort.h5");
    let states: Vec<f32> = (0..2 * 3 * 4 * 5).map(|i| i as f32).collect();
    write_fixture(&p2, |f| {
        let g = f.create_group("val")?;
        g.new_dataset::<f32>().shape([2, 1, 3, 4, 5]).create("states")?.write_raw(&states)?;
        g.new_dataset::<f64>().shape([2]).create("mu")?.write_raw(&[1e-3, 2e-3])?;
        Ok(())
    });
    let l = read(&p2).unwrap();
    let (layout, t) = &l.splits["val"];
    assert_eq!(layout, &Layout::TwoD);
    assert_eq!(t.shape, vec![2, 5, 1, 3, 4]);
    // trajectory 1, frame 2, channel 0, y 1, x 3 ← states[1, 0, 1, 3, 2]
    // [N, T, C=1, H, W] index ((1·5 + 2)·3 + 1)·4 + 3; states [N, C=1, H, W, T] index ((1·3 + 1)·4 + 3)·5 + 2
    assert_eq!(t.data[((5 + 2) * 3 + 1) * 4 + 3], states[((3 + 1) * 4 + 3) * 5 + 2]);
    assert_eq!(t.params["mu"], vec![1e-3, 2e-3]);

    // PDEBench
    let p3 = d.join("pdebench.h5");
    write_fixture(&p3, |f| {
        f.new_dataset::<f32>().shape([2, 4, 6]).create("tensor")?.write_raw(&vec![0.25f32; 48])?;
        f.new_dataset::<f32>().shape([6]).create("x-coordinate")?.write_raw(&[0.0f32, 0.2, 0.4, 0.6, 0.8, 1.0])?;
        f.new_dataset::<f32>().shape([5]).create("t-coordinate")?.write_raw(&[0.0f32; 5])?;
        Ok(())
    });
    let l = read(&p3).unwrap();
    let (layout, t) = &l.splits["data"];
    assert_eq!(layout, &Layout::PdeBench);
    assert_eq!(t.shape, vec![2, 4, 1, 6]);
    assert_eq!(l.x.as_ref().unwrap().len(), 6);
}

#[test]
fn bad_files_are_clear_errors() {
    let d = tmpdir("bad");
    let text = d.join("notes.h5");
    std::fs::write(&text, "not an hdf5 file at all").unwrap();
    let e = read(&text).unwrap_err().to_string();
    assert!(e.contains("not an HDF5 file"), "{e}");

    let cfg = GenConfig::new(PdeName::Advection, Preset::Tiny, 1);
    let good = write_split(&cfg, Split::OutD, &d, None, &quiet()).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let cut = d.join("truncated.h5");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    assert!(read(&cut).is_err(), "a truncated file fails");

    let odd = d.join("odd.h5");
    write_fixture(&odd, |f| {
        let g = f.create_group("stuff")?;
        g.new_dataset::<f32>().shape([4]).create("something")?.write_raw(&[0.0f32; 4])?;
        Ok(())
    });
    let e = read(&odd).unwrap_err().to_string();
    assert!(e.contains("no known layout") && e.contains("/stuff: [something]"), "{e}");

    let rank = d.join("rank.h5");
    write_fixture(&rank, |f| {
        f.create_group("train")?.new_dataset::<f32>().shape([2, 8]).create("pde_2-8")?.write_raw(&[0.0f32; 16])?;
        Ok(())
    });
    let e = read(&rank).unwrap_err().to_string();
    assert!(e.contains("(N, T, X)") && e.contains("[2, 8]"), "{e}");

    let ints = d.join("ints.h5");
    write_fixture(&ints, |f| {
        f.create_group("train")?.new_dataset::<i32>().shape([1, 2, 2]).create("pde_2-2")?.write_raw(&[1i32; 4])?;
        Ok(())
    });
    let e = read(&ints).unwrap_err().to_string();
    assert!(e.contains("not float32 or float64"), "{e}");

    let nan = d.join("nan.h5");
    let mut v = vec![0.0f32; 3 * 2 * 4];
    v[2 * 8 + 5] = f32::NAN;
    write_fixture(&nan, |f| {
        f.create_group("test")?.new_dataset::<f32>().shape([3, 2, 4]).create("pde_2-4")?.write_raw(&v)?;
        Ok(())
    });
    let e = read(&nan).unwrap_err().to_string();
    assert!(e.contains("trajectory 2") && e.contains("NaN"), "{e}");

    assert!(PdeName::parse("burgers").unwrap_err().to_string().contains("advection, combined"));
    assert!(Preset::parse("huge").unwrap_err().to_string().contains("tiny, small or paper"));
}

#[test]
fn shards_merge_into_the_unsharded_file() {
    let d = tmpdir("shard");
    let cfg = GenConfig::new(PdeName::Advection, Preset::Tiny, 3);
    let whole = write_split(&cfg, Split::InD, &d.join("whole"), None, &quiet()).unwrap();
    let shards: Vec<PathBuf> =
        (0..3).map(|i| write_split(&cfg, Split::InD, &d.join("parts"), Some((i, 3)), &quiet()).unwrap()).collect();
    let merged = d.join("merged.h5");
    // any order of the shard list
    merge(&[shards[2].clone(), shards[0].clone(), shards[1].clone()], &merged).unwrap();
    assert_eq!(read(&merged).unwrap().splits["test"].1, read(&whole).unwrap().splits["test"].1);
    assert_eq!(std::fs::read(&merged).unwrap(), std::fs::read(&whole).unwrap(), "the same bytes as the unsharded run");
    let e = merge(&[shards[0].clone(), shards[2].clone()], &d.join("gap.h5")).unwrap_err().to_string();
    assert!(e.contains("missing"), "{e}");
    assert!(!d.join("gap.h5").exists());
    // no temporary files are left behind
    let left: Vec<_> = std::fs::read_dir(d.join("parts"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("partial"))
        .collect();
    assert!(left.is_empty());
}

/// A distinct value for every (trajectory, channel, point, frame), exact in f32.
fn value(i: usize, c: usize, p: usize, t: usize) -> f32 {
    (i * 10_000 + c * 1_000 + p * 10 + t) as f32
}

/// `states` (N, C, space.., T) of [`value`] (space flattened to points).
fn states_time_last(n: usize, c: usize, points: usize, t: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(n * c * points * t);
    for i in 0..n {
        for ci in 0..c {
            for p in 0..points {
                v.extend((0..t).map(|ti| value(i, ci, p, ti)));
            }
        }
    }
    v
}

/// Writes a GEPS-style group: `states` of `shape` (time last) plus float32 `alpha`..`delta`, int32
/// `seed` and, when given, int32 `env`.
fn write_states_group(f: &h5::File, group: &str, shape: &[usize], env: Option<&[i32]>) -> h5::Result<Vec<Vec<f32>>> {
    let (n, c, t) = (shape[0], shape[1], shape[shape.len() - 1]);
    let points: usize = shape[2..shape.len() - 1].iter().product();
    let g = f.create_group(group)?;
    g.new_dataset::<f32>().shape(shape).create("states")?.write_raw(&states_time_last(n, c, points, t))?;
    let mut params = Vec::new();
    for (k, name) in ["alpha", "beta", "gamma", "delta"].iter().enumerate() {
        let v: Vec<f32> = (0..n).map(|i| 0.3 + 0.1 * k as f32 + 0.01 * i as f32).collect();
        g.new_dataset::<f32>().shape([n]).create(*name)?.write_raw(&v)?;
        params.push(v);
    }
    let seed: Vec<i32> = (0..n as i32).map(|i| 1_000_000 + i).collect();
    g.new_dataset::<i32>().shape([n]).create("seed")?.write_raw(&seed)?;
    if let Some(env) = env {
        g.new_dataset::<i32>().shape([n]).create("env")?.write_raw(env)?;
    }
    Ok(params)
}

/// Checks every value of `t` (`[N, T, C, spatial..]`) against [`value`] and the parameters,
/// seeds of [`write_states_group`].
fn check_states(t: &hdf5::Trajectories, params: &[Vec<f32>]) {
    let (n, frames, c) = (t.n(), t.frames(), t.channels());
    let points: usize = t.spatial().iter().product();
    for i in 0..n {
        for ti in 0..frames {
            for ci in 0..c {
                for p in 0..points {
                    let got = t.data[((i * frames + ti) * c + ci) * points + p];
                    assert_eq!(got, value(i, ci, p, ti), "trajectory {i}, frame {ti}, channel {ci}, point {p}");
                }
            }
        }
    }
    for (k, name) in ["alpha", "beta", "gamma", "delta"].iter().enumerate() {
        let want: Vec<f64> = params[k].iter().map(|&v| v as f64).collect();
        assert_eq!(t.params[*name], want, "{name}");
    }
    assert_eq!(t.params.len(), 4, "env and seed are not parameters: {:?}", t.params.keys());
    assert_eq!(t.seed.as_ref().unwrap(), &(0..n as i64).map(|i| 1_000_000 + i).collect::<Vec<_>>());
}

#[test]
fn reads_the_geps_1d_layout_with_and_without_env() {
    let d = tmpdir("geps1d");
    let p = d.join("geps.h5");
    // environments not in blocks of 10: `env` must win over file order
    let env: Vec<i32> = vec![4, 4, 7, 7, 7, 2, 2, 4, 9, 9, 9, 9];
    let mut params = Vec::new();
    write_fixture(&p, |f| {
        params.push(write_states_group(f, "train", &[12, 1, 8, 5], Some(&env))?);
        params.push(write_states_group(f, "val", &[3, 1, 8, 5], None)?);
        // the layout holds channels too
        params.push(write_states_group(f, "test", &[2, 2, 6, 4], None)?);
        Ok(())
    });
    let l = read(&p).unwrap();
    let (layout, t) = &l.splits["train"];
    assert_eq!(layout, &Layout::Geps1D);
    assert_eq!(t.shape, vec![12, 5, 1, 8], "[N, T, C, X]");
    // trajectory 3, frame 4, point 6 ← states[3, 0, 6, 4]
    assert_eq!(t.trajectory(3)[4 * 8 + 6], 30_064.0);
    check_states(t, &params[0]);
    assert_eq!(t.env, env.iter().map(|&e| e as i64).collect::<Vec<_>>(), "environments from `env`");
    assert!(l.env_from_file.contains("train"));

    let (layout, t) = &l.splits["val"];
    assert_eq!(layout, &Layout::Geps1D);
    assert_eq!(t.shape, vec![3, 5, 1, 8]);
    check_states(t, &params[1]);
    assert_eq!(t.env, vec![0, 0, 0], "positional environments without `env`");
    assert!(!l.env_from_file.contains("val"));

    let (_, t) = &l.splits["test"];
    assert_eq!(t.shape, vec![2, 4, 2, 6]);
    // trajectory 1, frame 3, channel 1, point 5 ← states[1, 1, 5, 3]
    assert_eq!(t.trajectory(1)[(3 * 2 + 1) * 6 + 5], 11_053.0);
    check_states(t, &params[2]);

    // `enma inspect` shows the layout, shapes, environments and parameter ranges
    let s = l.summary();
    for want in [
        "/train: GEPS 1D `states` (N, C, X, T)",
        "stored [12, 1, 8, 5] -> [N, T, C, space..] = [12, 5, 1, 8]",
        "environments: 4 (ids 2 to 9), 2 to 4 trajectories each, from the file's `env`",
        "environments: 1 (ids 0 to 0), 3 trajectories each, by file order",
        "alpha: [0.300000, 0.410000]",
        "delta: [0.600000, 0.710000]",
        "seed: 1000000 to 1000011",
        "stored [2, 2, 6, 4] -> [N, T, C, space..] = [2, 4, 2, 6]",
    ] {
        assert!(s.contains(want), "`{want}` missing from:\n{s}");
    }
}

#[test]
fn reads_the_2d_states_layout_with_and_without_env() {
    let d = tmpdir("states2d");
    let p = d.join("states2d.h5");
    let env: Vec<i32> = vec![1, 0, 1];
    let mut params = Vec::new();
    write_fixture(&p, |f| {
        params.push(write_states_group(f, "train", &[3, 2, 3, 4, 5], Some(&env))?);
        params.push(write_states_group(f, "val", &[2, 1, 4, 3, 6], None)?);
        Ok(())
    });
    let l = read(&p).unwrap();
    let (layout, t) = &l.splits["train"];
    assert_eq!(layout, &Layout::TwoD);
    assert_eq!(t.shape, vec![3, 5, 2, 3, 4], "[N, T, C, H, W]");
    // trajectory 2, frame 1, channel 1, y 2, x 3 ← states[2, 1, 2, 3, 1] (point 2·4 + 3 = 11)
    assert_eq!(t.trajectory(2)[((2 + 1) * 3 + 2) * 4 + 3], 21_111.0);
    check_states(t, &params[0]);
    assert_eq!(t.env, vec![1, 0, 1]);
    assert!(l.env_from_file.contains("train"));
    let (layout, t) = &l.splits["val"];
    assert_eq!(layout, &Layout::TwoD);
    assert_eq!(t.shape, vec![2, 6, 1, 4, 3]);
    check_states(t, &params[1]);
    assert_eq!(t.env, vec![0, 0]);
    assert!(!l.env_from_file.contains("val"));
    let s = l.summary();
    assert!(s.contains("/train: 2D `states` (N, C, H, W, T)") && s.contains("stored [3, 2, 3, 4, 5]"), "{s}");
}

#[test]
fn states_that_fit_no_layout_are_clear_errors() {
    let d = tmpdir("states-bad");
    let states = |name: &str, shape: &[usize]| -> String {
        let p = d.join(format!("{name}.h5"));
        let len: usize = shape.iter().product();
        write_fixture(&p, |f| {
            f.create_group("train")?.new_dataset::<f32>().shape(shape).create("states")?.write_raw(&vec![0.5f32; len])
        });
        match read(&p) {
            Err(e @ crate::Error::Invalid { .. }) => e.to_string(),
            other => panic!("{name}: expected an Invalid error, got {other:?}"),
        }
    };
    for (name, shape) in [("rank3", vec![4, 8, 5]), ("rank6", vec![2, 1, 2, 2, 2, 3])] {
        let e = states(name, &shape);
        assert!(
            e.contains("/train/states") && e.contains(&format!("{shape:?}")) && e.contains("fits no layout"),
            "{e}"
        );
        assert!(e.contains("(N, C, X, T)") && e.contains("(N, C, H, W, T)"), "the layouts expected: {e}");
    }
    // a 1D file stored (N, X, T, C): its "channel" axis is the 128 points
    let e = states("1d-order", &[10, 128, 20, 1]);
    assert!(e.contains("[10, 128, 20, 1]") && e.contains("128 channels") && e.contains("GEPS 1D"), "{e}");
    assert!(e.contains("(N, C, H, W, T)"), "{e}");
    // a 2D file stored (N, H, W, T, C)
    let e = states("2d-order", &[2, 16, 16, 3, 1]);
    assert!(e.contains("16 channels") && e.contains("2D `states`"), "{e}");
    let e = states("no-channels", &[2, 0, 8, 5]);
    assert!(e.contains("[2, 0, 8, 5]") && e.contains("channel axis") && e.contains("empty"), "{e}");
    let e = states("no-frames", &[2, 1, 8, 0]);
    assert!(e.contains("axis 3") && e.contains("empty"), "{e}");

    // an `env` that is not one id per trajectory is an error, not a silent fall-back
    let p = d.join("bad-env.h5");
    write_fixture(&p, |f| {
        write_states_group(f, "train", &[4, 1, 8, 5], None)?;
        f.group("train")?.new_dataset::<i32>().shape([3]).create("env")?.write_raw(&[0, 0, 1])
    });
    let e = read(&p).unwrap_err().to_string();
    assert!(e.contains("/train/env") && e.contains("[3]") && e.contains("4 numbers"), "{e}");

    // the no-layout message lists the states layouts too
    let p = d.join("nothing.h5");
    write_fixture(&p, |f| {
        f.create_group("train")?.new_dataset::<f32>().shape([2]).create("u")?.write_raw(&[0.0f32; 2])?;
        Ok(())
    });
    let e = read(&p).unwrap_err().to_string();
    assert!(e.contains("no known layout") && e.contains("(N, C, X, T)") && e.contains("/train: [u]"), "{e}");
}

#[test]
fn geps_files_train_through_load_data_with_subsampling() {
    use super::generate::PdeName;
    let d = tmpdir("geps-load");
    // one file of three splits, linked under the names `enma generate` uses
    let p = d.join("combined_train.h5");
    let env: Vec<i32> = (0..6).map(|i| i / 3).collect();
    write_fixture(&p, |f| {
        write_states_group(f, "train", &[6, 1, 16, 9], Some(&env))?;
        write_states_group(f, "val", &[2, 1, 16, 9], None)?;
        write_states_group(f, "test", &[4, 1, 16, 9], Some(&[5, 5, 6, 6]))?;
        Ok(())
    });
    std::fs::copy(&p, d.join("combined_test.h5")).unwrap();
    let mut cfg =
        crate::config::RunConfig::load("micro", &["data.time_step=2".into(), "data.space_step=4".into()]).unwrap().data;
    (cfg.max_train, cfg.max_test) = (0, 0);
    let train = crate::run::load_data(&d, &cfg, PdeName::Combined, Split::Train).unwrap();
    assert_eq!(train.shape, vec![6, 5, 1, 4], "9 frames → 5, 16 points → 4");
    for i in 0..6 {
        for t in 0..5 {
            for x in 0..4 {
                assert_eq!(train.trajectory(i)[t * 4 + x], value(i, 0, 4 * x, 2 * t), "trajectory {i}, frame {t}");
            }
        }
    }
    assert_eq!(train.env, vec![0, 0, 0, 1, 1, 1]);
    assert_eq!(train.params["alpha"].len(), 6);
    let test = crate::run::load_data(&d, &cfg, PdeName::Combined, Split::InD).unwrap();
    assert_eq!((test.n(), test.env.clone()), (4, vec![5, 5, 6, 6]), "the `test` group for the In-D split");

    // several groups and none named for the split: an error naming them
    let q = d.join("combined_ood.h5");
    write_fixture(&q, |f| {
        write_states_group(f, "a", &[2, 1, 4, 3], None)?;
        write_states_group(f, "b", &[2, 1, 4, 3], None)?;
        Ok(())
    });
    let e = crate::run::load_data(&d, &cfg, PdeName::Combined, Split::OutD).unwrap_err().to_string();
    assert!(e.contains("`a`, `b`") && e.contains("no `test`"), "{e}");
}
