"""What is measured and how: the case matrix (``cases``), models, the CIFAR-10 data pipeline (``data``,
``datadir``), one training step (``training``), timed windows and their statistics (``measure``), whether a batch
fits the data (``batch_fit``), compile time in a fresh process (``compile_time``) and model FLOPs utilisation
(``mfu``). Plain values in, result records out; no pytest, no verdicts.
"""
