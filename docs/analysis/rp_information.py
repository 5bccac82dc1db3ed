"""How much of the Mato Grosso labels an unthresholded recurrence plot can carry.

The plot of a series x is |x_i - x_j|: the same for x + c and for c - x, so each
index's per-series level (and sign) is gone before any encoder sees it. This script
classifies the held-out split (samples.csv) from what each view keeps, with a linear
probe (scikit-learn logistic regression, C by 5-fold cross-validation on the training
rows) and a random forest (500 trees, 3 seeds):

    raw bands | NDVI/EVI/SAVI series | the same with each series' level removed |
    the recurrence plots of NDVI/EVI/SAVI themselves (upper triangles)

Needs numpy and scikit-learn (analysis only; the library never runs Python):
    python3 -m venv /tmp/skl && /tmp/skl/bin/pip install numpy scikit-learn
    /tmp/skl/bin/python -W ignore docs/analysis/rp_information.py
"""
import csv
import pathlib

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegressionCV
from sklearn.preprocessing import StandardScaler

d = pathlib.Path(__file__).resolve().parents[2] / "data" / "mato_grosso_mod13q1"
x = np.load(d / "values.npy").astype(np.float64)  # (N, 23, 6): blue red nir mir evi ndvi
rows = list(csv.DictReader(open(d / "samples.csv")))
y = np.array([int(r["label_index"]) for r in rows])
split = np.array([r["split"] for r in rows])
red, nir, evi, ndvi = x[..., 1], x[..., 2], x[..., 4], x[..., 5]
savi = 1.5 * (nir - red) / (nir + red + 0.5)
idx = np.stack([ndvi, evi, savi], -1)  # the channels of the PIMC recurrence images
upper = np.triu_indices(idx.shape[1], 1)
rp = np.concatenate(
    [np.abs(idx[:, :, None, c] - idx[:, None, :, c])[:, upper[0], upper[1]] for c in range(3)], 1
)
views = {
    "raw, 6 bands": x.reshape(len(x), -1),
    "NDVI/EVI/SAVI series": idx.reshape(len(x), -1),
    "NDVI/EVI/SAVI, each series' level removed": (idx - idx.mean(1, keepdims=True)).reshape(len(x), -1),
    "recurrence plots of NDVI/EVI/SAVI": rp,
}
tr, te = split == "train", split == "test"
for name, f in views.items():
    s = StandardScaler().fit(f[tr])
    lin = LogisticRegressionCV(Cs=8, cv=5, max_iter=3000).fit(s.transform(f[tr]), y[tr])
    lin_oa = lin.score(s.transform(f[te]), y[te])
    rf = [
        RandomForestClassifier(500, random_state=k, n_jobs=2).fit(f[tr], y[tr]).score(f[te], y[te])
        for k in range(3)
    ]
    print(f"{name}: {f.shape[1]} features, linear {lin_oa:.4f}, forest {np.mean(rf):.4f} ± {np.std(rf):.4f}")
