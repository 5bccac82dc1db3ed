//! A user's own data, broken the ways real files break: one test per class of bad
//! input found by feeding broken copies of the bundled datasets to the readers and
//! writers. Each one failed (a panic, an abort, a lost folder or silently wrong
//! numbers) before these checks existed, and must now give an error that names the
//! file and what is wrong, or the documented behaviour.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use ndarray::{ArrayD, IxDyn};
use sits_core::io::IfExists;
use sits_data::datasets::{self, SloveniaNdvi};
use sits_data::io_util::{check_output_outside_input, prepare_run_dir, RUN_MARKER};
use sits_data::norm::NormStats;
use sits_data::npy::{read_npy, write_npy};
use sits_data::open::{open_samples, Layout};
use sits_data::zarr::{open_path, write_cube, write_samples, CubeChunks, CubeWriter, ZarrContent};
use sits_data::{CubeFolder, DataError, SampleSet};

mod common;
use common::{copy, data, edit, edit_json};

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

/// A small labelled sample set from the bundled Mato Grosso folder.
fn small_set() -> SampleSet {
    let set = SampleSet::read_folder(&data(datasets::MATO_GROSSO)).unwrap();
    set.subset(&(0..40).collect::<Vec<_>>()).unwrap()
}

// ---------------------------------------------------------------- data loss

#[test]
fn writers_never_replace_a_folder_of_other_files() {
    let set = small_set();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("thesis.tex"), "years of work").unwrap();
    for mode in [IfExists::Refuse, IfExists::Replace] {
        let e = write_samples(&set, &out, mode).unwrap_err();
        assert!(matches!(e, DataError::Exists { .. }), "{e}");
        assert!(e.to_string().contains("not a store written by sits"), "{e}");
    }
    let slo = SloveniaNdvi::load(&data(datasets::SLOVENIA_NDVI)).unwrap();
    let e = write_cube(&slo.cube, &out, CubeChunks::default(), IfExists::Replace).unwrap_err();
    assert!(e.to_string().contains("results"), "{e}");
    let e = CubeWriter::create(
        &out,
        slo.cube.times(),
        vec!["ndvi".into()],
        [4, 4],
        CubeChunks::default(),
        None,
        IfExists::Replace,
    )
    .unwrap_err();
    assert!(matches!(e, DataError::Exists { .. }), "{e}");
    // the user's file is still there, and no temporary folder was left behind
    assert_eq!(
        std::fs::read_to_string(out.join("thesis.tex")).unwrap(),
        "years of work"
    );
    assert_eq!(names_in(dir.path()), ["results"]);
    assert_eq!(names_in(&out), ["thesis.tex"]);
}

#[test]
fn a_store_is_replaced_only_when_asked_and_only_by_its_kind() {
    let set = small_set();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("set.zarr");
    write_samples(&set, &out, IfExists::Refuse).unwrap();
    let e = write_samples(&set, &out, IfExists::Refuse).unwrap_err();
    assert!(e.to_string().contains("already there"), "{e}");
    // a cube may not replace a sample store, even when asked
    let slo = SloveniaNdvi::load(&data(datasets::SLOVENIA_NDVI)).unwrap();
    let e = write_cube(&slo.cube, &out, CubeChunks::default(), IfExists::Replace).unwrap_err();
    assert!(e.to_string().contains("sits samples store is there"), "{e}");
    // a smaller set replaces the store when asked
    let sub = set.subset(&[0, 1, 2]).unwrap();
    write_samples(&sub, &out, IfExists::Replace).unwrap();
    match open_path(&out).unwrap() {
        ZarrContent::Samples(s) => assert_eq!(s.len(), 3),
        ZarrContent::Cube(_) => panic!("expected samples"),
    }
    assert_eq!(names_in(dir.path()), ["set.zarr"], "no temporary left");
}

#[test]
fn output_equal_to_or_inside_the_input_is_refused() {
    let (_d, dir) = copy(datasets::MATO_GROSSO);
    for out in [dir.clone(), dir.join("store.zarr"), dir.join("a/b.zarr")] {
        let e = check_output_outside_input(&dir, &out).unwrap_err();
        assert!(matches!(e, DataError::Exists { .. }), "{e}");
    }
    // an output that contains the input is refused too
    let e = check_output_outside_input(&dir, dir.parent().unwrap()).unwrap_err();
    assert!(e.to_string().contains("contains the input"), "{e}");
    // a sibling is fine
    check_output_outside_input(&dir, &dir.with_file_name("out.zarr")).unwrap();
    // and the writer refuses the input folder itself whatever it was asked
    let set = SampleSet::read_folder(&dir).unwrap();
    assert!(write_samples(&set, &dir, IfExists::Replace).is_err());
    assert!(dir.join("timeseries.csv").is_file());
}

#[test]
fn temporaries_are_removed_on_error_and_on_drop() {
    let slo = SloveniaNdvi::load(&data(datasets::SLOVENIA_NDVI)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cube.zarr");
    // an empty cube fails after the temporary store was made
    let e = CubeWriter::create(
        &out,
        slo.cube.times(),
        vec!["ndvi".into()],
        [0, 5],
        CubeChunks::default(),
        None,
        IfExists::Refuse,
    )
    .unwrap_err();
    assert!(e.to_string().contains("empty cube"), "{e}");
    assert!(
        names_in(dir.path()).is_empty(),
        "{:?}",
        names_in(dir.path())
    );
    // a writer abandoned half-way leaves nothing
    let w = CubeWriter::create(
        &out,
        slo.cube.times(),
        vec!["ndvi".into()],
        [8, 8],
        CubeChunks::default(),
        None,
        IfExists::Refuse,
    )
    .unwrap();
    assert_eq!(names_in(dir.path()).len(), 1, "the temporary store exists");
    drop(w);
    assert!(
        names_in(dir.path()).is_empty(),
        "{:?}",
        names_in(dir.path())
    );
}

#[test]
fn npy_writer_refuses_an_existing_file_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.npy");
    std::fs::write(&p, "not mine to replace").unwrap();
    let a = ArrayD::from_shape_vec(IxDyn(&[2]), vec![1f32, 2.]).unwrap();
    let e = write_npy(&p, &a.view(), IfExists::Refuse).unwrap_err();
    assert!(matches!(e, DataError::Exists { .. }), "{e}");
    assert_eq!(std::fs::read_to_string(&p).unwrap(), "not mine to replace");
    write_npy(&p, &a.view(), IfExists::Replace).unwrap();
    assert_eq!(read_npy(&p).unwrap().to_f32(), a);
    // never a folder, even when asked
    let e = write_npy(dir.path(), &a.view(), IfExists::Replace).unwrap_err();
    assert!(matches!(e, DataError::Exists { .. }), "{e}");
}

#[test]
fn run_folders_are_made_or_reused_never_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("out/run1");
    prepare_run_dir(&run).unwrap();
    assert!(run.join(RUN_MARKER).is_file());
    std::fs::write(run.join("report.md"), "old report").unwrap();
    prepare_run_dir(&run).unwrap(); // a later run may reuse its own folder
    let mine = dir.path().join("photos");
    std::fs::create_dir_all(&mine).unwrap();
    std::fs::write(mine.join("a.jpg"), "x").unwrap();
    let e = prepare_run_dir(&mine).unwrap_err();
    assert!(e.to_string().contains("not made by a sits run"), "{e}");
    assert_eq!(names_in(&mine), ["a.jpg"]);
    // an output under a file fails at once, not after the work
    let e = prepare_run_dir(&mine.join("a.jpg/report")).unwrap_err();
    assert!(e.to_string().contains("a.jpg"), "{e}");
}

// ------------------------------------------------------ numbers from files

#[test]
fn huge_class_ids_are_refused_not_allocated() {
    for key in ["18446744073709551615", "99999999999", "65536"] {
        let (_d, dir) = copy(datasets::SLOVENIA_NDVI);
        edit_json(&dir.join("metadata.json"), |m| {
            m["classes"] = serde_json::json!({ "0": "no data", key: "forest" });
        });
        let e = CubeFolder::read(&dir).unwrap_err().to_string();
        assert!(
            e.contains("metadata.json") && e.contains("too large"),
            "{key}: {e}"
        );
    }
}

#[test]
fn label_layer_values_never_size_an_allocation() {
    let (_d, dir) = copy(datasets::SLOVENIA_NDVI);
    let lulc = read_npy(&dir.join("lulc.npy")).unwrap();
    let shape = lulc.shape().to_vec();
    let n: usize = shape.iter().product();
    // all -9999
    let a = ArrayD::from_shape_vec(IxDyn(&shape), vec![-9999i32; n]).unwrap();
    write_npy(&dir.join("lulc.npy"), &a.view(), IfExists::Replace).unwrap();
    let f = CubeFolder::read(&dir).unwrap();
    let (by_id, unlabelled) = sits_data::folder::layer_value_counts(&f, "lulc").unwrap();
    assert!(by_id.is_empty());
    assert_eq!(unlabelled, n);
    // uint32 with a nodata of 4294967295
    let mut v = vec![4_294_967_295u32; n];
    v[0] = 3;
    let a = ArrayD::from_shape_vec(IxDyn(&shape), v).unwrap();
    write_npy(&dir.join("lulc.npy"), &a.view(), IfExists::Replace).unwrap();
    edit_json(&dir.join("metadata.json"), |m| {
        m["nodata"] = serde_json::json!(4_294_967_295u32)
    });
    let f = CubeFolder::read(&dir).unwrap();
    let (by_id, _) = sits_data::folder::layer_value_counts(&f, "lulc").unwrap();
    // (f32 nodata rounds 4294967295 up to 2^32, so the value is counted as a class;
    // what matters is that it is counted, not used as an index)
    assert_eq!(by_id.values().sum::<usize>(), n);
    assert_eq!(by_id.get(&3), Some(&1));
    // and the dataset loader refuses the ids by name
    let e = SloveniaNdvi::load(&dir).unwrap_err().to_string();
    assert!(e.contains("lulc.npy") && e.contains("no name"), "{e}");
}

#[test]
fn class_ids_without_class_names_are_refused() {
    let (_d, dir) = copy(datasets::SLOVENIA_NDVI);
    let lulc = read_npy(&dir.join("lulc.npy")).unwrap();
    let zeros = lulc.to_i64(Path::new("lulc")).unwrap().mapv(|_| 0i64);
    write_npy(&dir.join("lulc.npy"), &zeros.view(), IfExists::Replace).unwrap();
    edit_json(&dir.join("metadata.json"), |m| {
        m.as_object_mut().unwrap().remove("classes");
    });
    let e = SloveniaNdvi::load(&dir).unwrap_err().to_string();
    assert!(e.contains("classes") && e.contains("missing"), "{e}");
    // the same for a sample table with class indices
    let (_d2, dir) = copy(datasets::MATO_GROSSO);
    edit_json(&dir.join("metadata.json"), |m| {
        m.as_object_mut().unwrap().remove("classes");
    });
    edit(&dir.join("samples.csv"), |t| {
        t.lines()
            .map(|l| {
                l.splitn(3, ',')
                    .enumerate()
                    .filter(|(i, _)| *i != 1)
                    .map(|(_, p)| p)
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    let e = SampleSet::read_folder(&dir).unwrap_err().to_string();
    assert!(e.contains("declares no `classes`"), "{e}");
}

fn zarr_json(store: &Path, node: &str) -> PathBuf {
    store.join(node).join("zarr.json")
}

#[test]
fn zarr_sample_stores_with_impossible_shapes_are_refused_before_reading() {
    let set = small_set();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s.zarr");
    write_samples(&set, &out, IfExists::Refuse).unwrap();
    // a declared shape of 10^12 samples
    let meta = std::fs::read_to_string(zarr_json(&out, "values")).unwrap();
    let huge = meta.replacen("40,", "1000000000000,", 1);
    assert_ne!(meta, huge);
    std::fs::write(zarr_json(&out, "values"), &huge).unwrap();
    let e = open_path(&out).unwrap_err().to_string();
    assert!(e.contains("/times") || e.contains("budget"), "{e}");
    // the same shape on every array: the read budget stops it
    for node in ["times", "length", "label", "split"] {
        edit(&zarr_json(&out, node), |t| {
            t.replacen("40", "1000000000000", 1)
        });
    }
    let e = open_path(&out).unwrap_err().to_string();
    assert!(e.contains("read budget"), "{e}");
    // /values longer than the other arrays
    write_samples(&set, &dir.path().join("t.zarr"), IfExists::Refuse).unwrap();
    let out = dir.path().join("t.zarr");
    edit(&zarr_json(&out, "values"), |t| t.replacen("40,", "400,", 1));
    let e = open_path(&out).unwrap_err().to_string();
    assert!(e.contains("/times") && e.contains("expected shape"), "{e}");
}

#[test]
fn a_missing_chunk_of_a_sample_store_is_an_error() {
    let set = small_set();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s.zarr");
    write_samples(&set, &out, IfExists::Refuse).unwrap();
    // every array of 40 samples is one chunk; remove the labels' chunk (all labelled
    // samples, so it is not the fill value) and then the values'
    for node in ["label", "values"] {
        let chunk_dir = out.join(node).join("c");
        assert!(chunk_dir.is_dir(), "{node}: chunks are stored under c/");
        std::fs::remove_dir_all(&chunk_dir).unwrap();
        let e = open_path(&out).unwrap_err().to_string();
        assert!(e.contains("missing") && e.contains(node), "{node}: {e}");
        write_samples(&set, &out, IfExists::Replace).unwrap();
    }
}

#[test]
fn npy_shapes_whose_size_wraps_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("wrap.npy");
    let dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4), }";
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    b.extend_from_slice(dict.as_bytes());
    std::fs::write(&p, &b).unwrap();
    let e = read_npy(&p).unwrap_err().to_string();
    assert!(e.contains("wrap.npy") && e.contains("too large"), "{e}");
}

#[test]
fn a_header_length_of_4_gb_is_not_allocated() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("long.npy");
    let mut b = b"\x93NUMPY\x02\x00".to_vec();
    b.extend_from_slice(&u32::MAX.to_le_bytes());
    b.extend_from_slice(b"{'descr': '<f4', ");
    std::fs::write(&p, &b).unwrap();
    for e in [
        sits_data::npy::read_npy_header(&p).unwrap_err(),
        read_npy(&p).unwrap_err(),
        sits_data::npy::decode_npy(&p, &b).unwrap_err(),
    ] {
        let e = e.to_string();
        assert!(e.contains("long.npy") && e.contains("damaged"), "{e}");
    }
}

// ------------------------------------------------------- silent garbage

#[test]
fn npy_header_that_does_not_describe_the_data_is_refused() {
    let (_d, dir) = copy(datasets::MATO_GROSSO);
    let p = dir.join("values.npy");
    let bytes = std::fs::read(&p).unwrap();
    // header length field 16 bytes short: the data would start 16 bytes early
    let mut short = bytes.clone();
    let len = u16::from_le_bytes([short[8], short[9]]);
    short[8..10].copy_from_slice(&(len - 16).to_le_bytes());
    std::fs::write(&p, &short).unwrap();
    let e = SampleSet::read_folder(&dir).unwrap_err().to_string();
    assert!(
        e.contains("values.npy") && e.contains("does not match the data"),
        "{e}"
    );
    // a header that says f2 over f4 data
    let at = bytes
        .windows(5)
        .position(|w| w == b"'<f4'")
        .expect("an f4 header")
        + 3;
    let mut f2 = bytes.clone();
    f2[at] = b'2';
    std::fs::write(&p, &f2).unwrap();
    let e = SampleSet::read_folder(&dir).unwrap_err().to_string();
    assert!(e.contains("values.npy") && e.contains("<f2"), "{e}");
}

#[test]
fn values_with_more_dates_than_the_table_are_refused() {
    let (_d, dir) = copy(datasets::MATO_GROSSO);
    let a = read_npy(&dir.join("values.npy")).unwrap().to_f32();
    let (n, t, c) = (a.shape()[0], a.shape()[1], a.shape()[2]);
    let mut longer = ndarray::Array3::<f32>::from_elem((n, t + 2, c), 0.5);
    longer
        .slice_mut(ndarray::s![.., ..t, ..])
        .assign(&a.into_dimensionality::<ndarray::Ix3>().unwrap());
    write_npy(
        &dir.join("values.npy"),
        &longer.into_dyn().view(),
        IfExists::Replace,
    )
    .unwrap();
    let e = SampleSet::read_folder(&dir).unwrap_err().to_string();
    assert!(
        e.contains("values.npy") && e.contains("T = 25") && e.contains("23"),
        "{e}"
    );
}

#[test]
fn infinities_are_refused_with_file_and_position() {
    // in values.npy
    let (_d, dir) = copy(datasets::MATO_GROSSO);
    let mut a = read_npy(&dir.join("values.npy")).unwrap().to_f32();
    a[[5, 3, 1]] = f32::INFINITY;
    write_npy(&dir.join("values.npy"), &a.view(), IfExists::Replace).unwrap();
    let e = SampleSet::read_folder(&dir).unwrap_err().to_string();
    assert!(e.contains("values.npy") && e.contains("[5, 3, 1]"), "{e}");
    // in the table, without values.npy
    std::fs::remove_file(dir.join("values.npy")).unwrap();
    edit(&dir.join("timeseries.csv"), |t| {
        t.replacen("0,1,2013-09-30,0.0277", "0,1,2013-09-30,-inf", 1)
    });
    let e = SampleSet::read_folder(&dir).unwrap_err().to_string();
    assert!(
        e.contains("timeseries.csv") && e.contains("line 3") && e.contains("blue"),
        "{e}"
    );
    // in a cube
    let (_d, dir) = copy(datasets::SLOVENIA_NDVI);
    let mut a = read_npy(&dir.join("ndvi.npy")).unwrap().to_f32();
    a[[2, 0, 7, 9]] = f32::NEG_INFINITY;
    write_npy(&dir.join("ndvi.npy"), &a.view(), IfExists::Replace).unwrap();
    let e = CubeFolder::read(&dir).unwrap_err().to_string();
    assert!(e.contains("ndvi.npy") && e.contains("(2, 0, 7, 9)"), "{e}");
}

#[test]
fn nan_is_missing_and_masked_in_batches() {
    let (_d, dir) = copy(datasets::MATO_GROSSO);
    let mut a = read_npy(&dir.join("values.npy")).unwrap().to_f32();
    a[[0, 2, 0]] = f32::NAN;
    write_npy(&dir.join("values.npy"), &a.view(), IfExists::Replace).unwrap();
    let set = SampleSet::read_folder(&dir).unwrap();
    let v = set.series()[0].validity();
    assert!(!v[2] && v[1] && v[3]);
    let b = set
        .to_batch(
            &[0],
            chrono::NaiveDate::from_ymd_opt(2000, 1, 1).unwrap(),
            &candle_core::Device::Cpu,
        )
        .unwrap();
    let values: Vec<f32> = b.values().flatten_all().unwrap().to_vec1().unwrap();
    assert!(
        values.iter().all(|x| x.is_finite()),
        "no NaN reaches a model"
    );
}

#[test]
fn a_constant_band_is_centred_not_divided_by_zero() {
    let (_d, dir) = copy(datasets::MATO_GROSSO);
    let mut a = read_npy(&dir.join("values.npy")).unwrap().to_f32();
    a.index_axis_mut(ndarray::Axis(2), 1).fill(0.25);
    write_npy(&dir.join("values.npy"), &a.view(), IfExists::Replace).unwrap();
    let mut set = SampleSet::read_folder(&dir).unwrap();
    let stats = NormStats::of_samples(&set, 1e-4).unwrap();
    assert_eq!(stats.std[1], 1.0);
    stats.apply_samples(&mut set).unwrap();
    for s in set.series() {
        assert!(s.values.column(1).iter().all(|&v| v == 0.0));
        assert!(s.validity().iter().all(|&ok| ok), "no date became missing");
    }
}

#[test]
fn label_index_contradicting_label_is_refused() {
    let (_d, dir) = copy(datasets::MATO_GROSSO);
    // line 2 is `0,Pasture,3,...`: say index 4
    edit(&dir.join("samples.csv"), |t| {
        t.replacen("0,Pasture,3,", "0,Pasture,4,", 1)
    });
    let e = SampleSet::read_folder(&dir).unwrap_err().to_string();
    assert!(
        e.contains("samples.csv") && e.contains("line 2") && e.contains("contradicts"),
        "{e}"
    );
}

#[test]
fn duplicate_sample_ids_are_refused() {
    let (_d, dir) = copy(datasets::MATO_GROSSO);
    edit(&dir.join("samples.csv"), |t| {
        t.replacen("\n1,Pasture,3,", "\n0,Pasture,3,", 1)
    });
    let e = SampleSet::read_folder(&dir).unwrap_err().to_string();
    assert!(
        e.contains("samples.csv") && e.contains("line 3") && e.contains("already used on line 2"),
        "{e}"
    );
}

#[test]
fn files_outside_the_folder_are_refused() {
    let (_d, dir) = copy(datasets::SLOVENIA_NDVI);
    for name in ["../other/ndvi.npy", "/etc/ndvi.npy"] {
        edit_json(&dir.join("metadata.json"), |m| {
            m["files"][name] = serde_json::json!({ "shape": [68, 1, 101, 100] });
        });
        let e = CubeFolder::read(&dir).unwrap_err().to_string();
        assert!(e.contains("not a file inside the folder"), "{name}: {e}");
        edit_json(&dir.join("metadata.json"), |m| {
            m["files"].as_object_mut().unwrap().remove(name);
        });
    }
}

#[test]
fn a_cube_without_dates_is_refused() {
    let (_d, dir) = copy(datasets::SLOVENIA_NDVI);
    let empty = ArrayD::<f32>::zeros(IxDyn(&[0, 1, 101, 100]));
    write_npy(&dir.join("ndvi.npy"), &empty.view(), IfExists::Replace).unwrap();
    edit_json(&dir.join("metadata.json"), |m| {
        m["dates"] = serde_json::json!([]);
        m["shape"]["time"] = serde_json::json!(0);
        m["files"]["ndvi.npy"]["shape"] = serde_json::json!([0, 1, 101, 100]);
        m["files"].as_object_mut().unwrap().remove("cloud_mask.npy");
    });
    std::fs::remove_file(dir.join("cloud_mask.npy")).unwrap();
    let e = CubeFolder::read(&dir).unwrap_err().to_string();
    assert!(e.contains("every dimension"), "{e}");
}

// ---------------------------------------------------- early, clear errors

#[test]
fn a_cube_folder_is_not_taken_for_a_sample_set() {
    let e = open_samples(&data(datasets::SLOVENIA_NDVI))
        .unwrap_err()
        .to_string();
    assert!(e.contains("this is a cube folder, not a sample set"), "{e}");
    assert_eq!(
        sits_data::open::detect(&data(datasets::SLOVENIA_NDVI)).unwrap(),
        Layout::CubeFolder
    );
    // a path under a file says so, not "not a Zarr store"
    let e = sits_data::open::detect(&data(datasets::SLOVENIA_NDVI).join("ndvi.npy/x"))
        .unwrap_err()
        .to_string();
    assert!(!e.contains("not a Zarr store"), "{e}");
}

#[test]
fn a_fifo_in_place_of_a_table_is_refused_not_waited_on() {
    let (_d, dir) = copy(datasets::MATO_GROSSO);
    std::fs::remove_file(dir.join("timeseries.csv")).unwrap();
    let ok = std::process::Command::new("mkfifo")
        .arg(dir.join("timeseries.csv"))
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "mkfifo is needed by this test");
    let e = SampleSet::read_folder(&dir).unwrap_err().to_string();
    assert!(
        e.contains("timeseries.csv") && e.contains("not a regular file"),
        "{e}"
    );
}

#[cfg(unix)]
#[test]
fn written_files_get_the_usual_mode_not_a_private_one() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("report.md");
    sits_data::io_util::write_atomic(&p, b"# report").unwrap();
    let plain = dir.path().join("plain");
    std::fs::write(&plain, b"x").unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&p), mode(&plain), "same mode as std::fs::write");
}
