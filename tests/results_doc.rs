//! The headline numbers of README.md and docs/results.md are the numbers the runs
//! wrote: this test rebuilds the quickstart's result line and the mean ± sd table
//! from the `results.json` files kept in `docs/results/` and requires both documents
//! to contain them verbatim. When a run changes, copy its `results.json` there; the
//! failure message prints the text to paste.

use std::path::{Path, PathBuf};

use serde_json::Value;

const SEEDS: [u64; 3] = [0, 1, 2];
const FRACTIONS: [f64; 4] = [0.01, 0.05, 0.1, 1.0];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn load(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e} (copy the run's results.json here)", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A metric of one setting at one fraction; panics (naming the file) when absent
/// or not a finite number.
fn metric(run: &Value, setting: &str, fraction: f64, key: &str, file: &str) -> f64 {
    let rows = run[setting]
        .as_array()
        .unwrap_or_else(|| panic!("{file}: no `{setting}` array"));
    let row = rows
        .iter()
        .find(|r| {
            r["fraction"]
                .as_f64()
                .is_some_and(|f| (f - fraction).abs() < 1e-9)
        })
        .unwrap_or_else(|| panic!("{file}: `{setting}` has no fraction {fraction}"));
    let v = row[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{file}: `{setting}` at {fraction}: no `{key}`"));
    assert!(
        v.is_finite(),
        "{file}: `{setting}` at {fraction}: {key} = {v}"
    );
    v
}

/// Mean and standard deviation (over the seeds, dividing by their number, as the
/// `ssl_probe` example does), as `0.877 ± 0.016`.
fn mean_sd(v: &[f64]) -> String {
    let m = v.iter().sum::<f64>() / v.len() as f64;
    let sd = (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
    format!("{m:.3} ± {sd:.3}")
}

struct Runs {
    runs: Vec<(String, Value)>,
}

impl Runs {
    fn load() -> Self {
        let runs = SEEDS
            .iter()
            .map(|s| {
                let name = format!("quickstart_seed{s}.json");
                let run = load(&root().join("docs/results").join(&name));
                // the README describes the default run: masked reconstruction, 60 epochs
                assert_eq!(run["config"]["seed"].as_u64(), Some(*s), "{name}: seed");
                assert_eq!(
                    run["config"]["method"].as_str(),
                    Some("Bert"),
                    "{name}: method"
                );
                assert_eq!(run["config"]["epochs"].as_u64(), Some(60), "{name}: epochs");
                (name, run)
            })
            .collect();
        Self { runs }
    }

    fn over_seeds(&self, setting: &str, fraction: f64) -> String {
        let v: Vec<f64> = self
            .runs
            .iter()
            .map(|(name, run)| metric(run, setting, fraction, "oa", name))
            .collect();
        mean_sd(&v)
    }

    /// The quickstart's last line for seed 0, as `few_label::result_line` prints it.
    fn seed0_line(&self) -> String {
        let (name, run) = &self.runs[0];
        let m = |s: &str, f: f64| metric(run, s, f, "oa", name);
        format!(
            "result: method=bert ssl_probe_oa@10={:.4} random_probe_oa@10={:.4} raw_probe_oa@10={:.4} \
             ssl_probe_oa@100={:.4} random_probe_oa@100={:.4} raw_probe_oa@100={:.4} finetune_oa@100={:.4}",
            m("ssl", 0.1),
            m("random", 0.1),
            m("raw", 0.1),
            m("ssl", 1.0),
            m("random", 1.0),
            m("raw", 1.0),
            m("finetune", 1.0),
        )
    }

    fn table(&self) -> String {
        let mut t = String::from(
            "| labels | raw series | random-init encoder | SSL encoder | SSL encoder fine-tuned |\n\
             | --- | --- | --- | --- | --- |\n",
        );
        for f in FRACTIONS {
            let ft = if f == 1.0 {
                self.over_seeds("finetune", f)
            } else {
                "–".to_string()
            };
            t.push_str(&format!(
                "| {} % | {} | {} | {} | {ft} |\n",
                (f * 100.0).round(),
                self.over_seeds("raw", f),
                self.over_seeds("random", f),
                self.over_seeds("ssl", f),
            ));
        }
        t
    }
}

fn assert_contains(doc: &str, want: &str, what: &str) {
    let text = std::fs::read_to_string(root().join(doc)).expect(doc);
    assert!(
        text.contains(want),
        "{doc} does not carry the {what} of docs/results/*.json; it should read:\n\n{want}\n"
    );
}

#[test]
fn the_readme_and_results_page_carry_the_numbers_the_runs_wrote() {
    let runs = Runs::load();
    let table = runs.table();
    let line = runs.seed0_line();
    assert_contains("README.md", &table, "headline table");
    assert_contains("docs/results.md", &table, "headline table");
    assert_contains("README.md", &line, "quickstart line");
    assert_contains("docs/results.md", &line, "quickstart line");
}

#[test]
fn a_changed_number_fails_the_check() {
    // the check can fail: a table built from a run with one number moved differs
    let mut runs = Runs::load();
    let before = runs.table();
    let set_oa = |runs: &mut Runs, v: Value| {
        let row = runs.runs[1].1["ssl"]
            .as_array_mut()
            .and_then(|rows| {
                rows.iter_mut()
                    .find(|r| r["fraction"].as_f64() == Some(0.1))
            })
            .expect("ssl at 10 %");
        let old = row["oa"].as_f64();
        row["oa"] = v;
        old
    };
    let oa = set_oa(&mut runs, Value::Null).expect("oa");
    set_oa(&mut runs, Value::from(oa - 0.05));
    assert_ne!(runs.table(), before);
    // and a missing or NaN number is refused, not averaged away (serde_json writes
    // a NaN as null)
    set_oa(&mut runs, Value::from(f64::NAN));
    let nan = std::panic::catch_unwind(|| runs.table());
    assert!(nan.is_err(), "a NaN OA must fail the check");
}
