"""Tiny random models for tests: built from a config in seconds, no downloads.

The tokenizer is a byte-level BPE trained on a few sentences, with a ChatML chat template
(the same markers as the embedded SmolLM2), so prompt building and stop markers are exercised
exactly as with the real model.
"""

from __future__ import annotations

from pathlib import Path

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] "
    "+ '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_CORPUS = [
    "The patient has a fever and a cough. Drink fluids and rest.",
    "COVID-19 is caused by a coronavirus. Influenza is caused by a virus.",
    "Chest pain with sweating needs emergency care. Call emergency services.",
    "A sore throat often gets better in a week. See a doctor if it gets worse.",
    "Take paracetamol as directed on the label. Ask a pharmacist about doses.",
    "Diabetes means high blood sugar. Hypertension means high blood pressure.",
    "Hello! How can I help you today? I am not sure; please see a clinician.",
    "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 .,;:!?'\"()-[]",
]


def build_tokenizer(out: Path, vocab_size: int = 400):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_CORPUS * 4, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>", unk_token="<|endoftext|>")
    fast.chat_template = CHATML
    fast.save_pretrained(out)
    return fast


def build_tiny_llama(out: Path, seed: int = 0, layers: int = 2, hidden: int = 64) -> Path:
    """A random Llama-architecture causal LM saved as safetensors + tokenizer in `out`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(out)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=hidden * 2,
                      num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=512, tie_word_embeddings=True,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id, rope_theta=10000.0)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():  # larger weights than the default init so outputs depend on inputs
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.08)
    model.save_pretrained(out, safe_serialization=True)
    return out


def make_lora_adapter(base_dir: Path, out: Path, seed: int = 1, r: int = 4, alpha: int = 8,
                      target_modules="all-linear", scale: float = 0.05) -> Path:
    """A real PEFT LoRA adapter with random non-zero A and B (so it changes outputs)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=r, lora_alpha=alpha, target_modules=target_modules,
                                                  lora_dropout=0.0, task_type="CAUSAL_LM"))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * scale * 4)
    peft_model.save_pretrained(out, safe_serialization=True)
    return Path(out)
