"""``plugtron data preprocess``: JSONL corpora -> Megatron indexed datasets, offline.

``cli`` (torch-free: ``plugtron --help`` builds its parser from it) parses the command line;
``parallel`` plans byte ranges, runs the workers and merges their parts; ``jsonl_to_indexed``
is one worker's unit of work (also used to build the bundled corpus).
"""
