"""Every file a run folder holds, named once: the stages write and read them through these names.

A build folder holds LEDGER, SAMPLES, FRAMES, RESPONSES, PAIRS, ERRORS, SUMMARY, RUN_MANIFEST; an evaluation
folder LEDGER, VERDICTS, ERRORS, RESULTS, REPORT, RUN_MANIFEST (and DRIFT after ``--rejudge``); a comparison
COMPARISON, JUDGEMENTS, ERRORS, REPORT; a frame ablation ABLATION beside one folder per setting; a training
TRAIN_MANIFEST, and PAIRS in each round's folder; an alpha sweep SWEEP. Every folder a stage holds has LOCK
and RUN_CONFIG (:mod:`mmaip_core.store.runfolder`).
"""

from __future__ import annotations

__all__ = [
    "ABLATION",
    "COMPARISON",
    "DRIFT",
    "ERRORS",
    "FRAMES",
    "JUDGEMENTS",
    "LEDGER",
    "LOCK",
    "PAIRS",
    "REPORT",
    "RESPONSES",
    "RESULTS",
    "RUN_CONFIG",
    "RUN_MANIFEST",
    "SAMPLES",
    "SUMMARY",
    "SWEEP",
    "TRAIN_MANIFEST",
    "VERDICTS",
]

LEDGER = "ledger.sqlite"
SAMPLES = "samples.jsonl"
FRAMES = "frames.jsonl"
RESPONSES = "responses.jsonl"
PAIRS = "pairs.jsonl"
ERRORS = "errors.jsonl"
SUMMARY = "summary.json"
RUN_MANIFEST = "run-manifest.json"
VERDICTS = "verdicts.jsonl"
RESULTS = "results.json"
REPORT = "report.md"
DRIFT = "drift.json"
ABLATION = "ablation.json"
COMPARISON = "comparison.json"
JUDGEMENTS = "judgements.jsonl"
SWEEP = "sweep.json"
TRAIN_MANIFEST = "manifest.json"
LOCK = ".mmaip.lock"
RUN_CONFIG = "run-config.json"
