"""Data-parallel (DDP) cases. ``case`` owns a DDP case from the decision to skip it to its result record;
``launch`` starts torchrun for one world size, waits with a deadline and kills what it started; ``worker`` is
the program every rank runs. No pytest here.
"""
