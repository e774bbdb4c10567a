"""Train a WordPiece tokenizer on the report corpus and (optionally) write a small randomly
initialised BERT beside it, giving a local text-model folder that needs no download."""

from __future__ import annotations

from pathlib import Path

from cmcgns.data.manifest import read_manifest
from cmcgns.errors import DataError


def report_corpus(manifest_dir: Path) -> list[str]:
    rows = read_manifest(manifest_dir).rows
    corpus = [s["text"] for r in rows for s in r.get("sentences", [])]
    if not corpus:
        raise DataError(f"{manifest_dir}: no report sentences to train a tokenizer on")
    return corpus


MIN_VOCAB = 100


def train_text_model(
    corpus: list[str],
    out_dir: Path,
    vocab_size: int = 1000,
    hidden_size: int = 64,
    layers: int = 2,
    heads: int = 2,
    with_model: bool = True,
    seed: int = 0,
) -> Path:
    if vocab_size < MIN_VOCAB:
        raise DataError(
            f"--vocab-size {vocab_size}: must be at least {MIN_VOCAB} (special tokens and the reports' characters); "
            "e.g. 1000"
        )
    if hidden_size < 2 or layers < 1:
        raise DataError(f"--hidden-size {hidden_size} / --layers {layers}: need at least 2 and 1")
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.train_from_iterator(corpus, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=special))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(out_dir))
    if with_model:
        torch.manual_seed(seed)
        config = BertConfig(
            vocab_size=len(fast),
            hidden_size=hidden_size,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            intermediate_size=hidden_size * 4,
            max_position_embeddings=512,
        )
        BertModel(config).save_pretrained(str(out_dir))
    return out_dir
