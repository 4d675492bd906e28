"""The parts of bench/quality.py, one module per model / dataset pairing; ``PARTS`` maps --only names to them."""

from . import facts, headlines, minilm, rt_smollm

PARTS = {
    "rt-smollm": rt_smollm.run,
    "rt-minilm": minilm.run_rt,
    "punct": minilm.run_punct,
    "facts": facts.run,
    "headlines": headlines.run,
}
