//! `.npy` files written by numpy (see tests/fixtures/make_fixtures.py).

#![allow(clippy::unwrap_used, clippy::identity_op, clippy::type_complexity)]

use std::path::{Path, PathBuf};

use sits_data::npy::{read_npy, read_npy_header, NpyArray, NpyDtype};

fn npy(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/npy")
        .join(format!("{name}.npy"))
}

fn base() -> Vec<f64> {
    (0..24).map(f64::from).collect()
}

#[test]
fn every_dtype_and_byte_order_written_by_numpy() {
    let f = |name: &str| read_npy(&npy(name)).unwrap();
    let as_f64 = |a: &NpyArray| a.to_f32().iter().map(|&v| v as f64).collect::<Vec<_>>();
    let cases: Vec<(&str, NpyDtype, Box<dyn Fn(f64) -> f64>)> = vec![
        ("f4_le", NpyDtype::F32, Box::new(|x| x / 4.0)),
        ("f8_be", NpyDtype::F64, Box::new(|x| x / 8.0)),
        ("i2_le", NpyDtype::I16, Box::new(|x| x - 12.0)),
        ("i2_be", NpyDtype::I16, Box::new(|x| x - 12.0)),
        ("u2_le", NpyDtype::U16, Box::new(|x| x * 1000.0)),
        ("u1", NpyDtype::U8, Box::new(|x| x)),
        ("i8_le", NpyDtype::I64, Box::new(|x| x - 100.0)),
        (
            "bool",
            NpyDtype::Bool,
            Box::new(|x| f64::from(x as i64 % 3 == 0)),
        ),
        ("f4_fortran", NpyDtype::F32, Box::new(|x| x)),
        ("f4_v2", NpyDtype::F32, Box::new(|x| x)),
        ("f4_v3", NpyDtype::F32, Box::new(|x| x)),
    ];
    for (name, dtype, expect) in cases {
        let a = f(name);
        assert_eq!(a.dtype(), dtype, "{name}");
        assert_eq!(a.shape(), &[2, 3, 4], "{name}");
        let want: Vec<f64> = base().into_iter().map(&expect).collect();
        assert_eq!(as_f64(&a), want, "{name}");
    }
    assert!(read_npy_header(&npy("f4_fortran")).unwrap().fortran_order);
    assert!(read_npy_header(&npy("f8_be")).unwrap().big_endian);
    assert_eq!(read_npy_header(&npy("f4_v3")).unwrap().version, (3, 0));
    assert_eq!(
        f("i8_le").to_i64(Path::new("x")).unwrap()[[1, 2, 3]],
        23 - 100
    );
}

#[test]
fn refusals_name_the_file() {
    let e = read_npy(&npy("unicode")).unwrap_err().to_string();
    assert!(
        e.contains("unicode.npy") && e.contains("unsupported dtype `<U2`"),
        "{e}"
    );
    let e = read_npy(&npy("complex")).unwrap_err().to_string();
    assert!(e.contains("complex.npy") && e.contains("<c8"), "{e}");
    let e = read_npy(&npy("truncated")).unwrap_err().to_string();
    assert!(
        e.contains("truncated.npy") && e.contains("truncated: expected 96 bytes"),
        "{e}"
    );
    let e = read_npy(&npy("does_not_exist")).unwrap_err().to_string();
    assert!(
        e.contains("does_not_exist.npy") && e.contains("No such file"),
        "{e}"
    );
    let e = read_npy(&npy("f4_le"))
        .unwrap()
        .to_i64(Path::new("labels.npy"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("labels.npy") && e.contains("integer array"),
        "{e}"
    );
}
