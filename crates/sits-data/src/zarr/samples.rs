//! Sample-set stores: writing and reading a whole labelled set.

#[allow(clippy::wildcard_imports)] // the parent module's helpers and imports
use super::*;

/// Writes a sample set as a Zarr v3 store at `path`, atomically; an existing `path`
/// is treated as by [`write_cube`].
pub fn write_samples(set: &SampleSet, path: &Path, if_exists: IfExists) -> Result<()> {
    write_store_atomic(path, "samples", if_exists, |store, desc| {
        write_samples_to(&store, desc, set)
    })
}

/// Writes a sample set into any writable zarrs storage (see [`write_samples`]).
pub fn write_samples_to<S: ReadableWritableListableStorageTraits + ?Sized + 'static>(
    store: &Arc<S>,
    desc: &str,
    set: &SampleSet,
) -> Result<()> {
    let (n, t, c) = (set.len(), set.max_len(), set.bands().len());
    let mut values = ndarray::Array3::from_elem((n, t, c), f32::NAN);
    let mut times = Array2::from_elem((n, t), i64::MIN);
    let mut length = Array1::zeros(n);
    for (i, s) in set.series().iter().enumerate() {
        values
            .slice_mut(ndarray::s![i, ..s.len(), ..])
            .assign(&s.values);
        for (j, ts) in s.times.as_slice().iter().enumerate() {
            times[[i, j]] = ts.and_utc().timestamp();
        }
        length[i] = s.len() as i32;
    }
    let label = Array1::from_iter((0..n).map(|i| set.labels().map_or(-1, |l| l[i] as i64)));
    let split = Array1::from_iter((0..n).map(|i| match set.splits().map(|s| s[i]) {
        Some(Split::Train) => 0u8,
        Some(Split::Val) => 1,
        Some(Split::Test) => 2,
        None => 255,
    }));
    let attrs = StoreAttrs {
        kind: "samples".into(),
        format_version: SAMPLES_FORMAT,
        bands: set.bands().to_vec(),
        times: Vec::new(),
        scale: 1.0,
        offset: 0.0,
        nodata: None,
        crs: None,
        geotransform: None,
        class_names: set.class_names().to_vec(),
        ids: set.ids().to_vec(),
    };
    let nc = 4096u64;
    write_array(
        store,
        desc,
        "/values",
        &values.into_dyn(),
        vec![nc, t as u64, c as u64],
        data_type::float32(),
        f32::NAN,
        &["sample", "time", "band"],
    )?;
    write_array(
        store,
        desc,
        "/times",
        &times.into_dyn(),
        vec![nc, t as u64],
        data_type::int64(),
        i64::MIN,
        &["sample", "time"],
    )?;
    write_array(
        store,
        desc,
        "/length",
        &length.into_dyn(),
        vec![nc],
        data_type::int32(),
        0i32,
        &["sample"],
    )?;
    write_array(
        store,
        desc,
        "/label",
        &label.into_dyn(),
        vec![nc],
        data_type::int64(),
        -1i64,
        &["sample"],
    )?;
    write_array(
        store,
        desc,
        "/split",
        &split.into_dyn(),
        vec![nc],
        data_type::uint8(),
        255u8,
        &["sample"],
    )?;
    // the root metadata last: a store cut short has none and is not read as a set
    write_root(store, desc, &attrs)
}

/// Checks that every chunk of `array` is in the store (a missing chunk would read as
/// fill values: NaN values, absent labels, dates of 1677).
fn require_chunks<S: ReadableStorageTraits + ?Sized + 'static>(
    store: &Arc<S>,
    desc: &str,
    array: &Array<S>,
) -> Result<()> {
    let grid = array.chunk_grid_shape().to_vec();
    let mut idx = vec![0u64; grid.len()];
    if grid.contains(&0) {
        return Ok(());
    }
    loop {
        let key = array.chunk_key(&idx);
        if store.size_key(&key)?.is_none() {
            return Err(zerr(
                desc,
                format!(
                    "{}: chunk {idx:?} ({key}) is missing; the store is incomplete (copy it again \
                     or rewrite it)",
                    array.path()
                ),
            ));
        }
        // next index, last axis fastest
        let mut axis = grid.len();
        loop {
            if axis == 0 {
                return Ok(());
            }
            axis -= 1;
            idx[axis] += 1;
            if idx[axis] < grid[axis] {
                break;
            }
            idx[axis] = 0;
        }
    }
}

/// Reads a sample-set store from any zarrs storage.
///
/// The shapes of all arrays are checked against each other and the whole read against
/// [`read_budget`](crate::io_util::read_budget) before anything is read, and every
/// chunk must be present.
pub fn read_samples_from<S: ReadableStorageTraits + ?Sized + 'static>(
    store: &Arc<S>,
    desc: &str,
) -> Result<SampleSet> {
    let attrs = read_attrs(store, desc)?;
    let values = open_array(store, desc, "/values")?;
    let sh = values.shape().to_vec();
    let [n, t, c] = sh[..] else {
        return Err(DataError::Shape {
            what: format!("{desc}/values"),
            expected: "(N, T, C)".into(),
            got: sh.iter().map(|&d| d as usize).collect(),
        });
    };
    if c != attrs.bands.len() as u64 {
        return Err(zerr(
            desc,
            format!(
                "/values has C = {c} but sits.bands names {} bands",
                attrs.bands.len()
            ),
        ));
    }
    let arrays = [
        ("/times", vec![n, t]),
        ("/length", vec![n]),
        ("/label", vec![n]),
        ("/split", vec![n]),
    ]
    .map(|(node, expect)| {
        let a = open_array(store, desc, node)?;
        if a.shape() != expect.as_slice() {
            return Err(DataError::Shape {
                what: format!("{desc}{node}"),
                expected: format!("{expect:?} to match /values {sh:?}"),
                got: a.shape().iter().map(|&d| d as usize).collect(),
            });
        }
        Ok(a)
    });
    let [times, length, label, split] = arrays;
    let (times, length, label, split) = (times?, length?, label?, split?);
    crate::io_util::check_read_size(&format!("{desc}/values"), &sh, 4)?;
    crate::io_util::check_read_size(&format!("{desc}/times"), &[n, t], 8)?;
    let strict = attrs.format_version >= SAMPLES_FORMAT;
    for a in [&times, &length] {
        require_chunks(store, desc, a)?;
    }
    if strict {
        for a in [&values, &label, &split] {
            require_chunks(store, desc, a)?;
        }
    }
    let values = retrieve_f32(&values, desc, &[0..n, 0..t, 0..c])?.into_dimensionality::<Ix3>()?;
    let times = retrieve_i64(&times, desc, &[0..n, 0..t])?.into_dimensionality::<Ix2>()?;
    let whole = 0..n;
    let all = std::slice::from_ref(&whole);
    let length = retrieve_i64(&length, desc, all)?.into_dimensionality::<Ix1>()?;
    let label = retrieve_i64(&label, desc, all)?.into_dimensionality::<Ix1>()?;
    let split = retrieve_i64(&split, desc, all)?.into_dimensionality::<Ix1>()?;
    if let Some((idx, v)) = values.indexed_iter().find(|(_, v)| v.is_infinite()) {
        return Err(zerr(
            desc,
            format!("/values{idx:?} is {v}; missing values are stored as NaN"),
        ));
    }
    let mut series = Vec::with_capacity(n as usize);
    for i in 0..n as usize {
        let len = length[i];
        if len <= 0 || len as u64 > t {
            return Err(zerr(
                desc,
                format!("/length[{i}] = {len} is outside 1..={t}"),
            ));
        }
        let len = len as usize;
        let ts = (0..len)
            .map(|j| {
                DateTime::from_timestamp(times[[i, j]], 0)
                    .map(|d| d.naive_utc())
                    .ok_or_else(|| zerr(desc, format!("/times[{i}, {j}] is not a valid timestamp")))
            })
            .collect::<Result<Vec<_>>>()?;
        let what = format!("{desc} sample {i}");
        let s = Series::new(
            values.slice(ndarray::s![i, ..len, ..]).to_owned(),
            Timestamps::new(ts, &what)?,
            None,
        )?;
        series.push(s);
    }
    let labels = if label.iter().all(|&l| l < 0) {
        None
    } else {
        if let Some(i) = label.iter().position(|&l| l < 0) {
            return Err(zerr(
                desc,
                format!("/label[{i}] is missing (-1) while other samples are labelled"),
            ));
        }
        Some(label.iter().map(|&l| l as usize).collect())
    };
    let splits = if split.iter().all(|&s| s == 255) {
        None
    } else {
        Some(
            split
                .iter()
                .enumerate()
                .map(|(i, &s)| match s {
                    0 => Ok(Split::Train),
                    1 => Ok(Split::Val),
                    2 => Ok(Split::Test),
                    v => Err(zerr(desc, format!("/split[{i}] = {v} is not 0, 1 or 2"))),
                })
                .collect::<Result<Vec<_>>>()?,
        )
    };
    let mut set = SampleSet::new(series, attrs.bands, labels, attrs.class_names, splits)?;
    if !attrs.ids.is_empty() {
        if attrs.ids.len() != set.len() {
            return Err(zerr(
                desc,
                format!(
                    "sits.ids lists {} ids for {} samples",
                    attrs.ids.len(),
                    set.len()
                ),
            ));
        }
        let mut seen = std::collections::HashSet::with_capacity(attrs.ids.len());
        if let Some(dup) = attrs.ids.iter().find(|id| !seen.insert(id.as_str())) {
            return Err(zerr(
                desc,
                format!("sits.ids: sample id {dup:?} appears twice; ids must be unique"),
            ));
        }
        set = set.with_ids(attrs.ids)?;
    }
    Ok(set)
}
