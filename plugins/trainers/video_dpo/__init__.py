"""The ``video-dpo`` trainer, laid out as TRL's ``dpo_trainer.py`` beside ``dpo_config.py``:

- ``config.py``: its options (``VideoDpoOptions``), documented by group;
- ``trainer.py``: the round trainer (``VideoDpoTrainer``), one round of DPO on video per call;
- ``loss.py``: TRL's DPO objective driven by that trainer (``TrlDpoObjective``).

What it shares with supervised fine-tuning is one level up: ``trainers/common.py`` (the shared options and
model helpers), ``trainers/data.py`` (tokenisation and video batches), ``trainers/features.py`` (vision
features computed once). This package imports nothing heavy: the hook module imports ``config`` at load time,
and torch, transformers and TRL come in with ``trainer``."""
