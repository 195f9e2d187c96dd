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
