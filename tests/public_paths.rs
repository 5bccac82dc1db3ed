//! The facade's public paths, as a downstream user takes them: the prelude, the
//! re-exported crates, the data folder and a shipped encoder.

use sits::prelude::*;

#[test]
fn the_prelude_and_the_re_exports_are_enough_to_build_a_batch() {
    // candle, ndarray and chrono come from sits itself: no version to match
    let times = Timestamps::parse(&["2018-09-24", "2018-10-04", "2018-10-14"], "demo").unwrap();
    let values = ndarray::Array4::from_shape_fn((3, 2, 4, 4), |(t, c, y, x)| {
        (t * 100 + c * 10 + y * 4 + x) as f32
    });
    let cube = Datacube::new(values, times, vec!["B04".into(), "B08".into()]).unwrap();
    let batch: SitsBatch = cube.to_batch(pastis_reference(), &Device::Cpu).unwrap();
    assert_eq!(batch.values().dims(), &[1, 3, 2, 4, 4]);
    // the second band of the third date, first pixel: 2 * 100 + 1 * 10
    let v = batch
        .values()
        .get(0)
        .unwrap()
        .get(2)
        .unwrap()
        .get(1)
        .unwrap();
    assert_eq!(v.to_vec2::<f32>().unwrap()[0][0], 210.0);
    let day: chrono::NaiveDate = pastis_reference();
    assert_eq!(day.to_string(), "2018-09-01");
}

#[test]
fn the_data_folder_is_found_and_a_wrong_one_is_named_in_the_error() {
    let data = data_dir(None).expect("the checkout's data/ (or SITS_DATA)");
    assert!(data.join(sits::sits_data::datasets::MATO_GROSSO).is_dir());
    let wrong = std::env::temp_dir().join("sits-no-such-data-folder");
    let err = data_dir(Some(&wrong)).unwrap_err().to_string();
    assert!(
        err.contains("sits-no-such-data-folder") && err.contains("does not exist"),
        "{err}"
    );
    // the facade's shortcut agrees with the data layer
    assert_eq!(sits::bundled_data_dir().unwrap(), data);
}

#[test]
fn a_shipped_encoder_embeds_a_window_of_a_bundled_cube() {
    use sits::tasks::embed::embed_cube;
    use sits::tasks::input::{read, Input};
    let data = data_dir(None).unwrap();
    let enc = SavedEncoder::load(&data.join("encoders/s2_ndvi_pixel"), &Device::Cpu).unwrap();
    let Input::Cube { cube, .. } =
        read(&data.join(sits::sits_data::datasets::SLOVENIA_NDVI), None).unwrap()
    else {
        panic!("the Slovenia folder is a cube")
    };
    let window = Input::Cube {
        cube: Box::new(cube.window(0, 0, 8, 8).unwrap()),
        labels: Vec::new(),
        class_names: Vec::new(),
    };
    let (e, skipped) = embed_cube(&enc, &window, "window", &Device::Cpu).unwrap();
    assert_eq!(e.rows.len() + skipped.skipped, 3 * 8 * 8);
    assert!(e.rows.iter().all(|r| r.len() == enc.card.embedding_len()));
    // infinite when any value is NaN
    let worst = sits_testing::max_abs_slice(&e.rows.concat());
    assert!(worst.is_finite() && worst > 0.0, "{worst}");
}
