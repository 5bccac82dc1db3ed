//! The encoders shipped in data/encoders load, match the bundled cubes they were
//! made for, and give the numbers their README quotes.

use candle_core::Device;
use sits_tasks::changes::{changes, Distance};
use sits_tasks::embed::embed_cube;
use sits_tasks::encoder::SavedEncoder;
use sits_tasks::input::{read, Input};

#[test]
fn the_modis_encoder_gives_the_change_auc_of_the_changes_example() {
    let data =
        sits_tasks::bundled_data_dir().expect("the bundled data (SITS_DATA or the checkout)");
    let dev = Device::Cpu;
    let enc = SavedEncoder::load(&data.join("encoders/modis_mod13q1_pixel"), &dev).expect("load");
    assert_eq!(enc.card.bands, ["blue", "red", "nir", "mir", "evi", "ndvi"]);
    let cube = read(&data.join(sits_data::datasets::DTWSAT_CUBE), None).expect("cube");
    let (e, _) = embed_cube(&enc, &cube, "dtwsat", &dev).expect("embed");
    assert_eq!((e.rows.len(), e.rows[0].len()), (4995, 23 * 64));
    let ch = changes(&e.rows, &e.grid, Distance::Cosine).expect("changes");
    let auc = ch.auc().expect("auc").expect("labelled changes");
    // the `changes` example's line is change_auc=0.9399 (same data, settings, seed)
    assert!((auc - 0.9399).abs() < 5e-5, "AUC {auc}");
}

#[test]
fn the_s2_ndvi_encoder_reads_a_window_of_the_slovenia_cube() {
    let data =
        sits_tasks::bundled_data_dir().expect("the bundled data (SITS_DATA or the checkout)");
    let dev = Device::Cpu;
    let enc = SavedEncoder::load(&data.join("encoders/s2_ndvi_pixel"), &dev).expect("load");
    let Input::Cube { cube, .. } =
        read(&data.join(sits_data::datasets::SLOVENIA_NDVI), None).expect("cube")
    else {
        panic!("not a cube")
    };
    let window = Input::Cube {
        cube: Box::new(cube.window(40, 40, 16, 16).expect("window")),
        labels: Vec::new(),
        class_names: Vec::new(),
    };
    let (e, pp) = embed_cube(&enc, &window, "slovenia window", &dev).expect("embed");
    assert_eq!(e.grid.periods, [2015, 2016, 2017]);
    assert_eq!(e.rows.len() + pp.skipped, 3 * 16 * 16);
    assert!(e.rows.iter().flatten().all(|v| v.is_finite()));
    assert_eq!(e.rows[0].len(), 64);
}
