//! Planar representations: batch extraction equals one-by-one extraction, walks stay
//! inside the region and move one pixel at a time, a planar image is a permutation
//! of the region's values.
#![allow(clippy::unwrap_used)]

use ndarray::{s, Array4};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sits_repr::planar::{
    curve_order, local_views, planar_batch, planar_image, planar_mask, random_walk_image,
    random_walks, Curve,
};

fn cube(t: usize, c: usize, h: usize, w: usize) -> Array4<f32> {
    Array4::from_shape_fn((t, c, h, w), |(a, b, r, col)| {
        (a * 1_000_000 + b * 10_000 + r * 100 + col) as f32
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn planar_image_is_a_permutation(h in 1usize..12, w in 1usize..12, t in 1usize..5, curve in 0usize..3) {
        let curve = [Curve::Hilbert, Curve::Snake, Curve::RowMajor][curve];
        let x = cube(t, 2, h, w);
        let order = curve_order(curve, h, w);
        let img = planar_image(x.view(), &order).unwrap();
        prop_assert_eq!(img.dim(), (2, h * w, t));
        let mut a: Vec<f32> = img.iter().copied().collect();
        let mut b: Vec<f32> = x.iter().copied().collect();
        a.sort_by(f32::total_cmp);
        b.sort_by(f32::total_cmp);
        prop_assert_eq!(a, b);
        let valid = x.slice(s![.., 0, .., ..]).mapv(|v| (v as usize).is_multiple_of(3));
        let m = planar_mask(valid.view(), &order).unwrap();
        for (k, &(r, c)) in order.iter().enumerate() {
            for ti in 0..t {
                prop_assert_eq!(m[[k, ti]], valid[[ti, r, c]]);
                prop_assert_eq!(img[[1, k, ti]], x[[ti, 1, r, c]]);
            }
        }
    }

    #[test]
    fn walks_stay_inside_and_step_by_one(h in 1usize..9, w in 1usize..9, seed in any::<u64>(), walks in 1usize..4, steps in 1usize..20) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let start = (h / 2, w / 2);
        let px = random_walks(h, w, start, walks, steps, &mut rng).unwrap();
        prop_assert_eq!(px.len(), walks * steps);
        for walk in px.chunks(steps) {
            prop_assert_eq!(walk[0], start);
            for p in walk.windows(2) {
                prop_assert!(p[1].0 < h && p[1].1 < w);
                let d = p[0].0.abs_diff(p[1].0) + p[0].1.abs_diff(p[1].1);
                prop_assert!(d == 1 || (h == 1 && w == 1 && d == 0));
            }
        }
        // Same seed, same walks.
        let mut rng2 = ChaCha8Rng::seed_from_u64(seed);
        prop_assert_eq!(px, random_walks(h, w, start, walks, steps, &mut rng2).unwrap());
    }
}

#[test]
fn batch_equals_single_windows() {
    let x = cube(6, 3, 20, 17);
    let origins = [(0, 0), (4, 9), (12, 9), (7, 1)];
    let batch = planar_batch(x.view(), &origins, 8, Curve::Hilbert).unwrap();
    assert_eq!(batch.dim(), (4, 3, 64, 6));
    let order = curve_order(Curve::Hilbert, 8, 8);
    for (b, &(r, c)) in origins.iter().enumerate() {
        let one = planar_image(x.slice(s![.., .., r..r + 8, c..c + 8]), &order).unwrap();
        assert_eq!(batch.slice(s![b, .., .., ..]), one);
    }
    let e = planar_batch(x.view(), &[(15, 0)], 8, Curve::Hilbert).unwrap_err();
    assert!(e.to_string().contains("does not fit"), "{e}");
}

#[test]
fn walk_image_and_tokens() {
    let x = cube(8, 2, 9, 9);
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let img = random_walk_image(x.view(), (4, 4), 3, 5, &mut rng).unwrap();
    assert_eq!(img.dim(), (2, 15, 8));
    // The first row of each walk is the seed pixel's series.
    for k in [0, 5, 10] {
        for t in 0..8 {
            assert_eq!(img[[0, k, t]], x[[t, 0, 4, 4]]);
        }
    }
    let (tokens, grid) = local_views(img.view(), 5, 4).unwrap();
    assert_eq!(grid, (3, 2));
    assert_eq!(tokens.dim(), (6, 2 * 5 * 4));
    assert!(random_walk_image(x.view(), (9, 0), 1, 1, &mut rng).is_err());
}
