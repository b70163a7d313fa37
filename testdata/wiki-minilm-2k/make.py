#!/usr/bin/env python3
"""Rebuilds this fixture from the full wiki-minilm dataset.

usage: make.py SRC_DIR   (SRC_DIR holds base.fvecs, query.fvecs, base.jsonl, query.jsonl)
Needs numpy and the texmex helpers of the dataset's tools (fvecs.py) on PYTHONPATH.
Takes the first 2,000 base rows and the first 200 queries (the source rows are already
in random order) and computes the exact cosine top-100 over the 2,000 rows.
"""
import os
import sys

from fvecs import exact_topk, read_fvecs, write_fvecs, write_ivecs

N, Q = 2000, 200
src = sys.argv[1]
here = os.path.dirname(os.path.abspath(__file__))
base = read_fvecs(os.path.join(src, "base.fvecs"))[:N]
query = read_fvecs(os.path.join(src, "query.fvecs"))[:Q]
write_fvecs(os.path.join(here, "base.fvecs"), base)
write_fvecs(os.path.join(here, "query.fvecs"), query)
write_ivecs(os.path.join(here, "groundtruth.ivecs"), exact_topk(base, query, 100, "cosine"))
for name, rows in (("base.jsonl", N), ("query.jsonl", Q)):
    with open(os.path.join(src, name)) as f, open(os.path.join(here, name), "w") as out:
        for _, line in zip(range(rows), f):
            out.write(line)
