"""The wordllama model behind a narrow, typed face (wordllama itself has no type hints).

wordllama's wheel ships the l2_supercat weights and tokenizer. Its own ``WordLlama.load`` looks
for the tokenizer under ``wordllama/tokenizer/`` while the wheel puts it in ``tokenizers/``, so it
would download it: the model is built here from the wheel's files, which never reaches the
network. Importing this module imports neither wordllama nor numpy: only :func:`load_wordllama`
does.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

# The files in wordllama's wheel: l2_supercat at 256 dimensions (shorter vectors are its leading
# components), and its tokenizer.
WEIGHTS_FILE = Path("weights", "l2_supercat_256.safetensors")
TOKENIZER_FILE = Path("tokenizers", "l2_supercat_tokenizer_config.json")
WEIGHTS_TENSOR = "embedding.weight"


class WordLlamaEncoder:
    """A loaded wordllama model (``Encoder`` of the local provider)."""

    def __init__(self, model: Any, batch_size: int) -> None:
        self._model = model
        self._batch_size = batch_size

    def encode(self, texts: list[str], dimensions: int) -> tuple[list[list[float]], list[int]]:
        if not texts:
            return [], []
        # Padding is on, so the attention mask counts each text's own tokens.
        tokens = [sum(encoding.attention_mask) for encoding in self._model.tokenize(texts)]
        matrix = self._model.embed(texts, norm=False, batch_size=self._batch_size)
        matrix = matrix[:, :dimensions]
        norms = (matrix * matrix).sum(axis=1, keepdims=True) ** 0.5
        norms[norms == 0] = 1.0  # an empty text stays a zero vector rather than NaNs
        vectors: list[list[float]] = (matrix / norms).tolist()
        return vectors, [int(count) for count in tokens]


def load_wordllama(dimensions: int, batch_size: int) -> WordLlamaEncoder:
    """Load the model shipped in wordllama's wheel (a second; call it off the event loop)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    # The optional extra, imported only when first needed.
    import wordllama
    from safetensors import safe_open
    from tokenizers import Tokenizer

    # wordllama calls logging.basicConfig() at import: undo it, logging is the platform's.
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    package = Path(wordllama.__file__).parent
    missing = [str(package / name) for name in (WEIGHTS_FILE, TOKENIZER_FILE)]
    missing = [path for path in missing if not Path(path).is_file()]
    if missing:
        raise FileNotFoundError(f"wordllama's model files are missing: {', '.join(missing)}")
    with safe_open(str(package / WEIGHTS_FILE), framework="np", device="cpu") as weights:
        embedding = weights.get_tensor(WEIGHTS_TENSOR)[:, :dimensions]
    tokenizer = Tokenizer.from_file(str(package / TOKENIZER_FILE))
    return WordLlamaEncoder(wordllama.WordLlamaInference(embedding, tokenizer), batch_size)
