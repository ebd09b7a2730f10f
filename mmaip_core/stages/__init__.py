"""The pipeline's stages over a run folder: the shared run and the one cached-call loop, build (MMAIP-V), scoring answers, evaluation, judge drift, frame ablations, export."""
