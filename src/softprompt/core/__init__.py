"""How prompts enter a frozen transformer: the wrapper model, the prompt bank, virtual-token insertion,
per-layer key/value prefixes, the backbone probe, generation, and loading a backbone.

- ``model.PromptedModel`` — the frozen backbone plus a bank of prompts; one ``forward`` for every method.
- ``prompt`` — the contract every method implements (``Contribution``, ``MethodConfig``) and the method table.
- ``bank`` — named prompts, per-row selection for mixed batches. ``static`` — the ejected (inference) form.
- ``inject`` — virtual input tokens at any position; ``kv`` — key/value prefixes at attention time;
  ``kv_capture`` — the frozen model's own keys/values as a prefix (``init='text'``, the prompt-KV cache);
  ``scoring`` — label log-probabilities and next-token logits aligned with the caller's tokens.
- ``arch`` — what a backbone is (``BackboneInfo``), derived by a probe forward; a new backbone quirk goes here.
- ``generation`` — KV-cache generation (on the prompt-KV cache), the context check; ``decoding`` — the sampler,
  EOS ids and stop strings; ``loading`` — ``load_model`` (device, dtype, device_map, quantize);
  ``quantize`` — quantized frozen backbones (bitsandbytes int8 / nf4 / fp4; int8 computed weight-only).
- ``compat`` — the only module that touches transformers' / accelerate's private or changing APIs.
"""
