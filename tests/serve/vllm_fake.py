"""A stand-in for vLLM's OpenAI server in the tests that run without vLLM: ``/v1/completions`` decoding greedily
with the frozen backbone from ``prompt_embeds`` (base64 ``torch.save``, as vLLM takes them) or token ids.

It runs the backbone on the whole sequence at every step (no cache, no prompt machinery), so it checks that the
embeddings the front builds carry the prompt: its answers must equal softprompt's own generation.
"""

import asyncio
import base64
import io

import torch
from fastapi import FastAPI, Request


def fake_vllm_app(model) -> FastAPI:
    app = FastAPI()
    app.state.seen = []
    app.state.delay = 0.0  # seconds each request waits before decoding (the limit tests set it)
    backbone, embed = model.backbone, model.backbone.get_input_embeddings()

    @torch.no_grad()
    def greedy(x: torch.Tensor, n: int) -> list[int]:  # x: (T, H)
        out = []
        for _ in range(n):
            t = int(backbone(inputs_embeds=x[None]).logits[0, -1].argmax())
            out.append(t)
            x = torch.cat([x, embed(torch.tensor([[t]]))[0].to(x.dtype)])
        return out

    @app.get("/health")
    async def health():
        return {}

    @app.post("/v1/completions")
    async def completions(request: Request):
        body = await request.json()
        app.state.seen.append(body)
        await asyncio.sleep(app.state.delay)
        if "prompt_embeds" in body:
            rows = [
                torch.load(io.BytesIO(base64.b64decode(e)), weights_only=True) for e in body["prompt_embeds"]
            ]
        else:
            rows = [embed(torch.tensor([ids]))[0] for ids in body["prompt"]]
        choices = []
        for i, x in enumerate(rows):
            ids = greedy(x, body.get("max_tokens", 16))
            choices.append(
                {"index": i, "text": model.tokenizer.decode(ids), "token_ids": ids, "finish_reason": "length"}
            )
        return {"id": "cmpl-fake", "object": "text_completion", "model": body["model"], "choices": choices}

    return app
